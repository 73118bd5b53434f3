/* A host sysctl raised while some process of this host needs it (CRIU's
 * lazy pages need a larger fs.pipe-max-size; its lazy restore in a user
 * namespace needs vm.unprivileged_userfaultfd), and put back once none
 * does. Sessions run side by side, in the daemon's children and CLI
 * processes, so the holders are counted across processes in a state
 * file, "ORIGINAL PID...", under flock. A holder that is gone or a
 * zombie (it died without letting go, and its reaper has not waited for
 * it yet) holds nothing. */
#ifndef EDGEMIG_MIGRATE_COMMON_SYSCTL_HOLD_H
#define EDGEMIG_MIGRATE_COMMON_SYSCTL_HOLD_H

#include "util/error.h"

struct em_held_sysctl {
        const char *path;  /* /proc/sys/... */
        const char *state; /* the holders' state file */
        const char *what;  /* its name in messages */
        long want;         /* at least this while held */
};

/* Adds this process to h's holders and raises h's value to want if it is
 * lower. */
int em_sysctl_hold(const struct em_held_sysctl *h, em_error_t *err);
/* Drops this process from h's holders; with none left, puts the value
 * the first holder found back. A failure is logged. */
void em_sysctl_release(const struct em_held_sysctl *h);

#endif
