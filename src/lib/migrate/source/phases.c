/* Source phases after the plan: pre-copy rounds, the final step, commit and
 * roll-back. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/ckpt_refuse.h"
#include "checkpoint/lazy_fit.h"
#include "checkpoint/redump.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "migrate/common/journal.h"
#include "migrate/source/early_images.h"
#include "migrate/source/known_cache.h"
#include "migrate/source/monitor.h"
#include "migrate/common/logsync.h"
#include "migrate/common/postcopy.h"
#include "migrate/common/proto.h"
#include "migrate/common/resolve.h"
#include "migrate/common/session.h"
#include "migrate/source/phases.h"
#include "migrate/source/upper_send.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/fault.h"
#include "util/log.h"
#include "util/proc.h"

#define MAX_PIDS 4096
/* A round smaller than this fits in the socket's and the link's buffers:
 * its time says nothing about the link's rate. */
#define LINK_SAMPLE_MIN_BYTES (256 * 1024)

static uint64_t wire_out(struct source *s)
{
        struct em_conn_stats cs;
        em_conn_stats(s->conn, &cs);
        return cs.wire_out;
}

void em_source_phase_end(struct source *s, const char *phase, uint64_t raw)
{
        uint64_t w = wire_out(s);
        em_report_phase_end(s->report, phase, raw, w - s->phase_wire0);
        em_report_add_bytes(s->report, raw, w - s->phase_wire0);
        s->phase_wire0 = w;
}

/* The target registers the image and pre-warms before it echoes the
 * layers; a migration whose final step is plain reads that echo later
 * (may_defer_echo) and reads the memory meanwhile. */
static int layers_done(struct source *s, em_error_t *err)
{
        static const char payload[] = "{\"layers_done\":true}";

        if (!s->defer_echoes)
                return em_source_round_trip(s, payload, err);
        if (em_conn_send(s->conn, EM_FRAME_ROUND_END, 0, 0, payload, strlen(payload), 0, err) < 0)
                return -1;
        s->echoes_pending++;
        return 0;
}

void em_source_link_sample(struct source *s, uint64_t wire, int64_t ms)
{
        /* Only a round that moved enough data says something about the link. */
        if (wire > LINK_SAMPLE_MIN_BYTES && ms > 0) {
                s->bandwidth = (double)wire * 1000.0 / (double)ms;
                s->bandwidth_measured = true;
        }
}

int em_source_send_missing(struct source *s, const json_t *ack,
                           bool (*named)(const void *ud, const char *digest), const void *ud,
                           const char *plan, em_error_t *err)
{
        uint64_t raw = 0;
        size_t i;
        json_t *d;

        json_array_foreach(json_object_get(ack, "missing"), i, d)
        {
                cleanup_free char *path = NULL;
                const char *hex = em_digest_hex(json_string_value(d));
                if (hex == NULL || !named(ud, json_string_value(d)))
                        return em_error_set(err, EPERM,
                                            "the target asked for blob %.80s, which is not in the "
                                            "plan of %s",
                                            json_string_value(d) ?: "(not a string)", plan);
                if (asprintf(&path, "%s/blobs/sha256/%s", s->cfg->root, hex) < 0)
                        return em_error_set(err, ENOMEM, "blob path");
                if (em_proto_send_file(s->conn, EM_FRAME_LAYER_BLOB, path, hex, 0, &raw, err) < 0)
                        return em_error_wrap(err, "sending layer blob");
        }
        if (layers_done(s, err) < 0)
                return -1;
        em_source_phase_end(s, "layers", raw);
        return 0;
}

int em_source_round_trip(struct source *s, const char *payload, em_error_t *err)
{
        if (em_conn_send(s->conn, EM_FRAME_ROUND_END, 0, 0, payload, strlen(payload), 0, err) < 0)
                return -1;
        return em_source_round_echo(s, err);
}

int em_source_drain_echoes(struct source *s, em_error_t *err)
{
        for (; s->echoes_pending > 0; s->echoes_pending--)
                if (em_source_round_echo(s, err) < 0)
                        return -1;
        return 0;
}

int em_source_round_echo(struct source *s, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};

        if (em_proto_recv(s->conn, &f, err) < 0)
                return -1;
        if (f.hdr.type != EM_FRAME_ROUND_END)
                return em_error_set(err, EPROTO, "protocol error: expected ROUND_END, got %s",
                                    em_frame_type_name(f.hdr.type));
        return 0;
}

/* The container's processes now, into s->pids (kept for the final push). */
static int container_pids(struct source *s, em_error_t *err)
{
        cleanup_free char *status = NULL;
        int pid = 0;

        if (s->pids == NULL && (s->pids = calloc(MAX_PIDS, sizeof(pid_t))) == NULL)
                return em_error_set(err, ENOMEM, "pre-copy");
        if (s->o->ops->state(s->cfg, s->name, &status, &pid, err) < 0)
                return -1;
        if (status == NULL || strcmp(status, "running") != 0)
                return em_error_set(err, ESRCH, "container %s is not running (%s)", s->name,
                                    status && *status ? status : "unknown to runc");
        s->npids = em_proc_tree(pid, s->pids, MAX_PIDS);
        /* What the final dump would refuse fails the first round, not the
         * end of pre-copy. */
        return em_redump_check(s->name, pid, err);
}

