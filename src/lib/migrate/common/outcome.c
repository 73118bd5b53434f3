#include "migrate/common/outcome.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/pod_journal.h"
#include "container/pod.h"
#include "container/volume.h"
#include "migrate/common/proto.h"
#include "migrate/common/session.h"
#include "migrate/common/volume_sync.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

static const char *const state_names[] = {"unknown",  "staging",   "restoring",
                                          "restored", "committed", "aborted"};

const char *em_outcome_state_name(enum em_outcome_state s)
{
        return (size_t)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

enum em_outcome_state em_outcome_state_parse(const char *s)
{
        for (size_t i = 0; s != NULL && i < sizeof(state_names) / sizeof(state_names[0]); i++)
                if (strcmp(s, state_names[i]) == 0)
                        return (enum em_outcome_state)i;
        return EM_OUTCOME_UNKNOWN;
}

bool em_outcome_session_valid(const char *session)
{
        return session != NULL && strlen(session) == 32 &&
               strspn(session, "0123456789abcdef") == 32;
}

static char *record_path(const char *root, const char *session, const char *ext)
{
        char *p = NULL;

        if (!em_outcome_session_valid(session) ||
            asprintf(&p, "%s/outcomes/%s.%s", root, session, ext) < 0)
                return NULL;
        return p;
}

int em_outcome_store(const char *root, const struct em_outcome *o, em_error_t *err)
{
        cleanup_free char *path = record_path(root, o->session, "json");
        cleanup_json json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:I}", "session", o->session, "container", o->container, "peer",
            o->peer, "state", em_outcome_state_name(o->state), "updated", (json_int_t)time(NULL));

        if (path == NULL || j == NULL)
                return em_error_set(err, ENOMEM, "outcome record");
        if (em_json_write_file(path, j, err) < 0)
                return em_error_wrap(err, "recording session %s as %s", o->session,
                                     em_outcome_state_name(o->state));
        return 0;
}

int em_outcome_advance(const char *root, const char *session, enum em_outcome_state from,
                       enum em_outcome_state to, em_error_t *err)
{
        struct em_outcome o;

        if (em_outcome_load(root, session, &o, err) < 0)
                return -1;
        if (o.state == EM_OUTCOME_ABORTED)
                return em_error_set(err, ECANCELED, "the source aborted session %s", session);
        if (o.state != from)
                return em_error_set(err, EPROTO, "session %s is %s, not %s", session,
                                    em_outcome_state_name(o.state), em_outcome_state_name(from));
        o.state = to;
        return em_outcome_store(root, &o, err);
}

int em_outcome_create(const char *root, const struct em_outcome *o, em_error_t *err)
{
        cleanup_free char *dir = em_path_join(root, "outcomes");
        cleanup_free char *lock = record_path(root, o->session, "lock");
        cleanup_close int fd = -1;

        if (dir == NULL || lock == NULL)
                return em_error_set(err, EINVAL, "outcome record of session '%s'", o->session);
        if (em_mkdir_p(dir, 0700, err) < 0)
                return -1;
        /* The lock file is the session's claim: O_EXCL, never replaced. */
        fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return em_error_set(err, errno,
                                    errno == EEXIST ? "session %s was used before"
                                                    : "creating the outcome record of %s",
                                    o->session);
        return em_outcome_store(root, o, err);
}

void em_outcome_drop(const char *root, const char *session)
{
        cleanup_free char *json = record_path(root, session, "json");
        cleanup_free char *lock = record_path(root, session, "lock");

        if (json != NULL)
                unlink(json);
        if (lock != NULL)
                unlink(lock);
}

int em_outcome_lock(const char *root, const char *session, int timeout_ms, int *out,
                    em_error_t *err)
{
        cleanup_free char *lock = record_path(root, session, "lock");
        cleanup_close int fd = -1;
        int64_t deadline = em_mono_ms() + timeout_ms;

        if (lock == NULL)
                return em_error_set(err, EINVAL, "bad session id");
        fd = open(lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return em_error_set(err, errno, "session %s", session);
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return em_error_set(err, errno, "locking session %s", session);
                if (em_mono_ms() >= deadline)
                        return em_error_set(err, ETIMEDOUT, "session %s is busy", session);
                poll(NULL, 0, 50);
        }
        *out = steal_fd(&fd);
        return 0;
}

static int copy_field(char *dst, size_t len, const char *src)
{
        if (src == NULL || strlen(src) >= len)
                return -1;
        strcpy(dst, src);
        return 0;
}

