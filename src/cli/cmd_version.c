#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/version.h"

static const char usage[] = "Usage: edgemig version [--json]\n"
                            "\n"
                            "Print the edgemig version and its wire protocol version.\n"
                            "\n"
                            "  --json   machine-readable output\n";

int cmd_version(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        bool json = false;

        if (cli_wants_help(argc, argv)) {
                cli_print_help(usage);
                return 0;
        }
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--json") == 0) {
                        json = true;
                } else {
                        em_error_set(err, 0, "unknown argument '%s'\n%s", argv[i], usage);
                        return 2;
                }
        }
        if (json) {
                cleanup_json json_t *j =
                    json_pack("{s:s, s:i}", "version", EM_VERSION, "protocol", EM_PROTOCOL_VERSION);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        printf("edgemig %s (protocol %d)\n", EM_VERSION, EM_PROTOCOL_VERSION);
        return 0;
}
