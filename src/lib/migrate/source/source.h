/* The source side of a migration: its options and entry point. It runs in
 * `edgemig migrate` (daemonless, like podman) or in edgemigd for a
 * controller's request (platform/control.h); the phases are in phases.c. */
#ifndef EDGEMIG_MIGRATE_SOURCE_SOURCE_H
#define EDGEMIG_MIGRATE_SOURCE_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "migrate/common/mode.h"
#include "migrate/source/stop_rule.h"
#include "transfer/compress.h"
#include "transfer/tls.h"
#include "util/config.h"
#include "util/error.h"

/* Called with a one-line progress update (phase, bytes, rate). */
typedef void (*em_migrate_progress_fn)(void *ud, const char *phase, uint64_t bytes, double rate_bps,
                                       uint64_t total_hint);

struct em_migrate_opts {
        const char *target;     /* ADDR:PORT of the target's edgemigd */
        em_tls_ctx_t *tls;      /* mutual TLS client context; NULL: plain TCP (--insecure) */
        const char *route_hook; /* run `HOOK announce IP` after a roll-back here, or NULL */
        enum em_migrate_mode mode;
        struct em_stop_rule stop;
        struct em_compress_opt compress;
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
