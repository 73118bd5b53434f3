/* edgemig-probe: a client that keeps ONE TCP connection to a service across
 * migrations and measures what the client sees (latency, errors, resets,
 * interruption gaps). It only parses options, drives the loop and prints;
 * the protocol and statistics live in src/lib/probe. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probe/probe.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static const char usage_text[] =
    "Usage:\n"
    "  edgemig-probe redis HOST:PORT [OPTIONS]\n"
    "  edgemig-probe facedetect HOST:PORT --image FILE [OPTIONS]\n"
    "  edgemig-probe redis-verify HOST:PORT --last N [--value-size B]\n"
    "\n"
    "Talks continuously to a service over ONE TCP connection and never reconnects,\n"
    "so that a live migration's effect on a real client can be measured.\n"
    "\n"
    "Modes:\n"
    "  redis        each round sends SET k<n> v<n> (expects +OK), then GET k<n>\n"
    "               (expects exactly v<n>), n = 1, 2, ...; one request in flight.\n"
    "  facedetect   sends FILE as a 4-byte big-endian length + bytes, expects a\n"
    "               4-byte length + JSON {\"faces\",\"n\",\"seq\"}; seq must grow by 1\n"
    "               per request (a restarted service would break that).\n"
    "  redis-verify checks that k1..kN all hold their values (no acknowledged\n"
    "               write lost); prints {checked, missing, wrong, first_bad}.\n"
    "\n"
    "Options:\n"
    "  --interval-ms MS     pause between rounds, from the start of one to the\n"
    "                       next (default 10; 0 = back to back)\n"
    "  --duration S         stop after S seconds (default: run until stopped)\n"
    "  --until-file F       stop once file F exists\n"
    "  --timeout S          a reply later than S seconds counts as an error and\n"
    "                       ends the run (default 120: a migration over a slow link\n"
    "                       may pause the service for seconds; that is a gap)\n"
    "  --connect-timeout S  (default 10)\n"
    "  --gap-ms MS          list every gap longer than MS between two successful\n"
    "                       replies (default 100)\n"
    "  --value-size B       redis: pad values to B bytes (default: just v<n>)\n"
    "  --image FILE         facedetect: the image to send\n"
    "  --expect-faces N     facedetect: also verify the face count\n"
    "  --last N             redis-verify: check keys 1..N\n"
    "  --out FILE.csv       write every request: t_send_ms,latency_ms,ok\n"
    "  --json               print the summary as one JSON object (default: text)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Stopping: SIGINT/SIGTERM abandon a request in flight; --duration and\n"
    "--until-file take effect between requests, so an outage in progress is still\n"
    "measured to its end (bounded by --timeout). A reset (ECONNRESET, EPIPE, EOF)\n"
    "or a timeout ends the run: the probe never reconnects.\n"
    "\n"
    "Summary: requests, ok, errors, resets, verify_failures, timeouts, last_acked\n"
    "(highest n whose SET was acknowledged), max_gap_ms (the interruption time:\n"
    "the longest gap between two successful replies), gaps[] ({start_ms,\n"
    "start_unix_ms, len_ms}, times relative to start_unix_ms), open_gap_ms (time\n"
    "since the last success when the run ended), latency {p50_ms, p99_ms, max_ms}.\n"
    "\n"
    "Exit status: 0 when every request succeeded, 1 when any failed (or a\n"
    "redis-verify found a missing key), 2 on usage or connection errors.\n";

enum mode { MODE_REDIS, MODE_FACE, MODE_VERIFY };

struct opts {
        enum mode mode;
        const char *target, *until_file, *out, *image;
        double interval_ms, duration_s, timeout_s, connect_timeout_s, gap_ms;
        size_t value_size;
        long long expect_faces, last;
        bool json;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
        stop_flag = 1;
}

static int die_usage(const char *msg)
{
        fprintf(stderr, "edgemig-probe: %s (see --help)\n", msg);
        return 2;
}

static int parse_num(const char *s, double min, double *out)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0' || v < min)
                return -1;
        *out = v;
        return 0;
}

static int parse_opt(int c, struct opts *o)
{
        double v = 0;
        switch (c) {
        case 'i':
                return parse_num(optarg, 0, &o->interval_ms);
        case 'd':
                return parse_num(optarg, 0.001, &o->duration_s);
        case 'u':
                o->until_file = optarg;
                return 0;
        case 't':
                return parse_num(optarg, 0.001, &o->timeout_s);
        case 'c':
                return parse_num(optarg, 0.001, &o->connect_timeout_s);
        case 'g':
                return parse_num(optarg, 0, &o->gap_ms);
        case 'v':
                if (parse_num(optarg, 0, &v) < 0 || v > EM_RESP_MAX_BULK)
                        return -1;
                o->value_size = (size_t)v;
                return 0;
        case 'm':
                o->image = optarg;
                return 0;
        case 'f':
                if (parse_num(optarg, 0, &v) < 0)
                        return -1;
                o->expect_faces = (long long)v;
                return 0;
        case 'l':
                if (parse_num(optarg, 0, &v) < 0)
                        return -1;
                o->last = (long long)v;
                return 0;
        case 'o':
                o->out = optarg;
                return 0;
        case 'j':
                o->json = true;
                return 0;
        default:
                return -1;
        }
}

static int parse_args(int argc, char **argv, struct opts *o)
{
        static const struct option lo[] = {{"interval-ms", required_argument, NULL, 'i'},
                                           {"duration", required_argument, NULL, 'd'},
                                           {"until-file", required_argument, NULL, 'u'},
                                           {"timeout", required_argument, NULL, 't'},
                                           {"connect-timeout", required_argument, NULL, 'c'},
                                           {"gap-ms", required_argument, NULL, 'g'},
                                           {"value-size", required_argument, NULL, 'v'},
                                           {"image", required_argument, NULL, 'm'},
                                           {"expect-faces", required_argument, NULL, 'f'},
                                           {"last", required_argument, NULL, 'l'},
                                           {"out", required_argument, NULL, 'o'},
                                           {"json", no_argument, NULL, 'j'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
        int c;

        *o = (struct opts){.interval_ms = 10,
                           .timeout_s = 120,
                           .connect_timeout_s = 10,
                           .gap_ms = 100,
                           .expect_faces = -1,
                           .last = -1};
        while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
                if (c == 'h') {
                        fputs(usage_text, stdout);
                        exit(0);
                }
                if (c == '?' || parse_opt(c, o) < 0)
                        return c == '?'
                                   ? -1
                                   : (fprintf(stderr, "edgemig-probe: bad value '%s'\n", optarg),
                                      -1);
        }
        if (argc - optind != 2)
                return -1;
        const char *m = argv[optind];
        if (strcmp(m, "redis") == 0)
                o->mode = MODE_REDIS;
        else if (strcmp(m, "facedetect") == 0)
                o->mode = MODE_FACE;
        else if (strcmp(m, "redis-verify") == 0)
                o->mode = MODE_VERIFY;
        else
                return -1;
        o->target = argv[optind + 1];
        return 0;
}

/* ---- one run ---------------------------------------------------------- */

