/* edgemig recover: finish or roll back migrations whose process died, settle
 * those in doubt with the other host, and take the operator's word when
 * that host is gone for good. */
#include <stdio.h>
#include <string.h>

#include "checkpoint/pod_ckpt.h"
#include "cli/cli.h"
#include "migrate/common/doubt.h"
#include "migrate/common/journal.h"
#include "migrate/common/resolve.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig recover [--json] [--tls-cert FILE --tls-key FILE --tls-ca FILE |\n"
    "                        --insecure]\n"
    "       edgemig recover --keep-local SESSION   (on the source host)\n"
    "       edgemig recover --keep-here SESSION    (on the target host)\n"
    "\n"
    "Finish or roll back migrations whose edgemig or edgemigd process died\n"
    "mid-way (crash, kill, power loss), using the journal each session keeps\n"
    "in <root>/outgoing/<id>/ and the target's records in <root>/outcomes/:\n"
    "  - a migration whose container was checkpointed here and whose commit\n"
    "    was never acknowledged is in doubt: the target is asked for the\n"
    "    outcome (a fresh mutually authenticated connection, as this host)\n"
    "    and the copy it names is kept: the target's if it runs one, else\n"
    "    this host's, restored only after the target confirmed it has none;\n"
    "  - a container handed over (committed) is removed here;\n"
    "  - on a target, a session that died before its restore is rolled back;\n"
    "    a restored one keeps running until its source settles it.\n"
    "A pod whose `edgemig pod checkpoint` died midway (its journal in\n"
    "<root>/pod-checkpoints/) runs here again: its containers already dumped\n"
    "are restored from the partial checkpoint, the others thawed, its traffic\n"
    "let through again.\n"
    "Sessions whose process is still alive are left alone. edgemigd runs\n"
    "this itself when it starts and whenever a session process dies.\n"
    "\n"
    "A session stays in doubt while the other host does not answer; the\n"
    "service then runs on at most one host (the target, or nowhere: the\n"
    "source keeps its checkpoint stopped). Each is listed with its fix:\n"
    "  --keep-local SESSION  the target is gone for good: restore the container\n"
    "                        here from the kept checkpoint (refused while the\n"
    "                        target answers)\n"
    "  --keep-here SESSION   the source is gone for good: keep the container\n"
    "                        running here (always safe: the source never\n"
    "                        restores its copy without this host's abort)\n"
    "\n"
    "  --tls-cert FILE, --tls-key FILE, --tls-ca FILE\n"
    "             this host's certificate for asking targets (default:\n"
    "             <root>/pki/, as `edgemig migrate`)\n"
    "  --insecure plain TCP, for migrations that ran with --insecure\n"
    "  --json     print {\"outgoing\": N, \"incoming\": N, \"pods\": N,\n"
    "             \"in_doubt\": [{\"side\",\n"
    "             \"session\", \"container\", \"target\"|\"peer\", \"fix\"}]}\n"
    "\n"
    "Exit status: 0 if nothing is left in doubt, 1 otherwise or on an error.\n";

struct recover_opts {
        bool json, insecure;
        const char *keep_local, *keep_here, *cert, *key, *ca;
};

static int parse(int argc, char **argv, struct recover_opts *r, em_error_t *err)
{
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &r->json),
                                       EM_OPT_FLAG("insecure", 0, &r->insecure),
                                       EM_OPT_STRING("keep-local", 0, &r->keep_local),
                                       EM_OPT_STRING("keep-here", 0, &r->keep_here),
                                       EM_OPT_STRING("tls-cert", 0, &r->cert),
                                       EM_OPT_STRING("tls-key", 0, &r->key),
                                       EM_OPT_STRING("tls-ca", 0, &r->ca),
                                       EM_OPT_END};
        int first, rc = cli_parse(usage, table, argc, argv, &first, err);

        if (rc != 0)
                return rc;
        if (cli_operands(argc, argv, first, 0, 0, "", err) < 0)
                return -1;
        if (r->keep_local && r->keep_here)
                return em_error_set(err, 0, "--keep-local and --keep-here exclude each other");
        return 0;
}

/* This host's certificate in the client role (none with --insecure, or
 * when there is none: then only sessions without TLS can be settled). */
static int client_tls(const struct em_config *cfg, const struct recover_opts *r, em_tls_ctx_t **out,
                      em_error_t *err)
{
        cleanup_free char *ca = NULL, *cert = NULL, *key = NULL;
        bool given = r->cert || r->key || r->ca;

        if (r->insecure)
                return given ? em_error_set(err, 0, "--insecure excludes --tls-*") : 0;
        if (given && (!r->cert || !r->key || !r->ca))
                return em_error_set(err, 0, "--tls-cert, --tls-key and --tls-ca go together");
        if (!given) {
                int have = em_tls_default_paths(cfg->root, NULL, &ca, &cert, &key, err);
                if (have <= 0)
                        return have;
        }
        struct em_tls_config tc = {r->ca ? r->ca : ca, r->cert ? r->cert : cert,
                                   r->key ? r->key : key, NULL};
        return em_tls_ctx_new(&tc, false, out, err);
}

static void print_doubt(const json_t *list)
{
        size_t i;
        json_t *d;

        json_array_foreach(list, i, d)
        {
                printf("in doubt: session %s (%s) as %s: %s\n", em_json_str(d, "session"),
                       em_json_str(d, "container") ? em_json_str(d, "container") : "?",
                       em_json_str(d, "side"), em_json_str(d, "fix"));
        }
}

static int recover_all(struct em_config *cfg, const struct recover_opts *r,
                       const struct em_resolve_opts *ro, em_error_t *err)
{
        cleanup_json json_t *doubt = NULL;
        /* Pods first: a pod migration's checkpoint lies in its session's
         * staging, which the session's own recovery removes. */
        int pods = em_pod_checkpoint_recover(cfg, EM_POD_RECOVER_WAIT_MS, NULL, err);

        if (pods < 0)
                return 1;
        int out = em_migrate_source_recover(cfg, ro, err);
        if (out < 0)
                return 1;
        int in = em_migrate_target_recover(cfg, 0, getenv("EDGEMIG_ROUTE_HOOK"), err);
        if (in < 0 || em_migrate_in_doubt(cfg, &doubt, err) < 0)
                return 1;
        if (r->json) {
                cleanup_json json_t *j = json_pack("{s:i, s:i, s:i, s:O}", "outgoing", out,
                                                   "incoming", in, "pods", pods, "in_doubt", doubt);
                if (em_json_print(j, err) < 0)
                        return 1;
        } else {
                printf("recovered %d outgoing and %d incoming migration(s)\n", out, in);
                if (pods > 0)
                        printf("recovered %d pod checkpoint(s)\n", pods);
                print_doubt(doubt);
        }
        return json_array_size(doubt) > 0 ? 1 : 0;
}

int cmd_recover(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct recover_opts r = {0};
        struct em_resolve_opts ro;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        struct em_config *cfg;

        int rc = parse(argc, argv, &r, err);

        if (rc != 0)
                return rc < 0 ? 2 : 0;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        if (r.keep_here)
                return em_migrate_keep_here(cfg, r.keep_here, err) < 0 ? 1 : 0;
        if (client_tls(cfg, &r, &tls, err) < 0)
                return 2;
        em_resolve_opts_init(&ro);
        ro.tls = tls;
        ro.route_hook = getenv("EDGEMIG_ROUTE_HOOK");
        if (r.keep_local)
                return em_migrate_keep_local(cfg, &ro, r.keep_local, err) < 0 ? 1 : 0;
        return recover_all(cfg, &r, &ro, err);
}
