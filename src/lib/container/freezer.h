/* Freezing a container's processes through its cgroup before CRIU runs.
 *
 * CRIU freezes the cgroup itself, but it polls the freezer in 100 ms steps,
 * and a cgroup v1 freezer is never FROZEN at the first look: every dump paid
 * one whole step of downtime. Frozen here (polled every millisecond), the
 * cgroup is FROZEN when CRIU looks, and CRIU leaves the state as it found
 * it: a failed or --leave-running dump must be thawed by the caller.
 *
 * cgroup v1: <fs>/freezer<cgroup>/freezer.state (FROZEN / THAWED);
 * cgroup v2: <fs><cgroup>/cgroup.freeze, done when cgroup.events says
 * "frozen 1". fs is /sys/fs/cgroup unless given (tests use a fake tree). */
#ifndef EDGEMIG_CONTAINER_FREEZER_H
#define EDGEMIG_CONTAINER_FREEZER_H

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* Freezes cgroup (a cgroupsPath such as "/edgemig-…-name") and waits until
 * every task is frozen; after timeout_ms it thaws again and fails. */
int em_freezer_freeze(const char *fs, const char *cgroup, int timeout_ms, em_error_t *err);
/* Thaws cgroup; a cgroup that no longer exists is not an error. */
int em_freezer_thaw(const char *fs, const char *cgroup, em_error_t *err);

/* The processes a freeze of cgroup stops (its cgroup.procs and those of
 * the cgroups below it, v1 freezer or v2), into out[max]; how many in *n.
 * That is every process of the container, those `edgemig exec` started
 * included, which are not descendants of its pid 1. ENOENT when cgroup
 * does not exist, E2BIG when it holds more than max (never a list cut
 * short). */
int em_freezer_procs(const char *fs, const char *cgroup, pid_t *out, size_t max, size_t *n,
                     em_error_t *err);
/* The same into *out, allocated (free()) and grown to fit them all. */
int em_freezer_procs_all(const char *fs, const char *cgroup, pid_t **out, size_t *n,
                         em_error_t *err);

#endif
