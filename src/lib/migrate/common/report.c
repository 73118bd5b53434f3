#include "migrate/common/report.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

struct em_report {
        json_t *root;
        int64_t t0_mono;
        uint64_t raw, wire;
};

/* Milliseconds since the request, on the monotonic clock. */
static json_int_t rel_ms(const struct em_report *r)
{
        return (json_int_t)(em_mono_ms() - r->t0_mono);
}

struct em_report *em_report_new(const char *id, const char *container, const char *mode,
                                const char *target)
{
        struct em_report *r = calloc(1, sizeof(*r));

        if (r == NULL)
                return NULL;
        r->t0_mono = em_mono_ms();
        r->root = json_pack("{s:s, s:s, s:s, s:s, s:I, s:[], s:[], s:{}}", "id", id, "container",
                            container, "mode", mode, "target", target, "requested_at_ms",
                            (json_int_t)em_now_ms(), "phases", "rounds", "marks");
        if (r->root == NULL) {
                free(r);
                return NULL;
        }
        return r;
}

void em_report_free(struct em_report **r)
{
        if (*r == NULL)
                return;
        json_decref((*r)->root);
        free(*r);
        *r = NULL;
}

void em_report_phase_begin(struct em_report *r, const char *phase)
{
        json_t *p = json_pack("{s:s, s:I}", "name", phase, "start_ms", rel_ms(r));
        json_array_append_new(json_object_get(r->root, "phases"), p);
}

void em_report_phase_end(struct em_report *r, const char *phase, uint64_t raw_bytes,
                         uint64_t wire_bytes)
{
        json_t *phases = json_object_get(r->root, "phases");

        for (size_t i = json_array_size(phases); i-- > 0;) {
                json_t *p = json_array_get(phases, i);
                if (strcmp(em_json_str(p, "name"), phase) != 0 || json_object_get(p, "end_ms"))
                        continue;
                json_int_t end = rel_ms(r);
                json_object_set_new(p, "end_ms", json_integer(end));
                json_object_set_new(p, "duration_ms",
                                    json_integer(end - em_json_int(p, "start_ms", end)));
                json_object_set_new(p, "bytes_raw", json_integer((json_int_t)raw_bytes));
                json_object_set_new(p, "bytes_wire", json_integer((json_int_t)wire_bytes));
                return;
        }
}

void em_report_mark(struct em_report *r, const char *event)
{
        json_object_set_new(json_object_get(r->root, "marks"), event, json_integer(rel_ms(r)));
}

void em_report_round(struct em_report *r, unsigned n, uint64_t dirty_bytes, uint64_t wire_bytes,
                     uint64_t pages_sent, uint64_t files_sent, int64_t duration_ms,
                     int64_t freeze_ms)
{
        json_t *o =
            json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "round", (int)n, "dirty_bytes",
                      (json_int_t)dirty_bytes, "bytes_wire", (json_int_t)wire_bytes, "pages_sent",
                      (json_int_t)pages_sent, "files_sent", (json_int_t)files_sent, "duration_ms",
                      (json_int_t)duration_ms, "freeze_ms", (json_int_t)freeze_ms);
        json_array_append_new(json_object_get(r->root, "rounds"), o);
}

void em_report_round_set(struct em_report *r, const char *key, json_t *value)
{
        json_t *rounds = json_object_get(r->root, "rounds");
        size_t n = json_array_size(rounds);

        if (n == 0) {
                json_decref(value);
                return;
        }
        json_object_set_new(json_array_get(rounds, n - 1), key, value);
}

void em_report_set(struct em_report *r, const char *key, json_t *value)
{
        json_object_set_new(r->root, key, value);
}

void em_report_add_bytes(struct em_report *r, uint64_t raw, uint64_t wire)
{
        r->raw += raw;
        r->wire += wire;
}

/* The target's steps after FINAL, in the order they ran: RESTORE_OK's
 * "timing" key and the phase it becomes. */
static const char *const target_steps[][2] = {
    {"verify_ms", "verify"}, {"restore_ms", "restore"}, {"route_ms", "route"}};
#define N_TARGET_STEPS (sizeof(target_steps) / sizeof(target_steps[0]))

/* Start of the phase the source began last (the final step), or 0. */
static json_int_t last_phase_start(const struct em_report *r)
{
        json_t *phases = json_object_get(r->root, "phases");
        size_t n = json_array_size(phases);

        return n ? em_json_int(json_array_get(phases, n - 1), "start_ms", 0) : 0;
}

/* Each step an integer of at most what is left of bound; -1: absent. */
static int target_steps_read(const json_t *timing, json_int_t bound, json_int_t ms[],
                             json_int_t *total)
{
        *total = 0;
        for (size_t i = 0; i < N_TARGET_STEPS; i++) {
                json_t *v = json_object_get(timing, target_steps[i][0]);
                ms[i] = -1;
                if (v == NULL)
                        continue;
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > bound - *total)
                        return -1;
                ms[i] = json_integer_value(v);
                *total += ms[i];
        }
        return 0;
}