static void report_calibration(struct source *s)
{
        json_t *levels = json_array();

        for (int i = 0; i < s->cal.n; i++)
                json_array_append_new(
                    levels, json_pack("{s:i, s:f, s:f}", "level", s->cal.s[i].level, "mb_per_s",
                                      s->cal.s[i].speed / 1e6, "ratio", s->cal.s[i].ratio));
        em_report_set(s->report, "compress_calibration", levels);
}

static void fast_levels_done(void *arg)
{
        struct source *s = arg;

        atomic_store_explicit(&s->cal_fast, true, memory_order_release);
}

static void *calibrate_thread(void *arg)
{
        struct source *s = arg;

        s->cal_rc =
            em_sync_calibrate_staged(s->cal_pid, &s->cal_bg, fast_levels_done, s, &s->cal_err);
        return NULL;
}

int em_source_refuse_unrestorable(struct source *s, em_error_t *err)
{
        cleanup_error em_error_t e = NULL;

        /* Listed already (by the compression calibration), or now. */
        if (s->npids == 0 && container_pids(s, &e) < 0)
                return 0; /* not running: the next step says so */
        /* Its tree, then its cgroup: those `edgemig exec` started are
         * only there, and the dump would not take them. */
        const struct em_ckpt_procs procs = {s->npids ? s->pids[0] : 0, s->pids, s->npids};
        if (em_ckpt_refuse(s->cfg, s->name, &procs, err) < 0)
                return -1;
        /* What the operator asked to hand off lazily, CRIU must be able to. */
        if (s->o->mode == EM_MIGRATE_POSTCOPY || s->o->mode == EM_MIGRATE_HYBRID)
                return em_lazy_dump_refuse(s->pids, s->npids, s->name, err);
        return 0;
}

static void *checks_main(void *arg)
{
        struct source *s = arg;

        if (!s->small_transfers)
                em_source_calibrate_start(s);
        s->checks_rc = em_source_refuse_unrestorable(s, &s->checks_err);
        return NULL;
}

void em_source_checks_spawn(struct source *s, void *(*fn)(void *), void *arg)
{
        s->checks_running = pthread_create(&s->checks_thread, NULL, fn, arg) == 0;
        if (!s->checks_running)
                fn(arg);
}

void em_source_checks_start(struct source *s)
{
        em_source_checks_spawn(s, checks_main, s);
}

int em_source_checks_join(struct source *s, em_error_t *err)
{
        if (s->checks_running)
                pthread_join(s->checks_thread, NULL);
        s->checks_running = false;
        if (s->checks_rc >= 0)
                return 0;
        s->checks_rc = 0;
        if (err == NULL) {
                em_error_free(&s->checks_err);
                return 0;
        }
        *err = steal_pointer(&s->checks_err);
        return -1;
}

void em_source_calibrate_start(struct source *s)
{
        em_error_t e = NULL;

        if (s->calibrated || s->cal_running || s->o->compress.mode != EM_COMPRESS_AUTO)
                return;
        if (container_pids(s, &e) < 0 || s->npids == 0) {
                em_log_debug("compression calibration: %s", e ? em_error_msg(e) : "no pid");
                em_error_free(&e);
                return;
        }
        s->cal_pid = s->pids[0];
        s->cal_running = pthread_create(&s->cal_thread, NULL, calibrate_thread, s) == 0;
}

static void calibration_done(struct source *s)
{
        s->cal_running = false;
        if (s->cal_rc < 0) {
                em_log_debug("compression calibration: %s", em_error_msg(s->cal_err));
                em_error_free(&s->cal_err);
                return;
        }
        s->cal = s->cal_bg;
        s->calibrated = true;
        report_calibration(s);
}

void em_source_calibrate_join(struct source *s)
{
        if (!s->cal_running)
                return;
        pthread_join(s->cal_thread, NULL);
        calibration_done(s);
}

void em_source_calibrate_poll(void *arg)
{
        struct source *s = arg;

        if (!s->cal_running)
                return;
        if (pthread_tryjoin_np(s->cal_thread, NULL) == 0) {
                calibration_done(s);
        } else if (s->cal.n == 0 && atomic_load_explicit(&s->cal_fast, memory_order_acquire)) {
                /* Only the samples the thread no longer writes. */
                memcpy(s->cal.s, s->cal_bg.s, sizeof(s->cal.s[0]) * EM_COMPRESS_FAST_LEVELS);
                s->cal.n = EM_COMPRESS_FAST_LEVELS;
        }
}

int em_source_compress_level(struct source *s)
{
        em_source_calibrate_join(s);
        return em_compress_level(&s->o->compress, s->bandwidth, s->calibrated ? &s->cal : NULL);
}

static int compress_level(struct source *s)
{
        return em_source_compress_level(s);
}

