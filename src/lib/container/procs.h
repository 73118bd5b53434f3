/* Processes of a container that its checkpoint would not take.
 *
 * runc checkpoints a container with CRIU from its pid 1: CRIU dumps pid
 * 1's process tree and nothing else, and runc then kills the container,
 * the rest of its cgroup with it. A process `edgemig exec` started is in
 * the container's cgroup (and pid namespace) but its parent is runc exec
 * on the host, not a process of the container: a checkpoint, and so a
 * migration, ended it without a word (seen: `pstree pid_max=1` in CRIU's
 * restore log, the exec'd process gone on both hosts). Such a container
 * is refused before anything is frozen, as podman refuses to checkpoint
 * a container with exec sessions. */
#ifndef EDGEMIG_CONTAINER_PROCS_H
#define EDGEMIG_CONTAINER_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/config.h"
#include "util/error.h"

/* Whether pid descends from init (host pids), by its chain of parents:
 * 1 yes, 0 no, -1 pid is gone (exited). */
int em_proc_descends(pid_t pid, pid_t init);

/* The first process of cgroup (a cgroupsPath; fs as container/freezer.h,
 * NULL is /sys/fs/cgroup) that does not descend from init, into *stray;
 * 0 when there is none (a process that exits meanwhile is none, and
 * one that ends within half a second, as a short `edgemig exec` does).
 * A cgroup that does not exist has none. */
int em_cgroup_stray(const char *fs, const char *cgroup, pid_t init, pid_t *stray, em_error_t *err);

/* EBUSY, naming the process and the fix, when container name (pid 1:
 * init) has a process a checkpoint would not take. */
int em_container_refuse_strays(const struct em_config *cfg, const char *name, pid_t init,
                               em_error_t *err);
/* The same for container name's recorded pid 1 (none: nothing to say). */
int em_container_refuse_strays_of(const struct em_config *cfg, const char *name, em_error_t *err);

#endif
