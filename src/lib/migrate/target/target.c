/* The target side of a migration: one session, served in an edgemigd child.
 * Everything received is staged under <root>/incoming/<session>/ and only
 * becomes a container after the final images verify and restore works. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ckpt_validate.h"
#include "checkpoint/pod_ckpt.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "migrate/common/cache_prune.h"
#include "migrate/common/journal.h"
#include "migrate/common/logsync.h"
#include "migrate/target/target.h"
#include "migrate/common/outcome.h"
#include "migrate/target/pod_target.h"
#include "migrate/target/policy.h"
#include "migrate/common/postcopy.h"
#include "migrate/target/precheck_target.h"
#include "migrate/target/prewarm.h"
#include "migrate/common/proto.h"
#include "migrate/common/report.h"
#include "migrate/common/session.h"
#include "container/volume.h"
#include "state/state.h"
#include "migrate/target/sync_target.h"
#include "store/ref.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/fault.h"
#include "util/log.h"

struct target {
        const struct em_config *cfg;
        const struct em_target_opts *o;
        em_conn_t *conn;
        struct em_store *store;
        struct em_hello peer;
        char session[33];
        char *dir, *blobs, *upper, *images;
        char *cache_dir; /* this peer's page cache for the container */
        json_t *spec;    /* the container spec from the source */
        json_t *image;   /* {name, manifest_digest, blobs:[{digest,size}]} */
        struct em_sync_target *sync;
        bool restored;    /* post-copy: the lazy restore ran */
        bool layers_done; /* the image is registered and the spec pinned to it */
        /* The session id is ours (its outcome record and staging dir) and so
         * is the container name (containers/<name>, reserved at HELLO). */
        bool claimed;
        bool pod_prepared;         /* a pod session that was a prepare (pod_target.h) */
        struct em_prewarm prewarm; /* what was set up before FINAL */
        int journal_fd;            /* holds the session's journal lock */
        const char *peer_id;       /* the peer's TLS identity ("" without TLS) */
};

const struct em_target_ops em_target_ops_runc = {.restore = em_container_restore_from,
                                                 .prewarm = em_target_prewarm_runc,
                                                 .restore_pod = em_pod_restore};

void em_target_opts_init(struct em_target_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->ops = &em_target_ops_runc;
        em_policy_init(&o->policy);
        o->io_timeout_ms = 120000;
        o->commit_timeout_ms = 30000;
        o->quota_bytes = (int64_t)16 << 30;
}

static void target_free(struct target *t)
{
        em_hello_free(&t->peer);
        em_cleanup_closep(&t->journal_fd);
        em_store_close(&t->store);
        em_sync_target_free(&t->sync);
        json_decref(t->spec);
        json_decref(t->image);
        free(t->dir);
        free(t->blobs);
        free(t->upper);
        free(t->images);
        free(t->cache_dir);
}

/* The session's staging directory was created by claim(): only its
 * contents here. */
static int make_dirs(struct target *t, em_error_t *err)
{
        t->blobs = em_path_join(t->dir, "blobs");
        t->upper = em_path_join(t->dir, "upper");
        t->images = em_path_join(t->dir, "images");
        if (t->blobs == NULL || t->upper == NULL || t->images == NULL)
                return em_error_set(err, ENOMEM, "staging");
        if (mkdir(t->blobs, 0700) < 0 || mkdir(t->upper, 0755) < 0 || mkdir(t->images, 0700) < 0)
                return em_error_set(err, errno, "creating staging directory %s", t->dir);
        return em_journal_own(t->dir, t->peer.container, &t->journal_fd, err);
}

/* Why the name is taken: a container, or another session's reservation. */
static char *name_taken(const struct target *t, const struct em_container_paths *p)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t e = NULL;
        char *why = NULL;
        bool container = em_state_open(t->cfg->root, &st, &e) < 0 ||
                         em_state_container_get(st, t->peer.container, &rec, &e) == 0 ||
                         !em_path_exists(p->dir);

        em_error_free(&e);
        if (asprintf(&why,
                     container ? "a container named %s already exists on the target"
                               : "a container named %s already exists on the target (another "
                                 "migration session holds the name; retry once it ended)",
                     t->peer.container) < 0)
                return NULL;
        return why;
}

