/* The journal of a pod checkpoint or restore in flight, so that a crash
 * of the edgemig process that ran it (kill -9, a fault, power loss) does
 * not leave the pod frozen, cut off, half dumped or half restored with
 * nothing to settle it (pod_ckpt.h).
 *
 * <root>/pod-checkpoints/<pod>.json {"format", "op", "pod", "dir", "names"}
 * (op "checkpoint" or "restore"; names in dump order, the infra last)
 * appears already locked (flock) by the process that checkpoints or
 * restores, and goes when that completed or was rolled back: one journal
 * per pod, so a checkpoint and a restore of a pod never overlap. A
 * restore's journal left by a crash is settled by its own callback
 * (em_pod_recovery.restore) instead of what follows. Recovery (`edgemig recover`, edgemigd at
 * start) takes every journal whose lock nobody holds: the pod's checkpoint in dir completed
 * (dir/pod.json) and the journal goes, or it did not and the roll-back brings the pod back here,
 * once no `runc checkpoint` of the pod's containers runs any more (a kill mid-dump leaves runc
 * going on alone, as a kill mid-restore leaves a `runc restore`, which a restore's journal waits
 * for the same way; `edgemig recover` waits up to a minute for it, edgemigd's start not at all: it
 * serves meanwhile and settles the journal from its loop once runc is done; either way the journal
 * stays until then). */
#ifndef EDGEMIG_CHECKPOINT_POD_JOURNAL_H
#define EDGEMIG_CHECKPOINT_POD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/config.h"
#include "util/error.h"

#define EM_POD_JOURNAL_FORMAT 1

/* Writes pod's journal for a checkpoint of names (NULL-terminated) into
 * dir, which exists; *lock_fd holds its lock. EEXIST if the pod has a
 * journal left by a crash: `edgemig recover` settles it first. */
int em_pod_journal_begin(const struct em_config *cfg, const char *pod, const char *dir,
                         char *const *names, int *lock_fd, em_error_t *err);

/* The same for a restore from dir (pod_ckpt.h's em_pod_restore). */
int em_pod_journal_begin_restore(const struct em_config *cfg, const char *pod, const char *dir,
                                 char *const *names, int *lock_fd, em_error_t *err);

/* The checkpoint or restore completed or was rolled back: the journal goes. */
void em_pod_journal_end(const struct em_config *cfg, const char *pod, int *lock_fd);

/* Brings a pod back from what a crashed checkpoint left: names[0..n-1]
 * as journalled (names[n-1] the infra), the partial checkpoint in dir. */
typedef int (*em_pod_rollback_fn)(const struct em_config *cfg, const char *dir, char **names,
                                  size_t n, em_error_t *err);

/* Settles every journal whose process is gone, through rollback for a
 * checkpoint that did not complete; a journal whose roll-back failed
 * stays for the next try. A journal whose pod still has a `runc
 * checkpoint` or `runc restore` running (the roll-back must know its
 * outcome) waits up to wait_ms for it; still running then, it stays,
 * counted in *pending (if not NULL): an error with wait_ms > 0 (naming
 * `edgemig recover`), not with 0 (the caller retries later). Returns how many were settled, or
 * -1 (with err) if any could not be. */
struct em_pod_recovery {
        em_pod_rollback_fn checkpoint; /* a checkpoint that did not complete */
        em_pod_rollback_fn restore;    /* a restore that did not complete */
};
int em_pod_journal_recover(const struct em_config *cfg, const struct em_pod_recovery *rec,
                           int wait_ms, size_t *pending, em_error_t *err);

/* True while pod has a journal: a checkpoint in flight or one left to
 * recover, whose partial checkpoint must stay where it is. */
bool em_pod_journal_exists(const struct em_config *cfg, const char *pod);

#endif