int em_outcome_load(const char *root, const char *session, struct em_outcome *o, em_error_t *err)
{
        cleanup_free char *path = record_path(root, session, "json");
        cleanup_json json_t *j = NULL;

        memset(o, 0, sizeof(*o));
        if (path == NULL)
                return em_error_set(err, EINVAL, "bad session id");
        if (!em_path_exists(path))
                return em_error_set(err, ENOENT, "no session %s here", session);
        if (em_json_load_file(path, 64 * 1024, &j, err) < 0)
                return -1;
        o->state = em_outcome_state_parse(em_json_str(j, "state"));
        if (copy_field(o->session, sizeof(o->session), session) < 0 ||
            copy_field(o->container, sizeof(o->container), em_json_str(j, "container")) < 0 ||
            copy_field(o->peer, sizeof(o->peer), em_json_str(j, "peer")) < 0 ||
            o->state == EM_OUTCOME_UNKNOWN || !em_container_name_valid(o->container))
                return em_error_set(err, EINVAL, "%s: not an outcome record", path);
        return 0;
}

/* What a session put under its container name: the restored container
 * (its state row is ours: the name was reserved at HELLO), or before any
 * restore only the reserved directory, and only if no container record
 * appeared in it meanwhile (that one is not ours). */
static int release_name(const struct em_config *cfg, const char *name, bool restored,
                        const char *route_hook, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t e = NULL;

        if (em_container_paths_init(cfg, name, &p, err) < 0 ||
            em_state_open(cfg->root, &st, err) < 0)
                return -1;
        if (em_state_container_get(st, name, &rec, &e) == 0) {
                if (restored) {
                        /* The copy goes: its service IP must not stay
                         * announced from here (the source restores its
                         * own and announces it). */
                        em_session_route_warn(NULL, route_hook, "withdraw", rec->ip,
                                              "withdrawing the service IP from this host");
                        /* A pod's session restored its members too. */
                        if (em_pod_rec_is_infra(rec, &e) == 1)
                                return em_pod_rm(cfg, name, true, err);
                        em_error_free(&e);
                        return em_container_rm(cfg, name, true, err);
                }
                em_log_warn("a container %s appeared in a reserved name; leaving it", name);
                return 0;
        }
        em_error_free(&e);
        /* Before any restore the target may have pre-warmed the name (its
         * network namespace; migrate/target/prewarm.h): released first. */
        if (em_container_release(cfg, name, err) < 0)
                return -1;
        return em_rm_rf(p.dir, err);
}

/* The pod members this session reserved and that hold no container (a
 * restored one went with the pod): their directories go. */
static int release_members(const struct em_config *cfg, const char *session, em_error_t *err)
{
        cleanup_free char *dir = em_session_incoming_dir(cfg, session);
        cleanup_free char *list = dir ? em_path_join(dir, EM_OUTCOME_MEMBERS) : NULL;
        cleanup_free char *text = NULL;
        cleanup_state struct em_state *st = NULL;
        char *save = NULL;

        if (list == NULL || !em_path_exists(list))
                return 0;
        if (em_read_file(list, 1 << 16, &text, NULL, err) < 0 ||
            em_state_open(cfg->root, &st, err) < 0)
                return -1;
        for (char *n = strtok_r(text, "\n", &save); n; n = strtok_r(NULL, "\n", &save)) {
                cleanup_container_rec struct em_container_rec *rec = NULL;
                em_error_t e = NULL;
                if (!em_container_name_valid(n) || em_state_container_get(st, n, &rec, &e) == 0)
                        continue;
                em_error_free(&e);
                if (em_container_remove_files(cfg, n, err) < 0)
                        return -1;
        }
        return unlink(list) < 0 && errno != ENOENT ? em_error_set(err, errno, "%s", list) : 0;
}

/* The named volumes a pod session moved into <root>/volumes: gone with
 * the pod's containers (em_volume_rm refuses one a container here still
 * mounts, which is then left, as is one already gone). Only the very
 * copies it moved: the list is written before the install, and a volume
 * of a listed name created here meanwhile (on which the install failed)
 * is not the session's. */
