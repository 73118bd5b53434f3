/* Live migration of a container between two edge hosts.
 *
 * The source side runs in `edgemig migrate` (daemonless, like podman); the
 * target side runs in edgemigd, one forked child per incoming session.
 * Phases: handshake, layers, pre-copy rounds (writable layer + memory),
 * final (checkpoint, last deltas), restore, switch, cleanup. The service runs
 * on at most one host at any moment and is never lost: a failure before the
 * final state left restores the container on the source; after that, the
 * target's answer decides which copy stays (migrate/resolve.h). */
#ifndef EDGEMIG_MIGRATE_MIGRATE_H
#define EDGEMIG_MIGRATE_MIGRATE_H

#include <jansson.h>
#include <stdbool.h>

#include "migrate/policy.h"
#include "migrate/stop_rule.h"
#include "transfer/compress.h"
#include "transfer/conn.h"
#include "transfer/tls.h"
#include "util/config.h"
#include "util/error.h"

enum em_migrate_mode {
        EM_MIGRATE_PRECOPY = 0,
        EM_MIGRATE_STOP_AND_COPY,
        EM_MIGRATE_PREPARE,  /* pre-transfer only: layers + base memory, no handoff */
        EM_MIGRATE_POSTCOPY, /* lazy pages right away (migrate/postcopy.h) */
        EM_MIGRATE_HYBRID,   /* pre-copy rounds, then lazy pages for the rest */
        EM_MIGRATE_AUTO,     /* pre-copy if the final delta fits the downtime target, else hybrid */
};
int em_migrate_mode_parse(const char *s, enum em_migrate_mode *out, em_error_t *err);
const char *em_migrate_mode_name(enum em_migrate_mode m);

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

struct em_restore_opts;
/* How the target turns the staged images and upper dir into a running
 * container. em_target_ops_runc (em_container_restore_from: overlay, netns,
 * `runc restore`) is what edgemigd uses; the engine's unit tests put a
 * stand-in here that needs no root. */
struct em_target_ops {
        int (*restore)(const struct em_config *cfg, const char *name, const json_t *spec,
                       const char *images_dir, const char *upper_dir,
                       const struct em_restore_opts *ro, em_error_t *err);
};
extern const struct em_target_ops em_target_ops_runc;

struct em_target_opts {
        const struct em_target_ops *ops; /* em_target_opts_init: &em_target_ops_runc */
        struct em_policy policy;         /* what an incoming spec may ask for */
        const char *registry; /* pull missing layers from here first ("host:port"), or NULL */
        bool registry_insecure;
        const char *route_hook; /* executable run as `HOOK announce IP` after a restore */
        int io_timeout_ms;
        int commit_timeout_ms; /* how long a restored container waits for the source's DONE */
        /* What one session may stage: bytes received plus pages rebuilt
         * from the page cache (default 16 GiB; edgemigd --session-quota). */
        int64_t quota_bytes;
};
void em_target_opts_init(struct em_target_opts *o);

/* Serves one incoming migration session on conn (in edgemigd's child). The
 * session's outcome record is bound to conn's TLS identity
 * (em_conn_identity; "" without TLS), see migrate/outcome.h. */
int em_migrate_target_serve(const struct em_config *cfg, em_conn_t *conn,
                            const struct em_target_opts *o, em_error_t *err);

#endif
