#include "migrate/source/pod_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ckpt_refuse.h"
#include "checkpoint/pod_ckpt.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/netns.h"
#include "container/pod.h"
#include "container/volume.h"
#include "migrate/common/logsync.h"
#include "migrate/common/journal.h"
#include "migrate/common/pod_pack.h"
#include "migrate/common/proto.h"
#include "migrate/common/report.h"
#include "migrate/common/resolve.h"
#include "migrate/common/volume_sync.h"
#include "migrate/source/monitor.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/phases.h"
#include "migrate/source/upper_send.h"
#include "state/state.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"

struct pod_src {
        struct source s; /* s.name is the pod, s.spec the infra's spec */
        char **names;    /* members, then the pod (pod_ckpt.h's order) */
        json_t *plan;
        struct em_image_info **images;
        size_t n;
        char *ck;        /* the kept checkpoint: <workdir>/pod */
        bool blackholed; /* hold_ip */
        /* Pre-copy: what the target holds of each container's memory
         * (parallel to names; NULL: stop-and-copy). */
        struct em_sync_state **sync;
        pid_t *pids;
        struct em_volume_tx *vols; /* the pod's named volumes; NULL: none */
        char **uppers;             /* pre-copy: each container's writable layer */
        json_t *upper_bytes;       /* {"rounds": [...], "final"}: their payload */
};

#define POD_MAX_PIDS 4096

static void pod_src_free(struct pod_src *p)
{
        for (size_t i = 0; p->sync != NULL && i < p->n; i++)
                em_sync_state_free(&p->sync[i]);
        free(p->sync);
        free(p->pids);
        em_strv_free(p->uppers);
        json_decref(p->upper_bytes);
        for (size_t i = 0; p->images != NULL && i < p->n; i++)
                em_image_info_free(&p->images[i]);
        free(p->images);
        em_strv_free(p->names);
        json_decref(p->plan);
        em_volume_tx_free(&p->vols);
        free(p->ck);
        em_conn_free(&p->s.conn);
        em_store_close(&p->s.store);
        json_decref(p->s.spec);
        em_cleanup_closep(&p->s.journal_fd);
        free(p->s.workdir);
}

bool em_pod_source_is_pod(const struct em_config *cfg, const char *name)
{
        cleanup_json json_t *spec = NULL;
        cleanup_error em_error_t e = NULL;

        return em_container_spec_get(cfg, name, &spec, &e) == 0 && em_pod_spec_is_infra(spec);
}

/* Every member must run: one left behind would split the pod. */
static int pod_names(struct pod_src *p, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_strv char **all = NULL;
        size_t n = 0, run = 0;

        if (em_state_open(p->s.cfg->root, &st, err) < 0 ||
            em_pod_check_running(st, p->s.name, err) < 0 ||
            em_pod_members(st, p->s.name, false, &all, err) < 0 ||
            em_pod_members(st, p->s.name, true, &p->names, err) < 0)
                return -1;
        while (all[n])
                n++;
        while (p->names[run])
                run++;
        if (n == 0)
                return em_error_set(err, EINVAL, "pod %s has no members to migrate", p->s.name);
        if (run != n)
                return em_error_set(err, EBUSY,
                                    "pod %s has members that do not run: start them (`edgemig pod "
                                    "start %s`) or remove them before migrating the pod",
                                    p->s.name, p->s.name);
        if (em_strv_push_unique(&p->names, &run, p->s.name, strlen(p->s.name)) < 0)
                return em_error_set(err, ENOMEM, "pod %s", p->s.name);
        p->n = run;
        return 0;
}

static int one_container(struct pod_src *p, size_t i, json_t **spec, em_error_t *err)
{
        const char *image;

        /* Its named volumes move with the pod: no container outside it
         * may mount them. */
        if (em_container_spec_get(p->s.cfg, p->names[i], spec, err) < 0 ||
            em_volumes_movable_among(p->s.cfg, *spec, p->names, err) < 0)
                return -1;
        image = em_json_str(*spec, "image_digest") ?: em_json_str(*spec, "image");
        if (image == NULL || em_store_image_get(p->s.store, image, &p->images[i], err) < 0)
                return em_error_wrap(err, "image of %s", p->names[i]);
        return 0;
}