/* Reserves the container name with an exclusive mkdir of containers/<name>,
 * then claims the session id (its outcome record, O_EXCL) and a staging
 * directory that must not exist yet, all before HELLO_ACK: a second session
 * for the same name, or a second connection reusing a session id, is
 * refused instead of sharing them. Undoes its own steps on a refusal.
 * Returns the refusal (NULL: claimed). */
static char *claim(struct target *t, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        struct em_outcome o = {.state = EM_OUTCOME_STAGING};
        cleanup_free char *parent = em_path_join(t->cfg->root, "containers");
        cleanup_free char *incoming = em_path_join(t->cfg->root, "incoming");
        cleanup_free char *dir = em_session_incoming_dir(t->cfg, t->session);
        cleanup_close int names = -1;

        memcpy(o.session, t->session, sizeof(o.session));
        snprintf(o.container, sizeof(o.container), "%s", t->peer.container);
        snprintf(o.peer, sizeof(o.peer), "%s", t->peer_id);
        if (parent == NULL || incoming == NULL || dir == NULL ||
            em_container_paths_init(t->cfg, t->peer.container, &p, err) < 0 ||
            em_mkdir_p(parent, 0700, err) < 0 || em_mkdir_p(incoming, 0700, err) < 0)
                return strdup("the target could not check the name");
        /* Against the sweep of old page caches: it never expires a cache
         * of a name reserved here (migrate/common/cache_prune.h). */
        if (em_pagecache_names_lock(t->cfg->root, &names, err) < 0)
                return strdup("the target could not check the name");
        if (mkdir(p.dir, 0700) < 0)
                return name_taken(t, &p);
        em_cleanup_closep(&names);
        if (em_outcome_create(t->cfg->root, &o, err) < 0) {
                rmdir(p.dir);
                return strdup("this session id is already in use");
        }
        if (mkdir(dir, 0700) < 0) {
                em_outcome_drop(t->cfg->root, t->session);
                rmdir(p.dir);
                return strdup("this session id is already in use");
        }
        t->dir = steal_pointer(&dir);
        t->claimed = true;
        return NULL;
}

/* HELLO -> HELLO_ACK: refuse early, before anything big moves. */
static int do_hello(struct target *t, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        cleanup_hello struct em_hello local = {0};
        cleanup_free char *reason = NULL, *ack = NULL;
        bool ok;

        if (em_proto_recv(t->conn, &f, err) < 0)
                return -1;
        if (f.hdr.type != EM_FRAME_HELLO)
                return em_error_set(err, EPROTO, "protocol error: expected HELLO, got %s",
                                    em_frame_type_name(f.hdr.type));
        if (em_hello_parse((const char *)f.payload, f.length, &t->peer, err) < 0)
                return -1;
        em_session_hex(t->peer.session, t->session);
        if (em_session_local_hello(t->cfg, &local, err) < 0) {
                reason = strdup(em_error_msg(*err));
                ok = false;
        } else {
                ok = em_hello_accept(&t->peer, &local, &reason);
        }
        if (ok && !em_container_name_valid(t->peer.container)) {
                ok = false;
                free(reason);
                reason = strdup("invalid container name");
        }
        /* A pre-check (source/precheck.h) claims and stages nothing. */
        if (ok && strcmp(t->peer.mode, EM_PRECHECK_MODE) != 0) {
                free(reason);
                reason = claim(t, err);
                em_error_free(err);
                ok = reason == NULL;
        }
        if (em_hello_ack_build(ok, reason, t->peer.session, &ack, err) < 0 ||
            em_conn_send_str(t->conn, EM_FRAME_HELLO_ACK, ack, err) < 0)
                return -1;
        em_conn_set_session(t->conn, em_frame_session_tag(t->peer.session));
        if (!ok)
                return em_error_set(err, EPERM, "refused migration of %s: %s", t->peer.container,
                                    reason ? reason : "not accepted");
        em_log_info("session %s: accepted %s (%s)", t->session, t->peer.container, t->peer.mode);
        return 0;
}

/* From our --registry only, whatever host the peer's name names, and by
 * the plan's manifest digest: the registry cannot substitute an image. */
