/* edgemig control: send a controller's migrate/prepare request to an edge. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform/control.h"
#include "platform/control_client.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig control EDGE_ADDR:PORT migrate|prepare SERVICE --to ADDR:PORT\n"
    "                       [--mode MODE] [--edge NAME] [--timeout SECONDS] [--json]\n"
    "                       [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
    "       edgemig control EDGE_ADDR:PORT cancel SESSION [--edge NAME] [--json] ...\n"
    "\n"
    "Ask the edgemigd at EDGE_ADDR:PORT, as the platform controller does, to\n"
    "migrate (or prepare) its container SERVICE to the edgemigd at --to. The\n"
    "request goes over mutual TLS with this host's certificate (default\n"
    "<root>/pki, as `edgemig migrate`); the edge runs it only if that\n"
    "certificate's name is one of its `edgemigd --allow-controller` names, and\n"
    "answers with the migration report. `cancel SESSION` asks it to cancel the\n"
    "migration with that session id it runs as a source (`edgemig migrate\n"
    "--cancel` there): the answer comes once it rolled back.\n"
    "\n"
    "  --mode MODE        precopy (default), stop-and-copy, postcopy, hybrid, auto\n"
    "  --edge NAME        the name the edge's certificate must carry (default:\n"
    "                     any certificate of the platform CA)\n"
    "  --timeout SECONDS  wait this long for the answer (default 300)\n"
    "  --json             print the edge's whole answer\n"
    "\n"
    "Exit status: 0 done; 1 refused or failed (the message says why); 2 usage.\n";

/* Built as JSON and parsed back: the edge's own validation, here first.
 * words: ADDR, OP, SERVICE. */
static int build_request(char **words, const char *to, const char *mode, struct em_control_req *req,
                         em_error_t *err)
{
        bool cancel = strcmp(words[1], "cancel") == 0;
        cleanup_json json_t *j =
            cancel ? json_pack("{s:s, s:s}", "op", "cancel", "session", words[2])
                   : json_pack("{s:s, s:s, s:s}", "op", words[1], "service", words[2], "to", to);

        if (j && mode)
                json_object_set_new(j, "mode", json_string(mode));
        cleanup_free char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (text == NULL)
                return em_error_set(err, ENOMEM, "building the request");
        return em_control_req_parse(text, strlen(text), req, err);
}

/* The client context for the request: --tls-* or this host's default
 * certificate; edge (if given) must be the name on the edge's. Returns 0,
 * or the exit status (1, 2 for usage) with err set. */
static int control_tls(struct em_cli *cli, const char *edge, const char *cert, const char *key,
                       const char *ca, em_tls_ctx_t **tls, em_error_t *err)
{
        cleanup_free char *dca = NULL, *dcert = NULL, *dkey = NULL;
        struct em_config *cfg;

        if (!(cert || key || ca)) {
                if (cli_config(cli, &cfg, err) < 0)
                        return 1;
                int have = em_tls_default_paths(cfg->root, NULL, &dca, &dcert, &dkey, err);
                if (have < 0)
                        return 1;
                if (have == 0)
                        return em_error_set(err, 0,
                                            "control requests need a certificate: pass --tls-cert "
                                            "FILE --tls-key FILE --tls-ca FILE, or create %s",
                                            dcert),
                               2;
                cert = dcert, key = dkey, ca = dca;
        } else if (!(cert && key && ca)) {
                return em_error_set(err, 0, "--tls-cert, --tls-key and --tls-ca go together"), 2;
        }
        const char *const allow[] = {edge, NULL};
        struct em_tls_config tc = {ca, cert, key, edge ? allow : NULL};
        return em_tls_ctx_new(&tc, false, tls, err) < 0 ? 1 : 0;
}

int cmd_control(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        cleanup_conn em_conn_t *conn = NULL;
        cleanup_json json_t *reply = NULL;
        struct em_control_req req = {.mode = EM_MIGRATE_PRECOPY};
        const char *to = NULL, *mode = NULL, *edge = NULL, *cert = NULL, *key = NULL, *ca = NULL;
        int timeout_ms = 300000, first;
        bool json = false;
        const struct em_opt table[] = {
            EM_OPT_STRING("to", 0, &to),
            EM_OPT_STRING("mode", 0, &mode),
            EM_OPT_STRING("edge", 0, &edge),
            EM_OPT_DURATION("timeout", 0, &timeout_ms, EM_OPT_S, EM_OPT_MS, 1, INT_MAX),
            EM_OPT_FLAG("json", 0, &json),
            EM_OPT_STRING("tls-cert", 0, &cert),
            EM_OPT_STRING("tls-key", 0, &key),
            EM_OPT_STRING("tls-ca", 0, &ca),
            EM_OPT_END,
        };
        int r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        bool cancel = first + 3 == argc && strcmp(argv[first + 1], "cancel") == 0;
        if (first + 3 != argc || (to == NULL) != cancel)
                return em_error_set(err, 0,
                                    "expected EDGE_ADDR:PORT migrate|prepare SERVICE "
                                    "--to ADDR:PORT, or EDGE_ADDR:PORT cancel SESSION; see "
                                    "--help"),
                       2;
        if (build_request(argv + first, to, mode, &req, err) < 0)
                return 2;
        int rc = control_tls(cli, edge, cert, key, ca, &tls, err);
        if (rc != 0)
                return rc;
        if (em_tls_connect(tls, argv[first], 10000, &conn, NULL, err) < 0)
                return em_error_wrap(err, "connecting to edgemigd at %s", argv[first]), 1;
        if (em_control_exchange(conn, &req, timeout_ms, &reply, err) < 0)
                return 1;
        if (json)
                em_json_print(reply, NULL);
        if (!json_is_true(json_object_get(reply, "ok")))
                return em_error_set(err, 0, "%s %s refused or failed: %s", argv[first + 1],
                                    argv[first + 2],
                                    em_json_str(reply, "error") ? em_json_str(reply, "error")
                                                                : "no reason given"),
                       1;
        if (!json && cancel)
                printf("cancel %s: done, it runs on the edge again\n", req.session);
        else if (!json)
                printf("%s %s to %s: done\n", em_control_op_name(req.op), req.service, req.to);
        return 0;
}