/* {"spec", "image", "pod": {"members": [{"spec", "image"}]}}. */
static int load_pod(struct pod_src *p, em_error_t *err)
{
        json_t *members = json_array();

        bool pre = p->s.o->mode != EM_MIGRATE_STOP_AND_COPY;

        p->plan = json_pack("{s:{s:o}, s:b, s:b, s:b}", "pod", "members", members, "prepare",
                            p->s.o->mode == EM_MIGRATE_PREPARE, "page_hashes", pre, "uppers", pre);
        if (p->plan == NULL || pod_names(p, err) < 0 ||
            em_store_open(p->s.cfg->root, &p->s.store, err) < 0)
                return p->plan ? -1 : em_error_set(err, ENOMEM, "pod plan");
        if ((p->images = calloc(p->n, sizeof(*p->images))) == NULL)
                return em_error_set(err, ENOMEM, "pod plan");
        for (size_t i = 0; i < p->n; i++) {
                json_t *spec = NULL;
                if (one_container(p, i, &spec, err) < 0) {
                        json_decref(spec);
                        return em_error_wrap(err, "migrating pod %s", p->s.name);
                }
                if (i + 1 == p->n) {
                        p->s.spec = spec;
                        json_object_set(p->plan, "spec", spec);
                        json_object_set_new(p->plan, "image", em_proto_image_plan(p->images[i]));
                } else {
                        json_array_append_new(members,
                                              json_pack("{s:o, s:o}", "spec", spec, "image",
                                                        em_proto_image_plan(p->images[i])));
                }
        }
        return 0;
}

static int make_workdir(struct pod_src *p, em_error_t *err)
{
        if (asprintf(&p->s.workdir, "%s/outgoing/%s", p->s.cfg->root, p->s.session) < 0) {
                p->s.workdir = NULL;
                return em_error_set(err, ENOMEM, "migrating");
        }
        p->ck = em_path_join(p->s.workdir, "pod");
        if (p->ck == NULL || em_mkdir_p(p->s.workdir, 0700, err) < 0)
                return em_error_wrap(err, "creating %s", p->s.workdir);
        /* A roll-back restores the members from here as the pod's root
         * (checkpoint/pod_member.h): it must pass outgoing/ and the
         * session's directory, as it passes the state root. */
        cleanup_free char *outgoing = em_path_join(p->s.cfg->root, "outgoing");
        if (outgoing == NULL || chmod(outgoing, 0711) < 0 || chmod(p->s.workdir, 0711) < 0)
                return em_error_set(err, outgoing ? errno : ENOMEM, "opening %s", p->s.workdir);
        return em_journal_own(p->s.workdir, p->s.name, &p->s.journal_fd, err);
}

static int connect_hello(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;
        cleanup_hello struct em_hello h = {0};
        cleanup_free char *peer = NULL, *reason = NULL;
        bool ok = false;

        if (s->o->ops->connect(s->o->tls, s->o->target, s->o->connect_timeout_ms, &s->conn, &peer,
                               err) < 0)
                return em_error_wrap(err, "connecting to target %s (is edgemigd running there?)",
                                     s->o->target);
        em_conn_set_timeout(s->conn, s->o->io_timeout_ms);
        if (s->o->max_rate_bps)
                em_conn_set_max_rate(s->conn, s->o->max_rate_bps);
        em_monitor_conn(s, s->conn); /* progress counts it, a cancel shuts it */
        if (em_resolve_peer_save(s->workdir, s->o->target, peer, err) < 0 ||
            em_session_local_hello(s->cfg, &h, err) < 0)
                return -1;
        memcpy(h.session, s->session_id, 16);
        h.container = strdup(s->name);
        h.mode = strdup(EM_POD_MODE);
        if (h.container == NULL || h.mode == NULL)
                return em_error_set(err, ENOMEM, "building HELLO");
        if (em_proto_hello(s->conn, &h, s->o->target, &ok, &reason, err) < 0)
                return -1;
        if (!ok)
                return em_error_set(err, EPERM, "target %s refused the migration: %s", s->o->target,
                                    reason ? reason : "no reason given");
        em_conn_set_session(s->conn, em_frame_session_tag(s->session_id));
        return em_fault("source.after-handshake", em_conn_fd(s->conn), err);
}

/* The target may ask only for blobs the plan named, never for another
 * image's blob on this host. */
static bool in_plans(const void *ud, const char *d)
{
        const struct pod_src *p = ud;

        for (size_t k = 0; k < p->n; k++)
                if (em_image_info_names(p->images[k], d))
                        return true;
        return false;
}

/* The pod's named volumes, each once, diffed against the target's copies
 * (have: its plan answer), by the single container's machinery
 * (migrate/common/volume_sync.h). */
