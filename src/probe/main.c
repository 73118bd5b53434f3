/* edgemig-probe: a client that keeps ONE TCP connection to a service across
 * migrations and measures what the client sees (latency, errors, resets,
 * interruption gaps). It only parses options, drives the loop and prints;
 * the protocol and statistics live in src/lib/probe. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probe/probe.h"
#include "probe/run.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/opts.h"
#include "util/version.h"

#include "probe/usage.h"

enum mode { MODE_REDIS, MODE_FACE, MODE_VERIFY };

struct opts {
        enum mode mode;
        struct em_probe_run_opts run;
        const char *target, *out, *image;
        double connect_timeout_s, gap_ms;
        long long last;
        bool json;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
        stop_flag = 1;
}

static int parse_mode(const char *m, enum mode *mode)
{
        static const char *const names[] = {
            [MODE_REDIS] = "redis", [MODE_FACE] = "facedetect", [MODE_VERIFY] = "redis-verify"};

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(m, names[i]) == 0)
                        return *mode = (enum mode)i, 0;
        return -1;
}

/* Returns 0 to run, 1 after --help/--version, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o, em_error_t *err)
{
        *o = (struct opts){.run = {.interval_ms = 10, .timeout_s = 120, .expect_faces = -1},
                           .connect_timeout_s = 10,
                           .gap_ms = 100,
                           .last = -1};
        const struct em_opt table[] = {
            EM_OPT_DOUBLE("interval-ms", 0, &o->run.interval_ms, 0, 3600000),
            EM_OPT_DOUBLE_ABOVE("duration", 0, &o->run.duration_s, 0, 86400 * 365),
            EM_OPT_STRING("until-file", 0, &o->run.until_file),
            EM_OPT_DOUBLE_ABOVE("timeout", 0, &o->run.timeout_s, 0, 86400),
            EM_OPT_DOUBLE_ABOVE("connect-timeout", 0, &o->connect_timeout_s, 0, 86400),
            EM_OPT_DOUBLE("gap-ms", 0, &o->gap_ms, 0, 3600000),
            EM_OPT_INT("value-size", 0, &o->run.value_size, 0, EM_RESP_MAX_BULK),
            EM_OPT_STRING("image", 0, &o->image),
            EM_OPT_INT("expect-faces", 0, &o->run.expect_faces, 0, INT64_MAX),
            EM_OPT_INT("last", 0, &o->last, 0, INT64_MAX),
            EM_OPT_STRING("out", 0, &o->out),
            EM_OPT_FLAG("json", 0, &o->json),
            EM_OPT_END,
        };
        int first, r = em_opts_parse(table, argc, argv, 0, &first, err);

        if (r == EM_OPTS_HELP || r == EM_OPTS_VERSION)
                fputs(r == EM_OPTS_HELP ? probe_usage : "edgemig-probe " EM_VERSION "\n", stdout);
        if (r != EM_OPTS_OK)
                return r < 0 ? -1 : 1;
        if (argc - first != 2)
                return em_error_set(err, 0, "expected MODE and HOST:PORT");
        if (parse_mode(argv[first], &o->mode) < 0)
                return em_error_set(err, 0, "unknown MODE '%s' (redis, facedetect or redis-verify)",
                                    argv[first]);
        o->target = argv[first + 1];
        o->run.mode = o->mode == MODE_FACE ? EM_PROBE_FACE : EM_PROBE_REDIS;
        return 0;
}

/* ---- output ----------------------------------------------------------- */

static int write_csv(const struct em_probe_run *r, const char *out)
{
        cleanup_fclose FILE *f = fopen(out, "we");
        em_error_t err = NULL;

        if (f == NULL || em_probe_write_csv(&r->stats, f, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s: %s\n", out,
                        err ? em_error_msg(err) : strerror(errno));
                em_error_free(&err);
                return -1;
        }
        return 0;
}

static int report(struct em_probe_run *r, const struct opts *o, double start_unix_ms)
{
        cleanup_json json_t *j =
            em_probe_stats_json(&r->stats, start_unix_ms, em_probe_run_elapsed(r));
        int rc = 0;

        if (o->out != NULL && write_csv(r, o->out) < 0)
                rc = 2;
        if (j == NULL) {
                fprintf(stderr, "edgemig-probe: building the summary failed\n");
                return 2;
        }
        json_object_set_new(j, "mode", json_string(o->mode == MODE_REDIS ? "redis" : "facedetect"));
        json_object_set_new(j, "target", json_string(o->target));
        if (o->json) {
                /* 10 significant digits: ms with 3 decimals up to 10^6 ms. */
                if (json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10)) < 0)
                        return 2;
                putchar('\n');
        } else {
                em_probe_run_print(r, stdout);
        }
        fflush(stdout);
        if (rc == 0 && (r->stats.ok == 0 || r->stats.ok != r->stats.requests))
                rc = 1;
        return rc;
}

static int run_verify(struct em_probe_run *r, const struct opts *o)
{
        struct em_probe_verify v;
        em_error_t err = NULL;

        if (em_probe_run_verify(r, o->last, &v, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(err));
                em_error_free(&err);
                return 2;
        }
        em_probe_verify_print(&v, o->json, stdout);
        return v.missing + v.wrong == 0 ? 0 : 1;
}

/* ---- main ------------------------------------------------------------- */

static int check_opts(const struct opts *o, em_error_t *err)
{
        if (o->mode == MODE_FACE && o->image == NULL)
                return em_error_set(err, 0, "facedetect needs --image FILE");
        if (o->mode == MODE_VERIFY && o->last < 0)
                return em_error_set(err, 0, "redis-verify needs --last N");
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

static void run_release(struct em_probe_run *r)
{
        em_probe_stats_release(&r->stats);
        em_probe_buf_release(&r->in);
        free((char *)r->image);
        if (r->fd >= 0)
                close(r->fd);
}

int main(int argc, char **argv)
{
        struct opts o;
        __attribute__((cleanup(run_release))) struct em_probe_run r = {
            .o = &o.run, .fd = -1, .stop = &stop_flag};
        char *image = NULL;
        em_error_t err = NULL;

        int rc = parse_args(argc, argv, &o, &err);

        if (rc == 0)
                rc = check_opts(&o, &err);
        if (rc != 0) {
                if (rc < 0)
                        fprintf(stderr, "edgemig-probe: %s (see --help)\n", em_error_msg(err));
                em_error_free(&err);
                return rc < 0 ? 2 : 0;
        }
        em_probe_stats_init(&r.stats, o.gap_ms);
        if (o.mode == MODE_FACE &&
            em_read_file(o.image, 64u << 20, &image, &r.image_len, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(err));
                em_error_free(&err);
                return 2;
        }
        r.image = image;
        setup_signals();
        if (em_probe_connect(o.target, (int)(o.connect_timeout_s * 1000), &r.fd, &err) < 0) {
                fprintf(stderr, "edgemig-probe: %s\n", em_error_msg(err));
                em_error_free(&err);
                return 2;
        }
        if (o.mode == MODE_VERIFY)
                return run_verify(&r, &o);
        double start_unix = (double)em_now_ms();
        r.t0 = em_probe_now_ms();
        em_probe_run_loop(&r);
        return report(&r, &o, start_unix);
}
