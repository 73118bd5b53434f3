/* The source side of a migration, run by `edgemig migrate`. Phases:
 * handshake, plan + layers, pre-copy rounds, final, commit. Until the target
 * confirms a restore, every failure restores the container here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/pod.h"
#include "delta/shadow.h"
#include "migrate/common/journal.h"
#include "migrate/source/known_cache.h"
#include "migrate/source/monitor.h"
#include "migrate/source/source.h"
#include "migrate/common/proto.h"
#include "migrate/common/report.h"
#include "checkpoint/kdat.h"
#include "migrate/common/resolve.h"
#include "migrate/common/session.h"
#include "migrate/source/phases.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/pod_source.h"
#include "migrate/common/volume_sync.h"
#include "state/state.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/fault.h"
#include "util/log.h"

static int runc_status(const struct em_config *cfg, const char *name, char **status, int *pid,
                       em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        /* Asked first: the dump at the end then starts from a warm
         * kernel-feature cache, filled now if need be (checkpoint/kdat.h). */
        em_kdat_warm_quiet(cfg);
        return em_runc_state(cfg, &p, name, status, pid, err);
}

const struct em_source_ops em_source_ops_runc = {
    .connect = em_session_connect,
    .state = runc_status,
    .checkpoint_start = em_container_checkpoint_start,
    .checkpoint_ready = em_container_checkpoint_ready,
    .checkpoint_finish = em_container_checkpoint_finish,
    .restore = em_container_restore_from,
    .remove = em_container_rm_migrated,
    .route_hook = em_session_route_hook,
};

void em_migrate_opts_init(struct em_migrate_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->ops = &em_source_ops_runc;
        o->mode = EM_MIGRATE_PRECOPY;
        em_stop_rule_defaults(&o->stop);
        o->compress.mode = EM_COMPRESS_AUTO;
        o->connect_timeout_ms = 10000;
        o->io_timeout_ms = 120000;
}

static void source_free(struct source *s)
{
        em_conn_free(&s->conn);
        em_store_close(&s->store);
        em_image_info_free(&s->image);
        em_sync_state_free(&s->sync);
        json_decref(s->spec);
        em_cleanup_closep(&s->journal_fd);
        free(s->workdir);
        free(s->images);
        free(s->pids);
}

static int load_container(struct source *s, em_error_t *err)
{
        const char *image;

        if (em_container_spec_get(s->cfg, s->name, &s->spec, err) < 0 ||
            em_pod_refuse_alone(s->spec, "migrating", err) < 0)
                return -1;
        image = em_json_str(s->spec, "image_digest");
        if (image == NULL)
                image = em_json_str(s->spec, "image");
        if (image == NULL)
                return em_error_set(err, EINVAL, "container %s has no image in its spec", s->name);
        if (em_store_open(s->cfg->root, &s->store, err) < 0 ||
            em_store_image_get(s->store, image, &s->image, err) < 0)
                return em_error_wrap(err, "image of container %s", s->name);
        s->workdir = NULL;
        if (asprintf(&s->workdir, "%s/outgoing/%s", s->cfg->root, s->session) < 0)
                return em_error_set(err, ENOMEM, "migrating");
        s->images = em_path_join(s->workdir, "images");
        if (s->images == NULL || em_mkdir_p(s->images, 0700, err) < 0)
                return em_error_wrap(err, "creating %s", s->workdir);
        /* What recovery needs if this process dies mid-migration. */
        cleanup_free char *spec = em_path_join(s->workdir, "spec.json");
        if (spec == NULL || em_json_write_file(spec, s->spec, err) < 0)
                return -1;
        return em_journal_own(s->workdir, s->name, &s->journal_fd, err);
}

