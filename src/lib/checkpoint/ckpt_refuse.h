/* What a checkpoint of a running container would lose, refused before
 * anything is frozen or moves: a process that uses memory protection
 * keys, which CRIU does not restore (pkeys.h), and a process outside pid
 * 1's tree, which runc's dump does not take (container/procs.h).
 *
 * One check for every caller, each of a container's processes looked at
 * once: `checkpoint`; `pod checkpoint`, for each of the pod's containers
 * (so a migration's final dump too); a migration's source before
 * anything moves (a pod's, each of its containers); and the pre-check
 * (`check`, `migrate --dry-run`, a pod's containers included). */
#ifndef EDGEMIG_CHECKPOINT_CKPT_REFUSE_H
#define EDGEMIG_CHECKPOINT_CKPT_REFUSE_H

#include <stddef.h>
#include <sys/types.h>

#include "util/config.h"
#include "util/error.h"

/* A running container's processes as its caller knows them: its pid 1
 * (a host pid; <= 0: it does not run) and those the caller listed
 * already (its tree, or more; NULL, 0: init's tree is listed here). */
struct em_ckpt_procs {
        pid_t init;
        const pid_t *pids;
        size_t n;
};

/* The first refusal for the container `name` whose cgroup (cgroupsPath,
 * fs as container/freezer.h, NULL is /sys/fs/cgroup) is cgroup: with
 * EOPNOTSUPP a process of procs or of the cgroup that uses protection
 * keys, then with EBUSY a process of the cgroup that does not descend
 * from procs->init (still there after the half second a short `edgemig
 * exec` takes); each names the process and the fix. 0 when there is
 * none, or the container does not run (the steps after say so). The
 * cgroup is listed once, and again only while such a process is in it. */
int em_ckpt_refuse_cgroup(const char *fs, const char *cgroup, const char *name,
                          const struct em_ckpt_procs *procs, em_error_t *err);

/* The same for container name on this host. */
int em_ckpt_refuse(const struct em_config *cfg, const char *name, const struct em_ckpt_procs *procs,
                   em_error_t *err);

/* The same for each of names[0..n-1] in turn, by the pid its state row
 * records (none: it does not run), the first refusal returned. */
int em_ckpt_refuse_recorded(const struct em_config *cfg, const char *const *names, size_t n,
                            em_error_t *err);

#endif
