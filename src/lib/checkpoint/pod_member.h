/* Restoring one member of a pod into the namespaces of its pod's running
 * (usually just restored) infra container.
 *
 * runc 1.1.5 and CRIU 4.2.1 cannot restore a member from the host: CRIU
 * would clone it into a new user namespace, from which it can no longer
 * enter the pod's network namespace (docs/pods.md, "what was tried").
 * What works, and what this does:
 *   - the member's inventory names its own user, IPC and UTS namespaces
 *     (em_pod_img_join_ns), so CRIU creates none and runc's join-ns puts
 *     the member into the infra's;
 *   - runc and CRIU run inside the infra's user and network namespaces,
 *     in a private mount namespace (nsenter + unshare), as the pod's root
 *     (its first host id). So runc keeps its state in a root of the
 *     member's own (<dir>/runc, owned by that id; container.h), the
 *     images, CRIU's work directory and the bundle are opened to it, and
 *     the member's cgroup directories are made beforehand in every v1
 *     controller and given to it (runc there cannot make them);
 *   - CRIU runs `unprivileged` (SO_SNDBUFFORCE and the like need the
 *     host's user namespace) with `manage-cgroups=ignore` (it cannot mount
 *     the controllers), added to the member's criu.conf;
 *   - CRIU's network-lock rules are flushed from the pod's network
 *     namespace first: a member's restore hangs on them.
 * Dumps stay on the host (runc checkpoint as host root): inside the user
 * namespace CRIU cannot suspend seccomp, which is fatal there. */
#ifndef EDGEMIG_CHECKPOINT_POD_MEMBER_H
#define EDGEMIG_CHECKPOINT_POD_MEMBER_H

#include <jansson.h>

#include "state/state.h"
#include "util/config.h"
#include "util/error.h"

/* Restores member `name` (spec: its container.json, "pod" names the pod,
 * whose infra container must run here) from the CRIU images in images;
 * upper (NULL: keep the member's own writable layer) is copied in and,
 * if the pod had another ID range where it was checkpointed (dumped_ids,
 * the infra's range then; NULL or size 0: the same), re-owned to the
 * pod's range here. The images are rewritten for the pod
 * (em_pod_img_join_ns) and given to the pod's root. The member's row is
 * created if missing (another host's checkpoint); on success it is
 * "running" but stopped until em_pod_member_resume, on failure it is left
 * "checkpointed" with nothing of it running. */
int em_pod_member_restore(const struct em_config *cfg, const char *name, const json_t *spec,
                          const char *images, const char *upper,
                          const struct em_idrange *dumped_ids, em_error_t *err);

/* A member comes back stopped (CRIU's leave-stopped): a restored member
 * that ran at once would talk over localhost to members not restored yet,
 * whose kernel answers with a reset, and a connection between two members
 * would break. Once every member is restored, this sends SIGCONT to each
 * task in the member's cgroup. */
int em_pod_member_resume(const struct em_config *cfg, const char *name, em_error_t *err);

/* Kills a restored member or infra container (a roll-back: its checkpoint
 * is kept), releases its runtime resources and marks it "checkpointed".
 * Errors are logged: a roll-back goes on. */
void em_pod_container_unrestore(const struct em_config *cfg, const char *name);

#endif