static int release_volumes(const struct em_config *cfg, const char *session, em_error_t *err)
{
        cleanup_free char *dir = em_session_incoming_dir(cfg, session);
        cleanup_free char *list = dir ? em_path_join(dir, EM_OUTCOME_VOLUMES) : NULL;
        cleanup_free char *text = NULL;
        char *save = NULL;

        if (list == NULL || !em_path_exists(list))
                return 0;
        if (em_read_file(list, 1 << 16, &text, NULL, err) < 0)
                return -1;
        for (char *n = strtok_r(text, "\n", &save); n; n = strtok_r(NULL, "\n", &save)) {
                const char *name = NULL;
                em_error_t e = NULL;
                if (!em_volume_rx_listed_here(cfg, n, &name))
                        continue;
                if (em_volume_rm(cfg, name, &e) < 0)
                        em_log_warn("session %s: volume %s stays: %s", session, name,
                                    em_error_msg(e));
                em_error_free(&e);
        }
        return unlink(list) < 0 && errno != ENOENT ? em_error_set(err, errno, "%s", list) : 0;
}

int em_outcome_abort(const struct em_config *cfg, struct em_outcome *o, const char *route_hook,
                     em_error_t *err)
{
        bool restored = o->state == EM_OUTCOME_RESTORED || o->state == EM_OUTCOME_RESTORING;

        if (o->state == EM_OUTCOME_COMMITTED)
                return em_error_set(err, EEXIST, "session %s was committed", o->session);
        if (o->state == EM_OUTCOME_ABORTED)
                return 0;
        if (release_name(cfg, o->container, restored, route_hook, err) < 0 ||
            release_members(cfg, o->session, err) < 0 || release_volumes(cfg, o->session, err) < 0)
                return em_error_wrap(err, "removing %s of session %s", o->container, o->session);
        if (restored)
                em_log_warn("session %s aborted: removed its copy of %s", o->session, o->container);
        o->state = EM_OUTCOME_ABORTED;
        return em_outcome_store(cfg->root, o, err);
}

bool em_outcome_copy_gone(const struct em_config *cfg, const struct em_outcome *o)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t e = NULL;
        bool gone = false;

        if (o->state != EM_OUTCOME_RESTORED)
                return false;
        if (em_state_open(cfg->root, &st, &e) == 0 &&
            em_state_container_get(st, o->container, &rec, &e) < 0)
                gone = em_error_status(e) == ENOENT;
        em_error_free(&e);
        return gone;
}

int em_outcome_each(const char *root, em_outcome_fn fn, void *ud, em_error_t *err)
{
        cleanup_free char *dir = em_path_join(root, "outcomes");
        cleanup_dir DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;

        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", dir);
        while ((de = readdir(d)) != NULL) {
                char session[33];
                struct em_outcome o;
                em_error_t e = NULL;
                if (strlen(de->d_name) != 37 || strcmp(de->d_name + 32, ".json") != 0)
                        continue;
                memcpy(session, de->d_name, 32);
                session[32] = '\0';
                if (em_outcome_load(root, session, &o, &e) == 0)
                        fn(&o, ud);
                em_error_free(&e);
        }
        return 0;
}

/* ---- OUTCOME requests (edgemigd) ---- */

static int reply(em_conn_t *conn, const char *session, const struct em_outcome *o,
                 const char *error, em_error_t *err)
{
        cleanup_json json_t *j = json_pack("{s:s, s:s, s:s, s:b}", "session", session, "state",
                                           em_outcome_state_name(o ? o->state : EM_OUTCOME_UNKNOWN),
                                           "container", o ? o->container : "", "ok", error == NULL);

        if (j == NULL || (error && json_object_set_new(j, "error", json_string(error)) < 0))
                return em_error_set(err, ENOMEM, "OUTCOME reply");
        return em_proto_send_json(conn, EM_FRAME_OUTCOME, j, err);
}

static int reply_error(em_conn_t *conn, const char *session, em_error_t *e, em_error_t *err)
{
        int rc = reply(conn, session, NULL, em_error_msg(*e), err);

        em_error_free(e);
        return rc;
}

/* Applies decision to the record (lock held). Returns the refusal, or NULL. */
static const char *decide(const struct em_config *cfg, struct em_outcome *o, const char *decision,
                          const char *route_hook, em_error_t *err)
{
        if (strcmp(decision, "query") == 0)
                return NULL;
        if (strcmp(decision, "commit") == 0) {
                if (o->state == EM_OUTCOME_COMMITTED)
                        return NULL;
                if (o->state != EM_OUTCOME_RESTORED)
                        return "only a restored session can be committed";
                o->state = EM_OUTCOME_COMMITTED;
                return em_outcome_store(cfg->root, o, err) < 0 ? "recording the commit failed"
                                                               : NULL;
        }
        if (o->state == EM_OUTCOME_COMMITTED)
                return "the session was committed";
        return em_outcome_abort(cfg, o, route_hook, err) < 0 ? "aborting failed" : NULL;
}

