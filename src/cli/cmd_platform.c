/* edgemig platform: list what the edge platform controller knows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform/http.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "transfer/tls.h"

static const char usage[] =
    "Usage: edgemig platform edges|services|users|migrations [--controller URL] [--json]\n"
    "                        [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
    "\n"
    "List the edges, services, users or migration history (prepares and\n"
    "migrations the scheduler triggered) of an edgemig-controller.\n"
    "\n"
    "  --controller URL   controller base URL (default $EDGEMIG_CONTROLLER or\n"
    "                     https://localhost:7880)\n"
    "  --tls-cert FILE    client certificate for an https:// controller (default\n"
    "                     <root>/pki/HOST.crt, as `edgemig migrate`)\n"
    "  --tls-key FILE     its key (default <root>/pki/HOST.key)\n"
    "  --tls-ca FILE      the platform CA the controller's certificate must chain\n"
    "                     to (default <root>/pki/ca.crt)\n"
    "  --json             print the controller's JSON\n";

/* Columns printed per list: JSON key and header width. */
static const struct {
        const char *what;
        const char *cols[8];
} tables[] = {
    {"edges", {"name", "addr", "x", "y", "capacity", "load", "containers", NULL}},
    {"services", {"name", "user", "edge", "ip", "busy", NULL}},
    {"users", {"name", "x", "y", "serving", "reports", NULL}},
    {"migrations", {"id", "kind", "service", "source", "target", "duration_ms", "status", NULL}},
};

static int http_get_json(const char *url, const struct em_http_tls *t, json_t **out,
                         em_error_t *err)
{
        cleanup_free char *buf = NULL;

        long status = em_http_request(url, NULL, t, 10000, &buf, err);
        if (status < 0)
                return -1;
        if (status != 200)
                return em_error_set(err, EIO, "GET %s: HTTP %ld: %s", url, status, buf);
        return em_json_parse(buf, strlen(buf), url, out, err);
}

static void print_cell(const json_t *v)
{
        if (json_is_string(v))
                printf("%-16s", json_string_value(v));
        else if (json_is_integer(v))
                printf("%-16lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
                printf("%-16g", json_real_value(v));
        else
                printf("%-16s", "-");
}

static void print_table(size_t t, const json_t *rows)
{
        for (int c = 0; tables[t].cols[c]; c++)
                printf("%-16s", tables[t].cols[c]);
        printf("\n");
        for (size_t i = 0; i < json_array_size(rows); i++) {
                for (int c = 0; tables[t].cols[c]; c++)
                        print_cell(json_object_get(json_array_get(rows, i), tables[t].cols[c]));
                printf("\n");
        }
}

/* An https:// controller wants this host's certificate of the platform CA:
 * the given files, else <root>/pki's like `edgemig migrate`. */
static int resolve_tls(struct em_cli *cli, const char *base, struct em_http_tls *t, char **ca,
                       char **cert, char **key, em_error_t *err)
{
        struct em_config *cfg;
        bool any = t->cert || t->key || t->ca;

        if (strncmp(base, "https://", 8) != 0) {
                if (any)
                        return em_error_set(err, EINVAL, "--tls-* need an https:// controller");
                return 0;
        }
        if (any && !(t->cert && t->key && t->ca))
                return em_error_set(err, EINVAL, "--tls-cert, --tls-key and --tls-ca go together");
        if (any)
                return 0;
        if (cli_config(cli, &cfg, err) < 0)
                return -1;
        int have = em_tls_default_paths(cfg->root, NULL, ca, cert, key, err);
        if (have < 0)
                return -1;
        if (have == 0)
                return em_error_set(err, ENOENT,
                                    "the controller wants a client certificate: pass --tls-cert "
                                    "FILE --tls-key FILE --tls-ca FILE, or create %s with "
                                    "`edgemig ca`",
                                    *cert);
        *t = (struct em_http_tls){.cert = *cert, .key = *key, .ca = *ca};
        return 0;
}

int cmd_platform(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        cleanup_free char *ca = NULL, *cert = NULL, *key = NULL;
        struct em_http_tls tls = {0};
        const char *base = getenv("EDGEMIG_CONTROLLER"), *what = NULL;
        bool json = false;

        const struct em_opt table[] = {
            EM_OPT_FLAG("json", 0, &json),           EM_OPT_STRING("controller", 0, &base),
            EM_OPT_STRING("tls-cert", 0, &tls.cert), EM_OPT_STRING("tls-key", 0, &tls.key),
            EM_OPT_STRING("tls-ca", 0, &tls.ca),     EM_OPT_END,
        };
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 0, 1, "", err) < 0)
                return 2;
        what = first < argc ? argv[first] : NULL;
        size_t t = 0;
        while (what && t < sizeof(tables) / sizeof(tables[0]) && strcmp(tables[t].what, what))
                t++;
        if (what == NULL || t == sizeof(tables) / sizeof(tables[0]))
                return em_error_set(err, EINVAL, "say edges, services, users or migrations\n%s",
                                    usage),
                       2;
        cleanup_free char *url = NULL;
        if (base == NULL)
                base = "https://localhost:7880";
        if (resolve_tls(cli, base, &tls, &ca, &cert, &key, err) < 0)
                return 2;
        if (asprintf(&url, "%s/%s", base, what) < 0)
                return em_error_set(err, ENOMEM, "url"), 1;
        cleanup_json json_t *rows = NULL;
        if (http_get_json(url, &tls, &rows, err) < 0)
                return 1;
        if (json)
                return em_json_print(rows, err) < 0 ? 1 : 0;
        print_table(t, rows);
        return 0;
}
