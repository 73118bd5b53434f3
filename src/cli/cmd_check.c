/* edgemig check: print the host feature probe and whether this host can
 * migrate containers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/features.h"
#include "cli/cli.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig check [--json] [--no-cache] [-v|--verbose]\n"
    "       edgemig check NAME --to ADDR:PORT [--mode MODE] [--json] [TLS OPTIONS]\n"
    "\n"
    "With NAME and --to: the migratability pre-check of container NAME against\n"
    "the target's edgemigd, the same as `edgemig migrate NAME --to ADDR:PORT\n"
    "--dry-run` (its options are migrate's; see `edgemig migrate --help`).\n"
    "Nothing moves and nothing is staged. It says whether NAME can be migrated\n"
    "there and why not: the container is not running, bind mounts, unix sockets\n"
    "connected outside the container, the target's handshake (protocol, CRIU,\n"
    "CPU vendor and flags), CRIU features the mode needs (lazy pages), the\n"
    "incoming-spec policy, a service IP or name already used there, disk and\n"
    "memory on the target. NAME may be a pod: all its containers are checked in\n"
    "one session, as a pod migration would meet them (docs/pods.md). It then\n"
    "estimates the bytes to send and the handoff and downtime over the link,\n"
    "measured with a 1 MiB probe. Exit status 0: it can migrate; 1: it cannot\n"
    "(the problems are listed). --json prints {\"container\", \"target\", \"mode\",\n"
    "\"ok\", \"problems\", \"notes\", \"local\", \"target_host\", \"link\",\n"
    "\"estimate\"} (docs/lifecycle.md), for a pod also \"pod\" and \"containers\".\n"
    "\n"
    "Without NAME:\n"
    "Probe this host for everything a live migration needs, print one line per\n"
    "probe and say whether the host can migrate containers. Each probe really\n"
    "exercises the mechanism: it mounts an overlay, unshares namespaces, dumps and\n"
    "restores a test process with CRIU, arms a hardware breakpoint, and so on.\n"
    "Every helper it runs has a timeout, so the check cannot hang.\n"
    "\n"
    "Each line shows the probe name, its status (ok, missing, or warn: present but\n"
    "needs a setting changed before use) and either its value or, when it is not\n"
    "ok, what that means and what to do about it.\n"
    "\n"
    "Probes (* = required to migrate):\n"
    "  kernel *         Linux release, >= " EM_KERNEL_MIN_VERSION "\n"
    "  overlayfs *      mounts a tiny overlay (in a private mount namespace, under\n"
    "                   ROOT/tmp), writes through it, deletes a lower file and checks\n"
    "                   the upper dir got the file and a 0/0 whiteout\n"
    "  namespaces *     unshare of net, mnt, pid, ipc and uts in a child\n"
    "  userns           unshare of a user namespace\n"
    "  cgroup           v1, v1-hybrid or v2, and whether the freezer is there\n"
    "  runc *           `runc --version`, >= 1.0 ($EDGEMIG_RUNC or runc in PATH)\n"
    "  criu *           `criu --version`, >= " EM_CRIU_MIN_VERSION " ($EDGEMIG_CRIU,\n"
    "                   /opt/edgemig/criu/bin/criu, or criu in PATH)\n"
    "  criu_check       `criu check`\n"
    "  dump_restore *   forks a test process, `criu dump` kills it, `criu restore -d`\n"
    "                   brings it back; checks it is the same program and runs on\n"
    "  hw_breakpoints   whether a DR0 breakpoint set with PTRACE_POKEUSER traps.\n"
    "                   When it does not, CRIU >= 4.2 notices and works without;\n"
    "                   older CRIU would hang unless run with CRIU_FAULT=130\n"
    "  soft_dirty       pagemap bit 55 after clear_refs; needed for CRIU pre-dump.\n"
    "                   Without it edgemig diffs page contents instead\n"
    "  userfaultfd      userfaultfd(2) or /dev/userfaultfd, and `criu check\n"
    "                   --feature uffd-noncoop`; needed for lazy pages (post-copy)\n"
    "  pipe_max_size    fs.pipe-max-size; lazy pages need >= 4194304 (warn below)\n"
    "  tcp_repair       TCP_REPAIR on a socket; needed to keep TCP connections\n"
    "  tcp_half_closed  `criu check --feature tcp_half_closed`\n"
    "  tc_tbf           veth pair with a tbf qdisc in a throwaway network namespace\n"
    "\n"
    "Options:\n"
    "  --json         print one JSON object: {\"can_migrate\", \"cached\", \"probe_ms\",\n"
    "                 \"edgemig_version\", \"probes\": [{\"name\", \"status\", \"required\",\n"
    "                 \"value\", \"detail\", \"hint\"}]}\n"
    "  --no-cache     probe again even if the cached result is still valid\n"
    "  -v, --verbose  show the detail of every probe (errors, log tails, paths)\n"
    "  -h, --help     show this help\n"
    "\n"
    "Caching: the result is kept in ROOT/check-cache.json, keyed by the kernel\n"
    "release and version, the path, size and mtime of the CRIU and runc binaries,\n"
    "and the edgemig version; a change to any of them re-probes. fs.pipe-max-size\n"
    "is re-read every time.\n"
    "\n"
    "Exit status:\n"
    "  0  this host can migrate containers (every required probe is ok)\n"
    "  1  it cannot; the failed required probes are named on stderr\n"
    "  2  usage error\n"
    "\n"
    "Files:\n"
    "  ROOT/check-cache.json  cached result (ROOT: --root, $EDGEMIG_ROOT or\n"
    "                         /var/lib/edgemig)\n"
    "  ROOT/tmp/check-*/      scratch space of a running probe, removed after\n"
    "\n"
    "Examples:\n"
    "  edgemig check\n"
    "  edgemig check --no-cache -v\n"
    "  edgemig check --json | jq '.probes[] | select(.status != \"ok\")'\n";

