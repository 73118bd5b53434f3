/* edgemig migrate / prepare: the source side of a live migration. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "migrate/control.h"
#include "migrate/migrate.h"
#include "migrate/report.h"
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
    "is removed here only after the target confirms; on any failure before\n"
    "that it is restored here.\n"
    "\n"
    "Options:\n"
    "  --to ADDR:PORT          the target's edgemigd (required)\n"
    "  --mode MODE             precopy (default), stop-and-copy, postcopy, hybrid\n"
    "                          or auto (precopy if the final delta fits the downtime\n"
    "                          target, else hybrid); post-copy risks: docs/postcopy.md\n"
    "  --max-rounds N          pre-copy round budget (default 5)\n"
    "  --downtime-target MS    stop pre-copy once the final transfer is estimated\n"
    "                          to take at most MS milliseconds (default 500); the\n"
    "                          link rate comes from the rounds, or until a round is\n"
    "                          big enough to measure it, from the last migration or\n"
    "                          prepare to the same target in the past 10 minutes\n"
    "  --compress C            auto (default: from measured bandwidth), none or\n"
    "                          zstd:LEVEL (1-19)\n"
    "  --json                  print the timeline as JSON\n"
    "  --io-timeout SECONDS    give up when the target makes no progress for this\n"
    "                          long (default 120); the container then runs here\n"
    "  --route-hook PATH       run `PATH announce SERVICE_IP` if the migration rolls\n"
    "                          back here (default $EDGEMIG_ROUTE_HOOK), to take the\n"
    "                          service IP's route back from a target that announced it\n"
    "\n"
    "The timeline (phases, rounds, bytes raw and on the wire, handoff time and\n"
    "downtime as defined by Ma et al.) is also stored in\n"
    "<root>/migrations/<id>.json. The --json output adds \"rusage\": CPU seconds\n"
    "and peak RSS of this command and the processes it waited for (runc, CRIU).\n"
    "\n"
    "Exit status: 0 migrated; 1 failed (the container runs here again, or the\n"
    "message says where its checkpoint was kept); 2 usage error.\n"
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
        const char *allow[17];
        size_t n_allow;
        bool insecure;
};

static int parse_opts(int argc, char **argv, struct em_migrate_opts *o, bool *json,
                      struct tls_opts *t, em_error_t *err)
{
        static const struct option opts[] = {{"to", required_argument, NULL, 't'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"max-rounds", required_argument, NULL, 'r'},
                                             {"downtime-target", required_argument, NULL, 'd'},
                                             {"compress", required_argument, NULL, 'c'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"tls-cert", required_argument, NULL, 'C'},
                                             {"tls-key", required_argument, NULL, 'K'},
                                             {"tls-ca", required_argument, NULL, 'A'},
                                             {"allow-peer", required_argument, NULL, 'P'},
                                             {"insecure", no_argument, NULL, 'I'},
                                             {"route-hook", required_argument, NULL, 'H'},
                                             {"io-timeout", required_argument, NULL, 'T'},
                                             {NULL, 0, NULL, 0}};
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 't':
                        o->target = optarg;
                        break;
                case 'm':
                        if (em_migrate_mode_parse(optarg, &o->mode, err) < 0)
                                return -1;
                        break;
                case 'r':
                        o->stop.max_rounds = (unsigned)strtoul(optarg, NULL, 10);
                        if (o->stop.max_rounds < 1)
                                return em_error_set(err, 0, "--max-rounds takes N >= 1");
                        break;
                case 'd':
                        o->stop.downtime_target_ms = strtoull(optarg, NULL, 10);
                        break;
                case 'c':
                        if (em_compress_parse(optarg, &o->compress, err) < 0)
                                return -1;
                        break;
                case 'j':
                        *json = true;
                        break;
                case 'C':
                        t->cert = optarg;
                        break;
                case 'K':
                        t->key = optarg;
                        break;
                case 'A':
                        t->ca = optarg;
                        break;
                case 'P':
                        if (t->n_allow + 1 >= sizeof(t->allow) / sizeof(t->allow[0]))
                                return em_error_set(err, 0, "too many --allow-peer");
                        t->allow[t->n_allow++] = optarg;
                        break;
                case 'I':
                        t->insecure = true;
                        break;
                case 'H':
                        o->route_hook = optarg;
                        break;
                case 'T':
                        o->io_timeout_ms = atoi(optarg) * 1000;
                        if (o->io_timeout_ms <= 0)
                                return em_error_set(err, 0, "--io-timeout takes SECONDS >= 1");
                        break;
                default:
                        return em_error_set(err, 0, "unknown option; see --help");
                }
        }
        if (o->target == NULL)
                return em_error_set(err, 0, "--to ADDR:PORT is required");
        if (optind + 1 != argc)
                return em_error_set(err, 0, "expected exactly one container NAME");
        return optind;
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
                if (given || t->n_allow)
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
                                   t->key ? t->key : key, t->n_allow ? t->allow : NULL};
        return em_tls_ctx_new(&tc, false, out, err);
}

static int run_source(struct em_cli *cli, int argc, char **argv, bool prepare, em_error_t *err)
{
        struct em_migrate_opts o;
        struct em_config *cfg;
        cleanup_json json_t *report = NULL;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        struct tls_opts t = {0};
        bool json = false;

        em_migrate_opts_init(&o);
        o.route_hook = getenv("EDGEMIG_ROUTE_HOOK");
        int idx = parse_opts(argc, argv, &o, &json, &t, err);
        if (idx < 0)
                return 2;
        if (prepare)
                o.mode = EM_MIGRATE_PREPARE;
        isatty_err = isatty(2) && !json;
        o.progress = progress;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        if (tls_context(cfg, &t, &tls, err) < 0)
                return 2;
        o.tls = tls;
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
        if (cli_wants_help(argc, argv)) {
                cli_print_help(migrate_usage);
                return 0;
        }
        return run_source(cli, argc, argv, false, err);
}

int cmd_prepare(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        if (cli_wants_help(argc, argv)) {
                cli_print_help(prepare_usage);
                return 0;
        }
        return run_source(cli, argc, argv, true, err);
}