static int volumes_plan(struct pod_src *p, const json_t *have, em_error_t *err)
{
        cleanup_json json_t *specs = json_array();
        cleanup_json json_t *all = NULL;
        json_t *m;
        size_t i;

        if (specs == NULL)
                return em_error_set(err, ENOMEM, "pod volumes");
        json_array_foreach(json_object_get(json_object_get(p->plan, "pod"), "members"), i, m)
            json_array_append(specs, json_object_get(m, "spec"));
        json_array_append(specs, p->s.spec);
        if ((all = em_volume_spec_union(specs)) == NULL)
                return em_error_set(err, ENOMEM, "pod volumes");
        return em_volume_tx_new(p->s.cfg, all, have, &p->vols, err);
}

/* live: while the pod runs, most of the volumes' data; then, frozen, the
 * rest (what changed since), as one container's rounds send them. */
static int send_volumes(struct pod_src *p, bool live, uint64_t *raw, em_error_t *err)
{
        struct em_sync_stats st = {0};
        int level = em_compress_level(&p->s.o->compress, 0, NULL);

        if (p->vols == NULL)
                return 0;
        if (em_volume_tx_send(p->vols, p->s.conn, live, level, &st, err) < 0)
                return em_error_wrap(err, "sending the pod's volumes");
        *raw += st.raw_bytes;
        return 0;
}

/* Pre-copy's record of each container's pages on the target: what its
 * page cache holds (a prepare filled it), as PAGES_HASHES frames after
 * the plan's answer in the plan's order, if the target sends them. A
 * target may send anything: together they stay within the engine's
 * bound for one container. */
static int recv_hashes(struct pod_src *p, bool sent, em_error_t *err)
{
        if ((p->sync = calloc(p->n, sizeof(*p->sync))) == NULL)
                return em_error_set(err, ENOMEM, "pre-copy");
        for (size_t i = 0; i < p->n; i++) {
                if (em_sync_state_new(&p->sync[i], err) < 0)
                        return -1;
                if (sent && em_sync_state_recv_hashes(p->sync[i], p->s.conn,
                                                      EM_SYNC_HASHES_MAX / p->n, err) < 0)
                        return em_error_wrap(err, "page hashes of %s", p->names[i]);
        }
        return 0;
}

/* Pre-copy: each container's writable layer travels as a single
 * container's does (source/upper_send.h), each diffed against the copy
 * the target keeps for this source (have: its plan answer, "uppers"), so
 * that after a prepare only the files that changed since cross. */
static int uppers_plan(struct pod_src *p, const json_t *have, em_error_t *err)
{
        if ((p->uppers = calloc(p->n + 1, sizeof(char *))) == NULL ||
            (p->upper_bytes = json_pack("{s:[], s:i}", "rounds", "final", 0)) == NULL)
                return em_error_set(err, ENOMEM, "pre-copy");
        for (size_t i = 0; i < p->n; i++) {
                cleanup_container_paths struct em_container_paths cp = {0};
                if (em_container_paths_init(p->s.cfg, p->names[i], &cp, err) < 0)
                        return -1;
                p->uppers[i] = steal_pointer(&cp.upper);
                if (em_upper_state_set_json(em_sync_state_upper(p->sync[i]),
                                            json_object_get(have, p->names[i]), err) < 0)
                        return em_error_wrap(err, "the target's copy of the writable layer of %s",
                                             p->names[i]);
        }
        em_report_set(p->s.report, "upper_bytes", json_incref(p->upper_bytes));
        return 0;
}

static int do_layers(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;
        cleanup_json json_t *ack = NULL;
        cleanup_free char *plan = NULL;

        em_report_phase_begin(s->report, "layers");
        em_monitor_phase(s, "layers", 0);
        if (em_proto_send_json(s->conn, EM_FRAME_LAYERS_HAVE, p->plan, err) < 0 ||
            em_proto_recv_json(s->conn, EM_FRAME_LAYERS_HAVE, &ack, err) < 0)
                return em_error_wrap(err, "pod plan");
        if (asprintf(&plan, "pod %s", s->name) < 0)
                return em_error_set(err, ENOMEM, "pod plan");
        if (volumes_plan(p, json_object_get(ack, "volumes"), err) < 0)
                return -1;
        if (json_is_true(json_object_get(p->plan, "page_hashes")) &&
            (recv_hashes(p, json_is_true(json_object_get(ack, "page_hashes")), err) < 0 ||
             uppers_plan(p, json_object_get(ack, "uppers"), err) < 0))
                return em_error_wrap(err, "pod plan");
        if (em_source_send_missing(s, ack, in_plans, p, plan, err) < 0)
                return -1;
        em_report_set(s->report, "layers_sent",
                      json_integer((json_int_t)json_array_size(json_object_get(ack, "missing"))));
        return em_fault("source.after-layers", em_conn_fd(s->conn), err);
}