/* The level of a pre-copy round's transfers: the calibration is taken up
 * if it is done, not waited for. */
static int round_level(struct source *s)
{
        em_source_calibrate_poll(s);
        return em_compress_level(&s->o->compress, s->bandwidth, &s->cal);
}

/* The fallback when the early calibration could not start. Best effort. */
static void calibrate(struct source *s, pid_t pid)
{
        em_source_calibrate_poll(s);
        if (s->cal_running || s->calibrated || s->small_transfers ||
            s->o->compress.mode != EM_COMPRESS_AUTO)
                return;
        if (em_sync_calibrate(pid, &s->cal, &s->cal_err) < 0) {
                em_log_debug("compression calibration: %s", em_error_msg(s->cal_err));
                em_error_free(&s->cal_err);
                return;
        }
        s->calibrated = true;
        report_calibration(s);
}

static int upper_dir(struct source *s, char **out, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(s->cfg, s->name, &p, err) < 0)
                return -1;
        *out = steal_pointer(&p.upper);
        return 0;
}

/* Whether a round of wire bytes is small enough to stand for what it left
 * (its own size would fit the downtime target; the small rounds after a
 * `prepare`): reading the whole memory again would only lengthen the
 * handoff. Decided before the round's tail has drained, with the link's
 * last measurement or, for a first round, the rate the round was written. */
static bool round_is_small(struct source *s, uint64_t wire, int64_t ms)
{
        double bw = s->bandwidth;

        if (bw <= 0 && wire > LINK_SAMPLE_MIN_BYTES && ms > 0)
                bw = (double)wire * 1000.0 / (double)ms;
        return em_stop_rule_fits(&s->o->stop, wire, bw);
}

void em_source_record_left(struct source *s, struct em_round_stat *rs, uint64_t raw, bool small,
                           int64_t ms)
{
        double ratio = rs->dirty_bytes ? (double)rs->dirty_wire_bytes / (double)rs->dirty_bytes : 1;

        if (small)
                em_report_round_set(s->report, "left_from_round", json_true());
        if (ratio > 1)
                ratio = 1;
        rs->left_wire_bytes = (uint64_t)((double)raw * ratio);
        s->dirty_rate = ms > 0 ? (double)raw * 1000.0 / (double)ms : 0;
        s->left_rate_known = ms > 0;
        s->left_wire_bps = ms > 0 ? (double)rs->left_wire_bytes * 1000.0 / (double)ms : 0;
        em_report_round_set(s->report, "left_bytes", json_integer((json_int_t)raw));
        em_report_round_set(s->report, "left_wire_bytes",
                            json_integer((json_int_t)rs->left_wire_bytes));
        em_report_round_set(s->report, "dirty_rate_bps", json_real(s->dirty_rate));
}

/* Whether the final step may start before the target echoed this round:
 * a small round too short to measure the link (the rule's answer cannot
 * change at the echo, so it is "fits"), in a mode whose final step is
 * plain (the echo is then read before RESTORE_OK, commit below). Waiting
 * would add a round trip, behind whatever else crosses the link towards
 * us (at 5 Mbit/s a client's 68 KB upload is 110 ms), to the handoff, for
 * bytes that arrive in order with the final state anyway. If the target
 * failed on the round it answers ABORT there, and the commit rule settles
 * it (the source restores here). */
static bool may_defer_echo(const struct source *s, bool small, uint64_t wire)
{
        return small && wire <= LINK_SAMPLE_MIN_BYTES && s->defer_echoes;
}

/* Ends a round: ROUND_END goes out at once, and the stop rule's scan of
 * the memory runs while the round's tail drains from the socket and the
 * link's queues (the link no longer idles for the scan); then the target's
 * echo says everything arrived. *raw: what is left, unscanned: the round's. */
static int end_round(struct source *s, unsigned n, int64_t t0, uint64_t w0, uint64_t *raw,
                     bool *small, em_error_t *err)
{
        char payload[64];
        uint64_t wire;

        snprintf(payload, sizeof(payload), "{\"round\":%u}", n);
        if (em_conn_send(s->conn, EM_FRAME_ROUND_END, 0, 0, payload, strlen(payload), 0, err) < 0)
                return -1;
        wire = wire_out(s) - w0;
        *small = round_is_small(s, wire, em_mono_ms() - t0);
        if (may_defer_echo(s, *small, wire)) {
                s->echoes_pending++;
                return 0;
        }
        if (!*small && em_sync_dirty_scan(s->sync, s->pids, s->npids, raw, err) < 0)
                return -1;
        return em_source_drain_echoes(s, err) < 0 ? -1 : em_source_round_echo(s, err);
}

/* end_round's guess that the round was small used, for a first round,
 * the rate at which the socket took the bytes, which runs ahead of the
 * link. With the link's rate measured at the echo, a round that would not
 * fit the downtime target stands for nothing: what is left is scanned, as
 * for any other round. Otherwise a 44 MB round of MariaDB that sent 1.6 MB
 * looked like a service dirtying 63 MB/s, not converging. */
