#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "container/volume.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig volume ls [--json]\n"
    "       edgemig volume inspect NAME\n"
    "       edgemig volume rm NAME...\n"
    "       edgemig volume prune [--json]\n"
    "\n"
    "Manage this host's named volumes: directories under <root>/volumes/NAME that\n"
    "`run -v NAME:/path` mounts into a container. A volume is created empty the\n"
    "first time a container mounts it and outlives its containers.\n"
    "\n"
    "  ls        list the volumes, their size on disk and the containers that\n"
    "            mount them\n"
    "  inspect   print one volume as JSON: name, path, bytes, used_by\n"
    "  rm        remove volumes; refused while any container of this host (running\n"
    "            or stopped) mounts one: remove the container first\n"
    "  prune     remove every volume that no container mounts\n"
    "\n"
    "Options:\n"
    "  --json    print JSON (ls: an array of inspect's objects; prune and rm: the\n"
    "            names removed)\n"
    "  -h, --help  show this help\n"
    "\n"
    "See docs/volumes.md.\n";

static int do_ls(const struct em_config *cfg, bool json, em_error_t *err)
{
        cleanup_json json_t *list = NULL;
        size_t i;
        json_t *v;

        if (em_volume_list(cfg, &list, err) < 0)
                return 1;
        if (json)
                return em_json_print(list, err) < 0 ? 1 : 0;
        printf("%-24s %12s  %s\n", "NAME", "SIZE", "USED BY");
        json_array_foreach(list, i, v)
        {
                cleanup_free char *users = json_dumps(json_object_get(v, "used_by"), JSON_COMPACT);
                printf("%-24s %10.1fMB  %s\n", em_json_str(v, "name"),
                       (double)em_json_int(v, "bytes", 0) / 1e6, users ? users : "");
        }
        return 0;
}

static int print_names(json_t *names, bool json, const char *verb, em_error_t *err)
{
        size_t i;
        json_t *n;

        if (json)
                return em_json_print(names, err) < 0 ? 1 : 0;
        json_array_foreach(names, i, n) printf("%s %s\n", verb, json_string_value(n));
        return 0;
}

static int do_rm(const struct em_config *cfg, int argc, char **argv, bool json, em_error_t *err)
{
        cleanup_json json_t *gone = json_array();

        for (int i = 0; i < argc; i++) {
                if (em_volume_rm(cfg, argv[i], err) < 0) {
                        print_names(gone, json, "removed", err);
                        return 1;
                }
                json_array_append_new(gone, json_string(argv[i]));
        }
        return print_names(gone, json, "removed", err);
}

static int run_sub(const struct em_config *cfg, const char *sub, int argc, char **argv, bool json,
                   em_error_t *err)
{
        cleanup_json json_t *j = NULL;

        if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
                return argc == 0 ? do_ls(cfg, json, err)
                                 : (em_error_set(err, 0, "ls takes no operands"), 2);
        if (strcmp(sub, "inspect") == 0) {
                if (argc != 1)
                        return em_error_set(err, 0, "inspect takes one NAME; see --help"), 2;
                return em_volume_inspect(cfg, argv[0], &j, err) < 0 || em_json_print(j, err) < 0;
        }
        if (strcmp(sub, "rm") == 0)
                return argc >= 1 ? do_rm(cfg, argc, argv, json, err)
                                 : (em_error_set(err, 0, "rm takes NAME...; see --help"), 2);
        if (strcmp(sub, "prune") == 0) {
                if (argc != 0)
                        return em_error_set(err, 0, "prune takes no operands"), 2;
                return em_volume_prune(cfg, &j, err) < 0 ? 1 : print_names(j, json, "removed", err);
        }
        em_error_set(err, 0, "unknown command '%s'; see 'edgemig volume --help'", sub);
        return 2;
}

int cmd_volume(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_config *cfg;
        bool json = false;
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &json), EM_OPT_END};
        int first;

        if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
                cli_print_help(usage);
                return argc < 2 ? 2 : 0;
        }
        int r = cli_parse(usage, table, argc - 1, argv + 1, &first, err);
        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        return run_sub(cfg, argv[1], argc - 1 - first, argv + 1 + first, json, err);
}