struct run {
        const struct opts *o;
        int fd;
        double t0; /* monotonic ms at start */
        struct em_probe_buf in;
        struct em_probe_stats stats;
        long long face_seq;
        char *image;
        size_t image_len;
};

static double rel_now(const struct run *r)
{
        return em_probe_now_ms() - r->t0;
}

static bool should_stop(const struct run *r)
{
        struct stat st;
        if (stop_flag)
                return true;
        if (r->o->duration_s > 0 && rel_now(r) >= r->o->duration_s * 1000)
                return true;
        return r->o->until_file != NULL && stat(r->o->until_file, &st) == 0;
}

static double deadline(const struct run *r)
{
        return em_probe_now_ms() + r->o->timeout_s * 1000;
}

/* Reads one RESP reply into *rep (pointing into r->in); *used to consume. */
static enum em_probe_outcome read_resp(struct run *r, struct em_resp_reply *rep, size_t *used,
                                       double dl, em_error_t *err)
{
        for (;;) {
                int p = em_resp_parse(r->in.data, r->in.len, rep, used, err);
                if (p > 0)
                        return EM_PROBE_OK;
                if (p < 0)
                        return EM_PROBE_ERROR;
                enum em_probe_outcome o = em_probe_recv_some(r->fd, &r->in, dl, &stop_flag, err);
                if (o != EM_PROBE_OK)
                        return o;
        }
}

