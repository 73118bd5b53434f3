#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "container/container.h"

static const char logs_usage[] =
    "Usage: edgemig logs [-f] [-n N] NAME\n"
    "\n"
    "Print the container's stdout and stderr, as collected in\n"
    "<root>/containers/NAME/log: across checkpoints and restores, restarts\n"
    "(`start`, `restart`, restart policies) and migrations (the target appends\n"
    "to the log the source had).\n"
    "\n"
    "  -f, --follow     keep printing new output until the container stops\n"
    "  -n, --tail N     start with the last N lines (0: only new output with -f)\n";

static const char exec_usage[] =
    "Usage: edgemig exec NAME CMD [ARG...]\n"
    "\n"
    "Run CMD inside the running container NAME (its namespaces, cgroups and root)\n"
    "with this terminal's stdin, stdout and stderr. Exits with CMD's status.\n";

int cmd_logs(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        bool follow = false;
        int64_t tail = -1;
        const struct em_opt table[] = {
            EM_OPT_FLAG("follow", 'f', &follow),
            EM_OPT_INT("tail", 'n', &tail, 0, INT64_MAX),
            EM_OPT_END,
        };
        struct em_config *cfg;
        int first, r = cli_parse(logs_usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "container NAME", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        if (em_container_logs(cfg, argv[first], follow, tail, STDOUT_FILENO, err) < 0) {
                /* The reader has what it wanted (`| head`, `| grep -q`): like
                 * cat killed by SIGPIPE, no message, but no failure either,
                 * so that such a pipeline passes under pipefail. */
                if (em_error_status(*err) != EPIPE)
                        return 1;
                em_error_free(err);
        }
        return 0;
}

int cmd_exec(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_config *cfg;
        int code = 0;

        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
                cli_print_help(exec_usage);
                return 0;
        }
        if (argc < 3)
                return em_error_set(err, 0, "expected NAME and CMD\n%s", exec_usage), 2;
        if (cli_config(cli, &cfg, err) < 0 ||
            em_container_exec(cfg, argv[1], (const char *const *)argv + 2, STDIN_FILENO,
                              STDOUT_FILENO, STDERR_FILENO, &code, err) < 0)
                return 1;
        return code;
}
