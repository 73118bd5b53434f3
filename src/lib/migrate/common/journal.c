#include "migrate/common/journal.h"
#include "migrate/common/outcome.h"
#include "migrate/common/resolve.h"
#include "migrate/common/session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/pod_ckpt.h"
#include "checkpoint/pod_journal.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/netns.h"
#include "container/pod.h"
#include "util/json.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

int em_journal_write(const char *dir, const char *name, const char *container, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, name), *line = NULL;
        int n = asprintf(&line, "%s %d\n", container, (int)getpid());

        if (path == NULL || n < 0)
                return em_error_set(err, ENOMEM, "journal");
        return em_write_file_atomic(path, line, (size_t)n, 0600, err);
}

/* The owner file is created locked, with its content, and only then linked
 * into place; linkat never replaces an existing name. So a second session
 * with the same directory fails here, and nobody ever sees an owner file
 * that is not locked by its writer or that changed under its lock. */
int em_journal_own(const char *dir, const char *container, int *lock_fd, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, "owner"), *line = NULL;
        cleanup_close int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        char self[64];
        int n = asprintf(&line, "%s %d\n", container, (int)getpid());

        if (path == NULL || n < 0)
                return em_error_set(err, ENOMEM, "journal");
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return em_error_set(err, errno, "locking the journal in %s", dir);
        if (em_write_all(fd, line, (size_t)n, err) < 0 || fsync(fd) < 0)
                return em_error_wrap(err, "writing the journal owner in %s", dir);
        snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
                return em_error_set(err, errno,
                                    errno == EEXIST ? "session %s is already in use"
                                                    : "creating the journal owner in %s",
                                    dir);
        *lock_fd = steal_fd(&fd);
        return 0;
}

/* True while the session that owns dir holds its lock: a pid can be a
 * zombie or reused, an flock dies with the process that held it. */
bool em_journal_alive(const char *dir)
{
        cleanup_free char *path = em_path_join(dir, "owner");
        cleanup_close int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

        if (fd < 0)
                return false;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                flock(fd, LOCK_UN);
                return false;
        }
        return errno == EWOULDBLOCK;
}

static int read_owner(const char *dir, char *name, size_t len, pid_t *pid)
{
        cleanup_free char *path = em_path_join(dir, "owner"), *buf = NULL;
        em_error_t e = NULL;
        int p = 0;

        if (path == NULL || em_read_file(path, 4096, &buf, NULL, &e) < 0) {
                em_error_free(&e);
                return -1;
        }
        char *sp = strchr(buf, ' ');
        if (sp == NULL || (size_t)(sp - buf) >= len)
                return -1;
        memcpy(name, buf, (size_t)(sp - buf));
        name[sp - buf] = '\0';
        p = atoi(sp + 1);
        if (!em_container_name_valid(name))
                return -1;
        *pid = p;
        return 0;
}

bool em_journal_has(const char *dir, const char *name)
{
        cleanup_free char *p = em_path_join(dir, name);
        return p && em_path_exists(p);
}

static const char *base_name(const char *dir)
{
        const char *slash = strrchr(dir, '/');
        return slash ? slash + 1 : dir;
}

/* A dead target session: its record says what is left to do. Staging or
 * restoring: nothing runs for it (or a half restore): abort, releasing the
 * name. Restored: in doubt, the container keeps running until the source
 * settles the session. Committed or aborted: nothing. */
static void settle_incoming(const struct em_config *cfg, const char *session,
                            const char *route_hook)
{
        cleanup_close int lock = -1;
        struct em_outcome o;
        em_error_t e = NULL;

        if (em_outcome_lock(cfg->root, session, 5000, &lock, &e) < 0 ||
            em_outcome_load(cfg->root, session, &o, &e) < 0) {
                if (em_error_status(e) != ENOENT)
                        em_log_error("recovery: session %s: %s", session, em_error_msg(e));
                em_error_free(&e);
                return;
        }
        if (o.state == EM_OUTCOME_RESTORED)
                em_log_warn("recovery: session %s in doubt: %s keeps running here until its "
                            "source commits or aborts it",
                            session, o.container);
        if ((o.state == EM_OUTCOME_STAGING || o.state == EM_OUTCOME_RESTORING) &&
            em_outcome_abort(cfg, &o, route_hook, &e) < 0) {
                em_log_error("recovery: %s", em_error_msg(e));
                em_error_free(&e);
        }
}

