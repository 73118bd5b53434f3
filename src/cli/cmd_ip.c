/* edgemig ip: the service addresses this host keeps for containers that
 * migrated away (docs/network.md). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig ip ls [--json]\n"
    "       edgemig ip release ADDR\n"
    "\n"
    "Service IPs reserved on this host. When a container migrates away, its\n"
    "address stays reserved here so that `run` never hands it to another\n"
    "container while it runs elsewhere; the container takes it back if it\n"
    "returns (docs/network.md).\n"
    "\n"
    "Commands:\n"
    "  ls        list the reservations: address, container, since when\n"
    "  release   drop the reservation of ADDR (once that container is gone for\n"
    "            good, e.g. removed on the host it migrated to)\n"
    "\n"
    "Options:\n"
    "  --json    (ls) print [{\"ip\", \"container\", \"since_ms\"}]\n"
    "\n"
    "Example:\n"
    "  edgemig ip ls\n"
    "  edgemig ip release 10.66.1.5\n";

static void print_table(const json_t *arr)
{
        size_t i;
        json_t *r;

        printf("%-16s %-24s %s\n", "IP", "CONTAINER", "SINCE (UTC)");
        json_array_foreach(arr, i, r)
        {
                char when[32] = "-";
                time_t t = (time_t)(em_json_int(r, "since_ms", 0) / 1000);
                struct tm tm;
                if (t > 0 && gmtime_r(&t, &tm) != NULL)
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
                printf("%-16s %-24s %s\n", em_json_str(r, "ip"), em_json_str(r, "container"), when);
        }
}

int cmd_ip(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        bool json = false;
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &json), EM_OPT_END};
        cleanup_state struct em_state *st = NULL;
        cleanup_json json_t *arr = NULL;
        struct em_config *cfg;
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        const char *verb = first < argc ? argv[first] : "";
        bool ls = strcmp(verb, "ls") == 0, rel = strcmp(verb, "release") == 0;
        if (!ls && !rel)
                return em_error_set(err, 0, "expected ls or release; see --help"), 2;
        if (cli_operands(argc, argv, first + 1, rel ? 1 : 0, rel ? 1 : 0, "ADDR", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0 || em_state_open(cfg->root, &st, err) < 0)
                return 1;
        if (rel) {
                if (em_state_ip_release(st, argv[first + 1], err) < 0)
                        return 1;
                printf("%s\n", argv[first + 1]);
                return 0;
        }
        if (em_state_ip_reservations(st, &arr, err) < 0)
                return 1;
        if (json)
                return em_json_print(arr, err) < 0 ? 1 : 0;
        print_table(arr);
        return 0;
}
