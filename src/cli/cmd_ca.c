#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "transfer/ca.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig ca init  [--dir DIR] [--days N] [--json]\n"
    "       edgemig ca issue NAME [--ip ADDR]... [--dir DIR] [--out DIR] [--days N] [--json]\n"
    "       edgemig ca show  [--dir DIR] [--json]\n"
    "\n"
    "Manage the platform certificate authority. Every edgemigd and controller\n"
    "authenticates its peers with mutual TLS: each presents a certificate\n"
    "issued by this CA and accepts only peers whose certificate this CA signed\n"
    "(and, with edgemigd --allow-peer NAME, whose name is on the allow-list).\n"
    "\n"
    "Commands:\n"
    "  init        create the CA: an EC P-256 key (ca.key, mode 0600) and a\n"
    "              self-signed certificate (ca.crt, CA:TRUE, keyCertSign). Refuses\n"
    "              to overwrite an existing CA: a new CA invalidates every\n"
    "              certificate issued by the old one.\n"
    "  issue NAME  issue a certificate for the edge host or controller NAME (a\n"
    "              host name: letters, digits, '-' and '.'): CN=NAME, SAN\n"
    "              DNS:NAME, usable as TLS server and client. Writes NAME.crt and\n"
    "              NAME.key (mode 0600); refuses to overwrite them. The validity\n"
    "              never extends past the CA's.\n"
    "  show        print the CA and every certificate found next to it, with\n"
    "              names, validity, fingerprints and whether the CA signed it.\n"
    "\n"
    "Options:\n"
    "  --dir DIR   the CA's directory (default $EDGEMIG_CA_DIR or\n"
    "              /etc/edgemig/ca). Never inside the state root: ca.key signs\n"
    "              every identity of the platform, so it does not belong next to\n"
    "              an edge host's own keys (<root>/pki), and `init` refuses it\n"
    "  --out DIR   where `issue` writes NAME.crt and NAME.key (default: --dir)\n"
    "  --days N    validity in days (default 3650 for init, 365 for issue)\n"
    "  --ip ADDR   `issue`: also name the IP address ADDR (SAN IP; repeatable),\n"
    "              for a host clients reach by address, not by a DNS name (a\n"
    "              controller URL like https://10.0.0.1:7880)\n"
    "  --json      machine-readable output\n"
    "\n"
    "Deploying: copy ca.crt, NAME.crt and NAME.key to host NAME (keep the key\n"
    "0600) and start `edgemigd --tls-ca ca.crt --tls-cert NAME.crt --tls-key\n"
    "NAME.key`. ca.key never needs to leave the machine that issues certificates.\n"
    "\n"
    "Exit status: 0 on success, 1 on failure, 2 on a usage error.\n";

struct ca_args {
        const char *dir, *out, *name;
        int days;
        bool json;
        bool done; /* --help or --version printed */
        const char *ips[9];
        size_t n_ips;
};

/* Returns 0 to go on, else the exit code (after --help: 0 with a->done). */
static int parse(struct em_cli *cli, int argc, char **argv, bool want_name, struct ca_args *a,
                 em_error_t *err)
{
        cleanup_opt_list struct em_opt_list ips = {0};
        const struct em_opt table[] = {
            EM_OPT_STRING("dir", 0, &a->dir),
            EM_OPT_STRING("out", 0, &a->out),
            EM_OPT_INT("days", 0, &a->days, 1, 36500),
            EM_OPT_FLAG("json", 0, &a->json),
            EM_OPT_LIST("ip", 0, &ips),
            EM_OPT_END,
        };
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        a->done = r > 0;
        if (r != 0)
                return r < 0 ? 2 : 0;
        if (ips.n > 0 && (!want_name || ips.n >= sizeof(a->ips) / sizeof(a->ips[0])))
                return em_error_set(err, 0, "--ip: only with issue, at most 8"), 2;
        for (size_t i = 0; i < ips.n; i++)
                a->ips[a->n_ips++] = ips.v[i];
        if (want_name && first < argc)
                a->name = argv[first++];
        if (want_name && a->name == NULL)
                return em_error_set(err, 0, "missing NAME\n%s", usage), 2;
        if (first < argc)
                return em_error_set(err, 0, "unexpected argument '%s'\n%s", argv[first], usage), 2;
        if (a->dir == NULL)
                a->dir = getenv("EDGEMIG_CA_DIR") ?: EM_CA_DIR_DEFAULT;
        if (a->out == NULL)
                a->out = a->dir;
        return 0;
}