static int try_registry_pull(struct target *t, em_error_t *err)
{
        const char *name = em_json_str(t->image, "name");
        const char *manifest = em_json_str(t->image, "manifest_digest");
        struct em_registry_opts ro = t->o->registry_opts;
        cleanup_image_info struct em_image_info *info = NULL;
        cleanup_free char *ref = NULL;
        em_error_t perr = NULL;

        if (t->o->registry == NULL || name == NULL)
                return 0;
        if (em_ref_pin(name, t->o->registry, manifest, &ref, &perr) < 0 ||
            em_store_pull(t->store, ref, &ro, &info, &perr) < 0) {
                em_log_warn("session %s: registry pull of %s failed, the source will stream "
                            "the layers: %s",
                            t->session, ref ? ref : name, em_error_msg(perr));
                em_error_free(&perr);
        }
        return 0;
}

/* The diff-ids of the plan's layer blobs, in order. */
static json_t *plan_diff_ids(const json_t *blobs)
{
        json_t *ids = json_array();
        size_t i;
        json_t *b;

        json_array_foreach(blobs, i, b)
        {
                json_t *d = json_object_get(b, "diff_id");
                if (d != NULL)
                        json_array_append(ids, d);
        }
        return ids;
}

/* A service IP this host uses already is refused before any state moves:
 * two hosts would route the same /32. */
static int check_ip_free(struct target *t, em_error_t *err)
{
        return em_precheck_ip_free(t->cfg, em_json_str(t->spec, "ip"), t->peer.container, err);
}

/* LAYERS_HAVE (plan from source) -> LAYERS_HAVE {missing: [...]} */
static int do_plan(struct target *t, em_error_t *err)
{
        cleanup_json json_t *plan = NULL, *missing = json_array();

        if (em_proto_recv_json(t->conn, EM_FRAME_LAYERS_HAVE, &plan, err) < 0)
                return -1;
        t->spec = json_incref(json_object_get(plan, "spec"));
        t->image = json_incref(json_object_get(plan, "image"));
        json_t *blobs = json_object_get(t->image, "blobs");
        if (!json_is_object(t->spec) || !json_is_array(blobs) || missing == NULL)
                return em_error_set(err, EPROTO, "protocol error: malformed plan");
        cleanup_json json_t *ids = plan_diff_ids(blobs);
        if (ids == NULL ||
            em_policy_check_spec(&t->o->policy, t->spec, t->peer.container, ids, err) < 0 ||
            em_mounts_admit(t->cfg, t->spec, err) < 0 || check_ip_free(t, err) < 0)
                return -1;
        try_registry_pull(t, err);
        size_t i;
        json_t *b;
        json_array_foreach(blobs, i, b)
        {
                if (!em_digest_valid(em_json_str(b, "digest")))
                        return em_error_set(err, EPROTO, "protocol error: bad blob digest");
                if (!em_store_holds(t->store, em_json_str(b, "digest"), em_json_str(b, "diff_id")))
                        json_array_append_new(missing, json_string(em_json_str(b, "digest")));
        }
        /* The source's record of our page cache, if still true, spares us
         * sending the hashes it already has. */
        uint64_t from = em_sync_target_cache_match(t->sync, json_object_get(plan, "known_cache"));
        cleanup_json json_t *have = NULL;
        if (em_sync_target_volumes(t->sync, t->spec, &have, err) < 0)
                return -1;
        cleanup_json json_t *ack =
            json_pack("{s:O, s:I, s:O, s:b}", "missing", missing, "hashes_from", (json_int_t)from,
                      "volumes", have, "lazy_pages", t->o->lazy_pages);
        em_log_info("session %s: %zu of %zu blobs missing; page hashes from %llu", t->session,
                    json_array_size(missing), json_array_size(blobs), (unsigned long long)from);
        if (ack == NULL || em_proto_send_json(t->conn, EM_FRAME_LAYERS_HAVE, ack, err) < 0)
                return -1;
        return em_sync_target_send_hashes(t->sync, t->conn, from, err);
}

static int import_blob(struct target *t, const json_t *hdr, em_error_t *err)
{
        const char *name = em_json_str(hdr, "file");
        cleanup_close int dfd = open(t->blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_free char *digest = NULL;

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", t->blobs);
        if (em_proto_recv_file(t->conn, hdr, EM_FRAME_LAYER_BLOB, dfd, true, NULL, err) < 0)
                return -1;
        cleanup_close int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || asprintf(&digest, "sha256:%s", name) < 0)
                return em_error_set(err, errno, "reopening blob %s", name);
        if (em_store_blob_import(t->store, digest, (uint64_t)em_json_int(hdr, "size", 0), fd, err) <
            0)
                return -1;
        unlinkat(dfd, name, 0);
        return 0;
}