static int do_hello(struct source *s, em_error_t *err)
{
        cleanup_hello struct em_hello h = {0};
        cleanup_free char *reason = NULL;
        bool ok = false;

        if (em_session_local_hello(s->cfg, &h, err) < 0)
                return -1;
        memcpy(h.session, s->session_id, 16);
        h.container = strdup(s->name);
        h.mode = strdup(em_migrate_mode_name(s->o->mode));
        if (h.container == NULL || h.mode == NULL)
                return em_error_wrap(err, "building HELLO");
        if (em_proto_hello(s->conn, &h, s->o->target, &ok, &reason, err) < 0)
                return -1;
        if (!ok)
                return em_error_set(err, EPERM, "target %s refused the migration: %s", s->o->target,
                                    reason ? reason : "no reason given");
        em_conn_set_session(s->conn, em_frame_session_tag(s->session_id));
        return 0;
}

/* A record of what `prepare` left in the target's page cache saves asking
 * for its whole hash list (migrate/source/known_cache.h). Best effort. */
static json_t *load_known_record(struct source *s)
{
        json_t *prefix = NULL;
        em_error_t e = NULL;

        if (em_known_cache_load(s->cfg->root, s->name, s->o->target, em_sync_state_known(s->sync),
                                &prefix, &s->dirt, &e) < 0) {
                em_log_warn("ignoring the page cache record for %s: %s", s->o->target,
                            em_error_msg(e));
                em_error_free(&e);
                em_known_cache_drop(s->cfg->root, s->name);
        }
        return prefix;
}

/* The shadow of what the target holds lives with the container (so `rm`
 * and the commit remove it) and outlives a `prepare`. Best effort. */
static void open_shadow(struct source *s)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *dir = NULL;
        em_shadow_t *sh = NULL;
        em_error_t e = NULL;

        if (em_container_paths_init(s->cfg, s->name, &p, &e) < 0 ||
            (dir = em_path_join(p.dir, "shadow")) == NULL || em_shadow_open(dir, &sh, &e) < 0) {
                em_log_warn("changed pages will travel whole: %s", e ? em_error_msg(e) : "ENOMEM");
                em_error_free(&e);
                return;
        }
        em_sync_state_set_shadow(s->sync, sh);
}

/* For the migration after a `prepare`, or a retry after a roll-back. */
static void save_shadow(struct source *s)
{
        em_shadow_t *sh = s->sync ? em_sync_state_shadow(s->sync) : NULL;
        em_error_t e = NULL;

        if (sh == NULL || s->committed)
                return;
        if (em_shadow_save(sh, &e) < 0) {
                em_log_warn("%s", em_error_msg(e));
                em_error_free(&e);
        }
}

/* The target answers the plan with the blobs it lacks and the page hashes it
 * holds (those added since our record, if it still matches, else all). */
static int plan_round_trip(struct source *s, json_t **ack, em_error_t *err)
{
        cleanup_json json_t *plan =
            json_pack("{s:O, s:o}", "spec", s->spec, "image", em_proto_image_plan(s->image));
        cleanup_json json_t *prefix = NULL;

        if (plan == NULL)
                return em_error_set(err, ENOMEM, "layer plan");
        if (em_sync_state_new(&s->sync, err) < 0)
                return -1;
        prefix = load_known_record(s);
        if (prefix != NULL)
                json_object_set(plan, "known_cache", prefix);
        if (em_proto_send_json(s->conn, EM_FRAME_LAYERS_HAVE, plan, err) < 0 ||
            em_proto_recv_json(s->conn, EM_FRAME_LAYERS_HAVE, ack, err) < 0)
                return -1;
        long long from = em_json_int(*ack, "hashes_from", 0);
        if (prefix != NULL && from != em_json_int(prefix, "pages", -1)) {
                /* The record is stale: forget what it claimed, and the
                 * dirt rate it measured against a cache that is not
                 * there (prepared_fits would freeze at once on it). */
                s->dirt.left_wire_bps = -1;
                em_sync_state_free(&s->sync);
                if (em_sync_state_new(&s->sync, err) < 0)
                        return -1;
        }
        if (em_sync_volumes_plan(s->sync, s->cfg, s->spec, json_object_get(*ack, "volumes"), err) <
            0)
                return -1;
        s->small_transfers = prefix != NULL && from > 0;
        s->target_lazy = json_is_true(json_object_get(*ack, "lazy_pages"));
        em_report_set(s->report, "cache_record", json_boolean(s->small_transfers));
        open_shadow(s);
        return em_sync_state_recv_hashes(s->sync, s->conn, EM_SYNC_HASHES_MAX, err);
}

