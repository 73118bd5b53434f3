#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "container/container.h"
#include "container/routehook.h"
#include "util/cleanup.h"

static const char stop_usage[] =
    "Usage: edgemig stop [-t SECONDS] NAME\n"
    "\n"
    "Send SIGTERM to the container's init, wait up to SECONDS (default 10), then\n"
    "SIGKILL. Then release everything the container held at run time: runc\n"
    "state, cgroups, the overlay mount, the network namespace, the veth pair and\n"
    "the host route. Its files (writable layer, log) stay until `rm`. With\n"
    "$EDGEMIG_ROUTE_HOOK set, then runs `$EDGEMIG_ROUTE_HOOK withdraw IP` for its\n"
    "service IP (docs/deploy.md, section 5a).\n"
    "\n"
    "  -t, --time SECONDS   grace period before SIGKILL (default 10, at most 3600;\n"
    "                       0: kill at once)\n";

static const char rm_usage[] =
    "Usage: edgemig rm [-f] NAME\n"
    "\n"
    "Remove a container that is not running: its writable layer, bundle, log and\n"
    "state. Image layers stay in the store. With $EDGEMIG_ROUTE_HOOK set, then\n"
    "runs `$EDGEMIG_ROUTE_HOOK withdraw IP` for the service IP it had.\n"
    "\n"
    "  -f, --force   stop it first (SIGKILL) if it is running\n";

int cmd_stop(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        int timeout = 10, first;
        const struct em_opt table[] = {
            EM_OPT_DURATION("time", 't', &timeout, EM_OPT_S, EM_OPT_S, 0, 3600),
            EM_OPT_END,
        };
        struct em_config *cfg;
        int r = cli_parse(stop_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "container NAME", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0 ||
            em_container_stop(cfg, argv[first], timeout, err) < 0 ||
            cli_route(cfg, "withdraw", argv[first], NULL, "is stopped", err) < 0)
                return 1;
        printf("%s\n", argv[first]);
        return 0;
}

int cmd_rm(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        bool force = false;
        const struct em_opt table[] = {EM_OPT_FLAG("force", 'f', &force), EM_OPT_END};
        struct em_config *cfg;
        cleanup_free char *ip = NULL;
        int first, r = cli_parse(rm_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "container NAME", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        /* The address goes with the container's row: read it first. */
        if (cli_route_hook() != NULL && em_route_hook_container_ip(cfg, argv[first], &ip, err) < 0)
                return 1;
        if (em_container_rm(cfg, argv[first], force, err) < 0 ||
            (ip != NULL && cli_route(cfg, "withdraw", argv[first], ip, "is removed", err) < 0))
                return 1;
        printf("%s\n", argv[first]);
        return 0;
}
