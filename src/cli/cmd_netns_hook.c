#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "container/nethook.h"

static const char usage[] =
    "Usage: edgemig netns-hook NETNS HOST_VETH IP\n"
    "\n"
    "Internal: the OCI prestart hook edgemig puts in every container's config.json.\n"
    "runc runs it, with the container's state JSON on stdin, once the container's\n"
    "network namespace exists (at run, and during a restore before CRIU restores\n"
    "sockets). It binds that namespace at NETNS and wires it: eth0 with IP/32 and\n"
    "routes inside, the veth HOST_VETH with the gateway address and a /32 route\n"
    "to IP outside (docs/network.md, docs/security.md).\n";

int cmd_netns_hook(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        const struct em_opt table[] = {EM_OPT_END};
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        (void)cli;
        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 3, 3, "NETNS HOST_VETH IP", err) < 0)
                return 2;
        return em_nethook_run(argv[first], argv[first + 1], argv[first + 2], STDIN_FILENO, err) < 0
                   ? 1
                   : 0;
}
