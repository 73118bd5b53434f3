/* A whole pod's checkpoint and restore on this host, all or nothing.
 *
 * The pod's network namespace, with CRIU's network lock, is shared by all
 * its containers, and its members talk over localhost: dumped one at a
 * time, the lock of the first dump cuts the others off, and a loopback
 * connection between two members survives only if both ends are dumped
 * in the same freeze and restored together (docs/pods.md). So:
 *   - checkpoint freezes the infra container and every running member,
 *     then dumps the members and the infra last (runc checkpoint as host
 *     root). If any dump fails, whatever was already dumped is restored
 *     from its images into the still-running pod (or, if the infra was
 *     dumped, the infra first), the rest is thawed: the pod runs on as
 *     before and the error says so. A journal (pod_journal.h) lets
 *     `edgemig recover` and edgemigd do the same after a crash;
 *   - restore brings the infra container back (as any container: CRIU
 *     re-creates its user and network namespaces and the network hook wires
 *     them), then each member into them (pod_member.h). If any member
 *     fails, every container restored so far is killed again and the
 *     checkpoint is kept, so the restore can be retried.
 *
 * Layout of DIR:
 *   DIR/pod.json       {"format", "pod", "members": [names]}, written last
 *   DIR/<container>/   em_checkpoint_save's layout (runc.h) for the infra
 *                      container (named as the pod) and each member */
#ifndef EDGEMIG_CHECKPOINT_POD_CKPT_H
#define EDGEMIG_CHECKPOINT_POD_CKPT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/config.h"
#include "util/error.h"

#define EM_POD_CHECKPOINT_FORMAT 1

/* Checkpoints running pod `pod` into dir (new or empty). The pod stops
 * here; its members that were not running are left as they are. */
int em_pod_checkpoint(const struct em_config *cfg, const char *pod, const char *dir,
                      em_error_t *err);

/* Brings back each pod whose checkpoint's edgemig process died midway
 * (pod_journal.h): its containers already dumped are restored from the
 * partial checkpoint, the others thawed, the traffic block lifted and the
 * "migrating" marks cleared, so the pod runs here as before. Settles each
 * pod whose restore's process died midway: finished if every container
 * was back (and the restore was not a migration session's), else rolled
 * back to the checkpoint as a failed restore is. Returns how many pods'
 * journals were settled. wait_ms and *pending as in
 * em_pod_journal_recover (pod_journal.h): how long to wait for a `runc
 * checkpoint` a crash left running, and how many journals wait for one. */
#define EM_POD_RECOVER_WAIT_MS 60000 /* `edgemig recover`'s wait for such a runc */
int em_pod_checkpoint_recover(const struct em_config *cfg, int wait_ms, size_t *pending,
                              em_error_t *err);

/* Restores the pod checkpointed in dir, journalled (pod_journal.h); dir
 * stays usable for a retry. */
int em_pod_restore(const struct em_config *cfg, const char *dir, em_error_t *err);
/* Whether every container of the pod checkpointed in dir runs here: a
 * restore from it completed (recovery finished one that crashed). */
bool em_pod_restored_from(const struct em_config *cfg, const char *dir);

#endif