static void print_cert(const json_t *c, const char *indent)
{
        const json_t *names = json_object_get(c, "names"), *n;
        size_t i;

        printf("%s%s\n", indent, em_json_str(c, "file"));
        printf("%s  subject     %s\n", indent, em_json_str(c, "subject"));
        printf("%s  names      ", indent);
        json_array_foreach(names, i, n) printf(" %s", json_string_value(n));
        printf("\n%s  valid       %s .. %s%s\n", indent, em_json_str(c, "not_before"),
               em_json_str(c, "not_after"),
               json_is_true(json_object_get(c, "expired")) ? " (EXPIRED)" : "");
        printf("%s  key         %s\n", indent, em_json_str(c, "key"));
        printf("%s  sha256      %s\n", indent, em_json_str(c, "sha256"));
        if (!json_is_true(json_object_get(c, "is_ca")))
                printf("%s  signed by CA %s\n", indent,
                       json_is_true(json_object_get(c, "signed_by_ca")) ? "yes" : "NO");
}

/* The CA key must not live in the state root, beside host keys that a
 * compromise of the edge (or a backup of its root) exposes. */
static int refuse_in_root(struct em_cli *cli, const char *dir, em_error_t *err)
{
        const char *root = em_config_root_choice(cli->root_opt);
        bool inside;

        if (em_path_within(dir, root, &inside, err) < 0)
                return -1;
        if (inside)
                return em_error_set(err, 0,
                                    "refusing to create the CA in %s, inside the state root %s: "
                                    "keep ca.key off edge hosts (--dir DIR elsewhere, default "
                                    "%s)",
                                    dir, root, EM_CA_DIR_DEFAULT);
        return 0;
}

static int ca_init(struct em_cli *cli, struct ca_args *a, em_error_t *err)
{
        cleanup_json json_t *j = NULL;

        if (refuse_in_root(cli, a->dir, err) < 0)
                return 1;
        if (em_ca_init(a->dir, a->days ? a->days : EM_CA_DAYS_DEFAULT, err) < 0 ||
            em_ca_show(a->dir, &j, err) < 0)
                return 1;
        if (a->json)
                return em_json_print(json_object_get(j, "ca"), err) < 0;
        printf("created CA in %s (ca.crt, ca.key mode 0600)\n", a->dir);
        print_cert(json_object_get(j, "ca"), "  ");
        return 0;
}

static int ca_issue(struct ca_args *a, em_error_t *err)
{
        cleanup_free char *crt = NULL;
        cleanup_free char *key = NULL;
        cleanup_json json_t *j = NULL;

        if (em_ca_issue_ips(a->dir, a->name, a->n_ips ? a->ips : NULL, a->out,
                            a->days ? a->days : EM_CERT_DAYS, &crt, err) < 0)
                return 1;
        if (asprintf(&key, "%s/%s.key", a->out, a->name) < 0)
                return em_error_set(err, ENOMEM, "allocating"), 1;
        if (a->json) {
                j = json_pack("{s:s, s:s, s:s, s:s}", "name", a->name, "cert", crt, "key", key,
                              "ca_dir", a->dir);
                return em_json_print(j, err) < 0;
        }
        printf("issued %s: %s and %s (mode 0600)\n", a->name, crt, key);
        return 0;
}

static int ca_show(struct ca_args *a, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        const json_t *c;
        size_t i;

        if (em_ca_show(a->dir, &j, err) < 0)
                return 1;
        if (a->json)
                return em_json_print(j, err) < 0;
        printf("CA in %s\n", a->dir);
        print_cert(json_object_get(j, "ca"), "  ");
        printf("certificates: %zu\n", json_array_size(json_object_get(j, "certificates")));
        json_array_foreach(json_object_get(j, "certificates"), i, c) print_cert(c, "  ");
        return 0;
}

int cmd_ca(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct ca_args a = {0};
        const char *sub;
        int rc;

        if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
                cli_print_help(usage);
                return argc < 2 ? 2 : 0;
        }
        sub = argv[1];
        if (strcmp(sub, "init") != 0 && strcmp(sub, "issue") != 0 && strcmp(sub, "show") != 0) {
                em_error_set(err, 0, "unknown command '%s'\n%s", sub, usage);
                return 2;
        }
        rc = parse(cli, argc - 1, argv + 1, strcmp(sub, "issue") == 0, &a, err);
        if (rc == 0 && !a.done) {
                if (strcmp(sub, "init") == 0)
                        rc = ca_init(cli, &a, err);
                else if (strcmp(sub, "issue") == 0)
                        rc = ca_issue(&a, err);
                else
                        rc = ca_show(&a, err);
        }
        return rc;
}
