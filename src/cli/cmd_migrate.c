/* edgemig migrate / prepare: the source side of a live migration. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "platform/control.h"
#include "migrate/migrate.h"
#include "migrate/source/precheck.h"
#include "migrate/common/report.h"
#include "migrate/common/timeline.h"
#include "migrate/source/monitor.h"
#include "transfer/ratelimit.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char migrate_usage[] =
    "Usage: edgemig migrate NAME --to ADDR:PORT [OPTIONS]\n"
    "       edgemig migrate --cancel SESSION [--json]\n"
    "\n"
    "Live-migrate the running container NAME to the edge host whose edgemigd\n"
    "listens on ADDR:PORT. Image layers the target already has (by content\n"
    "digest) are not sent; missing ones are streamed. While the container keeps\n"
    "running, pre-copy rounds send its writable layer and memory (pages by\n"
    "content); then it is checkpointed, the last deltas are sent, and the target\n"
    "restores it with the same service IP and TCP connections. The container\n"
    "is removed here only after the target acknowledged the commit. A failure\n"
    "before the final state left restores it here; after that, the target is\n"
    "asked which copy stays (it keeps a restored copy until it knows): the\n"
    "service runs on at most one host and is never lost. If the target cannot\n"
    "be reached the migration is in doubt: the container stays stopped here\n"
    "with its checkpoint, and `edgemig recover` settles it later.\n"
    "\n"
    "NAME may be a pod (`edgemig pod create`): the whole pod moves as one unit,\n"
    "with pre-copy rounds (--mode precopy, each container's memory read live\n"
    "and sent while the pod runs) or stop-and-copy (no other mode yet):\n"
    "one freeze of its infra container and every member (all must run), one\n"
    "downtime, the service IP moved once, and all or nothing: it runs on the\n"
    "target only once every member runs there, and any failure before leaves\n"
    "it running here (docs/pods.md). A member alone is refused. --dry-run of a\n"
    "pod checks the whole pod (every container, names and service IP free on\n"
    "the target) and estimates its handoff and downtime in the mode asked.\n"
    "\n"
    "Options:\n"
    "  --to ADDR:PORT          the target's edgemigd (required)\n"
    "  --mode MODE             precopy (default), stop-and-copy, postcopy, hybrid\n"
    "                          or auto (precopy if the final delta fits the downtime\n"
    "                          target, else hybrid); post-copy risks: docs/postcopy.md.\n"
    "                          precopy measures after each round what is left; when a\n"
    "                          round fails to halve it (the service rewrites memory\n"
    "                          about as fast as the link drains it) pre-copy ends and\n"
    "                          the rest goes as in hybrid (if the target can restore\n"
    "                          with lazy pages), or with --auto-converge the\n"
    "                          container is throttled\n"
    "  --lazy-pull             after a lazy handoff, let CRIU's lazy-pages daemon\n"
    "                          pull every page from CRIU's page server (relayed over\n"
    "                          the session) instead of the default: the source pushes\n"
    "                          the pages the target lacks at link speed, working set\n"
    "                          first, and faults take an urgent path (docs/postcopy.md)\n"
    "  --max-rounds N          pre-copy round budget (default 5, 1 to 1000)\n"
    "  --downtime-target T     stop pre-copy once the final transfer is estimated\n"
    "                          to take at most T (milliseconds, or with ms, s or m;\n"
    "                          default 500); the\n"
    "                          link rate comes from the rounds, or until a round is\n"
    "                          big enough to measure it, from the last migration or\n"
    "                          prepare to the same target in the past 10 minutes\n"
    "  --max-rate RATE         send at most RATE bits per second (a number with k, M\n"
    "                          or G: 20M is 20 Mbit/s; 8k at least), so that the\n"
    "                          migration leaves room for the users' traffic on a thin\n"
    "                          link; lazy pages after a hybrid handoff are capped too,\n"
    "                          and the stop rule plans with the capped rate\n"
    "  --auto-converge         when a pre-copy round fails to halve what is left,\n"
    "                          throttle the container's CPU (a pod's: each of its\n"
    "                          containers') through its cgroup (cpu quota: 50 % of\n"
    "                          one CPU, then halved each such round, at least 1 %)\n"
    "                          and copy on, within --max-rounds, instead\n"
    "                          of handing off in hybrid mode; the final step is then\n"
    "                          a plain checkpoint. The throttle is lifted when the\n"
    "                          migration ends, however it ends; the timeline shows\n"
    "                          it (each round's throttle_pct, marks throttle_start\n"
    "                          and throttle_lifted)\n"
    "  --progress              print progress as JSON lines on stderr (stdout keeps\n"
    "                          the result), about once a second and at each phase:\n"
    "                          {\"event\":\"progress\", \"session\", \"container\",\n"
    "                          \"phase\", \"round\", \"elapsed_ms\", \"bytes_sent\",\n"
    "                          \"bytes_left\" (estimated, of the phase or round under\n"
    "                          way), \"rate_bytes_per_s\" (the link),\n"
    "                          \"dirty_bytes_per_s\", \"eta_ms\" (to the end of the\n"
    "                          transfers before the handoff), \"expected_downtime_ms\"\n"
    "                          (the final transfer at the link rate), \"throttle_pct\"};\n"
    "                          null where not known yet; the last line's phase is\n"
    "                          done, failed or cancelled\n"
    "  --cancel SESSION        cancel the migration with that session id (the\n"
    "                          \"session\" of its progress lines) that runs from this\n"
    "                          host: before its final step it ends at once, the\n"
    "                          container keeps running here and the target keeps\n"
    "                          nothing; waits up to 60 s for it and prints the\n"
    "                          outcome (--json: its timeline). Once the final step\n"
    "                          began it is too late (exit 1)\n"
    "  --compress C            auto (default: from measured bandwidth), none or\n"
    "                          zstd:LEVEL (1-19)\n"
    "  --json                  print the timeline as JSON\n"
    "  --dry-run               move nothing: say whether NAME can be migrated to the\n"
    "                          target and why not, and estimate the transfer and the\n"
    "                          handoff over the measured link (the pre-check, as\n"
    "                          `edgemig check NAME --to ADDR:PORT`; exit 1 when it\n"
    "                          cannot; docs/lifecycle.md)\n"
    "  --io-timeout T          give up when the target makes no progress for this\n"
    "                          long (seconds, or with ms, s, m or h; default 120);\n"
    "                          the container then runs here (or, once its final\n"
    "                          state left, the target is asked, as above)\n"
    "  --route-hook PATH       run `PATH withdraw SERVICE_IP` once the target has\n"
    "                          restored and announced the service IP, and `PATH\n"
    "                          announce SERVICE_IP` if the migration rolls back here\n"
    "                          (default $EDGEMIG_ROUTE_HOOK; docs/network.md)\n"
    "\n"
    "On success it prints the timeline: each phase (the source's, then the\n"
    "target's verify, restore and route steps as the target reported them),\n"
    "its start in ms after the request, its length and its bytes on the wire;\n"
    "the pre-copy rounds with what each left to send; why pre-copy stopped;\n"
    "and the handoff time and downtime as defined by Ma et al. The timeline\n"
    "(also bytes raw, every mark) is also stored in\n"
    "<root>/migrations/<id>.json. The --json output adds \"rusage\": CPU seconds\n"
    "and peak RSS of this command and the processes it waited for (runc, CRIU).\n"
    "\n"
    "Exit status: 0 migrated (also when the target's answer, asked after a\n"
    "lost acknowledgement, was \"committed\"); 1 failed (the container runs\n"
    "here again, or the migration is in doubt and the message says where its\n"
    "checkpoint was kept and how to settle it); 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  edgemig migrate web --to 10.77.2.2:7878 --json\n"
    "  edgemig migrate web --to 10.77.2.2:7878 --max-rate 10M --progress\n"
    "  edgemig migrate --cancel 6f1c0e9a2b7d4c3e8f9a0b1c2d3e4f50\n";

static const char prepare_usage[] =
    "Usage: edgemig prepare NAME --to ADDR:PORT [--compress C] [--json] [TLS OPTIONS]\n"
    "\n"
    "Pre-transfer for a likely handoff: send the image layers the target lacks\n"
    "and a base snapshot of NAME's memory pages (read live, without freezing\n"
    "the service) to the target's page cache. A later `edgemig migrate NAME\n"
    "--to ADDR:PORT` then sends only what changed since.\n"
    "\n"
    "NAME may be a pod: every image of its infra container and members that\n"
    "the target lacks is sent and registered there, each blob once, and each\n"
    "container's memory pages go to its page cache there (docs/pods.md). The\n"
    "pod keeps running here untouched.\n"
    "\n"
    "TLS options and --insecure are those of `edgemig migrate --help`.\n";

/* The command's own flags, beside the migration's options. */
struct flags {
        bool json, dry_run, progress;
        const char *cancel; /* --cancel SESSION */
};

