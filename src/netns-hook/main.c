/* edgemig-netns-hook: runc's prestart hook that wires a container's
 * network namespace (container/nethook.h). It does what `edgemig
 * netns-hook` does, in a binary of its own because runc runs the hook
 * inside `runc restore`, that is inside a migration's downtime: the full
 * edgemig binary loads about 47 shared libraries before main() (49 ms p50
 * at load 9, docs/evaluation.md), this one only libc and jansson. It is
 * linked with just what em_nethook_run needs. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "container/nethook.h"
#include "util/version.h"

static const char usage[] =
    "Usage: edgemig-netns-hook NETNS HOST_VETH IP\n"
    "\n"
    "Internal: the OCI prestart hook edgemig puts in every container's config.json.\n"
    "runc runs it, with the container's state JSON on stdin, once the container's\n"
    "network namespace exists (at run, and during a restore before CRIU restores\n"
    "sockets). It binds that namespace at NETNS and wires it: eth0 with IP/32 and\n"
    "routes inside, the veth HOST_VETH with the gateway address and a /32 route\n"
    "to IP outside (docs/network.md, docs/security.md). `edgemig netns-hook`\n"
    "does the same.\n"
    "\n"
    "Options:\n"
    "  -h, --help     print this help and exit\n"
    "  -V, --version  print the version and exit\n"
    "\n"
    "Exit status: 0 wired, 1 failed (the reason on stderr), 2 usage error.\n";

int main(int argc, char **argv)
{
        em_error_t err = NULL;

        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
                return fputs(usage, stdout) == EOF;
        if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0))
                return printf("edgemig-netns-hook %s\n", EM_VERSION) < 0;
        if (argc != 4) {
                fprintf(stderr, "edgemig-netns-hook: expected NETNS HOST_VETH IP\n%s", usage);
                return 2;
        }
        if (em_nethook_run(argv[1], argv[2], argv[3], STDIN_FILENO, &err) < 0) {
                fprintf(stderr, "edgemig-netns-hook: %s\n", em_error_msg(err));
                em_error_free(&err);
                return 1;
        }
        return 0;
}