/* Where the target files what follows: container i's images and pages. */
static int select_member(struct pod_src *p, size_t i, em_error_t *err)
{
        cleanup_json json_t *m = json_pack("{s:s}", "member", p->names[i]);

        if (m == NULL)
                return em_error_set(err, ENOMEM, "FILE_ROOT");
        return em_proto_send_json(p->s.conn, EM_FRAME_FILE_ROOT, m, err);
}

/* Container i's writable layer, what changed since the last send (first:
 * all of it), after its FILE_ROOT; live while the pod runs. Its payload
 * is counted in st and added to *bytes. */
static int send_upper(struct pod_src *p, size_t i, bool live, int level, struct em_sync_stats *st,
                      json_int_t *bytes, em_error_t *err)
{
        uint64_t before = st->raw_bytes;

        if (em_sync_send_upper(p->s.conn, p->sync[i], p->uppers[i], live, level, st, err) < 0)
                return em_error_wrap(err, "the writable layer of %s", p->names[i]);
        *bytes += (json_int_t)(st->raw_bytes - before);
        return 0;
}

/* Container i's processes now, into p->pids; *n of them. */
static int member_pids(struct pod_src *p, size_t i, size_t *n, em_error_t *err)
{
        cleanup_free char *status = NULL;
        int pid = 0;

        if (p->pids == NULL && (p->pids = calloc(POD_MAX_PIDS, sizeof(pid_t))) == NULL)
                return em_error_set(err, ENOMEM, "pre-copy");
        if (p->s.o->ops->state(p->s.cfg, p->names[i], &status, &pid, err) < 0)
                return -1;
        if (status == NULL || strcmp(status, "running") != 0)
                return em_error_set(err, ESRCH, "%s of pod %s is not running (%s)", p->names[i],
                                    p->s.name, status && *status ? status : "unknown to runc");
        *n = em_proc_tree(pid, p->pids, POD_MAX_PIDS);
        return 0;
}

/* What the round left of each container (the pages the target still
 * lacks), read live as the single container's rounds scan it; the next
 * round reads only those (em_sync_push_left). */
static int pod_scan(struct pod_src *p, uint64_t *left, em_error_t *err)
{
        *left = 0;
        for (size_t i = 0; i < p->n; i++) {
                uint64_t raw = 0;
                size_t n = 0;
                if (member_pids(p, i, &n, err) < 0 ||
                    em_sync_dirty_scan(p->sync[i], p->pids, n, &raw, err) < 0)
                        return em_error_wrap(err, "what %s left", p->names[i]);
                *left += raw;
        }
        return 0;
}

/* One round (em_source_rounds): each container's memory read live (no
 * freeze), the pages the target lacks of it sent; ROUND_END echoed once
 * all arrived. A round that fits the downtime target stands for what it
 * left, as a single container's does; else what is left is scanned. */
static int pod_round(void *ud, unsigned r, bool listed, struct em_round_stat *rs, em_error_t *err)
{
        struct pod_src *p = ud;
        struct source *s = &p->s;
        struct em_sync_stats st = {0};
        struct em_conn_stats c0, c1;
        int64_t t0 = em_mono_ms();
        char payload[32];
        int level = em_compress_level(&s->o->compress, s->bandwidth, NULL);
        uint64_t left = 0;

        json_int_t ub = 0;

        (void)listed;
        em_conn_stats(s->conn, &c0);
        for (size_t i = 0; i < p->n; i++) {
                size_t n = 0;
                if (member_pids(p, i, &n, err) < 0 || select_member(p, i, err) < 0 ||
                    em_sync_push_left(s->conn, p->sync[i], p->pids, n, level, &st, err) < 0 ||
                    send_upper(p, i, true, level, &st, &ub, err) < 0)
                        return em_error_wrap(err, "pre-copy round %u", r);
        }
        json_array_append_new(json_object_get(p->upper_bytes, "rounds"), json_integer(ub));
        snprintf(payload, sizeof(payload), "{\"round\":%u}", r);
        if (em_source_round_trip(s, payload, err) < 0)
                return em_error_wrap(err, "pre-copy round %u", r);
        em_conn_stats(s->conn, &c1);
        int64_t ms = em_mono_ms() - t0;
        uint64_t wire = c1.wire_out - c0.wire_out;
        em_source_link_sample(s, wire, ms);
        bool small = em_stop_rule_fits(&s->o->stop, wire, s->bandwidth);
        if (!small && pod_scan(p, &left, err) < 0)
                return em_error_wrap(err, "pre-copy round %u", r);
        *rs = (struct em_round_stat){.dirty_bytes = st.raw_bytes, .dirty_wire_bytes = wire};
        em_report_round(s->report, r, st.raw_bytes, wire, st.pages_sent, 0, ms, 0);
        em_source_record_left(s, rs, small ? st.raw_bytes : left, small, ms);
        em_log_info("pod %s round %u: %llu pages, %llu bytes on the wire in %lld ms", s->name, r,
                    (unsigned long long)st.pages_sent, (unsigned long long)wire, (long long)ms);
        return 0;
}