static bool isatty_err;

static const char *usage_of(char **argv)
{
        return strcmp(argv[0], "prepare") == 0 ? prepare_usage : migrate_usage;
}

/* --progress: one JSON object a line on stderr (stdout keeps the result);
 * else, on a terminal, one line redrawn in place. */
static void progress(void *ud, const json_t *p)
{
        const struct flags *f = ud;

        if (f->progress) {
                cleanup_free char *line = json_dumps(p, JSON_COMPACT);
                if (line != NULL)
                        fprintf(stderr, "%s\n", line);
        } else if (isatty_err) {
                fprintf(stderr, "\r%-10s %10.1f MB sent  %8.2f Mbit/s  ",
                        em_json_str(p, "phase") ?: "", em_json_int(p, "bytes_sent", 0) / 1e6,
                        json_number_value(json_object_get(p, "rate_bytes_per_s")) * 8 / 1e6);
        }
        fflush(stderr);
}

static int parse_rate(const char *arg, void *dst, em_error_t *err)
{
        return em_rate_parse(arg, dst, err);
}

struct tls_opts {
        const char *cert, *key, *ca;
        struct em_opt_list allow;
        bool insecure;
};

static void tls_opts_free(struct tls_opts *t)
{
        em_opt_list_free(&t->allow);
}

