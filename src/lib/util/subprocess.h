/* Runs helper programs (runc, criu, ip, tc, …): sets the environment, enforces
 * a timeout, captures output and the child's own log file, and always kills
 * and reaps the child on early return. */
#ifndef EDGEMIG_UTIL_SUBPROCESS_H
#define EDGEMIG_UTIL_SUBPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

struct em_proc_spec {
        const char *const *argv;    /* argv[0] is looked up in PATH */
        const char *const *env_add; /* "K=V" entries added to (or replacing in) the environ */
        const char *cwd;            /* NULL: inherit */
        const char *netns;          /* path of a network namespace to enter, or NULL */
        int timeout_ms;             /* 0: no timeout */
        int stdin_fd;               /* -1: /dev/null */
        int stdout_fd;              /* -1: captured into the result */
        int stderr_fd;              /* -1: captured into the result */
        const int *keep_fds;        /* fds passed through to the child, -1 terminated */
        const char *log_path;       /* a log the child writes (criu -o): tail goes into errors */
        size_t log_tail_lines;      /* lines of log_path / stderr quoted on failure; 0 → 20 */
};

/* Fills the defaults (-1 fds, no timeout). */
void em_proc_spec_init(struct em_proc_spec *spec, const char *const *argv);

struct em_proc_result {
        int exit_code; /* exit status, or 128 + signal */
        bool timed_out;
        char *out; /* captured stdout (capped at 8 MiB), NUL-terminated */
        char *err; /* captured stderr (capped at 1 MiB), NUL-terminated */
};
void em_proc_result_free(struct em_proc_result *r);
#define cleanup_proc_result __attribute__((cleanup(em_proc_result_free)))

/* Runs to completion. Returns 0 only when the child exited 0; otherwise the error
 * names the command, the exit status or timeout, and quotes the tail of stderr
 * and of log_path. `result` may be NULL. */
int em_proc_run(const struct em_proc_spec *spec, struct em_proc_result *result, em_error_t *err);

/* Starts the child and returns its pid; its stdout/stderr go where the spec
 * says (-1 here means /dev/null). Own the pid with cleanup_pid. */
int em_proc_spawn(const struct em_proc_spec *spec, pid_t *pid, em_error_t *err);

/* Waits up to timeout_ms (0: forever) for pid. On timeout, kills it (and its
 * process group), reaps it and fails with ETIMEDOUT. */
int em_proc_wait(pid_t pid, int timeout_ms, int *exit_code, em_error_t *err);

/* The last `lines` lines of a file, or NULL. */
char *em_file_tail(const char *path, size_t lines);

#endif
