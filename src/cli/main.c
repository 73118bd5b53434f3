/* edgemig: the command-line front end. It only parses, calls libedgemig and prints. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/log.h"
#include "util/version.h"

static const struct cli_command commands[] = {
    {"check", cmd_check, "probe this host: can it checkpoint, restore and migrate?"},
    {"image", cmd_image, "pull, push, import, list, inspect, remove and prune images"},
    {"run", cmd_run, "create and start a detached container"},
    {"ps", cmd_ps, "list containers"},
    {"inspect", cmd_inspect, "show a container as JSON"},
    {"logs", cmd_logs, "print a container's output"},
    {"exec", cmd_exec, "run a command in a running container"},
    {"start", cmd_start, "start a stopped container again on its writable layer"},
    {"stop", cmd_stop, "stop a container and release its resources"},
    {"restart", cmd_restart, "stop and start a container"},
    {"kill", cmd_kill, "send a signal to a container's init"},
    {"rm", cmd_rm, "remove a container"},
    {"ip", cmd_ip, "list or release the service IPs kept for migrated-away containers"},
    {"volume", cmd_volume, "list, inspect, remove and prune named volumes"},
    {"pod", cmd_pod, "create, list, inspect and remove pods (containers sharing a network)"},
    {"checkpoint", cmd_checkpoint, "checkpoint a container to a directory"},
    {"restore", cmd_restore, "restore a container from a checkpoint directory"},
    {"migrate", cmd_migrate, "live-migrate a container to another edge host"},
    {"recover", cmd_recover, "finish or roll back migrations whose process died"},
    {"prepare", cmd_prepare, "pre-transfer layers and base memory to a likely target"},
    {"control", cmd_control, "ask an edge, as the controller does, to migrate or prepare"},
    {"platform", cmd_platform, "list the platform controller's edges, services, users, migrations"},
    {"ca", cmd_ca, "create the platform CA and issue peer certificates"},
    {"debug", cmd_debug, "decode edgemig's binary files (`debug decode FILE`)"},
    {"version", cmd_version, "print version information"},
    {"netns-hook", cmd_netns_hook, "(internal) runc's hook that wires a container's network"},
};

static const char main_usage[] =
    "Usage: edgemig [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
    "\n"
    "Live-migrate containerized edge services between edge hosts. Only the\n"
    "writable container layer and the process state cross the link; image layers\n"
    "are shared by content digest.\n"
    "\n"
    "Global options:\n"
    "  --root DIR            state root (default $EDGEMIG_ROOT or /var/lib/edgemig)\n"
    "  --log-level LEVEL     error, warn, info (default) or debug\n"
    "  --log-format FORMAT   text (default) or json\n"
    "  -h, --help            show this help; `edgemig COMMAND --help` for a command\n"
    "  --version             print the version (`edgemig version --json` for more)\n"
    "\n"
    "Commands:\n";

static void print_main_usage(FILE *f)
{
        fputs(main_usage, f);
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
        fputs("\nEnvironment: EDGEMIG_ROOT, EDGEMIG_CRIU (CRIU binary), EDGEMIG_RUNC,\n"
              "EDGEMIG_ROUTE_HOOK (run, start, restart, stop, rm, migrate, recover).\n",
              f);
}

int cli_config(struct em_cli *cli, struct em_config **out, em_error_t *err)
{
        if (!cli->cfg_ready) {
                if (em_config_init(&cli->cfg, cli->root_opt, err) < 0)
                        return -1;
                cli->cfg_ready = true;
        }
        *out = &cli->cfg;
        return 0;
}

void cli_print_help(const char *text)
{
        fputs(text, stdout);
}

int cli_parse(const char *usage, const struct em_opt *table, int argc, char **argv, int *first,
              em_error_t *err)
{
        return cli_parse_flags(usage, table, 0, argc, argv, first, err);
}

int cli_parse_flags(const char *usage, const struct em_opt *table, unsigned flags, int argc,
                    char **argv, int *first, em_error_t *err)
{
        int r = em_opts_parse(table, argc, argv, flags, first, err);

        if (r < 0)
                return -1;
        if (r == EM_OPTS_HELP)
                cli_print_help(usage);
        else if (r == EM_OPTS_VERSION)
                printf("edgemig %s\n", EM_VERSION);
        return r == EM_OPTS_OK ? 0 : 1;
}

int cli_operands(int argc, char **argv, int first, int min, int max, const char *what,
                 em_error_t *err)
{
        int n = argc - first;

        if (n > max)
                return em_error_set(err, 0, "unexpected argument '%s'; see --help",
                                    argv[first + max]);
        if (n < min)
                return em_error_set(err, 0, "missing %s; see --help", what);
        return 0;
}

/* Returns the index of the command, or -1 (exit 2) or 0 (exit 0). */
static int parse_globals(int argc, char **argv, struct em_cli *cli)
{
        struct em_log_opts lo = EM_LOG_OPTS_INIT;
        const struct em_opt table[] = {EM_OPT_STRING("root", 0, &cli->root_opt), EM_OPT_LOG(&lo),
                                       EM_OPT_END};
        cleanup_error em_error_t err = NULL;
        int first, r = em_opts_parse(table, argc, argv, EM_OPTS_STOP_AT_OPERAND, &first, &err);

        if (r < 0) {
                fprintf(stderr, "edgemig: %s; see 'edgemig --help'\n", em_error_msg(err));
                return -1;
        }
        if (r == EM_OPTS_HELP)
                print_main_usage(stdout);
        if (r == EM_OPTS_VERSION)
                printf("edgemig %s\n", EM_VERSION);
        if (r != EM_OPTS_OK)
                return 0;
        em_log_setup(lo.level, lo.json, 2, "edgemig");
        return first;
}

int main(int argc, char **argv)
{
        struct em_cli cli = {0};
        cleanup_error em_error_t err = NULL;

        signal(SIGPIPE, SIG_IGN);
        int first = parse_globals(argc, argv, &cli);
        if (first <= 0)
                return first < 0 ? 2 : 0;
        if (first >= argc) {
                print_main_usage(stderr);
                return 2;
        }
        const char *verb = argv[first];
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, verb) != 0)
                        continue;
                int rc = commands[i].fn(&cli, argc - first, argv + first, &err);
                if (rc != 0 && err != NULL)
                        fprintf(stderr, "edgemig %s: %s\n", verb, em_error_msg(err));
                if (cli.cfg_ready)
                        em_config_free(&cli.cfg);
                return rc;
        }
        fprintf(stderr, "edgemig: unknown command '%s'; run 'edgemig --help' for the list\n", verb);
        return 2;
}
