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
#include "util/cleanup.h"
#include "util/json.h"

static const char migrate_usage[] =
    "Usage: edgemig migrate NAME --to ADDR:PORT [OPTIONS]\n"
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
    "Options:\n"
    "  --to ADDR:PORT          the target's edgemigd (required)\n"
    "  --mode MODE             precopy (default), stop-and-copy, postcopy, hybrid\n"
    "                          or auto (precopy if the final delta fits the downtime\n"
    "                          target, else hybrid); post-copy risks: docs/postcopy.md.\n"
    "                          precopy measures after each round what is left; when a\n"
    "                          round fails to halve it (the service rewrites memory\n"
    "                          about as fast as the link drains it) pre-copy ends and\n"
    "                          the rest goes as in hybrid\n"
    "  --max-rounds N          pre-copy round budget (default 5, 1 to 1000)\n"
    "  --downtime-target T     stop pre-copy once the final transfer is estimated\n"
    "                          to take at most T (milliseconds, or with ms, s or m;\n"
    "                          default 500); the\n"
    "                          link rate comes from the rounds, or until a round is\n"
    "                          big enough to measure it, from the last migration or\n"
    "                          prepare to the same target in the past 10 minutes\n"
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
    "  --route-hook PATH       run `PATH announce SERVICE_IP` if the migration rolls\n"
    "                          back here (default $EDGEMIG_ROUTE_HOOK), to take the\n"
    "                          service IP's route back from a target that announced it\n"
    "\n"
    "The timeline (phases, rounds, bytes raw and on the wire, handoff time and\n"
    "downtime as defined by Ma et al.) is also stored in\n"
    "<root>/migrations/<id>.json. The --json output adds \"rusage\": CPU seconds\n"
    "and peak RSS of this command and the processes it waited for (runc, CRIU).\n"
    "\n"
    "Exit status: 0 migrated (also when the target's answer, asked after a\n"
    "lost acknowledgement, was \"committed\"); 1 failed (the container runs\n"
    "here again, or the migration is in doubt and the message says where its\n"
    "checkpoint was kept and how to settle it); 2 usage error.\n"
    "\n"
    "Example:\n"
    "  edgemig migrate web --to 10.77.2.2:7878 --json\n";

static const char prepare_usage[] =
    "Usage: edgemig prepare NAME --to ADDR:PORT [--compress C] [--json] [TLS OPTIONS]\n"
    "\n"
    "Pre-transfer for a likely handoff: send the image layers the target lacks\n"
    "and a base snapshot of NAME's memory pages (read live, without freezing\n"
    "the service) to the target's page cache. A later `edgemig migrate NAME\n"
    "--to ADDR:PORT` then sends only what changed since.\n"
    "\n"
    "TLS options and --insecure are those of `edgemig migrate --help`.\n";

static bool isatty_err;

static const char *usage_of(char **argv)
{
        return strcmp(argv[0], "prepare") == 0 ? prepare_usage : migrate_usage;
}

static void progress(void *ud, const char *phase, uint64_t bytes, double rate, uint64_t total)
{
        (void)ud;
        (void)total;
        if (!isatty_err)
                return;
        fprintf(stderr, "\r%-10s %10.1f MB sent  %8.2f Mbit/s", phase, (double)bytes / 1e6,
                rate * 8 / 1e6);
        fflush(stderr);
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
static int parse_opts(int argc, char **argv, struct em_migrate_opts *o, bool *json, bool *dry_run,
                      struct tls_opts *t, em_error_t *err)
{
        const struct em_opt table[] = {
            EM_OPT_FLAG("dry-run", 0, dry_run),
            EM_OPT_STRING("to", 0, &o->target),
            EM_OPT_CALL("mode", 0, &o->mode, parse_mode),
            EM_OPT_INT("max-rounds", 0, &o->stop.max_rounds, 1, 1000),
            EM_OPT_DURATION("downtime-target", 0, &o->stop.downtime_target_ms, EM_OPT_MS, EM_OPT_MS,
                            0, INT64_MAX),
            EM_OPT_CALL("compress", 0, &o->compress, parse_compress),
            EM_OPT_FLAG("json", 0, json),
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

static int run_source(struct em_cli *cli, int argc, char **argv, bool prepare, bool force_dry_run,
                      em_error_t *err)
{
        struct em_migrate_opts o;
        struct em_config *cfg;
        cleanup_json json_t *report = NULL;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        __attribute__((cleanup(tls_opts_free))) struct tls_opts t = {0};
        bool json = false, dry = force_dry_run;

        em_migrate_opts_init(&o);
        o.route_hook = getenv("EDGEMIG_ROUTE_HOOK");
        int idx = parse_opts(argc, argv, &o, &json, &dry, &t, err);
        if (idx <= 0)
                return idx < 0 ? 2 : 0;
        if (prepare)
                o.mode = EM_MIGRATE_PREPARE;
        isatty_err = isatty(2) && !json;
        o.progress = progress;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        if (tls_context(cfg, &t, &tls, err) < 0)
                return 2;
        o.tls = tls;
        if (dry)
                return dry_run(cfg, argv[idx], &o, json, err);
        /* The same path edgemigd takes for a controller's request. */
        int rc = em_migrate_outgoing(cfg, argv[idx], &o, &report, err);
        /* CPU time and peak memory of this side: this process and what it
         * waited for (runc, CRIU, ...); the target's are in edgemigd's log. */
        if (report && json_is_object(report))
                json_object_set_new(report, "rusage", em_rusage_json_now());
        if (isatty_err)
                fputc('\n', stderr);
        if (json && report)
                em_json_print(report, NULL);
        else if (rc == 0 && !prepare)
                print_summary(report);
        else if (rc == 0)
                printf("prepared %s on %s\n", argv[idx], o.target);
        return rc < 0 ? 1 : 0;
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