/* Before anything moves, what the pod's checkpoint would refuse
 * (checkpoint/ckpt_refuse.h) of each of its containers: a process
 * `edgemig exec` started, or one that uses protection keys, refuses the
 * migration (or prepare) now, not after its rounds. The checkpoint looks
 * again: such a process may start meanwhile. */
static int refuse_lossy(struct pod_src *p, em_error_t *err)
{
        for (size_t i = 0; i < p->n; i++) {
                size_t n = 0;
                if (member_pids(p, i, &n, err) < 0)
                        return -1;
                const struct em_ckpt_procs procs = {n ? p->pids[0] : 0, p->pids, n};
                if (em_ckpt_refuse(p->s.cfg, p->names[i], &procs, err) < 0)
                        return -1;
        }
        return 0;
}

static void *checks_main(void *arg)
{
        struct pod_src *p = arg;

        p->s.checks_rc = refuse_lossy(p, &p->s.checks_err);
        return NULL;
}

/* What round n+1 is expected to send: what the last one left, or for the
 * first what CRIU would dump of every container's processes. */
static uint64_t pod_estimate(void *ud, size_t n, bool *listed)
{
        struct pod_src *p = ud;
        uint64_t sum = 0;

        *listed = false;
        if (n > 0)
                return p->s.final_estimate;
        for (size_t i = 0; i < p->n; i++) {
                size_t k = 0;
                cleanup_error em_error_t e = NULL;
                if (member_pids(p, i, &k, &e) < 0)
                        return 0;
                sum += em_sync_dump_bytes(p->pids, k);
        }
        return sum;
}

/* --auto-converge caps every container of the pod: their summed dirty
 * rate is what outruns the link. */
static bool pod_throttle_more(void *ud)
{
        struct pod_src *p = ud;

        return em_source_throttle_more(&p->s, (const char *const *)p->names, p->n);
}

/* Rounds while the pod runs, under the single container's stop rule
 * (stop_rule.h, its round and time budgets), with --auto-converge's
 * throttle; the final step then sends only what the last round left. */
static int pod_precopy(struct pod_src *p, em_error_t *err)
{
        const struct em_rounds_ops ops = {.round = pod_round,
                                          .estimate = pod_estimate,
                                          .throttle_more = pod_throttle_more,
                                          .ud = p};

        return em_source_rounds(&p->s, &ops, err);
}

/* After the freeze: each container's writable layer (what changed since
 * the last round) and CRIU images, pages-*.img as page deltas against
 * what the rounds sent; criu gets {name: {file: digest}} for FINAL. */
static int send_images(struct pod_src *p, json_t *criu, uint64_t *raw, em_error_t *err)
{
        struct em_sync_stats st = {0};
        int level = em_compress_level(&p->s.o->compress, p->s.bandwidth, NULL);
        json_int_t ub = 0;

        for (size_t i = 0; i < p->n; i++) {
                cleanup_free char *d = em_path_join(p->ck, p->names[i]);
                cleanup_free char *dir = d ? em_path_join(d, "criu") : NULL;
                json_t *digests = json_object();
                if (dir == NULL || digests == NULL ||
                    json_object_set_new(criu, p->names[i], digests) < 0)
                        return em_error_set(err, ENOMEM, "sending the pod's images");
                if (select_member(p, i, err) < 0 ||
                    send_upper(p, i, false, level, &st, &ub, err) < 0 ||
                    em_sync_send_images(p->s.conn, p->sync[i], dir, level, digests, &st, err) < 0)
                        return em_error_wrap(err, "sending the final state of %s", p->names[i]);
        }
        json_object_set_new(p->upper_bytes, "final", json_integer(ub));
        *raw += st.raw_bytes;
        em_report_set(p->s.report, "final_pages_sent", json_integer((json_int_t)st.pages_sent));
        em_report_set(p->s.report, "final_pages_known", json_integer((json_int_t)st.pages_known));
        return 0;
}

/* From the freeze until the pod is gone from here or restored by a
 * roll-back (container/netns.h); best effort. */
