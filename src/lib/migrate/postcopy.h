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

/* Lazy pages the target holds already (lazy_known.c). Source: for the
 * frozen tasks under root (host pid), writes edgemig-known-<pid>.bin into
 * images listing their zero lazy pages and those whose hash is in known.
 * Target: turns those into present pages of the images (content from the
 * page cache in cache_dir) before the lazy restore; a list that does not
 * check out is dropped (the pages stay lazy). */
struct em_hashset;
int em_lazy_known_write(const char *images, pid_t root, const struct em_hashset *known,
                        uint64_t *n_known, em_error_t *err);
void em_lazy_known_remove(const char *images);
/* Pages still lazy in the images (what CRIU's lazy-pages daemon will pull). */
int em_lazy_pages_count(const char *images, uint64_t *n, em_error_t *err);
int em_lazy_known_apply(const char *images, const char *cache_dir, uint64_t *applied,
                        em_error_t *err);

/* fs.pipe-max-size >= 4 MiB while lazy pages move (CRIU's page pipes; we lack
 * CAP_SYS_RESOURCE). Reference-counted across processes of this host in
 * /run/edgemig/pipe-max-size; the last user puts the old value back. */
int em_pipe_max_raise(em_error_t *err);
void em_pipe_max_release(void);

/* edgemig-known-<pid>.bin as em_lazy_known_apply reads it (layout above
 * em_lazy_known_write's definition in lazy_known.c); pointers into buf. */
struct em_known_list {
        uint64_t n;
        const uint8_t *rec; /* n x {u64 vaddr, 16-byte hash (zero: a zero page)} */
        const char *digest; /* "sha256:<hex>", not NUL-terminated */
};
int em_known_parse(const uint8_t *buf, size_t len, struct em_known_list *out, em_error_t *err);
/* {"format", "count", "sha256", "pages": [{"vaddr", "hash"}]} (for
 * edgemig debug decode); NULL if out of memory. */
json_t *em_known_json(const struct em_known_list *l);

#endif