static int register_image(struct target *t, em_error_t *err)
{
        const char *name = em_json_str(t->image, "name");
        const char *manifest = em_json_str(t->image, "manifest_digest");

        if (name == NULL || !em_digest_valid(manifest))
                return em_error_set(err, EPROTO, "protocol error: image without name/manifest");
        /* By digest: a peer never repoints one of our tags. */
        cleanup_free char *pinned = NULL;
        if (em_store_image_add_pinned(t->store, name, manifest, &pinned, err) < 0)
                return em_error_wrap(err, "registering image %s", name);
        return json_object_set_new(t->spec, "image", json_string(pinned)) < 0
                   ? em_error_set(err, ENOMEM, "spec")
                   : 0;
}

/* Every image file the source lists must have arrived and verified on
 * receipt with the same digest: nothing is hashed twice inside the downtime. */
static int verify_images(struct target *t, const json_t *final, em_error_t *err)
{
        const json_t *got = em_sync_target_files(t->sync);
        json_t *files = json_object_get(final, "files");
        const char *name;
        json_t *d;

        if (!json_is_object(files) || json_object_size(files) == 0)
                return em_error_set(err, EPROTO, "protocol error: FINAL without files");
        json_object_foreach(files, name, d)
        {
                const char *have = em_json_str(got, name);
                if (!em_proto_name_ok(name))
                        return em_error_set(err, EPROTO, "bad image file name");
                if (have == NULL)
                        return em_error_set(err, ENOENT, "image file %s missing after transfer",
                                            name);
                if (!json_is_string(d) || strcmp(have, json_string_value(d)) != 0)
                        return em_error_set(
                            err, EILSEQ, "image file %s does not match the source's digest", name);
        }
        return 0;
}

/* CRIU restores what the images say, as root: they are held to this host's
 * policy, not the source's, before anything runs (checkpoint/ckpt_validate.h). */
static int check_images(struct target *t, em_error_t *err)
{
        struct em_ckpt_policy p;
        cleanup_strv char **binds = NULL, **tmpfs = NULL;

        if (em_ckpt_policy_for_spec(t->cfg, t->spec, &p, err) < 0 ||
            em_mounts_points(t->spec, &binds, &tmpfs, err) < 0)
                return -1;
        p.binds = (const char *const *)binds;
        p.tmpfs = (const char *const *)tmpfs;
        if (em_ckpt_validate_dir(t->images, &p, err) < 0)
                return em_error_wrap(err, "refusing the checkpoint of %s", t->peer.container);
        return 0;
}

/* Where the target's share of the downtime goes, for the source's report. */
static void time_step(json_t *timing, const char *step, int64_t *t0)
{
        int64_t now = em_mono_ms();
        json_object_set_new(timing, step, json_integer(now - *t0));
        *t0 = now;
}

/* Takes the session's decision lock (*lock holds it for the caller), then
 * moves the record (em_outcome_advance). */
static int advance(struct target *t, enum em_outcome_state from, enum em_outcome_state to,
                   int *lock, em_error_t *err)
{
        if (em_outcome_lock(t->cfg->root, t->session, EM_OUTCOME_LOCK_MS, lock, err) < 0)
                return -1;
        return em_outcome_advance(t->cfg->root, t->session, from, to, err);
}

/* Moves a record that is still staging or restoring to aborted, removing
 * what this session restored or reserved; a restored one stays in doubt.
 * Best effort: recovery does it again if this fails. */
static void settle_here(struct target *t, bool failed)
{
        cleanup_close int lock = -1;
        struct em_outcome o;
        em_error_t e = NULL;

        if (!t->claimed)
                return;
        if (em_outcome_lock(t->cfg->root, t->session, EM_OUTCOME_LOCK_MS, &lock, &e) < 0 ||
            em_outcome_load(t->cfg->root, t->session, &o, &e) < 0) {
                em_log_error("session %s: %s", t->session, em_error_msg(e));
                em_error_free(&e);
                return;
        }
        if (o.state == EM_OUTCOME_RESTORED && failed)
                em_log_warn("session %s in doubt: %s keeps running here until the source "
                            "commits or aborts (`edgemig recover` lists it)",
                            t->session, o.container);
        if ((o.state == EM_OUTCOME_STAGING || o.state == EM_OUTCOME_RESTORING) &&
            em_outcome_abort(t->cfg, &o, t->o->route_hook, &e) < 0) {
                em_log_error("session %s: %s", t->session, em_error_msg(e));
                em_error_free(&e);
        }
}

