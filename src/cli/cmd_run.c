#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "container/container.h"
#include "util/cleanup.h"

static const char usage[] =
    "Usage: edgemig run --name NAME [--ip ADDR[/LEN]] [-e K=V]... [--memory BYTES]\n"
    "                   [--cpus N] IMAGE [CMD...]\n"
    "\n"
    "Create and start a detached container from IMAGE (an image in the store: full\n"
    "reference, name:tag, bare name or manifest digest prefix).\n"
    "\n"
    "The root file system is an overlay: the image's layers, read-only and shared,\n"
    "under the container's own writable layer in <root>/containers/NAME/upper.\n"
    "The container gets its own network namespace (<root>/netns/NAME) with a\n"
    "service IP on eth0 as a /32 and a default route via 169.254.1.1 on the host\n"
    "side of a veth pair; the host routes the /32 to it. The service IP belongs\n"
    "to the container and moves with it on migration.\n"
    "\n"
    "stdout and stderr are appended to <root>/containers/NAME/log (see `logs`).\n"
    "\n"
    "Options:\n"
    "  --name NAME        container name: letters, digits, '_', '.', '-' (required)\n"
    "  --ip ADDR[/LEN]    service IP; default: the lowest free address of\n"
    "                     $EDGEMIG_SUBNET (default 10.88.0.0/16)\n"
    "  -e, --env K=V      set an environment variable (repeatable; overrides the image)\n"
    "  --memory BYTES     memory limit (suffixes k, m, g accepted)\n"
    "  --cpus N           CPU limit, e.g. 0.5\n"
    "  -h, --help         show this help\n"
    "\n"
    "CMD replaces the image's Cmd (the Entrypoint is kept).\n";

static int parse_bytes(const char *s, uint64_t *out)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -1;
        switch (*end) {
        case 'k':
        case 'K':
                v <<= 10;
                end++;
                break;
        case 'm':
        case 'M':
                v <<= 20;
                end++;
                break;
        case 'g':
        case 'G':
                v <<= 30;
                end++;
                break;
        default:
                break;
        }
        if (*end == 'b' || *end == 'B')
                end++;
        if (*end != '\0')
                return -1;
        *out = v;
        return 0;
}

int cmd_run(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        static const struct option opts[] = {
            {"name", required_argument, NULL, 'n'}, {"ip", required_argument, NULL, 'i'},
            {"env", required_argument, NULL, 'e'},  {"memory", required_argument, NULL, 'm'},
            {"cpus", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
        struct em_run_opts o = {0};
        cleanup_free const char **env = calloc((size_t)argc + 1, sizeof(char *));
        struct em_config *cfg;
        size_t n_env = 0;
        int c;

        if (cli_wants_help(argc, argv)) {
                cli_print_help(usage);
                return 0;
        }
        if (env == NULL)
                return em_error_set(err, ENOMEM, "run"), 1;
        optind = 0; /* re-initialise glibc getopt (main parsed with "+") */
        while ((c = getopt_long(argc, argv, "+e:", opts, NULL)) != -1) {
                switch (c) {
                case 'n':
                        o.name = optarg;
                        break;
                case 'i':
                        o.ip = optarg;
                        break;
                case 'e':
                        if (strchr(optarg, '=') == NULL)
                                return em_error_set(err, 0, "-e takes K=V, got '%s'", optarg), 2;
                        env[n_env++] = optarg;
                        break;
                case 'm':
                        if (parse_bytes(optarg, &o.memory) < 0)
                                return em_error_set(err, 0, "bad --memory '%s'", optarg), 2;
                        break;
                case 'c':
                        o.cpus = strtod(optarg, NULL);
                        if (o.cpus <= 0)
                                return em_error_set(err, 0, "bad --cpus '%s'", optarg), 2;
                        break;
                default:
                        return em_error_set(err, 0, "see 'edgemig run --help'"), 2;
                }
        }
        if (o.name == NULL || optind >= argc)
                return em_error_set(err, 0, "--name and IMAGE are required\n%s", usage), 2;
        o.image = argv[optind];
        o.env = env;
        o.cmd = optind + 1 < argc ? (const char *const *)argv + optind + 1 : NULL;
        if (cli_config(cli, &cfg, err) < 0 || em_container_run(cfg, &o, err) < 0)
                return 1;
        printf("%s\n", o.name);
        return 0;
}