static void hold_ip(struct pod_src *p, bool on)
{
        const char *ip = em_json_str(p->s.spec, "ip");
        em_error_t e = NULL;

        if (ip == NULL || (!on && !p->blackholed))
                return;
        if (em_netns_blackhole(ip, on, &e) < 0)
                em_log_warn("%s", em_error_msg(e));
        else
                p->blackholed = on;
        em_error_free(&e);
}

/* Each container's log, complete now, goes with the pod (pod_pack.h):
 * linked into the checkpoint, not copied. Best effort: a log that cannot
 * be linked stays here, and the target's starts empty. */
static void link_log(struct pod_src *p, const char *name, int64_t deadline)
{
        cleanup_container_paths struct em_container_paths cp = {0};
        cleanup_free char *d = em_path_join(p->ck, name);
        cleanup_free char *to = d ? em_path_join(d, EM_POD_PACK_LOG) : NULL;
        em_error_t e = NULL;

        if (to == NULL || em_container_paths_init(p->s.cfg, name, &cp, &e) < 0) {
                em_log_warn("the log of %s stays here: %s", name,
                            e ? em_error_msg(e) : "no memory");
                em_error_free(&e);
                return;
        }
        /* The tar reads it later through the link: the forwarder must have
         * written out what its pipe held first (phases.c, send_log). */
        if (!em_logger_wait_drained(cp.log, em_ms_left(deadline)))
                em_log_warn("the log forwarder of %s still runs: its last lines may stay here",
                            name);
        if (link(cp.log, to) < 0 && errno != ENOENT)
                em_log_warn("the log of %s stays here: %s", name, strerror(errno));
}

/* One bound for the pod, not one per member: the wait is downtime. */
static void link_logs(struct pod_src *p)
{
        int64_t deadline = em_mono_ms() + EM_LOGSYNC_DRAIN_MS;

        for (size_t i = 0; i < p->n; i++)
                link_log(p, p->names[i], deadline);
}

/* One freeze for the pod, dumped into the session's staging (the kept
 * checkpoint of a roll-back), then the tar of its criu/ and upper/ trees. */
static int checkpoint_pack(struct pod_src *p, const char *tar, uint64_t *raw, em_error_t *err)
{
        struct source *s = &p->s;

        em_report_phase_begin(s->report, "final");
        em_monitor_phase(s, "final", s->final_estimate);
        em_report_mark(s->report, "source_stopped");
        hold_ip(p, true);
        if (em_pod_checkpoint(s->cfg, s->name, p->ck, err) < 0)
                return em_error_wrap(err, "final checkpoint");
        s->checkpointed = true;
        em_report_mark(s->report, "checkpoint_done");
        if (em_journal_write(s->workdir, "final", s->name, err) < 0 ||
            em_fault("source.after-checkpoint", em_conn_fd(s->conn), err) < 0 ||
            send_volumes(p, false, raw, err) < 0)
                return -1;
        link_logs(p);
        return em_pod_pack(p->ck, p->names, p->sync == NULL, tar, err);
}

static int send_final(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;
        cleanup_free char *tar = em_path_join(s->workdir, EM_POD_TAR_NAME);
        char digest[EM_DIGEST_STR_LEN + 1];
        uint64_t raw = 0, size = 0, vraw = 0;
        int level = em_compress_level(&s->o->compress, 0, NULL);

        cleanup_json json_t *criu = json_object();
        if (tar == NULL || criu == NULL)
                return em_error_set(err, ENOMEM, "final step");
        if (checkpoint_pack(p, tar, &vraw, err) < 0 ||
            (p->sync != NULL && send_images(p, criu, &raw, err) < 0) ||
            em_sha256_file(tar, digest, &size, err) < 0 ||
            em_proto_send_file(s->conn, EM_FRAME_IMAGE_FILE, tar, EM_POD_TAR_NAME, level, &raw,
                               err) < 0)
                return em_error_wrap(err, "sending the pod's final state");
        cleanup_json json_t *final = json_pack("{s:{s:s}}", "files", EM_POD_TAR_NAME, digest);
        if (final == NULL || (p->sync != NULL && json_object_set(final, "criu", criu) < 0))
                return em_error_set(err, ENOMEM, "FINAL");
        /* From here only the target's answer says whether the pod runs there. */
        s->final_sent = true;
        if (em_proto_send_json(s->conn, EM_FRAME_FINAL, final, err) < 0)
                return -1;
        em_report_set(s->report, "compress_level", json_integer(level));
        em_report_set(s->report, "pod_tar_bytes", json_integer((json_int_t)size));
        em_source_phase_end(s, "final", raw + vraw);
        return em_fault("source.after-final", em_conn_fd(s->conn), err);
}