/* A failed restore leaves the source running with its volumes: the copies
 * go back into the cache, for a retry to send only what changed. */
static void uninstall_volumes(struct target *t)
{
        em_error_t e = NULL;

        if (em_sync_target_install_volumes(t->sync, t->cfg, true, &e) < 0)
                em_log_warn("session %s: %s", t->session, em_error_msg(e));
        em_error_free(&e);
}

/* `route-hook announce IP` in a thread (migrate/common/session.h), so
 * that it overlaps the work that follows it. */
struct route_job {
        const char *hook, *ip;
        pthread_t thread;
        bool running;
        int rc;
        em_error_t err;
};

static void *route_thread(void *arg)
{
        struct route_job *j = arg;

        j->rc = em_session_route_hook(j->hook, "announce", j->ip, &j->err);
        return NULL;
}

static void route_start(struct route_job *j, const char *hook, const char *ip)
{
        j->hook = hook;
        j->ip = ip;
        if (ip == NULL || hook == NULL || *hook == '\0')
                return;
        j->running = pthread_create(&j->thread, NULL, route_thread, j) == 0;
        if (!j->running) /* no thread: in line, as before */
                route_thread(j);
}

/* Waits for the hook. rc < 0: the caller failed meanwhile (its error in
 * *err wins); else the hook's result. */
static int route_finish(struct route_job *j, int rc, em_error_t *err)
{
        if (j->running)
                pthread_join(j->thread, NULL);
        j->running = false;
        if (rc < 0) {
                if (j->rc < 0)
                        em_log_warn("session route hook: %s", em_error_msg(j->err));
                em_error_free(&j->err);
                return -1;
        }
        if (j->rc < 0) {
                em_error_move(err, &j->err);
                return -1;
        }
        return 0;
}

static int restore_here(struct target *t, json_t *timing, em_error_t *err)
{
        cleanup_close int lock = -1;
        struct em_restore_opts ro;
        const char *ip = em_json_str(t->spec, "ip");
        int64_t t0 = em_mono_ms(), t_start = t0;
        struct route_job rj = {0};

        cleanup_free char *log = em_path_join(t->dir, EM_LOGSYNC_NAME);

        em_restore_opts_init(&ro);
        ro.prior_log = log != NULL && em_path_exists(log) ? log : NULL;
        /* The staged upper dir is this session's and goes with it: renamed
         * into place (same file system), not copied by an exec of cp -a
         * inside the downtime. A failed restore ends the session anyway. */
        ro.copy_upper = false;
        ro.net_ready = t->prewarm.net_ready;
        /* The decision lock is held for the restore: an OUTCOME request
         * waits for it and then sees either no copy or a running one. */
        if (em_fault("target.before-restore", em_conn_fd(t->conn), err) < 0 ||
            advance(t, EM_OUTCOME_STAGING, EM_OUTCOME_RESTORING, &lock, err) < 0)
                return -1;
        if (t->o->ops->restore(t->cfg, t->peer.container, t->spec, t->images, t->upper, &ro, err) <
            0) {
                uninstall_volumes(t);
                return em_error_wrap(err, "restoring %s", t->peer.container);
        }
        /* The route hook (an exec, tens of ms) runs while the record's
         * fsyncs do. Safe because the decision lock stays held from the
         * restore to "restored": no abort can come between them, and a
         * failure here waits for the hook before the ABORT goes out, so the
         * source's roll-back announces last. */
        route_start(&rj, t->o->route_hook, ip);
        int rc = em_outcome_advance(t->cfg->root, t->session, EM_OUTCOME_RESTORING,
                                    EM_OUTCOME_RESTORED, err);
        em_cleanup_closep(&lock);
        time_step(timing, "restore_ms", &t0);
        if (rc == 0)
                em_log_info("session %s: %s restored in %lld ms", t->session, t->peer.container,
                            (long long)(t0 - t_start));
        if (route_finish(&rj, rc, err) < 0)
                return -1;
        time_step(timing, "route_ms", &t0);
        return em_fault("target.after-restore", em_conn_fd(t->conn), err);
}

/* Post-copy (migrate/common/postcopy.h): the window can last minutes, so the
 * record says "restoring" through it without holding the lock. */
