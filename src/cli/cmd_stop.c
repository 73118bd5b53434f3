#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "container/container.h"

static const char stop_usage[] =
    "Usage: edgemig stop [-t SECONDS] NAME\n"
    "\n"
    "Send SIGTERM to the container's init, wait up to SECONDS (default 10), then\n"
    "SIGKILL. Then release everything the container held at run time: runc\n"
    "state, cgroups, the overlay mount, the network namespace, the veth pair and\n"
    "the host route. Its files (writable layer, log) stay until `rm`.\n"
    "\n"
    "  -t, --time SECONDS   grace period before SIGKILL (0: kill at once)\n";

static const char rm_usage[] =
    "Usage: edgemig rm [-f] NAME\n"
    "\n"
    "Remove a container that is not running: its writable layer, bundle, log and\n"
    "state. Image layers stay in the store.\n"
    "\n"
    "  -f, --force   stop it first (SIGKILL) if it is running\n";

int cmd_stop(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        static const struct option opts[] = {{"time", required_argument, NULL, 't'},
                                             {NULL, 0, NULL, 0}};
        struct em_config *cfg;
        int timeout = 10, c;
        char *end;

        if (cli_wants_help(argc, argv)) {
                cli_print_help(stop_usage);
                return 0;
        }
        optind = 0; /* re-initialise glibc getopt (main parsed with "+") */
        while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
                if (c != 't')
                        return em_error_set(err, 0, "see 'edgemig stop --help'"), 2;
                timeout = (int)strtol(optarg, &end, 10);
                if (*end != '\0' || timeout < 0)
                        return em_error_set(err, 0, "bad -t '%s'", optarg), 2;
        }
        if (optind != argc - 1)
                return em_error_set(err, 0, "expected one NAME\n%s", stop_usage), 2;
        if (cli_config(cli, &cfg, err) < 0 ||
            em_container_stop(cfg, argv[optind], timeout, err) < 0)
                return 1;
        printf("%s\n", argv[optind]);
        return 0;
}

int cmd_rm(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
        struct em_config *cfg;
        bool force = false;
        int c;

        if (cli_wants_help(argc, argv)) {
                cli_print_help(rm_usage);
                return 0;
        }
        optind = 0; /* re-initialise glibc getopt (main parsed with "+") */
        while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
                if (c != 'f')
                        return em_error_set(err, 0, "see 'edgemig rm --help'"), 2;
                force = true;
        }
        if (optind != argc - 1)
                return em_error_set(err, 0, "expected one NAME\n%s", rm_usage), 2;
        if (cli_config(cli, &cfg, err) < 0 || em_container_rm(cfg, argv[optind], force, err) < 0)
                return 1;
        printf("%s\n", argv[optind]);
        return 0;
}
