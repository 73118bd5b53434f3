#include <stdio.h>

#include "cli/cli.h"
#include "container/container.h"

static const char start_usage[] =
    "Usage: edgemig start NAME\n"
    "\n"
    "Start a stopped container again. Its writable layer\n"
    "(<root>/containers/NAME/upper) is kept: files it wrote before the stop are\n"
    "still there. The overlay, the network namespace with the same service IP\n"
    "and the host route are set up again as by `run`, and output is appended to\n"
    "the same log. A container whose processes died (`ps` shows it stopped) is\n"
    "started the same way; edgemigd does it by itself under a restart policy\n"
    "(`run --restart`, docs/lifecycle.md).\n"
    "\n"
    "Fails if the container is running, checkpointed or owned by a migration.\n"
    "With $EDGEMIG_ROUTE_HOOK set, runs `$EDGEMIG_ROUTE_HOOK announce IP` for its\n"
    "service IP once it runs (docs/deploy.md, section 5a).\n";

static const char restart_usage[] =
    "Usage: edgemig restart [-t SECONDS] NAME\n"
    "\n"
    "Stop the container (as `stop`: SIGTERM, then SIGKILL after SECONDS) if it\n"
    "runs, then start it again on its writable layer (as `start`, which also\n"
    "runs the route hook).\n"
    "\n"
    "  -t, --time SECONDS   grace period before SIGKILL (default 10, at most 3600;\n"
    "                       0: kill at once)\n";

static const char kill_usage[] =
    "Usage: edgemig kill [-s SIGNAL] NAME\n"
    "\n"
    "Send SIGNAL to the init process of the running container NAME. Unlike\n"
    "`stop`, nothing else is done: if the process ends, the container counts as\n"
    "died (its runtime resources stay until `start`, `stop` or `rm`) and its\n"
    "restart policy applies.\n"
    "\n"
    "  -s, --signal SIGNAL   a name (TERM, SIGHUP, usr1) or a number (default KILL)\n";

static int one_name(const char *usage, const struct em_opt *table, int argc, char **argv,
                    int *first, em_error_t *err)
{
        int r = cli_parse(usage, table, argc, argv, first, err);

        if (r != 0)
                return r < 0 ? 2 : 1;
        if (cli_operands(argc, argv, *first, 1, 1, "container NAME", err) < 0)
                return 2;
        return 0;
}

int cmd_start(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        const struct em_opt table[] = {EM_OPT_END};
        struct em_config *cfg;
        int first, r = one_name(start_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r == 1 ? 0 : r;
        if (cli_config(cli, &cfg, err) < 0 || em_container_start(cfg, argv[first], err) < 0 ||
            cli_route(cfg, "announce", argv[first], NULL, "runs", err) < 0)
                return 1;
        printf("%s\n", argv[first]);
        return 0;
}

int cmd_restart(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        int timeout = 10, first;
        const struct em_opt table[] = {
            EM_OPT_DURATION("time", 't', &timeout, EM_OPT_S, EM_OPT_S, 0, 3600),
            EM_OPT_END,
        };
        struct em_config *cfg;
        int r = one_name(restart_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r == 1 ? 0 : r;
        if (cli_config(cli, &cfg, err) < 0 ||
            em_container_restart(cfg, argv[first], timeout, err) < 0 ||
            cli_route(cfg, "announce", argv[first], NULL, "runs", err) < 0)
                return 1;
        printf("%s\n", argv[first]);
        return 0;
}

int cmd_kill(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        const char *sig = "KILL";
        const struct em_opt table[] = {EM_OPT_STRING("signal", 's', &sig), EM_OPT_END};
        struct em_config *cfg;
        int first, signo, r = one_name(kill_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r == 1 ? 0 : r;
        if (em_signal_parse(sig, &signo, err) < 0)
                return em_error_wrap(err, "--signal"), 2;
        if (cli_config(cli, &cfg, err) < 0 || em_container_kill(cfg, argv[first], sig, err) < 0)
                return 1;
        printf("%s\n", argv[first]);
        return 0;
}