/* Calls fn for every session under <root>/<sub>/ whose process is gone
 * (and, if pid is not 0, that belonged to pid). name is NULL when the
 * journal is unreadable. fn returns 1 when it handled the session, 0 when
 * it left it (in doubt). Returns how many fn handled, or -1 if any failed. */
typedef int (*session_fn)(const struct em_config *cfg, const char *dir, const char *name, void *ud,
                          em_error_t *err);

struct session_walk {
        const struct em_config *cfg;
        const char *sub;
        pid_t pid;
        session_fn fn;
        void *ud;
};

static int dead_session(const char *dir, const char *leaf, void *ud, em_error_t *err)
{
        const struct session_walk *w = ud;
        char name[EM_NAME_MAX + 1];
        pid_t owner = 0;

        bool known = read_owner(dir, name, sizeof(name), &owner) == 0;
        /* pid < 0: while sessions run, one without an owner yet may be
         * one being created (em_journal_own comes after its mkdir). */
        if ((w->pid > 0 && owner != w->pid) || (w->pid < 0 && !known) || em_journal_alive(dir))
                return 0;
        em_log_info("recovering migration session %s/%s", w->sub, leaf);
        return w->fn(w->cfg, dir, known ? name : NULL, w->ud, err);
}

static int for_each_dead_session(const struct em_config *cfg, const char *sub, pid_t pid,
                                 session_fn fn, void *ud, em_error_t *err)
{
        cleanup_free char *base = em_path_join(cfg->root, sub);
        struct session_walk w = {cfg, sub, pid, fn, ud};

        if (base == NULL)
                return em_error_set(err, ENOMEM, "recovery");
        return em_dir_each(base, dead_session, &w, "migration session(s)", err);
}

static int recover_incoming(const struct em_config *cfg, const char *dir, const char *name,
                            void *ud, em_error_t *err)
{
        /* A pod's restore from this staging that is not settled yet (its
         * `runc restore` of a member still running, a failed roll-back):
         * its roll-back comes first, and the session waits for it, as an
         * outgoing one waits for its pod's checkpoint. */
        if (name != NULL && em_pod_journal_exists(cfg, name))
                return 0;
        settle_incoming(cfg, base_name(dir), ud);
        return em_rm_rf(dir, err) < 0 ? -1 : 1;
}

int em_migrate_target_recover(const struct em_config *cfg, pid_t pid, const char *route_hook,
                              em_error_t *err)
{
        return for_each_dead_session(cfg, "incoming", pid, recover_incoming, (void *)route_hook,
                                     err);
}

/* The migration died before its checkpoint: the container still runs here,
 * marked "migrating"; hand it back. */
static void release_migrating(const struct em_config *cfg, const char *container)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t e = NULL;

        if (em_state_open(cfg->root, &st, &e) < 0 ||
            em_state_container_get(st, container, &rec, &e) < 0 ||
            (rec->state == EM_CSTATE_MIGRATING &&
             em_state_container_transition(st, container, EM_CSTATE_BIT(EM_CSTATE_MIGRATING),
                                           EM_CSTATE_RUNNING, rec->pid, NULL, &e) < 0))
                em_log_warn("recovery: %s", em_error_msg(e));
        em_error_free(&e);
}

/* `route_hook VERB IP` for the service IP of the session kept in dir
 * (spec.json). Logged, never fatal: the container's fate is decided. */
static void route_kept(const char *dir, const json_t *spec, const char *route_hook,
                       const char *verb)
{
        cleanup_free char *path = em_path_join(dir, "spec.json");
        cleanup_json json_t *own = NULL;
        em_error_t e = NULL;

        if (route_hook == NULL || *route_hook == '\0')
                return;
        if (spec == NULL && path != NULL && em_json_load_file(path, 16u << 20, &own, &e) == 0)
                spec = own;
        em_error_free(&e);
        em_session_route_warn(NULL, route_hook, verb, spec ? em_json_str(spec, "ip") : NULL,
                              "recovery");
}

