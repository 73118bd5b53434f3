/* Internal to the feature probe: one function per host probe. Each fills
 * `out` (name and required are set by the caller) and never fails: a probe
 * that cannot run reports its feature as missing, with the reason. */
#ifndef EDGEMIG_CHECKPOINT_FEATURES_PROBES_H
#define EDGEMIG_CHECKPOINT_FEATURES_PROBES_H

#include <stdbool.h>

#include "checkpoint/features.h"

struct em_probe_ctx {
        const struct em_config *cfg;
        const char *tmpdir; /* private scratch dir under the state root */
        char *criu_version; /* set by the criu probe, NULL if CRIU is unusable */
        bool criu_ok;       /* CRIU present and >= EM_CRIU_MIN_VERSION */
};

typedef void (*em_probe_fn)(struct em_probe_ctx *ctx, struct em_feature *out);

void em_feature_set(struct em_feature *f, enum em_feature_status status, const char *value,
                    const char *detail, const char *hint);

void em_probe_kernel(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_overlayfs(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_namespaces(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_userns(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_cgroup(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_runc(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_criu(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_criu_check(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_dump_restore(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_hw_breakpoints(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_soft_dirty(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_userfaultfd(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_pipe_max_size(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_tcp_repair(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_tcp_half_closed(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_criu_kdat_cache(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_tc_tbf(struct em_probe_ctx *ctx, struct em_feature *out);
void em_probe_conntrack_hash(struct em_probe_ctx *ctx, struct em_feature *out);

/* The kernel's connection-tracking hash size, and above which size its
 * walk in every CRIU dump is worth a warning (several ms). */
#define EM_CONNTRACK_HASHSIZE  "/sys/module/nf_conntrack/parameters/hashsize"
#define EM_CONNTRACK_HASH_WARN 65536UL
bool em_conntrack_hash_large(unsigned long buckets);

#endif