/* One redis request: send argv, read the reply, judge it. */
static enum em_probe_outcome redis_request(struct run *r, size_t argc, const char *const *argv,
                                           const char *expect, em_error_t *err)
{
        size_t len, used = 0;
        cleanup_free char *cmd = em_resp_command(&len, argc, argv);
        struct em_resp_reply rep;
        double dl = deadline(r);

        if (cmd == NULL) {
                em_error_set(err, ENOMEM, "building command");
                return EM_PROBE_ERROR;
        }
        enum em_probe_outcome o = em_probe_send_all(r->fd, cmd, len, dl, &stop_flag, err);
        if (o == EM_PROBE_OK)
                o = read_resp(r, &rep, &used, dl, err);
        if (o != EM_PROBE_OK)
                return o;
        if (rep.type == EM_RESP_ERROR) {
                em_error_set(err, 0, "%s: server error %.*s", argv[0], (int)rep.len, rep.str);
                o = EM_PROBE_ERROR;
        } else if (expect == NULL ? !(rep.type == EM_RESP_SIMPLE && rep.len == 2 &&
                                      memcmp(rep.str, "OK", 2) == 0)
                                  : !(rep.type == EM_RESP_BULK && rep.len == strlen(expect) &&
                                      memcmp(rep.str, expect, rep.len) == 0)) {
                em_error_set(err, 0, "%s %s: unexpected reply", argv[0], argv[1]);
                o = EM_PROBE_VERIFY;
        }
        em_probe_buf_consume(&r->in, used);
        return o;
}

/* Records the outcome; returns false when the connection is unusable. */
static bool account(struct run *r, double t_send, enum em_probe_outcome o, em_error_t *err)
{
        em_error_t rec_err = NULL;

        if (em_probe_record(&r->stats, t_send, rel_now(r), o, &rec_err) < 0) {
                fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(rec_err));
                em_error_free(&rec_err);
                stop_flag = 1;
                return false;
        }
        if (o != EM_PROBE_OK && o != EM_PROBE_STOPPED)
                fprintf(stderr, "edgemig-probe: at %.0f ms: %s: %s\n", t_send,
                        em_probe_outcome_name(o), *err ? em_error_msg(*err) : "?");
        /* Only a server error reply (no errno) leaves the connection usable:
         * resets and timeouts lose it, a malformed reply loses sync, and a
         * local I/O error leaves its state unknown. */
        bool usable = o == EM_PROBE_OK || o == EM_PROBE_VERIFY ||
                      (o == EM_PROBE_ERROR && em_error_status(*err) == 0 && r->in.len == 0);
        em_error_free(err);
        return usable && !stop_flag;
}

static bool redis_round(struct run *r, uint64_t n)
{
        char key[32];
        cleanup_free char *val = em_probe_redis_value(n, r->o->value_size);
        em_error_t err = NULL;

        if (val == NULL)
                return false;
        snprintf(key, sizeof(key), "k%llu", (unsigned long long)n);
        const char *set[] = {"SET", key, val}, *get[] = {"GET", key};
        double t = rel_now(r);
        enum em_probe_outcome o = redis_request(r, 3, set, NULL, &err);
        if (o == EM_PROBE_OK)
                r->stats.last_acked = n;
        if (!account(r, t, o, &err))
                return false;
        t = rel_now(r);
        o = redis_request(r, 2, get, val, &err);
        return account(r, t, o, &err);
}

static enum em_probe_outcome face_request(struct run *r, em_error_t *err)
{
        unsigned char hdr[4] = {(unsigned char)(r->image_len >> 24),
                                (unsigned char)(r->image_len >> 16),
                                (unsigned char)(r->image_len >> 8), (unsigned char)r->image_len};
        double dl = deadline(r);
        long long seq;

