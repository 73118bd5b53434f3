/* The target side of a pod session (HELLO mode "pod"): a whole pod
 * arrives as one unit, with pre-copy rounds or stop-and-copy (docs/pods.md,
 * docs/protocol.md).
 *
 * After HELLO (which reserved the pod's name, its outcome record and the
 * staging directory, as for any session):
 *   - LAYERS_HAVE: the plan carries the infra container's spec and image
 *     and {"pod": {"members": [{"spec", "image"}...]}}. Every spec is held
 *     to this host's incoming-spec policy (a member's "pod" must name the
 *     pod, only the infra's has "pod_infra"), bind sources must be allowed
 *     here and named volumes not here yet (em_mounts_admit), member names
 *     must be free here and the service IP unused;
 *     each member's name is then reserved for the session (its container
 *     directory made exclusively, as HELLO reserved the pod's), and given
 *     back if the session ends before its restore (or, after a crash, by
 *     the outcome record's abort: EM_OUTCOME_MEMBERS); the answer lists the
 *     blobs of all images that this host lacks and the manifests of the
 *     copies of the pod's named volumes it holds (migrate/common/volume_sync.h)
 *     and, if the plan has "uppers" (pre-copy), {"uppers": {NAME:
 *     manifest}}: of each container's copy of its writable layer, kept
 *     beside its page cache (pagecache/<name>/<peer>/upper);
 *   - LAYER_BLOB…, ROUND_END {"layers_done"}: every image registered,
 *     each spec pinned to it;
 *   - pre-copy (then and after the freeze, before the tar): FILE_ROOT
 *     {"member": NAME} says whose the PAGES_DATA and IMAGE_FILE frames
 *     that follow are, and with "uppers" the FILE_* frames (its writable
 *     layer's diff, into its copy); each container has its own page cache, kept per
 *     container name and peer as a single container's (a prepare fills
 *     it, a successful restore drops it; its hashes follow the plan's
 *     answer if the plan asks, "page_hashes"), and images directory in
 *     the staging directory; a
 *     ROUND_END {"round"} is echoed once all before it was applied. FINAL
 *     then carries "criu": {NAME: {file: digest}} for every container,
 *     exactly the files that arrived for it, each checked on receipt;
 *     they and the copy of its writable layer are moved into the
 *     unpacked checkpoint, whose tar must not carry criu/ or upper/ too
 *     (a pre-copy without "uppers" is refused);
 *   - FILE_ROOT {"volume"} and FILE_* frames: the volumes' trees (live,
 *     then after the freeze), into the copies;
 *   - IMAGE_FILE "pod.tar" (migrate/common/pod_pack.h), then FINAL
 *     {"files": {"pod.tar": digest}}: the tar is unpacked into the
 *     staging directory, container.json and pod.json are written from the
 *     checked specs, every container's images are validated as a single
 *     container's are, and `pod restore` runs (outcome record restoring,
 *     then restored once every member runs); the route hook announces the
 *     service IP once, and RESTORE_OK goes back.
 * The commit (DONE) is target.c's, as for any session. A failed restore
 * removes whatever of the pod was restored here before the session is
 * aborted, so nothing of it stays.
 *
 * A plan with "prepare": true (`edgemig prepare POD`) ends after the
 * layers and rounds with DONE instead of the tar and FINAL (a container's
 * image file is refused): the images and page caches stay
 * registered, the members' names are given back (target.c gives the
 * pod's back with the session before it answers DONE) and nothing is
 * restored. */
#ifndef EDGEMIG_MIGRATE_TARGET_POD_TARGET_H
#define EDGEMIG_MIGRATE_TARGET_POD_TARGET_H

#include "migrate/target/target.h"
#include "store/store.h"
#include "transfer/conn.h"

/* The most manifest JSON the plan's answer carries for the copies of the
 * writable layers, all containers together (the frame limit is 16 MiB):
 * a larger copy is emptied and its layer travels whole. */
#define EM_POD_UPPERS_HAVE_MAX (4u << 20)

/* The most members a pod session carries. */
#define EM_POD_MAX_MEMBERS 64

struct em_pod_target {
        const struct em_config *cfg;
        const struct em_target_opts *o;
        em_conn_t *conn;
        struct em_store *store;
        const char *session; /* hex id, the outcome record's */
        const char *pod;     /* the HELLO's container: the pod's infra */
        const char *dir;     /* the session's staging directory */
};

/* From the plan to RESTORE_OK, or to a prepare's DONE (*prepared set;
 * the caller answers it). */
int em_pod_target_serve(const struct em_pod_target *pt, bool *prepared, em_error_t *err);

/* For tests: checks a pod plan ({"spec", "image", "pod": {"members"}})
 * for pod `pod` against policy as the target does, without the host's
 * state (names free, IP unused); *names gets the members' names then the
 * pod's (NULL-terminated). */
int em_pod_plan_check(const struct em_policy *policy, const char *pod, const json_t *plan,
                      char ***names, em_error_t *err);

/* Fails (EEXIST, naming it) if any of the first n names is a container
 * here already. */
int em_pod_names_free(const struct em_config *cfg, char *const *names, size_t n, em_error_t *err);

#endif
