#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "container/container.h"

static const char logs_usage[] =
    "Usage: edgemig logs [-f] NAME\n"
    "\n"
    "Print the container's stdout and stderr, as collected in\n"
    "<root>/containers/NAME/log (across checkpoints and restores).\n"
    "\n"
    "  -f, --follow   keep printing new output until the container stops\n";

static const char exec_usage[] =
    "Usage: edgemig exec NAME CMD [ARG...]\n"
    "\n"
    "Run CMD inside the running container NAME (its namespaces, cgroups and root)\n"
    "with this terminal's stdin, stdout and stderr. Exits with CMD's status.\n";

int cmd_logs(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
        struct em_config *cfg;
        bool follow = false;
        int c;

        if (cli_wants_help(argc, argv)) {
                cli_print_help(logs_usage);
                return 0;
        }
        optind = 0; /* re-initialise glibc getopt (main parsed with "+") */
        while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
                if (c != 'f')
                        return em_error_set(err, 0, "see 'edgemig logs --help'"), 2;
                follow = true;
        }
        if (optind != argc - 1)
                return em_error_set(err, 0, "expected one NAME\n%s", logs_usage), 2;
        if (cli_config(cli, &cfg, err) < 0 ||
            em_container_logs(cfg, argv[optind], follow, STDOUT_FILENO, err) < 0)
                return 1;
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