static int parse_mode(const char *arg, void *dst, em_error_t *err)
{
        return em_migrate_mode_parse(arg, dst, err);
}

static int parse_compress(const char *arg, void *dst, em_error_t *err)
{
        return em_compress_parse(arg, dst, err);
}

/* Returns the index of NAME, 0 after --help, -1 on a usage error. */
static int parse_opts(int argc, char **argv, struct em_migrate_opts *o, struct flags *fl,
                      struct tls_opts *t, em_error_t *err)
{
        const struct em_opt table[] = {
            EM_OPT_FLAG("dry-run", 0, &fl->dry_run),
            EM_OPT_FLAG("progress", 0, &fl->progress),
            EM_OPT_STRING("cancel", 0, &fl->cancel),
            EM_OPT_CALL("max-rate", 0, &o->max_rate_bps, parse_rate),
            EM_OPT_FLAG("auto-converge", 0, &o->auto_converge),
            EM_OPT_FLAG("lazy-pull", 0, &o->lazy_pull),
            EM_OPT_STRING("to", 0, &o->target),
            EM_OPT_CALL("mode", 0, &o->mode, parse_mode),
            EM_OPT_INT("max-rounds", 0, &o->stop.max_rounds, 1, 1000),
            EM_OPT_DURATION("downtime-target", 0, &o->stop.downtime_target_ms, EM_OPT_MS, EM_OPT_MS,
                            0, INT64_MAX),
            EM_OPT_CALL("compress", 0, &o->compress, parse_compress),
            EM_OPT_FLAG("json", 0, &fl->json),
            EM_OPT_STRING("tls-cert", 0, &t->cert),
            EM_OPT_STRING("tls-key", 0, &t->key),
            EM_OPT_STRING("tls-ca", 0, &t->ca),
            EM_OPT_LIST("allow-peer", 0, &t->allow),
            EM_OPT_FLAG("insecure", 0, &t->insecure),
            EM_OPT_STRING("route-hook", 0, &o->route_hook),
            EM_OPT_DURATION("io-timeout", 0, &o->io_timeout_ms, EM_OPT_S, EM_OPT_MS, 1, INT_MAX),
            EM_OPT_END,
        };
        int first, r = cli_parse(usage_of(argv), table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? -1 : 0;
        if (fl->cancel != NULL)
                return cli_operands(argc, argv, first, 0, 0, "operand with --cancel", err) < 0
                           ? -1
                           : first;
        if (cli_operands(argc, argv, first, 1, 1, "container NAME", err) < 0)
                return -1;
        if (o->target == NULL)
                return em_error_set(err, 0, "--to ADDR:PORT is required");
        return first;
}

static void print_list(const json_t *r, const char *key, const char *label)
{
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(r, key), i, v)
            printf("  %s: %s\n", label, json_string_value(v));
}

