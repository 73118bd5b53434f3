/* The target side of a migration: one incoming session, served in a forked
 * child of edgemigd (platform/server.c). */
#ifndef EDGEMIG_MIGRATE_TARGET_TARGET_H
#define EDGEMIG_MIGRATE_TARGET_TARGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/target/policy.h"
#include "store/store.h"
#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

struct em_restore_opts;
/* How the target turns the staged images and upper dir into a running
 * container (or pod). em_target_ops_runc (em_container_restore_from:
 * overlay, netns, `runc restore`) is what edgemigd uses; the engine's unit
 * tests put stand-ins here that need no root. */
struct em_target_ops {
        int (*restore)(const struct em_config *cfg, const char *name, const json_t *spec,
                       const char *images_dir, const char *upper_dir,
                       const struct em_restore_opts *ro, em_error_t *err);
        /* Before the freeze, once the spec is pinned (migrate/target/
         * prewarm.h): em_target_prewarm_runc; NULL: nothing. *net_ready:
         * the restore may keep the network namespace it made. */
        int (*prewarm)(const struct em_config *cfg, const char *name, const json_t *spec,
                       bool *net_ready, em_error_t *err);
        /* A pod from its staged checkpoint dir (pod_target.h):
         * em_pod_restore. */
        int (*restore_pod)(const struct em_config *cfg, const char *dir, em_error_t *err);
};
extern const struct em_target_ops em_target_ops_runc;

struct em_target_opts {
        const struct em_target_ops *ops; /* em_target_opts_init: &em_target_ops_runc */
        struct em_policy policy;         /* what an incoming spec may ask for */
        const char *registry; /* pull missing layers from here first ("host:port"), or NULL */
        /* How to reach it: plain HTTP, CA bundle, skip-verify, auth file
         * (the platform is never needed: the pull is by manifest digest). */
        struct em_registry_opts registry_opts;
        const char *route_hook; /* executable run as `HOOK announce IP` after a restore */
        int io_timeout_ms;
        int commit_timeout_ms; /* how long a restored container waits for the source's DONE */
        /* What one session may stage: bytes received plus pages rebuilt
         * from the page cache (default 16 GiB; edgemigd --session-quota). */
        int64_t quota_bytes;
        /* This host can restore with lazy pages (its userfaultfd probe is
         * ok): told to the source in the plan's answer, so that a
         * non-converging default pre-copy hands off in hybrid mode only
         * where that works. edgemigd sets it from its host probe. */
        bool lazy_pages;
};
void em_target_opts_init(struct em_target_opts *o);

/* Serves one incoming migration session on conn (in edgemigd's child). The
 * session's outcome record is bound to conn's TLS identity
 * (em_conn_identity; "" without TLS), see migrate/common/outcome.h. */
int em_migrate_target_serve(const struct em_config *cfg, em_conn_t *conn,
                            const struct em_target_opts *o, em_error_t *err);

#endif