/* A pod's session that died left its service IP blackholed here
 * (container/netns.h em_netns_blackhole); absent, nothing to do. */
static void release_pod_ip(const json_t *spec)
{
        const char *ip = em_json_str(spec, "ip");
        em_error_t e = NULL;

        if (ip != NULL && em_netns_blackhole(ip, false, &e) < 0)
                em_log_debug("%s", em_error_msg(e));
        em_error_free(&e);
}

/* The same for the pod session kept in dir (its pod/ and spec.json). */
static void release_session_pod_ip(const char *dir)
{
        cleanup_free char *pod = em_path_join(dir, "pod");
        cleanup_free char *spec_path = em_path_join(dir, "spec.json");
        cleanup_json json_t *spec = NULL;
        em_error_t e = NULL;

        if (pod != NULL && spec_path != NULL && em_path_exists(pod) &&
            em_json_load_file(spec_path, 16u << 20, &spec, &e) == 0)
                release_pod_ip(spec);
        em_error_free(&e);
}

int em_journal_restore_kept(const struct em_config *cfg, const char *dir, const char *container,
                            const char *route_hook, em_error_t *err)
{
        cleanup_free char *spec_path = em_path_join(dir, "spec.json");
        cleanup_free char *images = em_path_join(dir, "images");
        cleanup_json json_t *spec = NULL;
        struct em_restore_opts ro;

        cleanup_free char *pod = em_path_join(dir, "pod");
        cleanup_free char *pod_json = pod ? em_path_join(pod, "pod.json") : NULL;

        em_log_warn("recovery: restoring %s here (its migration never completed)", container);
        em_restore_opts_init(&ro);
        ro.copy_upper = true;
        if (spec_path == NULL || images == NULL || pod_json == NULL ||
            em_json_load_file(spec_path, 16u << 20, &spec, err) < 0)
                return em_error_wrap(err, "recovering %s (checkpoint kept in %s)", container, dir);
        /* A pod's session (migrate/source/pod_source.h) kept the pod's
         * checkpoint instead of one container's images. The session's own
         * roll-back may have restored it already: its process died in that
         * restore once every container was back, and recovery finished it
         * as a local restore (checkpoint/pod_journal.h). Then only the
         * session's hold on the IP and its route are left to undo. */
        if (em_path_exists(pod_json) && em_pod_restored_from(cfg, pod))
                em_log_warn("recovery: pod %s was restored by its roll-back already", container);
        else if (em_path_exists(pod_json)
                     ? em_pod_restore(cfg, pod, err) < 0
                     : em_container_restore_from(cfg, container, spec, images, NULL, &ro, err) < 0)
                return em_error_wrap(err, "recovering %s (checkpoint kept in %s)", container, dir);
        if (em_path_exists(pod_json))
                release_pod_ip(spec);
        route_kept(dir, spec, route_hook, "announce");
        return 0;
}

static int drop_local(const struct em_config *cfg, const char *dir, const char *container,
                      const char *route_hook, em_error_t *err)
{
        em_log_info("recovery: %s was handed over; removing the local copy", container);
        route_kept(dir, NULL, route_hook, "withdraw");
        cleanup_free char *pod = em_path_join(dir, "pod");
        /* A pod's members go first, with it. */
        if (pod != NULL && em_path_exists(pod) && em_pod_rm(cfg, container, true, err) < 0 &&
            em_error_status(*err) != ENOENT)
                return -1;
        em_error_free(err);
        release_session_pod_ip(dir);
        if (em_container_rm_migrated(cfg, container, err) < 0 && em_error_status(*err) != ENOENT)
                return -1;
        em_error_free(err);
        return 0;
}