/* The target owns the pod: the copy here goes, members first. */
static int finish_commit(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;

        if (em_journal_write(s->workdir, "committed", s->name, err) < 0)
                return -1;
        s->committed = true;
        em_source_withdraw(s);
        for (size_t i = 0; i < p->n; i++) {
                em_error_t e = NULL;
                if (s->o->ops->remove(s->cfg, p->names[i], &e) < 0)
                        em_log_warn("removing the migrated-away %s: %s", p->names[i],
                                    em_error_msg(e));
                em_error_free(&e);
        }
        em_report_mark(s->report, "source_cleaned");
        return 0;
}

static int commit(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;
        cleanup_json json_t *ok = NULL, *ack = NULL;
        int fd = em_conn_fd(s->conn);

        if (em_proto_recv_json(s->conn, EM_FRAME_RESTORE_OK, &ok, err) < 0)
                return em_error_wrap(err, "target restore");
        em_report_mark(s->report, "target_running");
        s->target_running = true;
        em_source_withdraw(s); /* once, for the whole pod */
        em_report_target_phases(s->report, json_object_get(ok, "timing"));
        if (em_fault("source.before-commit", fd, err) < 0 ||
            em_journal_write(s->workdir, "committing", s->name, err) < 0 ||
            em_fault("source.after-committing", fd, err) < 0 ||
            em_conn_send(s->conn, EM_FRAME_DONE, 0, 0, "{}", 2, 0, err) < 0 ||
            em_proto_recv_json(s->conn, EM_FRAME_DONE, &ack, err) < 0)
                return em_error_wrap(err, "committing");
        return finish_commit(p, err);
}

/* FINAL went out without an acknowledged commit: the target's record decides. */
static int settle(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;
        struct em_resolve_opts ro;
        enum em_verdict v;
        em_error_t e = NULL;

        em_log_warn("migration of pod %s in doubt (%s): asking the target", s->name,
                    em_error_msg(*err));
        em_monitor_conn(s, NULL);
        em_conn_free(&s->conn);
        em_resolve_opts_init(&ro);
        ro.tls = s->o->tls;
        ro.connect_timeout_ms = s->o->connect_timeout_ms;
        ro.connect = s->o->ops->connect;
        if (em_resolve_session(&ro, s->workdir, s->session, &v, &e) < 0)
                v = EM_VERDICT_UNKNOWN;
        if (v == EM_VERDICT_COMMIT) {
                em_error_free(err);
                em_error_free(&e);
                return finish_commit(p, err);
        }
        if (v == EM_VERDICT_ABORT)
                return -1;
        s->in_doubt = s->keep_workdir = true;
        em_error_wrap(err,
                      "migration in doubt (%s): pod %s stays stopped here, its checkpoint kept in "
                      "%s; run `edgemig recover` once the target answers",
                      e ? em_error_msg(e) : "no answer", s->name, s->workdir);
        em_error_free(&e);
        return -1;
}

/* Before FINAL, or after the target aborted: the pod runs here again. */
static void roll_back(struct pod_src *p)
{
        struct source *s = &p->s;
        const char *ip = em_json_str(s->spec, "ip");
        em_error_t e = NULL;

        if (!s->checkpointed || s->committed || s->in_doubt)
                return;
        em_log_warn("restoring pod %s on this host (roll-back)", s->name);
        if (em_pod_restore(s->cfg, p->ck, &e) < 0) {
                em_log_error("ROLL-BACK FAILED for pod %s: %s; its checkpoint stays in %s", s->name,
                             em_error_msg(e), p->ck);
                em_error_free(&e);
                s->keep_workdir = true;
                return;
        }
        s->checkpointed = false;
        em_report_mark(s->report, "rolled_back");
        hold_ip(p, false); /* every member is back: let the clients in */
        if (ip != NULL && s->o->ops->route_hook(s->o->route_hook, "announce", ip, &e) < 0) {
                em_log_error("re-announcing %s after the roll-back: %s", ip, em_error_msg(e));
                em_error_free(&e);
        }
}

/* A prepare ends after the layers: the target registered every image
 * and gave the names back, and the pod runs on here untouched. */
static int finish_prepare(struct pod_src *p, em_error_t *err)
{
        cleanup_json json_t *ack = NULL;

        if (em_conn_send(p->s.conn, EM_FRAME_DONE, 0, 0, "{}", 2, 0, err) < 0 ||
            em_proto_recv_json(p->s.conn, EM_FRAME_DONE, &ack, err) < 0)
                return em_error_wrap(err, "finishing the prepare of pod %s", p->s.name);
        return 0;
}