static bool image_names(const void *image, const char *digest)
{
        return em_image_info_names(image, digest);
}

/* Sends the plan, then streams the blobs the target lacks. */
static int do_layers(struct source *s, em_error_t *err)
{
        cleanup_json json_t *ack = NULL;
        em_report_phase_begin(s->report, "layers");
        em_monitor_phase(s, "layers", 0);
        if (plan_round_trip(s, &ack, err) < 0)
                return em_error_wrap(err, "layer plan");
        em_sync_state_set_compress(s->sync, &s->o->compress, &s->cal, em_source_calibrate_poll, s);
        em_sync_state_set_bandwidth_hint(s->sync, &s->bandwidth);
        if (em_source_send_missing(s, ack, image_names, s->image, s->image->name, err) < 0)
                return -1;
        json_object_set_new(
            em_report_json(s->report), "layers_sent",
            json_integer((json_int_t)json_array_size(json_object_get(ack, "missing"))));
        return 0;
}

static int connect_target(struct source *s, em_error_t *err)
{
        cleanup_free char *peer = NULL;
        int rc = s->o->ops->connect(s->o->tls, s->o->target, s->o->connect_timeout_ms, &s->conn,
                                    &peer, err);

        if (rc < 0)
                return em_error_wrap(err, "connecting to target %s (is edgemigd running there?)",
                                     s->o->target);
        if (peer != NULL)
                em_report_set(s->report, "target_identity", json_string(peer));
        if (s->o->max_rate_bps) {
                em_conn_set_max_rate(s->conn, s->o->max_rate_bps);
                em_report_set(s->report, "max_rate_bps",
                              json_integer((json_int_t)s->o->max_rate_bps));
        }
        em_monitor_conn(s, s->conn);
        /* Whom to ask if the commit ends in doubt (migrate/common/resolve.h). */
        return em_resolve_peer_save(s->workdir, s->o->target, peer, err);
}

/* While a migration owns the container its state is "migrating": a
 * concurrent `edgemig ps` then leaves it alone (it would otherwise mark it
 * stopped the moment the final dump kills it), and `stop`/`rm` refuse. */
static int set_migrating(struct source *s, bool on, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        enum em_cstate from = on ? EM_CSTATE_RUNNING : EM_CSTATE_MIGRATING;
        enum em_cstate to = on ? EM_CSTATE_MIGRATING : EM_CSTATE_RUNNING;
        cleanup_container_rec struct em_container_rec *rec = NULL;

        if (em_state_open(s->cfg->root, &st, err) < 0 ||
            em_state_container_get(st, s->name, &rec, err) < 0)
                return -1;
        if (em_state_container_transition(st, s->name, EM_CSTATE_BIT(from), to, rec->pid, NULL,
                                          err) < 0)
                return em_error_wrap(err, "container %s", s->name);
        s->migrating = on;
        return 0;
}