/* FINAL went out: only the target's answer says which copy to keep. */
static int settle_outgoing(const struct em_config *cfg, const char *dir, const char *container,
                           const struct em_resolve_opts *ro, em_error_t *err)
{
        enum em_verdict v;

        if (em_resolve_session(ro, dir, base_name(dir), &v, err) < 0)
                return em_error_wrap(err, "session %s of %s needs a human", base_name(dir),
                                     container);
        if (v == EM_VERDICT_UNKNOWN) {
                em_log_warn("recovery: session %s of %s stays in doubt (the target does not "
                            "answer); %s is kept stopped here",
                            base_name(dir), container, container);
                return 0;
        }
        if (v == EM_VERDICT_COMMIT && (em_journal_write(dir, "committed", container, err) < 0 ||
                                       drop_local(cfg, dir, container, ro->route_hook, err) < 0))
                return -1;
        if (v == EM_VERDICT_ABORT &&
            em_journal_restore_kept(cfg, dir, container, ro->route_hook, err) < 0)
                return -1;
        return em_rm_rf(dir, err) < 0 ? -1 : 1;
}

/* `recover --keep-local` restored the container here while the target did
 * not answer: once it answers, abort the session there (removing its copy
 * if it came back with one); then the tombstone goes. */
static int fence_target(const char *dir, const char *container, const struct em_resolve_opts *ro,
                        em_error_t *err)
{
        struct em_resolve_peer p = {0};
        enum em_outcome_state st;
        em_error_t e = NULL;
        int rc;

        if (em_resolve_peer_load(dir, &p, err) < 0)
                return -1;
        rc = em_outcome_request(ro, &p, base_name(dir), "abort", &st, &e);
        em_resolve_peer_free(&p);
        if (rc == 0) {
                em_log_info("recovery: session %s aborted on its target; %s stays here",
                            base_name(dir), container);
                return em_rm_rf(dir, err) < 0 ? -1 : 1;
        }
        if (em_error_status(e) == EPERM)
                em_log_error("recovery: %s may run on two hosts: the target of session %s "
                             "answers %s after `recover --keep-local` (%s); remove one copy",
                             container, base_name(dir), em_outcome_state_name(st), em_error_msg(e));
        em_error_free(&e);
        return 0;
}

/* An outgoing session whose edgemig process died. Committed (the target
 * acknowledged): drop our copy. "final" (written with the checkpoint):
 * settle with the target. "checkpointed" (a journal of an older version,
 * written before FINAL could leave), or a pod's complete checkpoint
 * without "final": restore here. Earlier: the container still runs here
 * (a pod's, brought back by em_pod_checkpoint_recover first). */
static int recover_outgoing(const struct em_config *cfg, const char *dir, const char *container,
                            void *ud, em_error_t *err)
{
        const struct em_resolve_opts *ro = ud;

        if (container == NULL) /* not a session we understand: leave it */
                return 0;
        /* A pod's checkpoint into this staging that is not settled yet (a
         * runc still dumping, a failed roll-back): its roll-back needs the
         * partial checkpoint here, and the session waits for it. */
        if (em_pod_journal_exists(cfg, container))
                return 0;
        if (em_journal_has(dir, "kept-local"))
                return fence_target(dir, container, ro, err);
        if (em_journal_has(dir, "committed")) {
                if (drop_local(cfg, dir, container, ro->route_hook, err) < 0)
                        return -1;
        } else if (em_journal_has(dir, "final")) {
                return settle_outgoing(cfg, dir, container, ro, err);
        } else if (em_journal_has(dir, "checkpointed") || em_journal_has(dir, "pod/pod.json")) {
                /* (A pod's checkpoint completed before "final" was
                 * journalled: FINAL never left either.) */
                if (em_journal_restore_kept(cfg, dir, container, ro->route_hook, err) < 0)
                        return -1;
        } else {
                /* A pod's checkpoint that died midway was rolled back
                 * before (checkpoint/pod_journal.h); its IP was held. */
                release_migrating(cfg, container);
                release_session_pod_ip(dir);
        }
        return em_rm_rf(dir, err) < 0 ? -1 : 1;
}

int em_migrate_source_recover(const struct em_config *cfg, const struct em_resolve_opts *ro,
                              em_error_t *err)
{
        struct em_resolve_opts dflt;

        if (ro == NULL) {
                em_resolve_opts_init(&dflt);
                ro = &dflt;
        }
        return for_each_dead_session(cfg, "outgoing", 0, recover_outgoing, (void *)ro, err);
}