static void print_check(const json_t *r)
{
        const json_t *l = json_object_get(r, "local"), *t = json_object_get(r, "target_host");
        const json_t *k = json_object_get(r, "link"), *e = json_object_get(r, "estimate");

        printf("pre-check of %s -> %s (mode %s): %s\n", em_json_str(r, "container"),
               em_json_str(r, "target"), em_json_str(r, "mode"),
               json_is_true(json_object_get(r, "ok")) ? "can migrate" : "CANNOT migrate");
        print_list(r, "problems", "problem");
        print_list(r, "notes", "note");
        printf("here:     %lld process(es), memory %.1f MiB, writable layer %.1f MiB\n",
               em_json_int(l, "processes", 0), em_json_int(l, "memory_bytes", 0) / 1048576.0,
               em_json_int(l, "upper_bytes", 0) / 1048576.0);
        if (t != NULL)
                printf("target:   disk free %.1f GiB, memory available %.1f GiB\n",
                       em_json_int(t, "disk_free_bytes", 0) / 1073741824.0,
                       em_json_int(t, "mem_available_bytes", 0) / 1073741824.0);
        if (k != NULL)
                printf("link:     rtt %lld ms, %.1f Mbit/s measured with a 1 MiB probe\n",
                       em_json_int(k, "rtt_ms", 0),
                       json_number_value(json_object_get(k, "bandwidth_bps")) / 1e6);
        if (e != NULL)
                printf("estimate: %.2f MB to send (layers %.2f, writable layer %.2f, memory "
                       "%.2f MB at %s ratio %.3f), handoff ~%.1f s, downtime ~%.1f s\n",
                       em_json_int(e, "transfer_bytes", 0) / 1e6,
                       em_json_int(e, "layers_bytes", 0) / 1e6,
                       em_json_int(e, "upper_bytes", 0) / 1e6,
                       em_json_int(e, "memory_bytes", 0) / 1e6,
                       em_json_int(e, "compress_level", -1) < 0 ? "an assumed" : "a sampled",
                       json_number_value(json_object_get(e, "memory_ratio")),
                       em_json_int(e, "handoff_ms", 0) / 1000.0,
                       em_json_int(e, "downtime_ms", 0) / 1000.0);
}

static int dry_run(const struct em_config *cfg, const char *name, const struct em_migrate_opts *o,
                   bool json, em_error_t *err)
{
        cleanup_json json_t *report = NULL;

        if (em_precheck_run(cfg, name, o, &report, err) < 0)
                return 1;
        if (json)
                em_json_print(report, NULL);
        else
                print_check(report);
        fflush(stdout);
        if (json_is_true(json_object_get(report, "ok")))
                return 0;
        em_error_set(err, 0, "%s cannot be migrated to %s (%zu problem(s))", name, o->target,
                     json_array_size(json_object_get(report, "problems")));
        return 1;
}

static void print_summary(const json_t *r)
{
        printf("migrated %s to %s: handoff %lld ms, downtime %lld ms, %.2f MB on the wire, "
               "%zu round(s)\n",
               em_json_str(r, "container"), em_json_str(r, "target"),
               em_json_int(r, "handoff_ms", -1), em_json_int(r, "downtime_ms", -1),
               (double)em_json_int(r, "bytes_wire", 0) / 1e6,
               json_array_size(json_object_get(r, "rounds")));
}

