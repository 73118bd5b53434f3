#include <stdio.h>
#include <string.h>
#include <time.h>

#include "checkpoint/runc.h"
#include "cli/cli.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static const char ckpt_usage[] =
    "Usage: edgemig checkpoint NAME --to DIR [--leave-running] [--json]\n"
    "       edgemig checkpoint inspect DIR [--json]   (see its --help)\n"
    "\n"
    "Checkpoint a running container with runc and CRIU into DIR (new or empty):\n"
    "  DIR/criu/            CRIU images and dump.log\n"
    "  DIR/upper/           the writable layer (trusted.* xattrs and whiteouts kept)\n"
    "  DIR/container.json   image, layers, run options and service IP\n"
    "Established TCP connections, file locks and cgroups are included. Unless\n"
    "--leave-running, the container stops and becomes \"checkpointed\"; its mounts\n"
    "and network namespace are released.\n"
    "A container one of whose processes uses a memory protection key\n"
    "(pkey_mprotect; Node.js's wasm does where the CPU has PKU) is refused before\n"
    "anything is frozen or written and keeps running: CRIU does not restore the\n"
    "keys, so its restore would kill it (node: --no-wasm-memory-protection-keys).\n"
    "\n"
    "  --to DIR          where to write the checkpoint (required)\n"
    "  --leave-running   keep the container running after the dump\n"
    "  --json            print {\"name\", \"dir\", \"seconds\"}\n";

static const char restore_usage[] =
    "Usage: edgemig restore DIR [--name NAME] [--json]\n"
    "\n"
    "Restore a container checkpointed with `edgemig checkpoint` from DIR: the\n"
    "same processes, files and service IP. The image's layers must be in the\n"
    "store. DIR is not modified, so a failed restore can be retried.\n"
    "\n"
    "  --name NAME   restore under another name (default: the checkpointed one;\n"
    "                a stopped or checkpointed container of that name is replaced)\n"
    "  --json        print {\"name\", \"dir\", \"seconds\"}\n";

static int report(bool json, const char *name, const char *dir, double secs, em_error_t *err)
{
        if (!json) {
                printf("%s\n", name);
                return 0;
        }
        cleanup_json json_t *j =
            json_pack("{s:s, s:s, s:f}", "name", name, "dir", dir, "seconds", secs);
        return em_json_print(j, err) < 0 ? 1 : 0;
}

static bool has_to(int argc, char **argv)
{
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--to") == 0 || strncmp(argv[i], "--to=", 5) == 0)
                        return true;
        return false;
}

int cmd_checkpoint(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_checkpoint_opts o;
        struct em_config *cfg;
        const char *dir = NULL;
        bool json = false;

        /* `checkpoint inspect DIR`; a container named "inspect" is still
         * checkpointed with `checkpoint inspect --to DIR`. */
        if (argc >= 2 && strcmp(argv[1], "inspect") == 0 && !has_to(argc, argv))
                return cmd_checkpoint_inspect(cli, argc - 1, argv + 1, err);
        em_checkpoint_opts_init(&o);
        const struct em_opt table[] = {
            EM_OPT_STRING("to", 0, &dir),
            EM_OPT_FLAG("leave-running", 0, &o.leave_running),
            EM_OPT_FLAG("json", 0, &json),
            EM_OPT_END,
        };
        int first, r = cli_parse(ckpt_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "container NAME", err) < 0)
                return 2;
        if (dir == NULL)
                return em_error_set(err, 0, "--to DIR is required; see --help"), 2;
        double t0 = em_mono_s();
        if (cli_config(cli, &cfg, err) < 0 ||
            em_checkpoint_save(cfg, argv[first], dir, &o, err) < 0)
                return 1;
        return report(json, argv[first], dir, em_mono_s() - t0, err);
}

int cmd_restore(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_restore_opts o;
        struct em_config *cfg;
        const char *name = NULL;
        bool json = false;
        const struct em_opt table[] = {
            EM_OPT_STRING("name", 0, &name),
            EM_OPT_FLAG("json", 0, &json),
            EM_OPT_END,
        };
        int first, r = cli_parse(restore_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "checkpoint DIR", err) < 0)
                return 2;
        em_restore_opts_init(&o);
        double t0 = em_mono_s();
        if (cli_config(cli, &cfg, err) < 0 ||
            em_checkpoint_load(cfg, argv[first], name, &o, err) < 0)
                return 1;
        double secs = em_mono_s() - t0;
        cleanup_json json_t *meta = NULL;
        cleanup_free char *path = em_path_join(argv[first], "container.json");
        if (name == NULL && path && em_json_load_file(path, 16u << 20, &meta, err) == 0)
                name = em_json_str(meta, "name");
        return report(json, name ? name : "?", argv[first], secs, err);
}