        enum em_probe_outcome o = em_probe_send_all(r->fd, hdr, 4, dl, &stop_flag, err);
        if (o == EM_PROBE_OK)
                o = em_probe_send_all(r->fd, r->image, r->image_len, dl, &stop_flag, err);
        while (o == EM_PROBE_OK && r->in.len < 4)
                o = em_probe_recv_some(r->fd, &r->in, dl, &stop_flag, err);
        if (o != EM_PROBE_OK)
                return o;
        const unsigned char *p = (const unsigned char *)r->in.data;
        size_t blen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (blen > EM_FACE_MAX_REPLY) {
                em_error_set(err, EPROTO, "facedetect reply of %zu bytes", blen);
                return EM_PROBE_ERROR;
        }
        while (o == EM_PROBE_OK && r->in.len < 4 + blen)
                o = em_probe_recv_some(r->fd, &r->in, dl, &stop_flag, err);
        if (o != EM_PROBE_OK)
                return o;
        int c = em_face_check_reply(r->in.data + 4, blen, r->o->expect_faces, &seq, err);
        em_probe_buf_consume(&r->in, 4 + blen);
        if (c < 0)
                return em_error_status(*err) == EPROTO ? EM_PROBE_ERROR : EM_PROBE_VERIFY;
        if (r->face_seq > 0 && seq != r->face_seq + 1) {
                em_error_set(err, 0, "facedetect seq %lld after %lld", seq, r->face_seq);
                o = EM_PROBE_VERIFY;
        }
        r->face_seq = seq;
        return o;
}

static bool face_round(struct run *r)
{
        em_error_t err = NULL;
        double t = rel_now(r);
        enum em_probe_outcome o = face_request(r, &err);
        return account(r, t, o, &err);
}

/* Sleeps until `until` (relative ms) unless asked to stop. */
static void pace(const struct run *r, double until)
{
        while (!should_stop(r)) {
                double left = until - rel_now(r);
                if (left <= 0)
                        return;
                if (left > 50)
                        left = 50;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(left * 1e6)};
                nanosleep(&ts, NULL);
        }
}

static void loop(struct run *r)
{
        for (uint64_t n = 1; !should_stop(r); n++) {
                double start = rel_now(r);
                bool alive = r->o->mode == MODE_REDIS ? redis_round(r, n) : face_round(r);
                if (!alive)
                        return;
                pace(r, start + r->o->interval_ms);
        }
}

/* ---- output ----------------------------------------------------------- */

static void print_text(const struct run *r)
{
        const struct em_probe_stats *s = &r->stats;
        printf("requests %llu  ok %llu  errors %llu  resets %llu  verify_failures %llu  "
               "timeouts %llu\n",
               (unsigned long long)s->requests, (unsigned long long)s->ok,
               (unsigned long long)s->errors, (unsigned long long)s->resets,
               (unsigned long long)s->verify_failures, (unsigned long long)s->timeouts);
        printf("interruption (max gap) %.1f ms at %.1f ms; latency p50 %.2f p99 %.2f max %.2f ms\n",
               s->max_gap_ms, s->max_gap_start_ms, em_probe_latency_pct(s, 50),
               em_probe_latency_pct(s, 99), em_probe_latency_pct(s, 100));
        if (r->o->mode == MODE_REDIS)
                printf("last acknowledged key: k%llu\n", (unsigned long long)s->last_acked);
        for (size_t i = 0; i < s->n_gaps; i++)
                printf("gap %.1f ms starting at %.1f ms\n", s->gaps[i].len_ms, s->gaps[i].start_ms);
}

static int write_csv(const struct run *r)
{
        cleanup_fclose FILE *f = fopen(r->o->out, "we");
        em_error_t err = NULL;

        if (f == NULL || em_probe_write_csv(&r->stats, f, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s: %s\n", r->o->out,
                        err ? em_error_msg(err) : strerror(errno));
                em_error_free(&err);
                return -1;
        }
        return 0;
}

static int report(struct run *r, double start_unix_ms)
{
        cleanup_json json_t *j = em_probe_stats_json(&r->stats, start_unix_ms, rel_now(r));
        int rc = 0;

        if (r->o->out != NULL && write_csv(r) < 0)
                rc = 2;
        if (j == NULL) {
                fprintf(stderr, "edgemig-probe: building the summary failed\n");
                return 2;
        }
        json_object_set_new(j, "mode",
                            json_string(r->o->mode == MODE_REDIS ? "redis" : "facedetect"));
        json_object_set_new(j, "target", json_string(r->o->target));
        if (r->o->json) {
                /* 10 significant digits: ms with 3 decimals up to 10^6 ms. */
                if (json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10)) < 0)
                        return 2;
                putchar('\n');
        } else {
                print_text(r);
        }
        fflush(stdout);
        if (rc == 0 && (r->stats.ok == 0 || r->stats.ok != r->stats.requests))
                rc = 1;
        return rc;
}

