/* Throttling a container's CPU through its cgroup, for `edgemig migrate
 * --auto-converge`: a service that dirties memory faster than the link
 * drains it gets less CPU until pre-copy converges.
 *
 * cgroup v2: <fs><cgroup>/cpu.max ("QUOTA PERIOD" or "max PERIOD");
 * cgroup v1: <fs>/cpu<cgroup>/cpu.cfs_quota_us (-1: none) with
 * cpu.cfs_period_us. fs is /sys/fs/cgroup unless given (tests use a fake
 * tree). The first em_cpu_throttle_set saves the cgroup's own limit (a
 * `--cpus` from the spec, or none), and em_cpu_throttle_lift puts it back. */
#ifndef EDGEMIG_CONTAINER_CPU_THROTTLE_H
#define EDGEMIG_CONTAINER_CPU_THROTTLE_H

#include <stdbool.h>

#include "util/error.h"

struct em_cpu_throttle {
        char quota_path[4096]; /* cpu.max (v2) or cpu.cfs_quota_us (v1) */
        char saved[64];        /* the value before the first throttle */
        long period_us;
        long saved_quota_us; /* -1: no limit of its own */
        bool v2, active;
        int pct; /* current cap in percent of one CPU, 0: none */
};

/* Caps cgroup (a cgroupsPath such as "/edgemig-…-name") at pct percent of
 * one CPU (1 to 100), never above the cgroup's own limit. */
int em_cpu_throttle_set(struct em_cpu_throttle *t, const char *fs, const char *cgroup, int pct,
                        em_error_t *err);
/* Restores the saved limit (idempotent); a cgroup that no longer exists
 * (the container went with the migration) is not an error. */
int em_cpu_throttle_lift(struct em_cpu_throttle *t, em_error_t *err);

#endif