static int volumes_live(struct pod_src *p, em_error_t *err)
{
        uint64_t raw = 0;

        if (p->vols == NULL)
                return 0;
        em_report_phase_begin(p->s.report, "volumes");
        em_monitor_phase(&p->s, "volumes", 0);
        if (send_volumes(p, true, &raw, err) < 0)
                return -1;
        em_source_phase_end(&p->s, "volumes", raw);
        return 0;
}

static int run(struct pod_src *p, em_error_t *err)
{
        struct source *s = &p->s;
        cleanup_free char *spec = NULL;

        if (s->o->mode != EM_MIGRATE_PRECOPY && s->o->mode != EM_MIGRATE_STOP_AND_COPY &&
            s->o->mode != EM_MIGRATE_PREPARE)
                return em_error_set(err, ENOTSUP,
                                    "pod %s: a pod migrates with pre-copy or stop-and-copy only "
                                    "(`--mode %s` is "
                                    "not built for pods yet; docs/pods.md)",
                                    s->name, em_migrate_mode_name(s->o->mode));
        if (load_pod(p, err) < 0 || make_workdir(p, err) < 0 || em_monitor_start(s, err) < 0)
                return -1;
        /* What recovery needs (migrate/common/journal.h): the infra's spec
         * for its route, the pod's checkpoint in pod/. */
        spec = em_path_join(s->workdir, "spec.json");
        if (spec == NULL || em_json_write_file(spec, s->spec, err) < 0)
                return -1;
        em_report_phase_begin(s->report, "handshake");
        em_monitor_phase(s, "handshake", 0);
        em_source_checks_spawn(s, checks_main, p); /* meanwhile: connect, handshake */
        if (connect_hello(p, err) < 0 || em_source_checks_join(s, err) < 0)
                return -1;
        em_source_phase_end(s, "handshake", 0);
        if (do_layers(p, err) < 0 || volumes_live(p, err) < 0)
                return -1;
        if (s->o->mode != EM_MIGRATE_STOP_AND_COPY && pod_precopy(p, err) < 0)
                return -1;
        if (s->o->mode == EM_MIGRATE_PREPARE)
                return finish_prepare(p, err);
        if (em_monitor_enter_final(s, err) < 0)
                return -1;
        if (send_final(p, err) == 0 && commit(p, err) == 0)
                return 0;
        return s->final_sent ? settle(p, err) : -1;
}

/* Before the final step, a cancel is what ended the migration. */
static void failed(struct pod_src *p, em_error_t *err)
{
        bool cancelled = em_monitor_cancelled(&p->s) && !p->s.final_sent;

        if (p->s.conn)
                em_proto_send_abort(p->s.conn, cancelled ? "cancelled" : em_error_msg(*err));
        roll_back(p);
        if (cancelled)
                em_monitor_report_cancel(&p->s, err);
        em_error_wrap(err, "migrating pod %s to %s", p->s.name, p->s.o->target);
}

int em_pod_source_run(const struct em_config *cfg, const char *pod, const struct em_migrate_opts *o,
                      json_t **report, em_error_t *err)
{
        __attribute__((cleanup(pod_src_free))) struct pod_src p = {
            .s = {.cfg = cfg, .name = pod, .o = o, .journal_fd = -1}};
        em_error_t e = NULL;
        int rc;

        if (em_session_new(p.s.session_id, err) < 0)
                return -1;
        em_session_hex(p.s.session_id, p.s.session);
        p.s.report = em_report_new(p.s.session, pod, em_migrate_mode_name(o->mode), o->target);
        if (p.s.report == NULL)
                return em_error_set(err, ENOMEM, "migrating pod %s", pod);
        em_report_set(p.s.report, "pod", json_true());
        rc = run(&p, err);
        em_source_checks_join(&p.s, NULL); /* a failure before its join */
        em_source_unthrottle(&p.s);        /* after the dump, or a cancel or failure */
        if (rc < 0)
                failed(&p, err);
        hold_ip(&p, false);
        em_report_finish(p.s.report, rc == 0, rc < 0 ? em_error_msg(*err) : NULL);
        if (em_report_save(p.s.report, cfg->root, &e) < 0) {
                em_log_warn("%s", em_error_msg(e));
                em_error_free(&e);
        }
        if (p.s.workdir != NULL && !p.s.keep_workdir && em_rm_rf(p.s.workdir, &e) < 0) {
                em_log_warn("%s", em_error_msg(e));
                em_error_free(&e);
        }
        if (report)
                *report = json_incref(em_report_json(p.s.report));
        em_monitor_stop(&p.s, rc == 0);
        em_report_free(&p.s.report);
        return rc;
}