/* Mutual TLS unless --insecure; files from the options or <root>/pki/. */
static int tls_context(const struct em_config *cfg, const struct tls_opts *t, em_tls_ctx_t **out,
                       em_error_t *err)
{
        cleanup_free char *ca = NULL, *cert = NULL, *key = NULL;
        bool given = t->cert || t->key || t->ca;

        if (t->insecure) {
                if (given || t->allow.n)
                        return em_error_set(err, 0, "--insecure excludes --tls-* and --allow-peer");
                return 0;
        }
        if (!given) {
                int have = em_tls_default_paths(cfg->root, NULL, &ca, &cert, &key, err);
                if (have < 0)
                        return -1;
                if (have == 0)
                        return em_error_set(err, 0,
                                            "peers must authenticate: pass --tls-cert FILE "
                                            "--tls-key FILE --tls-ca FILE (or create %s with "
                                            "`edgemig ca`), or --insecure for plain TCP on a "
                                            "trusted test network",
                                            cert);
        } else if (!t->cert || !t->key || !t->ca) {
                return em_error_set(err, 0, "--tls-cert, --tls-key and --tls-ca go together");
        }
        struct em_tls_config tc = {t->ca ? t->ca : ca, t->cert ? t->cert : cert,
                                   t->key ? t->key : key, t->allow.v};
        return em_tls_ctx_new(&tc, false, out, err);
}

/* How long --cancel waits for the migration to roll back. */
#define CANCEL_WAIT_MS 60000

static int cancel(const struct em_config *cfg, const struct flags *fl, em_error_t *err)
{
        cleanup_json json_t *report = NULL;

        if (em_migrate_cancel(cfg, fl->cancel, CANCEL_WAIT_MS, &report, err) < 0)
                return 1;
        if (fl->json)
                em_json_print(report, NULL);
        else
                printf("cancelled migration %s of %s: it runs here\n", fl->cancel,
                       em_json_str(report, "container"));
        return 0;
}

static int migrate(const struct em_config *cfg, const char *name, const struct em_migrate_opts *o,
                   const struct flags *fl, bool prepare, em_error_t *err)
{
        cleanup_json json_t *report = NULL;
        /* The same path edgemigd takes for a controller's request. */
        int rc = em_migrate_outgoing(cfg, name, o, &report, err);

        /* CPU time and peak memory of this side: this process and what it
         * waited for (runc, CRIU, ...); the target's are in edgemigd's log. */
        if (report && json_is_object(report))
                json_object_set_new(report, "rusage", em_rusage_json_now());
        if (isatty_err)
                fputc('\n', stderr);
        if (fl->json && report) {
                em_json_print(report, NULL);
        } else if (rc == 0 && !prepare) {
                print_summary(report);
                em_timeline_print(stdout, report);
        } else if (rc == 0) {
                printf("prepared %s on %s\n", name, o->target);
        }
        return rc < 0 ? 1 : 0;
}

static int run_source(struct em_cli *cli, int argc, char **argv, bool prepare, bool force_dry_run,
                      em_error_t *err)
{
        struct em_migrate_opts o;
        struct em_config *cfg;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        __attribute__((cleanup(tls_opts_free))) struct tls_opts t = {0};
        struct flags fl = {.dry_run = force_dry_run};

        em_migrate_opts_init(&o);
        o.route_hook = getenv("EDGEMIG_ROUTE_HOOK");
        int idx = parse_opts(argc, argv, &o, &fl, &t, err);
        if (idx <= 0)
                return idx < 0 ? 2 : 0;
        if (prepare)
                o.mode = EM_MIGRATE_PREPARE;
        isatty_err = isatty(2) && !fl.json && !fl.progress;
        o.progress = progress;
        o.progress_ud = &fl;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        if (fl.cancel != NULL)
                return cancel(cfg, &fl, err);
        if (tls_context(cfg, &t, &tls, err) < 0)
                return 2;
        o.tls = tls;
        if (fl.dry_run)
                return dry_run(cfg, argv[idx], &o, fl.json, err);
        return migrate(cfg, argv[idx], &o, &fl, prepare, err);
}

int cmd_migrate(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        return run_source(cli, argc, argv, false, false, err);
}

int cmd_migrate_check(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        return run_source(cli, argc, argv, false, true, err);
}

int cmd_prepare(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        return run_source(cli, argc, argv, true, false, err);
}