static int restore_lazy(struct target *t, const json_t *final, em_error_t *err)
{
        cleanup_close int lock = -1;

        if (advance(t, EM_OUTCOME_STAGING, EM_OUTCOME_RESTORING, &lock, err) < 0)
                return -1;
        em_cleanup_closep(&lock);
        if (em_target_restore_lazy(
                &(struct em_lazy_target){t->cfg, t->conn, t->peer.container, t->session, t->spec,
                                         t->images, t->upper, t->dir, t->o->route_hook,
                                         t->o->io_timeout_ms, &t->restored, t->cache_dir},
                final, err) < 0) {
                if (!t->restored)
                        uninstall_volumes(t);
                return -1;
        }
        return advance(t, EM_OUTCOME_RESTORING, EM_OUTCOME_RESTORED, &lock, err);
}

static int do_final(struct target *t, const struct em_frame *f, em_error_t *err)
{
        cleanup_json json_t *final = NULL, *timing = json_object();
        int64_t t0 = em_mono_ms();

        if (timing == NULL)
                return em_error_set(err, ENOMEM, "FINAL");
        em_prewarm_timing(&t->prewarm, t0, timing);
        if (em_json_parse((const char *)f->payload, f->length, "FINAL", &final, err) < 0 ||
            em_fault("target.after-final", em_conn_fd(t->conn), err) < 0 ||
            em_lazy_final_check(t->conn, final, err) < 0)
                return -1;
        if (em_sync_target_finish(t->sync, err) < 0 || verify_images(t, final, err) < 0 ||
            check_images(t, err) < 0)
                return -1;
        time_step(timing, "verify_ms", &t0);
        /* Both restores mount the volumes from <root>/volumes. */
        if (em_sync_target_install_volumes(t->sync, t->cfg, false, err) < 0)
                return em_error_wrap(err, "restoring %s", t->peer.container);
        if (json_object_get(final, "lazy") != NULL)
                return restore_lazy(t, final, err);
        if (restore_here(t, timing, err) < 0)
                return -1;
        cleanup_json json_t *ok = json_pack("{s:b, s:O}", "ok", 1, "timing", timing);
        return em_proto_send_json(t->conn, EM_FRAME_RESTORE_OK, ok, err);
}

/* The source deletes its copy only after our RESTORE_OK and our DONE
 * acknowledgement. Without DONE we keep ours running, in doubt: the source
 * never runs its copy unless we confirmed the abort (OUTCOME), so the
 * service runs on at most one host and is never lost. */
static int await_commit(struct target *t, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        cleanup_close int lock = -1;

        em_conn_set_timeout(t->conn, t->o->commit_timeout_ms);
        if (em_proto_recv(t->conn, &f, err) < 0)
                return em_error_wrap(err, "waiting for the source to commit");
        if (f.hdr.type != EM_FRAME_DONE)
                return em_error_set(err, EPROTO, "protocol error: expected DONE, got %s",
                                    em_frame_type_name(f.hdr.type));
        /* From here on the container is ours, whatever happens to the ack. */
        if (em_fault("target.after-done", em_conn_fd(t->conn), err) < 0 ||
            advance(t, EM_OUTCOME_RESTORED, EM_OUTCOME_COMMITTED, &lock, err) < 0)
                return -1;
        em_cleanup_closep(&lock);
        if (em_fault("target.before-ack", em_conn_fd(t->conn), err) < 0)
                return -1;
        cleanup_json json_t *ack = json_pack("{s:b}", "ok", 1);
        return em_proto_send_json(t->conn, EM_FRAME_DONE, ack, err);
}

