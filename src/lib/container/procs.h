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

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* Whether pid descends from init (host pids), by its chain of parents:
 * 1 yes, 0 no, -1 pid is gone (exited). */
int em_proc_descends(pid_t pid, pid_t init);

/* The first of pids[0..n-1] (the processes of cgroup, a cgroupsPath, as
 * the caller listed them just now; fs as container/freezer.h, NULL is
 * /sys/fs/cgroup) that does not descend from init, into *stray; 0 when
 * there is none. While there is one, the cgroup is listed again: one
 * that exits meanwhile is none, and so is one that ends within half a
 * second, as a short `edgemig exec` does. A cgroup that no longer exists
 * has none. */
int em_cgroup_stray(const char *fs, const char *cgroup, pid_t init, const pid_t *pids, size_t n,
                    pid_t *stray, em_error_t *err);

/* EBUSY, naming stray (a host pid of container name that em_cgroup_stray
 * found; 0: none) and the fix; 0 when there is none or it just ended. */
int em_container_stray_refuse(const char *name, pid_t stray, em_error_t *err);

#endif
