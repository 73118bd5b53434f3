/* The source side of a pod session: `edgemig migrate POD --to HOST:PORT`
 * (and a controller's request for POD) moves the whole pod as one unit
 * (docs/pods.md, "Migrating a pod to another host").
 *
 * The pod's infra container and every member must run here. Phases:
 * handshake (HELLO mode "pod", naming the pod; beside it, what each
 * container's checkpoint would refuse, checkpoint/ckpt_refuse.h, is
 * refused before anything moves), plan and layers (every
 * container's spec and image; the blobs the target lacks of all images),
 * with --mode precopy pre-copy rounds while the pod runs (each
 * container's memory read live and its pages the target lacks sent after
 * a FILE_ROOT naming it, then what changed in its writable layer as a
 * manifest diff against the target's copy, until a round would fit the downtime target,
 * fails to shrink to the stop rule's converge ratio of the one before,
 * or the round budget is spent), final (`pod checkpoint` into the session's staging directory: one
 * freeze, the pod's network lock; after pre-copy each container's last
 * writable-layer diff and CRIU images, pages-*.img as page deltas
 * against what the rounds sent; then the logs (and, stop-and-copy, the
 * upper/ and criu/ trees) as one tar, migrate/common/pod_pack.h, and
 * FINAL), then the commit of any
 * session: RESTORE_OK once every member runs on the target, the service
 * IP withdrawn here once, the journal's "committing", DONE, "committed",
 * and the pod's containers removed here.
 *
 * All or nothing: a failure before FINAL went out restores the kept
 * checkpoint here (`pod restore`) and announces the IP again; after it the
 * target's outcome record decides, as for one container
 * (migrate/common/resolve.h).
 *
 * `edgemig prepare POD` is the same session up to the rounds, its plan
 * marked "prepare": every image the target lacks lands in its store and
 * the pages in each container's page cache there and its writable layer
 * into the copy kept beside it, then DONE, and the pod runs on here
 * untouched. The migration after it sends no blob, and its
 * rounds only the pages the caches lack (their hashes follow the plan's
 * answer when the plan asks, "page_hashes") and the files that changed
 * since (the copies' manifests are in the answer, "uppers"). */
#ifndef EDGEMIG_MIGRATE_SOURCE_POD_SOURCE_H
#define EDGEMIG_MIGRATE_SOURCE_POD_SOURCE_H

#include <jansson.h>

#include "migrate/source/source.h"

/* True if `name` is a pod here (its infra container). */
bool em_pod_source_is_pod(const struct em_config *cfg, const char *name);

/* em_migrate_source_run for pod `pod` (the report as that one's). */
int em_pod_source_run(const struct em_config *cfg, const char *pod, const struct em_migrate_opts *o,
                      json_t **report, em_error_t *err);

#endif
