/* Post-copy and hybrid migration with CRIU lazy pages (docs/postcopy.md).
 *
 * Source: `runc checkpoint --lazy-pages --page-server ADDR:PORT` freezes the
 * container and keeps its memory in CRIU's page server; the small non-lazy
 * images travel on the session connection, FINAL carries
 * {"lazy": {"address", "port"}}.
 * Target: `criu lazy-pages --page-server` + `runc restore --lazy-pages`;
 * RESTORE_OK as soon as the service runs, ROUND_END {"lazy_progress"} every
 * second while pages stream in, then ROUND_END {"lazy_done", "degraded_ms"}
 * when the last page arrived. Only then does the source commit.
 *
 * During that window the process is split across both hosts: any failure
 * loses it on both (the target kills its partial copy at once, the source
 * stops its page server and removes its frozen container). */
#ifndef EDGEMIG_MIGRATE_POSTCOPY_H
#define EDGEMIG_MIGRATE_POSTCOPY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

struct source;

/* True when the final step of this migration should be lazy: postcopy,
 * hybrid, or auto whose pre-copy did not reach the downtime target. */
bool em_source_lazy_wanted(const struct source *s);
/* The lazy final step: dump, images, FINAL, RESTORE_OK, wait for the last
 * page, commit. */
int em_source_final_lazy(struct source *s, em_error_t *err);

struct em_lazy_target {
        const struct em_config *cfg;
        em_conn_t *conn;
        const char *container, *session;
        const json_t *spec;
        const char *images, *upper, *staging; /* the session's staging dir and its parts */
        const char *route_hook;
        int io_timeout_ms;     /* no page progress for this long: the window failed */
        bool *restored;        /* set once the container runs here */
        const char *cache_dir; /* this peer's page cache for the container */
};

/* A FINAL whose "lazy" names a page server in clear is refused on a
 * mutual-TLS session (pages must come through the session, relayed);
 * called first thing, before the images are even checked. */
int em_lazy_final_check(const em_conn_t *conn, const json_t *final, em_error_t *err);
/* Handles a FINAL that carries "lazy": starts `criu lazy-pages`, restores,
 * sends RESTORE_OK, streams progress and ROUND_END lazy_done. On failure the
 * restored container has already been killed. */
int em_target_restore_lazy(const struct em_lazy_target *lt, const json_t *final, em_error_t *err);

/* fs.pipe-max-size >= 4 MiB while lazy pages move (CRIU's page pipes; we lack
 * CAP_SYS_RESOURCE). Reference-counted across processes of this host in
 * /run/edgemig/pipe-max-size; the last user puts the old value back. */
int em_pipe_max_raise(em_error_t *err);
void em_pipe_max_release(void);

#endif
