/* edgemig recover: finish or roll back migrations whose process died. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "migrate/journal.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig recover [--json]\n"
    "\n"
    "Finish or roll back migrations whose edgemig or edgemigd process died\n"
    "mid-way (crash, kill, power loss), using the journal each session keeps\n"
    "in <root>/outgoing/<id>/ and <root>/incoming/<id>/:\n"
    "  - a container checkpointed here for a migration that never committed\n"
    "    is restored here;\n"
    "  - a container handed over (committed) is removed here;\n"
    "  - a container a dead target session restored without the source's\n"
    "    commit is removed (the source keeps or restores its own copy).\n"
    "Sessions whose process is still alive are left alone. edgemigd runs\n"
    "this itself when it starts and whenever a session process dies.\n"
    "\n"
    "  --json   print {\"outgoing\": N, \"incoming\": N}\n"
    "\n"
    "Exit status: 0 if everything was recovered, 1 otherwise.\n";

int cmd_recover(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_config *cfg;
        bool json = false;
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &json), EM_OPT_END};
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 0, 0, "", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        int out = em_migrate_source_recover(cfg, err);
        if (out < 0)
                return 1;
        int in = em_migrate_target_recover(cfg, 0, err);
        if (in < 0)
                return 1;
        if (json) {
                cleanup_json json_t *j = json_pack("{s:i, s:i}", "outgoing", out, "incoming", in);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        printf("recovered %d outgoing and %d incoming migration(s)\n", out, in);
        return 0;
}