static int confirm_small(struct source *s, uint64_t wire, bool *small, uint64_t *left,
                         em_error_t *err)
{
        if (!*small || em_stop_rule_fits(&s->o->stop, wire, s->bandwidth))
                return 0;
        *small = false;
        return em_sync_dirty_scan(s->sync, s->pids, s->npids, left, err);
}

/* Which zstd levels the round's pages went at (raw bytes per level), and
 * how often the sender stepped down to keep the link busy. */
static void report_levels(struct source *s, const struct em_sync_stats *st)
{
        json_t *lv = json_object();
        char key[8];

        for (int i = 0; i < EM_SENDQ_LEVELS; i++) {
                if (st->raw_at_level[i] == 0)
                        continue;
                snprintf(key, sizeof(key), "%d", em_sendq_levels[i]);
                json_object_set_new(lv, key, json_integer((json_int_t)st->raw_at_level[i]));
        }
        em_report_round_set(s->report, "raw_bytes_at_level", lv);
        em_report_round_set(s->report, "level_steps_down",
                            json_integer((json_int_t)st->level_steps_down));
}

static void report_round(struct source *s, unsigned n, const struct em_sync_stats *st,
                         uint64_t wire, int64_t ms)
{
        em_report_round(s->report, n, st->raw_bytes, wire, st->pages_sent, st->files_sent, ms, 0);
        em_report_round_set(s->report, "pages_xor", json_integer((json_int_t)st->pages_xor));
        em_report_round_set(s->report, "pages_zblock", json_integer((json_int_t)st->pages_zblock));
        em_report_round_set(s->report, "pages_read", json_integer((json_int_t)st->pages_read));
        report_levels(s, st);
        em_report_add_bytes(s->report, st->raw_bytes, 0);
        em_log_info("round %u: %llu pages, %llu files, %llu bytes on the wire in %lld ms", n,
                    (unsigned long long)st->pages_sent, (unsigned long long)st->files_sent,
                    (unsigned long long)wire, (long long)ms);
}

/* listed: s->pids were listed just now, for this round. */
static int one_round(void *ud, unsigned n, bool listed, struct em_round_stat *rs, em_error_t *err)
{
        struct source *s = ud;
        cleanup_free char *upper = NULL;
        struct em_sync_stats st = {0};
        int64_t t0 = em_mono_ms();
        uint64_t w0 = wire_out(s), left = 0;
        bool small = false;

        if (!listed && container_pids(s, err) < 0)
                return em_error_wrap(err, "pre-copy round %u", n);
        calibrate(s, s->pids[0]);
        if (upper_dir(s, &upper, err) < 0 ||
            em_sync_send_upper(s->conn, s->sync, upper, true, round_level(s), &st, err) < 0 ||
            em_sync_push_left(s->conn, s->sync, s->pids, s->npids, round_level(s), &st, err) < 0 ||
            end_round(s, n, t0, w0, &left, &small, err) < 0)
                return em_error_wrap(err, "pre-copy round %u", n);
        int64_t ms = em_mono_ms() - t0;
        uint64_t wire = wire_out(s) - w0;
        em_source_link_sample(s, wire, ms);
        if (confirm_small(s, wire, &small, &left, err) < 0)
                return em_error_wrap(err, "pre-copy round %u", n);
        rs->dirty_bytes = st.raw_bytes;
        rs->dirty_wire_bytes = wire;
        report_round(s, n, &st, wire, ms);
        if (s->echoes_pending > 0)
                em_report_round_set(s->report, "echo_deferred", json_true());
        em_source_record_left(s, rs, small ? st.raw_bytes : left, small, ms);
        return 0;
}

/* How recent a measurement of the link must be to stand in for one. */
#define BANDWIDTH_SEED_MAX_AGE_MS (10 * 60 * 1000)

/* Small rounds do not measure the link (they fit in socket buffers), so
 * after a `prepare` the stop rule would assume a slow link and keep going
 * round after round. A recent transfer to the same target knows better. */
static void seed_bandwidth(struct source *s)
{
        double bps;

        if (s->bandwidth > 0)
                return;
        bps = em_report_peer_bandwidth(s->cfg->root, s->o->target, BANDWIDTH_SEED_MAX_AGE_MS);
        if (bps <= 0)
                return;
        s->bandwidth = bps;
        em_report_set(s->report, "bandwidth_seed_bps", json_real(bps));
}

/* Caps one container's cgroup at pct; its cap t is saved for the lift. */
static int throttle_one(struct source *s, const char *name, struct em_cpu_throttle *t, int pct,
                        em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(s->cfg, name, &p, err) < 0 ||
            em_cpu_throttle_set(t, NULL, p.cgroup, pct, err) < 0)
                return em_error_wrap(err, "throttling %s", name);
        return 0;
}

