/* The source side of a migration: its options and entry point. It runs in
 * `edgemig migrate` (daemonless, like podman) or in edgemigd for a
 * controller's request (platform/control.h); the phases are in phases.c. */
#ifndef EDGEMIG_MIGRATE_SOURCE_SOURCE_H
#define EDGEMIG_MIGRATE_SOURCE_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "migrate/common/mode.h"
#include "migrate/common/session.h"
#include "migrate/source/stop_rule.h"
#include "transfer/compress.h"
#include "transfer/tls.h"
#include "util/config.h"
#include "util/error.h"

/* Called about once a second, and at each phase, with a progress snapshot
 * (migrate/source/monitor.h em_progress_json), from a thread of its own. */
typedef void (*em_migrate_progress_fn)(void *ud, const json_t *progress);

struct em_checkpoint_opts;
struct em_restore_opts;
/* What the source does to the world outside the protocol: reach the target,
 * ask runc about the container, dump it, restore it here after a failed
 * migration, remove it after a committed one, and hand its route back.
 * em_source_ops_runc (TLS/TCP, runc, CRIU, the route hook) is what edgemig
 * and edgemigd use; the engine's unit tests (tests/unit/test_engine_source.c)
 * put stand-ins here that need no root. */
struct em_source_ops {
        /* The session and each OUTCOME request of its settling. */
        em_session_connect_fn connect;
        /* runc's status of the container ("running", ...) and its init pid. */
        int (*state)(const struct em_config *cfg, const char *name, char **status, int *pid,
                     em_error_t *err);
        /* em_container_checkpoint_start/_ready/_finish (checkpoint/runc.h). */
        int (*checkpoint_start)(const struct em_config *cfg, const char *name,
                                const char *images_dir, const struct em_checkpoint_opts *o,
                                pid_t *pid, em_error_t *err);
        int (*checkpoint_ready)(const struct em_config *cfg, const char *name, em_error_t *err);
        int (*checkpoint_finish)(const struct em_config *cfg, const char *name,
                                 const char *images_dir, const struct em_checkpoint_opts *o,
                                 pid_t pid, int timeout_ms, em_error_t *err);
        /* The roll-back: em_container_restore_from. */
        int (*restore)(const struct em_config *cfg, const char *name, const json_t *spec,
                       const char *images_dir, const char *upper_dir,
                       const struct em_restore_opts *ro, em_error_t *err);
        /* After the commit: em_container_rm_migrated. */
        int (*remove)(const struct em_config *cfg, const char *name, em_error_t *err);
        /* em_session_route_hook: `HOOK announce IP` after a roll-back. */
        int (*route_hook)(const char *hook, const char *verb, const char *ip, em_error_t *err);
};
extern const struct em_source_ops em_source_ops_runc;

struct em_migrate_opts {
        const struct em_source_ops *ops; /* em_migrate_opts_init: &em_source_ops_runc */
        const char *target;              /* ADDR:PORT of the target's edgemigd */
        em_tls_ctx_t *tls;      /* mutual TLS client context; NULL: plain TCP (--insecure) */
        const char *route_hook; /* `HOOK withdraw IP` at RESTORE_OK, `announce` on roll-back */
        enum em_migrate_mode mode;
        struct em_stop_rule stop;
        struct em_compress_opt compress;
        uint64_t max_rate_bps; /* --max-rate: cap on what the session sends, bit/s; 0: none */
        bool auto_converge; /* --auto-converge: throttle the container while it outruns the link */
        bool lazy_pull;     /* --lazy-pull: CRIU's daemon pulls every lazy page (no push) */
        int connect_timeout_ms;
        int io_timeout_ms;
        em_migrate_progress_fn progress;
        void *progress_ud;
        /* Called with the final CRIU image directory after the dump, before
         * it is sent; NULL in edgemig. Tests play a compromised source with
         * it (tests/helpers/em-hostile-peer.c --mode checkpoint). */
        int (*images_hook)(const char *dir, void *ud, em_error_t *err);
        void *images_hook_ud;
};
void em_migrate_opts_init(struct em_migrate_opts *o);

/* Migrates container `name` of this host to o->target. On success the
 * container runs on the target and is gone here; on failure it runs here,
 * except when the migration is in doubt (the error says so): then it is
 * stopped here with its checkpoint kept, and may run on the target.
 * *report receives the JSON timeline in either case (also saved under
 * <root>/migrations/<id>.json). */
int em_migrate_source_run(const struct em_config *cfg, const char *name,
                          const struct em_migrate_opts *o, json_t **report, em_error_t *err);

#endif
