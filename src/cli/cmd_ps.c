#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "container/container.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char ps_usage[] =
    "Usage: edgemig ps [--json]\n"
    "\n"
    "List the containers of this state root with their state (created, running,\n"
    "stopped, checkpointed, migrating), service IP, image and init pid. A\n"
    "container whose processes exited on their own is shown as stopped.\n"
    "\n"
    "  --json   one JSON array, the objects of `inspect`\n";

static const char inspect_usage[] =
    "Usage: edgemig inspect NAME\n"
    "\n"
    "Print everything edgemig knows about a container as JSON: state, pid,\n"
    "service IP, image and layer diff-ids, run options, timestamps (unix ms),\n"
    "and its paths (upper dir, rootfs, bundle, log, network namespace), host\n"
    "veth and cgroup.\n";

static void age(long long ms, char *buf, size_t len)
{
        long long s = (long long)time(NULL) - ms / 1000;
        if (ms == 0)
                snprintf(buf, len, "-");
        else if (s < 120)
                snprintf(buf, len, "%llds ago", s);
        else if (s < 7200)
                snprintf(buf, len, "%lldm ago", s / 60);
        else
                snprintf(buf, len, "%lldh ago", s / 3600);
}

int cmd_ps(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        cleanup_json json_t *list = NULL;
        struct em_config *cfg;
        bool json = false;
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &json), EM_OPT_END};
        size_t i;
        json_t *c;
        int first, r = cli_parse(ps_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 0, 0, "", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0 || em_container_list(cfg, &list, err) < 0)
                return 1;
        if (json)
                return em_json_print(list, err) < 0 ? 1 : 0;
        printf("%-20s %-13s %-16s %-8s %-10s %s\n", "NAME", "STATE", "IP", "PID", "STARTED",
               "IMAGE");
        json_array_foreach(list, i, c)
        {
                char started[32];
                age(em_json_int(c, "started_at", 0), started, sizeof(started));
                const char *ip = em_json_str(c, "ip");
                printf("%-20s %-13s %-16s %-8lld %-10s %s\n", em_json_str(c, "name"),
                       em_json_str(c, "state"), ip ? ip : "-", em_json_int(c, "pid", 0), started,
                       em_json_str(c, "image"));
        }
        return 0;
}

int cmd_inspect(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        cleanup_json json_t *obj = NULL;
        const struct em_opt table[] = {EM_OPT_END};
        struct em_config *cfg;
        int first, r = cli_parse(inspect_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "container NAME", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0 || em_container_inspect(cfg, argv[first], &obj, err) < 0)
                return 1;
        char *s = json_dumps(obj, JSON_INDENT(2));
        if (s)
                puts(s);
        free(s);
        return s ? 0 : 1;
}