bool em_source_throttle_more(struct source *s, const char *const *names, size_t n)
{
        int pct = s->throttle_pct ? s->throttle_pct / 2 : 50;
        em_error_t e = NULL;

        if (s->throttle_pct == 1 || n == 0)
                return false;
        if (pct < 1)
                pct = 1;
        if (s->throttle == NULL && (s->throttle = calloc(n, sizeof(*s->throttle))) == NULL)
                return false;
        s->nthrottle = n;
        for (size_t i = 0; i < n && e == NULL; i++)
                throttle_one(s, names[i], &s->throttle[i], pct, &e);
        /* Those capped before one failed stay so until the lift. */
        for (size_t i = 0; i < n; i++)
                if (s->throttle[i].active)
                        s->throttle_pct = s->throttle[i].pct;
        if (e != NULL) {
                em_log_warn("auto-converge: %s", em_error_msg(e));
                em_report_set(s->report, "throttle_error", json_string(em_error_msg(e)));
                em_error_free(&e);
                return false;
        }
        if (!json_object_get(json_object_get(em_report_json(s->report), "marks"), "throttle_start"))
                em_report_mark(s->report, "throttle_start");
        em_report_round_set(s->report, "throttle_pct", json_integer(pct));
        em_monitor_throttle(s, pct);
        em_log_info("auto-converge: %s capped at %d %% of one CPU%s", s->name, pct,
                    n > 1 ? " per container" : "");
        return true;
}

static bool throttle_container(void *ud)
{
        struct source *s = ud;

        return em_source_throttle_more(s, &s->name, 1);
}

void em_source_unthrottle(struct source *s)
{
        bool lifted = false;
        em_error_t e = NULL;

        for (size_t i = 0; i < s->nthrottle; i++) {
                if (!s->throttle[i].active)
                        continue;
                if (em_cpu_throttle_lift(&s->throttle[i], &e) < 0) {
                        em_log_error("%s: %s", s->name, em_error_msg(e));
                        em_error_free(&e);
                        continue;
                }
                lifted = true;
        }
        if (lifted) {
                em_report_mark(s->report, "throttle_lifted");
                em_report_set(s->report, "throttle_min_pct", json_integer(s->throttle_pct));
                em_monitor_throttle(s, 0);
        }
        free(s->throttle);
        s->throttle = NULL;
        s->nthrottle = 0;
        s->throttle_pct = 0;
}

/* What round n+1 is expected to send: what the last round left, or for the
 * first round what CRIU would dump of the processes (unknown after a
 * prepare). */
static uint64_t round_estimate(void *ud, size_t n, bool *listed)
{
        struct source *s = ud;

        *listed = false;
        if (n > 0)
                return s->final_estimate;
        if (s->small_transfers || container_pids(s, NULL) < 0)
                return 0;
        *listed = true; /* the round takes these: one `runc state`, not two */
        return em_sync_dump_bytes(s->pids, s->npids);
}

/* After a `prepare`, what the service dirtied since is estimated as the
 * rate at which its last round found such pages times the record's age
 * (an overestimate: a page written twice counts twice). If that fits the
 * downtime target the final step starts at once: its push during the dump
 * sends those pages, while a round would first read the whole memory and
 * wait for the link, on the handoff's clock, for bytes the dump's time
 * covers. A record without that rate (an older edgemig's): a round. */
static bool prepared_fits(struct source *s)
{
        int64_t age = em_now_ms() - s->dirt.at_ms;
        uint64_t est;

        if (!s->defer_echoes || !s->small_transfers || s->dirt.left_wire_bps < 0 || age < 0)
                return false;
        est = (uint64_t)(s->dirt.left_wire_bps * (double)age / 1000.0);
        if (!em_stop_rule_fits(&s->o->stop, est, s->bandwidth))
                return false;
        s->final_estimate = est;
        em_report_set(s->report, "left_from_prepare", json_integer((json_int_t)est));
        return true;
}

int em_source_rounds(struct source *s, const struct em_rounds_ops *ops, em_error_t *err)
{
        struct em_round_stat rounds[64];
        unsigned max = s->o->stop.max_rounds ? s->o->stop.max_rounds : 1;
        int64_t t0 = em_mono_ms();
        enum em_stop_reason why = EM_STOP_CONTINUE;
        size_t n = 0;

        if (max > 64)
                max = 64;
        seed_bandwidth(s);
        em_report_phase_begin(s->report, "precopy");
        em_monitor_phase(s, "precopy", 0);
        s->phase_wire0 = wire_out(s);
        if (prepared_fits(s))
                why = EM_STOP_FITS_TARGET;
        while (why == EM_STOP_CONTINUE) {
                bool listed;
                em_monitor_round(s, (unsigned)n + 1, ops->estimate(ops->ud, n, &listed));
                if (ops->round(ops->ud, (unsigned)n + 1, listed, &rounds[n], err) < 0)
                        return -1;
                rounds[n].elapsed_ms = (uint64_t)(em_mono_ms() - t0);
                s->final_estimate = rounds[n].left_wire_bytes;
                em_monitor_rates(s, s->final_estimate, s->dirty_rate, s->bandwidth);
                n++;
                why = em_stop_rule_decide(&s->o->stop, rounds, n, s->bandwidth);
                /* Throttled, the next round may converge; within budgets
                 * (and the bound of rounds[]). */
                if (why == EM_STOP_NOT_CONVERGING && s->o->auto_converge && n < max &&
                    em_stop_rule_budget(&s->o->stop, rounds, n) == EM_STOP_CONTINUE &&
                    ops->throttle_more(ops->ud))
                        why = EM_STOP_CONTINUE;
                if (n >= max && why == EM_STOP_CONTINUE)
                        why = EM_STOP_ROUNDS;
        }
        em_report_set(s->report, "stop_reason", json_string(em_stop_reason_name(why)));
        em_report_set(s->report, "bandwidth_bps",
                      json_real(s->bandwidth_measured ? s->bandwidth : 0));
        em_source_phase_end(s, "precopy", 0);
        return em_fault("source.after-precopy", em_conn_fd(s->conn), err);
}