static int recv_image_file(struct target *t, const json_t *hdr, em_error_t *err)
{
        cleanup_close int dfd = open(t->images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        char digest[EM_DIGEST_STR_LEN + 1];

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", t->images);
        if (em_proto_recv_file(t->conn, hdr, EM_FRAME_IMAGE_FILE, dfd, false, digest, err) < 0)
                return -1;
        em_sync_target_note_file(t->sync, em_json_str(hdr, "file"), digest);
        return 0;
}

/* The source's log, staged until the restore installs it (migrate/common/logsync.h). */
static int recv_log(struct target *t, const struct em_frame *f, em_error_t *err)
{
        cleanup_close int dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_json json_t *hdr = NULL;

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", t->dir);
        if (em_json_parse((const char *)f->payload, f->length, "log header", &hdr, err) < 0)
                return -1;
        return em_logsync_recv(t->conn, hdr, dfd, err);
}

/* The end of a prepare: the cache state lets the source's next migration
 * skip the hash list (migrate/source/known_cache.h). */
static int prepare_done(struct target *t, em_error_t *err)
{
        cleanup_json json_t *ack = json_object();

        if (ack == NULL || em_sync_target_cache_state(t->sync, ack, err) < 0)
                return em_error_wrap(err, "page cache state");
        /* The name is free again before the source hears we are done: the
         * migration that follows a prepare must not find it reserved. */
        settle_here(t, false);
        return em_proto_send_json(t->conn, EM_FRAME_DONE, ack, err);
}

/* ROUND_END, echoed once everything before it is applied; the one that
 * ends the layers registers the image. */
static int round_end(struct target *t, const struct em_frame *f, em_error_t *err)
{
        bool layers = f->length > 0 && f->payload[0] == '{' &&
                      strstr((const char *)f->payload, "\"layers_done\"") != NULL;

        if (layers && (register_image(t, err) < 0 ||
                       em_fault("target.after-layers", em_conn_fd(t->conn), err) < 0))
                return -1;
        /* A migration's target prepares what it can now, off the downtime;
         * a prepare only fills the page cache. */
        if (layers && strcmp(t->peer.mode, "prepare") != 0 &&
            em_prewarm_run(t->o->ops, t->cfg, t->peer.container, t->spec, em_conn_fd(t->conn),
                           &t->prewarm, err) < 0)
                return -1;
        t->layers_done |= layers;
        if (em_fault("target.round-end", em_conn_fd(t->conn), err) < 0)
                return -1;
        return em_conn_send(t->conn, EM_FRAME_ROUND_END, 0, 0, f->payload, f->length, 0, err);
}

/* FINAL, or DONE ending a prepare: only after the layers, since until then
 * the spec still names the source's image, not the one registered here. */
static int finish(struct target *t, const struct em_frame *f, bool *final_done, em_error_t *err)
{
        bool done = f->hdr.type == EM_FRAME_DONE;

        if (done && strcmp(t->peer.mode, "prepare") != 0)
                return em_error_set(err, EPROTO, "protocol error: DONE before FINAL");
        if (!t->layers_done)
                return em_error_set(err, EPROTO, "protocol error: %s before the layers",
                                    em_frame_type_name(f->hdr.type));
        *final_done = true;
        return done ? prepare_done(t, err) : do_final(t, f, err);
}

static int dispatch(struct target *t, struct em_frame *f, bool *final_done, em_error_t *err)
{
        cleanup_json json_t *hdr = NULL;

        switch (f->hdr.type) {
        case EM_FRAME_LAYER_BLOB:
        case EM_FRAME_IMAGE_FILE:
                if (em_json_parse((const char *)f->payload, f->length, "file header", &hdr, err) <
                    0)
                        return -1;
                if (f->hdr.type == EM_FRAME_LAYER_BLOB)
                        return import_blob(t, hdr, err);
                return recv_image_file(t, hdr, err);
        case EM_FRAME_LOG_FILE:
                return recv_log(t, f, err);
        case EM_FRAME_ROUND_END:
                return round_end(t, f, err);
        case EM_FRAME_FILE_MANIFEST:
        case EM_FRAME_FILE_DATA:
        case EM_FRAME_FILE_BLOCKS:
        case EM_FRAME_FILE_DELETE:
        case EM_FRAME_FILE_ROOT:
        case EM_FRAME_PAGES_DATA:
                return em_sync_target_frame(t->sync, t->conn, f, err);
        case EM_FRAME_DONE:
        case EM_FRAME_FINAL:
                return finish(t, f, final_done, err);
        default:
                return em_error_set(err, EPROTO, "protocol error: unexpected %s",
                                    em_frame_type_name(f->hdr.type));
        }
}

/* A peer may not fill the disk: received bytes and pages rebuilt from
 * 16-byte references both count. */
static int check_quota(struct target *t, em_error_t *err)
{
        struct em_conn_stats st;

        em_conn_stats(t->conn, &st);
        uint64_t used = st.raw_in + em_sync_target_rebuilt(t->sync);
        if (used > (uint64_t)t->o->quota_bytes)
                return em_error_set(err, EDQUOT,
                                    "session %s staged %llu bytes, over this host's quota of "
                                    "%lld (edgemigd --session-quota)",
                                    t->session, (unsigned long long)used,
                                    (long long)t->o->quota_bytes);
        return 0;
}

/* A whole pod, stop-and-copy (migrate/target/pod_target.h); the commit is
 * any session's. */
static int serve_pod(struct target *t, em_error_t *err)
{
        struct em_pod_target pt = {.cfg = t->cfg,
                                   .o = t->o,
                                   .conn = t->conn,
                                   .session = t->session,
                                   .pod = t->peer.container,
                                   .dir = t->dir};

        if (em_store_open(t->cfg->root, &t->store, err) < 0)
                return -1;
        pt.store = t->store;
        if (em_pod_target_serve(&pt, &t->pod_prepared, err) < 0)
                return -1;
        if (!t->pod_prepared)
                return await_commit(t, err);
        cleanup_json json_t *ack = json_object();
        if (ack == NULL)
                return em_error_set(err, ENOMEM, "DONE");
        settle_here(t, false); /* the pod's name, free before DONE goes back */
        return em_proto_send_json(t->conn, EM_FRAME_DONE, ack, err);
}

static int serve(struct target *t, em_error_t *err)
{
        bool final_done = false;

        if (do_hello(t, err) < 0)
                return -1;
        if (strcmp(t->peer.mode, EM_PRECHECK_MODE) == 0)
                return em_precheck_serve(t->cfg, t->conn, t->o, t->peer.container, err);
        if (make_dirs(t, err) < 0 || em_fault("target.after-hello", em_conn_fd(t->conn), err) < 0)
                return -1;
        if (strcmp(t->peer.mode, EM_POD_MODE) == 0)
                return serve_pod(t, err);
        /* Keyed by the peer too: no peer reads or feeds another's pages. */
        t->cache_dir = em_session_cache_dir(t->cfg, t->peer.container, em_conn_identity(t->conn));
        if (t->cache_dir == NULL)
                return em_error_set(err, ENOMEM, "page cache");
        if (em_sync_target_new(t->cache_dir, t->images, t->upper, &t->sync, err) < 0 ||
            em_store_open(t->cfg->root, &t->store, err) < 0 || do_plan(t, err) < 0)
                return -1;
        while (!final_done) {
                cleanup_frame struct em_frame f = {0};
                if (em_proto_recv(t->conn, &f, err) < 0 || dispatch(t, &f, &final_done, err) < 0 ||
                    check_quota(t, err) < 0)
                        return -1;
        }
        if (strcmp(t->peer.mode, "prepare") == 0)
                return 0;
        if (await_commit(t, err) < 0)
                return -1;
        em_sync_target_drop_cache(t->sync);
        return 0;
}

/* What a session that ended well did, for its log line: a pre-check
 * stages nothing and a prepare only fills the page cache; only a
 * migration commits. */
static const char *session_outcome(const struct target *t)
{
        const char *mode = t->peer.mode;

        if (mode == NULL)
                return "ended";
        if (strcmp(mode, EM_PRECHECK_MODE) == 0)
                return "checked (nothing staged)";
        if (strcmp(mode, "prepare") == 0)
                return "prepared (pages cached, nothing restored)";
        if (t->pod_prepared)
                return "prepared (images registered, nothing restored)";
        return "committed";
}

int em_migrate_target_serve(const struct em_config *cfg, em_conn_t *conn,
                            const struct em_target_opts *o, em_error_t *err)
{
        const char *peer = em_conn_identity(conn);
        struct target t = {
            .cfg = cfg, .o = o, .conn = conn, .journal_fd = -1, .peer_id = peer ? peer : ""};
        em_error_t e = NULL;
        int rc;

        em_conn_set_timeout(conn, o->io_timeout_ms);
        rc = serve(&t, err);
        /* Settled before the ABORT goes out: a source that asks next hears
         * the final answer. */
        settle_here(&t, rc < 0);
        if (rc < 0)
                em_proto_send_abort(conn, em_error_msg(*err));
        if (t.dir != NULL && em_rm_rf(t.dir, &e) < 0) {
                em_log_warn("session %s: %s", t.session, em_error_msg(e));
                em_error_free(&e);
        }
        if (rc == 0)
                em_log_info("session %s: %s %s", t.session,
                            t.peer.container ? t.peer.container : "?", session_outcome(&t));
        target_free(&t);
        return rc;
}
