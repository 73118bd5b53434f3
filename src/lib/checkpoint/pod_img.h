/* A pod member's checkpoint, made to restore into the pod's namespaces.
 *
 * A member runs in its pod's user, IPC and UTS namespaces, which the
 * infra container holds (container/pod.h). CRIU records, in the inventory
 * (inventory.img, root_ids), the namespaces CRIU itself ran in at dump time,
 * and on restore it creates every namespace in which the root task differs
 * from those: for a member it would clone a new user namespace, from which
 * the member can no longer enter the pod's network namespace ("Can't setns
 * .../net: Operation not permitted", docs/pods.md). Naming the root task's
 * own user, IPC and UTS namespaces in root_ids makes CRIU create none of
 * them, so the member stays in the ones runc's join-ns gives it: the
 * restored infra's.
 *
 * The rewrite keeps every other field byte for byte and refuses an image
 * it cannot read: the images may come from a peer. */
#ifndef EDGEMIG_CHECKPOINT_POD_IMG_H
#define EDGEMIG_CHECKPOINT_POD_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/criu_decode.h"
#include "util/error.h"

/* The most the rewrite adds to an inventory entry: three namespace ids of
 * at most 5 bytes each where the old ones took 1, and a longer length. */
#define EM_POD_IMG_GROWTH 32

/* Rewrites one inventory_entry (rec, len: the message, without magic or
 * length prefix) so that root_ids names task's user, IPC and UTS
 * namespaces. out holds len + EM_POD_IMG_GROWTH bytes; *out_len is set.
 * EBADMSG when rec is malformed, has no root_ids, or either side lacks one
 * of the three namespaces. */
int em_pod_img_inventory_join(const uint8_t *rec, size_t len, const struct em_ck_ids *task,
                              uint8_t *out, size_t *out_len, em_error_t *err);

/* For the CRIU images in dir: reads the root task (first pstree.img entry)
 * and its ids-<pid>.img, and rewrites inventory.img in place (atomically)
 * with em_pod_img_inventory_join. Running it twice changes nothing more. */
int em_pod_img_join_ns(const char *dir, em_error_t *err);

#endif