int em_source_precopy(struct source *s, em_error_t *err)
{
        const struct em_rounds_ops ops = {.round = one_round,
                                          .estimate = round_estimate,
                                          .throttle_more = throttle_container,
                                          .ud = s};

        return em_source_rounds(s, &ops, err);
}

int em_source_finish_prepare(struct source *s, em_error_t *err)
{
        cleanup_json json_t *ack = NULL;

        em_error_t e = NULL;

        if (em_conn_send(s->conn, EM_FRAME_DONE, 0, 0, "{}", 2, 0, err) < 0 ||
            em_proto_recv_json(s->conn, EM_FRAME_DONE, &ack, err) < 0)
                return em_error_wrap(err, "finishing prepare");
        /* What the target now holds, for the migration that follows. */
        struct em_known_dirt dirt = {.left_wire_bps = s->left_rate_known ? s->left_wire_bps : -1,
                                     .at_ms = em_now_ms()};
        if (em_known_cache_save(s->cfg->root, s->name, s->o->target, ack,
                                em_sync_state_known(s->sync), &dirt, &e) < 0) {
                em_log_warn("%s (the migration will ask the target instead)", em_error_msg(e));
                em_error_free(&e);
        }
        return 0; /* the container keeps running here */
}

/* While runc checkpoint runs (the container frozen first, then dumped by
 * CRIU, ~200 ms), its memory is read once more and what changed since the
 * last round goes out: the link works during the dump instead of after it,
 * and the final image's pages are then known to the target. */
static int push_frozen(struct source *s, struct em_sync_stats *st, em_error_t *err)
{
        em_error_t e = NULL;

        if (s->pids == NULL && container_pids(s, &e) < 0) {
                em_log_debug("no memory push during the dump: %s", em_error_msg(e));
                em_error_free(&e);
                return 0;
        }
        if (em_sync_push_memory(s->conn, s->sync, s->pids, s->npids, compress_level(s), st, err) <
            0)
                return -1;
        em_sync_state_frozen_pushed(s->sync);
        return 0;
}

/* Watches the image dir for files CRIU finishes during the dump; NULL if
 * it cannot (then they all go after the dump), or when a test's hook
 * rewrites the images after the dump. */
static struct em_early_images *watch_images(struct source *s)
{
        struct em_early_images *w = NULL;
        em_error_t e = NULL;

        if (s->o->images_hook == NULL && em_early_images_watch(s->images, &w, &e) < 0) {
                em_log_debug("no image files during the dump: %s", em_error_msg(e));
                em_error_free(&e);
        }
        return w;
}

/* The frozen memory, then the image files CRIU finishes, while it dumps. */
static int during_dump(struct source *s, pid_t runc, struct em_sync_stats *st, json_t *digests,
                       em_error_t *err)
{
        __attribute__((cleanup(em_early_images_free))) struct em_early_images *w = watch_images(s);
        unsigned files = 0;

        if (push_frozen(s, st, err) < 0 ||
            em_early_images_pump(w, runc, EM_CRIU_TIMEOUT_MS, s->conn, compress_level(s), digests,
                                 &st->raw_bytes, &files, err) < 0)
                return -1;
        st->files_sent += files;
        em_report_set(s->report, "final_files_during_dump", json_integer(files));
        em_report_set(s->report, "final_wire_during_dump",
                      json_integer((json_int_t)(wire_out(s) - s->phase_wire0)));
        return 0;
}