/* The target's pre-warm (migrate/target/prewarm.h) ran during the rounds,
 * outside the downtime: a phase of its own, placed lead ms before FINAL
 * reached the target (final_at), among the phases by its start. */
static void prewarm_phase(struct em_report *r, const json_t *timing, json_int_t final_at,
                          json_t *clean)
{
        json_t *phases = json_object_get(r->root, "phases");
        json_int_t ms = em_json_int(timing, "prewarm_ms", -1);
        json_int_t lead = em_json_int(timing, "prewarm_lead_ms", -1);
        json_int_t start;
        size_t i = 0;

        /* A hostile target's values: never before the request. */
        if (ms < 0 || lead < 0 || ms > final_at || lead > final_at - ms)
                return;
        start = final_at - lead - ms;
        while (i < json_array_size(phases) &&
               em_json_int(json_array_get(phases, i), "start_ms", 0) <= start)
                i++;
        json_array_insert_new(phases, i,
                              json_pack("{s:s, s:s, s:I, s:I, s:I}", "name", "prewarm", "side",
                                        "target", "start_ms", start, "end_ms", start + ms,
                                        "duration_ms", ms));
        json_object_set_new(clean, "prewarm_ms", json_integer(ms));
}

void em_report_target_phases(struct em_report *r, const json_t *timing)
{
        /* They end when RESTORE_OK arrived ("target_running"), or now. */
        json_int_t now =
            em_json_int(json_object_get(r->root, "marks"), "target_running", rel_ms(r));
        json_int_t ms[N_TARGET_STEPS], total, start;
        json_t *clean = json_object();

        if (timing == NULL || clean == NULL) { /* a target too old to report it */
                json_decref(clean);
                return;
        }
        if (!json_is_object(timing) ||
            target_steps_read(timing, now - last_phase_start(r), ms, &total) < 0) {
                json_decref(clean);
                em_report_set(r, "target_timing_invalid", json_true());
                return;
        }
        start = now - total;
        for (size_t i = 0; i < N_TARGET_STEPS; i++) {
                if (ms[i] < 0)
                        continue;
                json_object_set_new(clean, target_steps[i][0], json_integer(ms[i]));
                json_array_append_new(json_object_get(r->root, "phases"),
                                      json_pack("{s:s, s:s, s:I, s:I, s:I}", "name",
                                                target_steps[i][1], "side", "target", "start_ms",
                                                start, "end_ms", start + ms[i], "duration_ms",
                                                ms[i]));
                start += ms[i];
        }
        prewarm_phase(r, timing, now - total, clean);
        em_report_set(r, "target_timing", clean);
}

static void set_span(json_t *root, const char *key, const char *from, const char *to)
{
        json_t *marks = json_object_get(root, "marks");
        json_t *a = json_object_get(marks, from), *b = json_object_get(marks, to);

        if (json_is_integer(a) && json_is_integer(b))
                json_object_set_new(root, key,
                                    json_integer(json_integer_value(b) - json_integer_value(a)));
}

void em_report_finish(struct em_report *r, bool ok, const char *error)
{
        json_t *marks = json_object_get(r->root, "marks");

        json_object_set_new(r->root, "ok", json_boolean(ok));
        if (error)
                json_object_set_new(r->root, "error", json_string(error));
        json_object_set_new(r->root, "total_ms", json_integer(rel_ms(r)));
        json_object_set_new(marks, "request", json_integer(0));
        if (ok) {
                set_span(r->root, "handoff_ms", "request", "target_running");
                set_span(r->root, "downtime_ms", "source_stopped", "target_running");
        }
        json_object_set_new(r->root, "bytes_raw", json_integer((json_int_t)r->raw));
        json_object_set_new(r->root, "bytes_wire", json_integer((json_int_t)r->wire));
}

json_t *em_report_json(struct em_report *r)
{
        return r->root;
}

int em_report_save(struct em_report *r, const char *root, em_error_t *err)
{
        cleanup_free char *dir = em_path_join(root, "migrations");
        cleanup_free char *path = NULL;

        if (dir == NULL || em_mkdir_p(dir, 0700, err) < 0)
                return em_error_wrap(err, "saving migration report");
        if (asprintf(&path, "%s/%s.json", dir, em_json_str(r->root, "id")) < 0)
                return em_error_set(err, ENOMEM, "saving migration report");
        return em_json_write_file(path, r->root, err);
}