/* ---- redis-verify ----------------------------------------------------- */

struct verify_result {
        long long checked, missing, wrong, first_bad;
};

static int verify_batch(struct run *r, uint64_t from, uint64_t to, struct verify_result *v,
                        em_error_t *err)
{
        for (uint64_t n = from; n <= to; n++) {
                char key[32];
                size_t len;
                snprintf(key, sizeof(key), "k%llu", (unsigned long long)n);
                const char *get[] = {"GET", key};
                cleanup_free char *cmd = em_resp_command(&len, 2, get);
                if (cmd == NULL ||
                    em_probe_send_all(r->fd, cmd, len, deadline(r), &stop_flag, err) != EM_PROBE_OK)
                        return em_error_wrap(err, "sending GET %s", key);
        }
        for (uint64_t n = from; n <= to; n++) {
                struct em_resp_reply rep;
                size_t used;
                cleanup_free char *val = em_probe_redis_value(n, r->o->value_size);
                if (val == NULL || read_resp(r, &rep, &used, deadline(r), err) != EM_PROBE_OK)
                        return em_error_wrap(err, "reading GET k%llu", (unsigned long long)n);
                bool good = rep.type == EM_RESP_BULK && rep.len == strlen(val) &&
                            memcmp(rep.str, val, rep.len) == 0;
                v->checked++;
                if (!good) {
                        if (rep.type == EM_RESP_NIL)
                                v->missing++;
                        else
                                v->wrong++;
                        if (v->first_bad == 0)
                                v->first_bad = (long long)n;
                }
                em_probe_buf_consume(&r->in, used);
        }
        return 0;
}

static int run_verify(struct run *r)
{
        struct verify_result v = {0};
        em_error_t err = NULL;

        for (uint64_t n = 1; n <= (uint64_t)r->o->last; n += 256) {
                uint64_t to = n + 255 > (uint64_t)r->o->last ? (uint64_t)r->o->last : n + 255;
                if (verify_batch(r, n, to, &v, &err) < 0) {
                        fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(err));
                        em_error_free(&err);
                        return 2;
                }
        }
        if (r->o->json)
                printf("{\"checked\": %lld, \"missing\": %lld, \"wrong\": %lld, \"first_bad\": "
                       "%lld}\n",
                       v.checked, v.missing, v.wrong, v.first_bad);
        else
                printf("checked %lld keys: %lld missing, %lld wrong%s\n", v.checked, v.missing,
                       v.wrong, v.first_bad ? " (see first_bad)" : "");
        if (v.first_bad != 0 && !r->o->json)
                printf("first bad key: k%lld\n", v.first_bad);
        return v.missing + v.wrong == 0 ? 0 : 1;
}

/* ---- main ------------------------------------------------------------- */

static int check_opts(const struct opts *o)
{
        if (o->mode == MODE_FACE && o->image == NULL)
                return die_usage("facedetect needs --image FILE");
        if (o->mode == MODE_VERIFY && o->last < 0)
                return die_usage("redis-verify needs --last N");
        return 0;
}

static void setup_signals(void)
{
        struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll wakes */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

static void run_release(struct run *r)
{
        em_probe_stats_release(&r->stats);
        em_probe_buf_release(&r->in);
        free(r->image);
        if (r->fd >= 0)
                close(r->fd);
}

int main(int argc, char **argv)
{
        struct opts o;
        __attribute__((cleanup(run_release))) struct run r = {.o = &o, .fd = -1};
        em_error_t err = NULL;

        if (parse_args(argc, argv, &o) < 0)
                return die_usage("bad arguments");
        if (check_opts(&o) != 0)
                return 2;
        em_probe_stats_init(&r.stats, o.gap_ms);
        if (o.mode == MODE_FACE &&
            em_read_file(o.image, 64u << 20, &r.image, &r.image_len, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(err));
                em_error_free(&err);
                return 2;
        }
        setup_signals();
        if (em_probe_connect(o.target, (int)(o.connect_timeout_s * 1000), &r.fd, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(err));
                em_error_free(&err);
                return 2;
        }
        if (o.mode == MODE_VERIFY)
                return run_verify(&r);
        double start_unix = (double)em_now_ms();
        r.t0 = em_probe_now_ms();
        loop(&r);
        return report(&r, start_unix);
}