static int checkpoint_here(struct source *s, struct em_sync_stats *st, json_t *digests,
                           em_error_t *err)
{
        struct em_checkpoint_opts co;
        pid_t runc = 0;
        em_error_t pe = NULL;
        int pushed;

        em_checkpoint_opts_init(&co);
        em_report_phase_begin(s->report, "final");
        em_monitor_phase(s, "final", s->final_estimate);
        s->phase_wire0 = wire_out(s);
        em_report_mark(s->report, "source_stopped");
        if (s->o->ops->checkpoint_start(s->cfg, s->name, s->images, &co, &runc, err) < 0)
                return em_error_wrap(err, "final checkpoint");
        pushed = during_dump(s, runc, st, digests, &pe);
        if (s->o->ops->checkpoint_finish(s->cfg, s->name, s->images, &co, runc, EM_CRIU_TIMEOUT_MS,
                                         err) < 0) {
                em_error_free(&pe);
                return em_error_wrap(err, "final checkpoint");
        }
        s->checkpointed = true;
        em_report_mark(s->report, "checkpoint_done");
        if (s->o->ops->checkpoint_ready(s->cfg, s->name, err) < 0 ||
            em_journal_write(s->workdir, "final", s->name, err) < 0) {
                em_error_free(&pe);
                return -1;
        }
        if (pushed < 0) {
                em_error_move(err, &pe);
                return em_error_wrap(err, "sending the memory of the frozen container");
        }
        if (s->o->images_hook && s->o->images_hook(s->images, s->o->images_hook_ud, err) < 0)
                return -1;
        return em_fault("source.after-checkpoint", em_conn_fd(s->conn), err);
}

/* The log is complete once the container is checkpointed (migrate/common/logsync.h). */
static int send_log(struct source *s, int level, uint64_t *raw, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(s->cfg, s->name, &p, err) < 0)
                return -1;
        /* What the processes wrote before the freeze may still be in the
         * log's pipe, which only the forwarder empties. */
        if (!em_logger_wait_drained(p.log, EM_LOGSYNC_DRAIN_MS))
                em_log_warn("the log forwarder of %s still runs: its last lines may stay here",
                            s->name);
        return em_logsync_send(s->conn, p.log, s->workdir, level, raw, err);
}

static int send_final(struct source *s, const struct em_sync_stats *st0, json_t *digests,
                      em_error_t *err)
{
        cleanup_json json_t *final = NULL;
        cleanup_free char *upper = NULL;
        struct em_sync_stats st = *st0;
        int level = compress_level(s);

        if (upper_dir(s, &upper, err) < 0 ||
            em_sync_send_upper(s->conn, s->sync, upper, false, level, &st, err) < 0 ||
            em_sync_send_images(s->conn, s->sync, s->images, level, digests, &st, err) < 0 ||
            send_log(s, level, &st.raw_bytes, err) < 0)
                return em_error_wrap(err, "sending the final state");
        final = json_pack("{s:O}", "files", digests);
        if (final == NULL)
                return em_error_set(err, ENOMEM, "FINAL");
        /* Once FINAL may have arrived the target may restore: from here on
         * only the target's answer tells whether a copy runs there. The
         * journal says "final" since the checkpoint (one fsync in the
         * downtime, not two: a recovery that asks before FINAL left hears
         * "staging" and restores here after the abort). */
        s->final_sent = true;
        if (em_proto_send_json(s->conn, EM_FRAME_FINAL, final, err) < 0)
                return -1;
        em_report_set(s->report, "compress_level", json_integer(level));
        em_report_set(s->report, "final_pages_sent", json_integer((json_int_t)st.pages_sent));
        em_report_set(s->report, "final_pages_during_dump",
                      json_integer((json_int_t)st0->pages_sent));
        em_report_set(s->report, "final_pages_known", json_integer((json_int_t)st.pages_known));
        em_report_set(s->report, "final_pages_xor", json_integer((json_int_t)st.pages_xor));
        em_report_set(s->report, "final_pages_zblock", json_integer((json_int_t)st.pages_zblock));
        em_source_phase_end(s, "final", st.raw_bytes);
        return em_fault("source.after-final", em_conn_fd(s->conn), err);
}

/* The target owns the service: our stopped copy and its checkpoint go. */
static int finish_commit(struct source *s, em_error_t *err)
{
        em_error_t e = NULL;

        if (em_journal_write(s->workdir, "committed", s->name, err) < 0)
                return -1;
        s->committed = true;
        em_source_withdraw(s); /* if RESTORE_OK was lost, not done yet */
        if (s->o->ops->remove(s->cfg, s->name, &e) < 0) {
                em_log_warn("removing the migrated-away %s: %s", s->name, em_error_msg(e));
                em_error_free(&e);
        }
        em_known_cache_drop(s->cfg->root, s->name);
        em_report_mark(s->report, "source_cleaned");
        return 0;
}

void em_source_withdraw(struct source *s)
{
        const char *ip = em_json_str(s->spec, "ip");

        if (ip == NULL || s->o->route_hook == NULL || *s->o->route_hook == '\0' || s->withdrawn)
                return;
        s->withdrawn = true;
        if (em_session_route_warn(s->o->ops->route_hook, s->o->route_hook, "withdraw", ip,
                                  "withdrawing the service IP from this host") == 0)
                em_report_mark(s->report, "route_withdrawn");
}

/* RESTORE_OK, then our decision ("committing", journalled before DONE
 * leaves), DONE and its acknowledgement. Any failure after FINAL is
 * settled by em_source_settle, never by a local restore on its own. */