static double tv_s(const struct timeval *tv)
{
        return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* Rounded to the microsecond, so the JSON shows no binary noise. */
static json_t *secs(double s)
{
        return json_real((double)(long long)(s * 1e6 + 0.5) / 1e6);
}

json_t *em_rusage_json(const struct rusage *self, const struct rusage *children)
{
        double user = tv_s(&self->ru_utime), sys = tv_s(&self->ru_stime);
        long rss = self->ru_maxrss;
        json_t *o;

        if (children) {
                user += tv_s(&children->ru_utime);
                sys += tv_s(&children->ru_stime);
                if (children->ru_maxrss > rss)
                        rss = children->ru_maxrss;
        }
        o = json_pack("{s:o, s:o, s:o, s:I}", "cpu_s", secs(user + sys), "user_s", secs(user),
                      "sys_s", secs(sys), "max_rss_kb", (json_int_t)rss);
        if (o && children &&
            json_object_set_new(o, "children_cpu_s",
                                secs(tv_s(&children->ru_utime) + tv_s(&children->ru_stime))) == 0)
                json_object_set_new(o, "children_max_rss_kb",
                                    json_integer((json_int_t)children->ru_maxrss));
        return o;
}

json_t *em_rusage_json_now(void)
{
        struct rusage self, children;

        if (getrusage(RUSAGE_SELF, &self) < 0 || getrusage(RUSAGE_CHILDREN, &children) < 0)
                return NULL;
        return em_rusage_json(&self, &children);
}

/* The link rate a successful migration measured (bytes/s), or 0. */
static double measured_bps(const json_t *r)
{
        json_t *bw = json_object_get(r, "bandwidth_bps");

        if (!json_is_true(json_object_get(r, "ok")) || !json_is_number(bw))
                return 0;
        return json_number_value(bw) > 0 ? json_number_value(bw) : 0;
}

double em_report_throughput_mbps(const json_t *r)
{
        json_t *phases = json_object_get(r, "phases"), *p;
        double bytes = 0, ms = 0, bps = measured_bps(r);
        size_t i;

        if (!json_is_true(json_object_get(r, "ok")))
                return 0;
        if (bps > 0)
                return bps * 8 / 1e6;
        json_array_foreach(phases, i, p)
        {
                long long b = em_json_int(p, "bytes_wire", 0), d = em_json_int(p, "duration_ms", 0);
                if (b > 0 && d > 0) {
                        bytes += (double)b;
                        ms += (double)d;
                }
        }
        return ms > 0 ? bytes * 8 / (ms * 1000) : 0;
}

struct report_file {
        char *path;
        int64_t mtime_ns;
};

static int by_mtime_desc(const void *a, const void *b)
{
        const struct report_file *x = a, *y = b;
        return x->mtime_ns < y->mtime_ns ? 1 : x->mtime_ns > y->mtime_ns ? -1 : 0;
}

static void files_free(struct report_file *f, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(f[i].path);
        free(f);
}

static int list_reports(const char *dir, struct report_file **out, size_t *n, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct report_file *files = NULL;
        size_t cap = 0;
        struct dirent *e;

        *n = 0;
        while (d && (e = readdir(d)) != NULL) {
                size_t len = strlen(e->d_name);
                struct stat sb;
                char *path = NULL;
                if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0 ||
                    asprintf(&path, "%s/%s", dir, e->d_name) < 0)
                        continue;
                if (stat(path, &sb) < 0) {
                        free(path);
                        continue;
                }
                if (*n == cap) {
                        cap = cap ? cap * 2 : 64;
                        struct report_file *nf = realloc(files, cap * sizeof(*files));
                        if (nf == NULL) {
                                free(path);
                                files_free(files, *n);
                                return em_error_set(err, ENOMEM, "listing reports");
                        }
                        files = nf;
                }
                files[(*n)++] = (struct report_file){path, (int64_t)sb.st_mtim.tv_sec * 1000000000 +
                                                               sb.st_mtim.tv_nsec};
        }
        if (*n > 0)
                qsort(files, *n, sizeof(*files), by_mtime_desc);
        *out = files;
        return 0;
}

int em_report_foreach_recent(const char *root, size_t max,
                             int (*fn)(const json_t *report, void *ud), void *ud, em_error_t *err)
{
        cleanup_free char *dir = em_path_join(root, "migrations");
        struct report_file *files = NULL;
        size_t n = 0;
        int stop = 0;

        if (dir == NULL)
                return em_error_set(err, ENOMEM, "listing reports");
        if (list_reports(dir, &files, &n, err) < 0)
                return -1;
        for (size_t i = 0; i < n && i < max && !stop; i++) {
                cleanup_json json_t *r = NULL;
                em_error_t ign = NULL;
                if (em_json_load_file(files[i].path, 4 << 20, &r, &ign) < 0) {
                        em_error_free(&ign);
                        continue;
                }
                stop = fn(r, ud);
        }
        files_free(files, n);
        return 0;
}

struct peer_query {
        const char *target;
        int64_t since_ms;
        double bps;
};

static int match_peer(const json_t *r, void *ud)
{
        struct peer_query *q = ud;
        const char *t = em_json_str(r, "target");

        if (t == NULL || strcmp(t, q->target) != 0 ||
            em_json_int(r, "requested_at_ms", 0) < q->since_ms)
                return 0;
        /* Only a measured link rate: phase averages of small transfers
         * measure socket buffers, not the link. */
        q->bps = measured_bps(r);
        return q->bps > 0;
}

double em_report_peer_bandwidth(const char *root, const char *target, int64_t max_age_ms)
{
        struct peer_query q = {target, em_now_ms() - max_age_ms, 0};
        em_error_t e = NULL;

        if (em_report_foreach_recent(root, 64, match_peer, &q, &e) < 0)
                em_error_free(&e);
        return q.bps;
}
