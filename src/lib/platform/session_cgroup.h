/* Each edgemigd session child in a cgroup of its own, with a pids and a
 * memory limit, so that one session (a hostile peer's included) cannot fork
 * or allocate the host away; removed when the child is reaped.
 *
 * The cgroup is made under edgemigd's own cgroup of each controller (as
 * /proc/self/cgroup names it), so it stays inside whatever the service
 * manager gave the daemon:
 *   cgroup v1: <fs>/pids<own>/edgemig-session-<tag>-<pid> (pids.max) and
 *              <fs>/memory<own>/edgemig-session-<tag>-<pid>
 *              (memory.limit_in_bytes);
 *   cgroup v2: <fs><own>/edgemig-session-<tag>-<pid> (pids.max, memory.max).
 * <tag> is 8 hex digits of the SHA-256 of the owner's state root (its real
 * path): daemons of other state roots sharing the parent have other tags.
 * Containers a session restores are not in it: runc moves CRIU and the
 * restored tasks into the container's own cgroup (its cgroupsPath); their
 * log forwarders go back to edgemigd's cgroup when the session ends. */
#ifndef EDGEMIG_PLATFORM_SESSION_CGROUP_H
#define EDGEMIG_PLATFORM_SESSION_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct em_session_cgroup_limits {
        uint64_t pids;   /* pids.max (default 1024); 0: no session cgroups */
        uint64_t memory; /* bytes (default 4 GiB) */
};
#define EM_SESSION_CGROUP_LIMITS_INIT                                                              \
        {                                                                                          \
                .pids = 1024, .memory = 4ULL << 30                                                 \
        }

/* The cgroup of controller ctrl ("pids", "memory"; "" for the v2 line
 * "0::/path") in the text of a /proc/PID/cgroup file; ENOENT if absent. */
int em_cgroup_path_of(const char *proc_cgroup, const char *ctrl, char **out, em_error_t *err);

struct em_session_cgroup;

/* Where session cgroups go: fs is the cgroup mount (/sys/fs/cgroup; tests
 * give a tree of their own), proc_cgroup the daemon's /proc/self/cgroup,
 * owner the daemon's state root (whose tag names its cgroups). Fails
 * (naming why) when fs has neither v1 pids and memory hierarchies nor a v2
 * one. */
int em_session_cgroup_new(const char *fs, const char *proc_cgroup, const char *owner,
                          const struct em_session_cgroup_limits *l, struct em_session_cgroup **out,
                          em_error_t *err);
void em_session_cgroup_free(struct em_session_cgroup *c);

/* The directories of pid's session cgroup: [0] pids, [1] memory (the same
 * one on v2). */
int em_session_cgroup_dirs(const struct em_session_cgroup *c, pid_t pid, char *dirs[2],
                           em_error_t *err);
/* Creates pid's session cgroup (a stale one of a reused pid is replaced if
 * empty), sets its limits and moves pid into it. */
int em_session_cgroup_enter(const struct em_session_cgroup *c, pid_t pid, em_error_t *err);
/* Removes pid's session cgroup once pid is gone; one already gone is not
 * an error. Processes still in it (a restored container's log forwarder,
 * which the session started) are moved to edgemigd's own cgroup first. */
int em_session_cgroup_remove(const struct em_session_cgroup *c, pid_t pid, em_error_t *err);
/* How many processes pid's session cgroup's memory limit killed
 * (memory.events on v2, memory.oom_control on v1; "oom_kill N"), read
 * before em_session_cgroup_remove: a session the limit killed says so
 * in the log, not only "status 137". */
int em_session_cgroup_oom_kills(const struct em_session_cgroup *c, pid_t pid, uint64_t *out,
                                em_error_t *err);
/* Removes this owner's session cgroups whose session is gone: those a
 * daemon of the same state root that died left (it reaps and removes its
 * own). Cgroups of other state roots' daemons sharing the same parent,
 * live or stale, are left alone: each sweeps its own. */
int em_session_cgroup_sweep(const struct em_session_cgroup *c, em_error_t *err);

#endif