static void print_line(const struct em_feature *x, bool verbose)
{
        const char *text = x->status == EM_FEATURE_OK ? x->value : x->hint;

        printf("%-17s %-8s %s", x->name, em_feature_status_name(x->status), text ? text : "");
        if (x->status == EM_FEATURE_OK && x->detail && (verbose || strchr(x->detail, '\n') == NULL))
                printf(" (%s)", x->detail);
        putchar('\n');
        /* Failure details (error, CRIU log tail) of required probes always show. */
        if (x->status != EM_FEATURE_OK && x->detail && (verbose || x->required)) {
                char *copy = strdup(x->detail), *save = NULL;
                for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
                     l = strtok_r(NULL, "\n", &save))
                        printf("%-17s %-8s | %s\n", "", "", l);
                free(copy);
        }
}

static void print_text(const struct em_features *f, const char *root, bool verbose)
{
        for (size_t i = 0; i < em_features_count(f); i++)
                print_line(em_features_at(f, i), verbose);
        if (em_features_cached(f))
                printf("(cached in %s/check-cache.json; --no-cache to probe again)\n", root);
        else
                printf("(probed in %lld ms)\n", em_features_probe_ms(f));
        printf("host can migrate containers: %s\n", em_features_can_migrate(f) ? "yes" : "no");
}

/* "criu (hint), dump_restore (hint)" for every failed required probe. */
static int fail_reasons(const struct em_features *f, em_error_t *err)
{
        cleanup_free char *all = strdup("");

        for (size_t i = 0; all && i < em_features_count(f); i++) {
                const struct em_feature *x = em_features_at(f, i);
                char *next = NULL;
                if (!x->required || x->status == EM_FEATURE_OK)
                        continue;
                if (asprintf(&next, "%s\n  %s: %s", all, x->name, x->hint ? x->hint : "missing") <
                    0)
                        next = NULL;
                free(all);
                all = next;
        }
        em_error_set(err, 0, "this host cannot migrate containers:%s",
                     all ? all : " (out of memory)");
        return 1;
}

int cmd_check(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--to") == 0 || strncmp(argv[i], "--to=", 5) == 0)
                        return cmd_migrate_check(cli, argc, argv, err);
        bool json = false, use_cache = true, verbose = false;
        cleanup_features struct em_features *f = NULL;
        bool no_cache = false;
        const struct em_opt table[] = {
            EM_OPT_FLAG("json", 0, &json),
            EM_OPT_FLAG("no-cache", 0, &no_cache),
            EM_OPT_FLAG("verbose", 'v', &verbose),
            EM_OPT_END,
        };
        struct em_config *cfg;
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (first < argc)
                return em_error_set(err, 0, "the pre-check of %s needs --to ADDR:PORT (see --help)",
                                    argv[first]),
                       2;
        use_cache = !no_cache;
        if (cli_config(cli, &cfg, err) < 0 || em_features_probe(cfg, use_cache, &f, err) < 0)
                return 1;
        if (json) {
                cleanup_json json_t *j = em_features_to_json(f);
                if (j == NULL)
                        return em_error_set(err, 0, "out of memory"), 1;
                if (em_json_print(j, err) < 0)
                        return 1;
        } else {
                print_text(f, cfg->root, verbose);
                fflush(stdout);
        }
        return em_features_can_migrate(f) ? 0 : fail_reasons(f, err);
}