static int commit(struct source *s, em_error_t *err)
{
        cleanup_json json_t *ok = NULL, *ack = NULL;
        int fd = em_conn_fd(s->conn);

        if (em_source_drain_echoes(s, err) < 0)
                return em_error_wrap(err, "the layers and pre-copy rounds");
        if (em_proto_recv_json(s->conn, EM_FRAME_RESTORE_OK, &ok, err) < 0)
                return em_error_wrap(err, "target restore");
        em_report_mark(s->report, "target_running");
        s->target_running = true;
        em_source_withdraw(s);
        em_report_target_phases(s->report, json_object_get(ok, "timing"));
        if (em_fault("source.before-commit", fd, err) < 0 ||
            em_journal_write(s->workdir, "committing", s->name, err) < 0)
                return -1;
        if (em_fault("source.after-committing", fd, err) < 0 ||
            em_fault("source.lose-done", fd, err) < 0 ||
            em_conn_send(s->conn, EM_FRAME_DONE, 0, 0, "{}", 2, 0, err) < 0 ||
            em_fault("source.after-done", fd, err) < 0 ||
            em_proto_recv_json(s->conn, EM_FRAME_DONE, &ack, err) < 0)
                return em_error_wrap(err, "committing");
        return finish_commit(s, err);
}

static void resolve_opts(const struct source *s, struct em_resolve_opts *ro)
{
        em_resolve_opts_init(ro);
        ro->tls = s->o->tls;
        ro->connect_timeout_ms = s->o->connect_timeout_ms;
        ro->connect = s->o->ops->connect;
}

/* FINAL went out and no acknowledged commit came back: the target may run
 * the service. Ask it (migrate/common/resolve.h); 0 if it turned out committed. */
static int settle(struct source *s, em_error_t *err)
{
        struct em_resolve_opts ro;
        enum em_verdict v;
        em_error_t e = NULL;

        em_log_warn("migration of %s in doubt (%s): asking the target", s->name,
                    em_error_msg(*err));
        em_monitor_conn(s, NULL);
        em_conn_free(&s->conn); /* the target's session ends and settles its side */
        resolve_opts(s, &ro);
        if (em_resolve_session(&ro, s->workdir, s->session, &v, &e) < 0)
                v = EM_VERDICT_UNKNOWN;
        em_report_set(s->report, "settled",
                      json_string(v == EM_VERDICT_COMMIT  ? "committed"
                                  : v == EM_VERDICT_ABORT ? "aborted"
                                                          : "in doubt"));
        if (v == EM_VERDICT_COMMIT) {
                em_log_warn("session %s settled: the target committed %s", s->session, s->name);
                if (!s->target_running) /* its RESTORE_OK was lost: now we know */
                        em_report_mark(s->report, "target_running");
                em_error_free(err);
                em_error_free(&e);
                return finish_commit(s, err);
        }
        if (v == EM_VERDICT_ABORT) /* the target has no copy: em_source_roll_back */
                return -1;
        s->in_doubt = s->keep_workdir = true;
        em_error_wrap(err,
                      "migration in doubt (%s): %s stays stopped here, its checkpoint kept in "
                      "%s; run `edgemig recover` once the target answers, or `edgemig recover "
                      "--keep-local %s` if the target is gone for good",
                      e ? em_error_msg(e) : "no answer", s->name, s->workdir, s->session);
        em_error_free(&e);
        return -1;
}

int em_source_final(struct source *s, em_error_t *err)
{
        struct em_sync_stats st = {0};
        cleanup_json json_t *digests = json_object(); /* of the image files sent */

        if (digests == NULL)
                return em_error_set(err, ENOMEM, "final step");
        if (em_monitor_enter_final(s, err) < 0)
                return -1;
        if (em_source_lazy_wanted(s))
                return em_source_final_lazy(s, err);
        if (checkpoint_here(s, &st, digests, err) < 0)
                return -1;
        if (send_final(s, &st, digests, err) == 0 && commit(s, err) == 0)
                return 0;
        return s->final_sent ? settle(s, err) : -1;
}

void em_source_roll_back(struct source *s)
{
        struct em_restore_opts ro;
        em_error_t e = NULL;

        if (!s->checkpointed || s->committed || s->in_doubt)
                return;
        em_log_warn("restoring %s on this host (roll-back)", s->name);
        em_restore_opts_init(&ro);
        ro.copy_upper = true;
        if (s->o->ops->restore(s->cfg, s->name, s->spec, s->images, NULL, &ro, &e) < 0) {
                em_log_error("ROLL-BACK FAILED for %s: %s; its checkpoint stays in %s", s->name,
                             em_error_msg(e), s->workdir);
                em_error_free(&e);
                s->keep_workdir = true; /* the images, for a manual restore */
                return;
        }
        s->checkpointed = false;
        em_report_mark(s->report, "rolled_back");
        /* The target may have announced the service IP before failing. */
        const char *ip = em_json_str(s->spec, "ip");
        if (ip != NULL && s->o->ops->route_hook(s->o->route_hook, "announce", ip, &e) < 0) {
                em_log_error("re-announcing %s after the roll-back: %s", ip, em_error_msg(e));
                em_error_free(&e);
        }
}