static int parse_request(const struct em_frame *f, json_t **req, const char **session,
                         const char **decision, em_error_t *err)
{
        if (f->length > 4096 ||
            em_json_parse((const char *)f->payload, f->length, "OUTCOME", req, err) < 0)
                return em_error_set(err, EPROTO, "protocol error: bad OUTCOME request");
        *session = em_json_str(*req, "session");
        *decision = em_json_str(*req, "decision");
        if (!em_outcome_session_valid(*session) || *decision == NULL ||
            (strcmp(*decision, "query") != 0 && strcmp(*decision, "commit") != 0 &&
             strcmp(*decision, "abort") != 0))
                return em_error_set(err, EPROTO, "protocol error: bad OUTCOME request");
        return 0;
}

/* Locks and loads session's record: 1, or 0 if there is none. */
static int open_record(const struct em_config *cfg, const char *session, int *lock,
                       struct em_outcome *o, em_error_t *err)
{
        if (em_outcome_lock(cfg->root, session, EM_OUTCOME_LOCK_MS, lock, err) < 0 ||
            em_outcome_load(cfg->root, session, o, err) < 0) {
                if (em_error_status(*err) != ENOENT)
                        return -1;
                em_error_free(err);
                return 0;
        }
        return 1;
}

int em_outcome_serve(const struct em_config *cfg, em_conn_t *conn, const char *peer,
                     const char *route_hook, const struct em_frame *f, em_error_t *err)
{
        cleanup_json json_t *req = NULL;
        cleanup_close int lock = -1;
        const char *session = NULL, *decision = NULL, *why;
        struct em_outcome o;
        em_error_t e = NULL;
        int r;

        if (parse_request(f, &req, &session, &decision, err) < 0)
                return -1;
        r = open_record(cfg, session, &lock, &o, &e);
        if (r < 0 && em_error_status(e) == ETIMEDOUT) {
                em_error_move(err, &e); /* busy: no answer, the source retries */
                return -1;
        }
        if (r <= 0) { /* unknown here: nothing to commit, nothing to remove */
                int rc = reply(conn, session, NULL,
                               r < 0                             ? em_error_msg(e)
                               : strcmp(decision, "commit") == 0 ? "no such session here"
                                                                 : NULL,
                               err);
                em_error_free(&e);
                return rc;
        }
        /* Only the identity that opened the session may learn or decide it. */
        if (strcmp(o.peer, peer ? peer : "") != 0) {
                em_log_warn("refused OUTCOME %s of session %s from '%s': it belongs to '%s'",
                            decision, session, peer ? peer : "", o.peer);
                return reply(conn, session, NULL, "not your session", err);
        }
        /* A pod's restore whose session process died while runc restored
         * a member goes on alone until its journal is settled (edgemigd's
         * loop, checkpoint/pod_journal.h): an abort now would remove the
         * pod under that runc. Busy, as for a held lock: the source
         * retries. */
        if (strcmp(decision, "abort") == 0 && o.state != EM_OUTCOME_ABORTED &&
            o.state != EM_OUTCOME_COMMITTED && em_pod_journal_exists(cfg, o.container))
                return em_error_set_code(err, EBUSY,
                                         "session %s: the restore journal of pod %s is not "
                                         "settled yet: abort later",
                                         session, o.container);
        if (em_outcome_copy_gone(cfg, &o)) {
                em_log_warn("session %s: its restored %s was removed here; recording the "
                            "session as aborted",
                            session, o.container);
                o.state = EM_OUTCOME_ABORTED;
                if (em_outcome_store(cfg->root, &o, &e) < 0)
                        return reply_error(conn, session, &e, err);
        }
        why = decide(cfg, &o, decision, route_hook, &e);
        em_log_info("session %s: OUTCOME %s from '%s' -> %s%s%s", session, decision, o.peer,
                    em_outcome_state_name(o.state), why ? ": " : "", why ? why : "");
        if (e != NULL)
                em_log_error("session %s: %s", session, em_error_msg(e));
        em_error_free(&e);
        return reply(conn, session, &o, why, err);
}
