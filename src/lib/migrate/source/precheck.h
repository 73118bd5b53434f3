/* The migratability pre-check: `edgemig check NAME --to HOST:PORT` and
 * `edgemig migrate --dry-run` say, before anything moves, whether a
 * container can be migrated to a target and why not, and estimate the
 * transfer and the handoff over the measured link (docs/lifecycle.md).
 *
 * On the wire it is a session of its own, HELLO mode "check": the target
 * runs the handshake's decision (protocol, CRIU, CPU vendor and flags) but
 * claims nothing and stages nothing. The source then sends the plan as a
 * migration would (LAYERS_HAVE {spec, image} plus "need": {"upper_bytes",
 * "memory_bytes"}) and one ROUND_END frame of EM_PRECHECK_PROBE random
 * bytes to time the link; the target answers LAYERS_HAVE {"missing":
 * [digests], "problems": [text], "disk_free_bytes", "mem_available_bytes",
 * "features": {its probe}} and the session ends (target/precheck_target.c).
 *
 * For a pod (NAME its infra container) the HELLO names the pod and the
 * plan is the pod session's (target/pod_target.h: {spec, image, "pod":
 * {"members": [{spec, image}]}}) plus the pod's summed "need"; the target
 * holds it as em_pod_target_serve would (em_pod_plan_check, every name
 * free, the service IP unused). The report adds "pod": true and
 * "containers" (members, then the infra); the estimate is stop-and-copy. */
#ifndef EDGEMIG_MIGRATE_SOURCE_PRECHECK_H
#define EDGEMIG_MIGRATE_SOURCE_PRECHECK_H

#include <jansson.h>

#include "migrate/common/proto.h"
#include "migrate/source/source.h"
#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

/* Source side: checks container `name` against o->target (o->mode is the
 * mode it would migrate with). *report: {"container", "target", "ok",
 * "problems": [...], "notes": [...], "local": {...}, "target_host": {...},
 * "link": {"rtt_ms", "bandwidth_bps", "measured"}, "estimate":
 * {"layers_bytes", "upper_bytes", "memory_bytes", "transfer_bytes",
 * "handoff_ms", "downtime_ms"}}. Returns 0 when the check itself ran (ok
 * says whether the container can migrate); -1 only when it could not run
 * (no such container, target unreachable). */
int em_precheck_run(const struct em_config *cfg, const char *name, const struct em_migrate_opts *o,
                    json_t **report, em_error_t *err);

#endif