static int run(struct source *s, em_error_t *err)
{
        if (load_container(s, err) < 0 || em_monitor_start(s, err) < 0 ||
            set_migrating(s, true, err) < 0)
                return -1;
        s->small_transfers = em_known_cache_exists(s->cfg->root, s->name, s->o->target);
        em_report_phase_begin(s->report, "handshake");
        em_monitor_phase(s, "handshake", 0);
        em_source_checks_start(s); /* meanwhile: connect, handshake */
        if (connect_target(s, err) < 0)
                return -1;
        em_conn_set_timeout(s->conn, s->o->io_timeout_ms);
        if (do_hello(s, err) < 0 || em_source_checks_join(s, err) < 0 ||
            em_fault("source.after-handshake", em_conn_fd(s->conn), err) < 0)
                return -1;
        em_source_phase_end(s, "handshake", 0);
        /* Their final step is plain when the rounds end small. */
        s->defer_echoes = s->o->mode == EM_MIGRATE_PRECOPY || s->o->mode == EM_MIGRATE_AUTO;
        if (do_layers(s, err) < 0 || em_fault("source.after-layers", em_conn_fd(s->conn), err) < 0)
                return -1;
        if (s->o->mode != EM_MIGRATE_STOP_AND_COPY && s->o->mode != EM_MIGRATE_POSTCOPY &&
            em_source_precopy(s, err) < 0)
                return -1;
        if (s->o->mode == EM_MIGRATE_PREPARE)
                return em_source_finish_prepare(s, err);
        return em_source_final(s, err);
}

/* Before the final step, a cancel is what ended the migration, whatever
 * error the shut-down connection gave. */
static void failed(struct source *s, em_error_t *err)
{
        bool cancelled = em_monitor_cancelled(s) && !s->final_sent;

        if (s->conn)
                em_proto_send_abort(s->conn, cancelled ? "cancelled" : em_error_msg(*err));
        em_source_roll_back(s);
        if (cancelled)
                em_monitor_report_cancel(s, err);
        em_error_wrap(err, "migrating %s to %s", s->name, s->o->target);
}

/* What the target sent back (plan answer with its volumes' block hashes,
 * page hashes, acknowledgements): bytes_wire counts only what went out. */
static void report_wire_in(struct source *s)
{
        struct em_conn_stats cs;

        if (s->conn == NULL)
                return;
        em_conn_stats(s->conn, &cs);
        em_report_set(s->report, "bytes_wire_in", json_integer((json_int_t)cs.wire_in));
}

int em_migrate_source_run(const struct em_config *cfg, const char *name,
                          const struct em_migrate_opts *o, json_t **report, em_error_t *err)
{
        struct source s = {.cfg = cfg, .name = name, .o = o, .journal_fd = -1};
        em_error_t e = NULL;
        int rc;

        /* A pod moves as one unit (migrate/source/pod_source.h). */
        if (em_pod_source_is_pod(cfg, name))
                return em_pod_source_run(cfg, name, o, report, err);

        if (em_session_new(s.session_id, err) < 0)
                return -1;
        em_session_hex(s.session_id, s.session);
        s.report = em_report_new(s.session, name, em_migrate_mode_name(o->mode), o->target);
        if (s.report == NULL)
                return em_error_set(err, ENOMEM, "migrating %s", name);
        rc = run(&s, err);
        em_source_checks_join(&s, NULL); /* a failure before its join */
        em_source_unthrottle(&s);
        em_source_calibrate_join(&s);
        save_shadow(&s);
        if (s.migrating && !s.checkpointed && !s.committed) {
                em_error_t me = NULL;
                if (set_migrating(&s, false, &me) < 0) {
                        em_log_warn("%s", em_error_msg(me));
                        em_error_free(&me);
                }
        }
        if (rc < 0)
                failed(&s, err);
        report_wire_in(&s);
        em_report_finish(s.report, rc == 0, rc < 0 ? em_error_msg(*err) : NULL);
        if (em_report_save(s.report, cfg->root, &e) < 0) {
                em_log_warn("%s", em_error_msg(e));
                em_error_free(&e);
        }
        if (s.workdir != NULL && !s.keep_workdir && em_rm_rf(s.workdir, &e) < 0) {
                em_log_warn("%s", em_error_msg(e));
                em_error_free(&e);
        }
        if (report)
                *report = json_incref(em_report_json(s.report));
        em_monitor_stop(&s, rc == 0);
        em_report_free(&s.report);
        source_free(&s);
        return rc;
}
