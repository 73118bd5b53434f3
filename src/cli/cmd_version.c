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
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &json), EM_OPT_END};
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 0, 0, "", err) < 0)
                return 2;
        if (json) {
                cleanup_json json_t *j =
                    json_pack("{s:s, s:i}", "version", EM_VERSION, "protocol", EM_PROTOCOL_VERSION);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        printf("edgemig %s (protocol %d)\n", EM_VERSION, EM_PROTOCOL_VERSION);
        return 0;
}
