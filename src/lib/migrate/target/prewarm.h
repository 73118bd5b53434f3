/* The target's share of the downtime, moved before the freeze (issue 17):
 * once the layers are in and the spec is pinned to them (the round that
 * ends the layers), the target makes the container's directories and,
 * where it can, its network namespace with the service IP (not yet
 * routed: the route hook announces it only after the restore), and
 * warms CRIU's kernel-feature cache (checkpoint/kdat.h). At FINAL only
 * the files go into place and the process tree is restored.
 *
 * A failure here is not the session's: the restore then does the work
 * itself, as without pre-warming. What it made is the session's until
 * the restore: an abort (the session's outcome record, migrate/common/
 * outcome.h) releases it with the reserved name. */
#ifndef EDGEMIG_MIGRATE_TARGET_PREWARM_H
#define EDGEMIG_MIGRATE_TARGET_PREWARM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/target/target.h"
#include "util/config.h"
#include "util/error.h"

struct em_prewarm {
        bool done;      /* ran (successfully or not) */
        bool net_ready; /* the network namespace is made: the restore keeps it */
        int64_t ms;     /* how long it took */
        int64_t end_ms; /* em_mono_ms() when it ended */
};

/* Runs ops->prewarm (none: nothing), once. Fails only for the fault point
 * target.after-prewarm (fd: the session's socket). */
int em_prewarm_run(const struct em_target_ops *ops, const struct em_config *cfg, const char *name,
                   const json_t *spec, int fd, struct em_prewarm *pw, em_error_t *err);

/* RESTORE_OK's timing keys for it: "prewarm_ms", and "prewarm_lead_ms",
 * how long before final_at (em_mono_ms() when FINAL arrived) it ended. */
void em_prewarm_timing(const struct em_prewarm *pw, int64_t final_at, json_t *timing);

/* The real one (em_target_ops_runc): the kernel-feature cache, then
 * em_container_prewarm. */
int em_target_prewarm_runc(const struct em_config *cfg, const char *name, const json_t *spec,
                           bool *net_ready, em_error_t *err);

#endif
