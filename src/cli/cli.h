/* Shared state of one `edgemig` invocation and the command table. */
#ifndef EDGEMIG_CLI_CLI_H
#define EDGEMIG_CLI_CLI_H

#include <stdbool.h>

#include "util/config.h"
#include "util/error.h"
#include "util/opts.h"

struct em_cli {
        const char *root_opt; /* --root, NULL if not given */
        struct em_config cfg; /* filled lazily by cli_config() */
        bool cfg_ready;
};

/* Resolves the state root and helper paths on first use. */
int cli_config(struct em_cli *cli, struct em_config **out, em_error_t *err);

/* $EDGEMIG_ROUTE_HOOK (NULL if unset): run as `HOOK announce IP` after
 * `run`, `start` and `restart`, `HOOK withdraw IP` after `stop` and `rm`
 * (container/routehook.h). */
const char *cli_route_hook(void);
/* Runs the route hook for container name after `did` ("runs", "stopped" …)
 * succeeded; the error says the container's state and what to do by hand. */
int cli_route(const struct em_config *cfg, const char *verb, const char *name, const char *ip,
              const char *did, em_error_t *err);

/* A command parses its own options, calls the library and prints. It returns
 * the process exit code; on failure it sets *err and returns non-zero, and
 * main() prints "edgemig <verb>: <message>". */
typedef int (*cli_cmd_fn)(struct em_cli *cli, int argc, char **argv, em_error_t *err);

struct cli_command {
        const char *name;
        cli_cmd_fn fn;
        const char *summary;
};

/* Prints usage text of a command (a man-page style block) to stdout. */
void cli_print_help(const char *text);
/* Parses a command's options (util/opts.h): on --help prints usage, on
 * --version the version. Returns 0 to go on with *first the first operand,
 * 1 when help or version was printed (exit 0), -1 on a usage error in *err
 * (exit 2). */
int cli_parse(const char *usage, const struct em_opt *table, int argc, char **argv, int *first,
              em_error_t *err);
/* The same with em_opts_parse's flags (EM_OPTS_STOP_AT_OPERAND). */
int cli_parse_flags(const char *usage, const struct em_opt *table, unsigned flags, int argc,
                    char **argv, int *first, em_error_t *err);
/* Fails with "unexpected argument" unless argv[first..] has between min and
 * max operands; what names them ("NAME"). */
int cli_operands(int argc, char **argv, int first, int min, int max, const char *what,
                 em_error_t *err);

/* Commands (one file each: cmd_<name>.c). */
int cmd_check(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_image(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_version(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_run(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_volume(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_pod(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_ps(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_inspect(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_logs(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_exec(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_stop(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_rm(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_start(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_restart(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_kill(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_ip(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_checkpoint(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_checkpoint_inspect(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_restore(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_ca(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_migrate(struct em_cli *cli, int argc, char **argv, em_error_t *err);
/* `edgemig check NAME --to ...`: migrate's options, --dry-run implied. */
int cmd_migrate_check(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_prepare(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_recover(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_platform(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_control(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_debug(struct em_cli *cli, int argc, char **argv, em_error_t *err);
int cmd_netns_hook(struct em_cli *cli, int argc, char **argv, em_error_t *err);

#endif
