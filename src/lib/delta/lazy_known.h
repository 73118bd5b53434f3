/* Lazy pages a post-copy target holds already (migrate/common/postcopy.h):
 * the known-pages file EMKNOWN1 and the rewrite of CRIU's pagemap and
 * pages images that makes those pages present before a lazy restore. */
#ifndef EDGEMIG_DELTA_LAZY_KNOWN_H
#define EDGEMIG_DELTA_LAZY_KNOWN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Lazy pages the target holds already. Source: for the
 * frozen tasks under root (host pid), writes edgemig-known-<pid>.bin into
 * images listing their zero lazy pages and those whose hash is in known
 * (none for a zombie, which has no memory and no pagemap image).
 * Target: turns those into present pages of the images (content from the
 * page cache in cache_dir) before the lazy restore; a list that does not
 * check out is dropped (the pages stay lazy). */
struct em_hashset;
int em_lazy_known_write(const char *images, pid_t root, const struct em_hashset *known,
                        uint64_t *n_known, em_error_t *err);
void em_lazy_known_remove(const char *images);
/* The frozen task tree under root: host pids (root first) and each one's
 * innermost pid (CRIU's, the images'), at most max, without zombies
 * (CRIU dumps no memory of them; the lazy known-pages lists and the push
 * leave them out, and one may be reaped within the window). */
#define EM_LAZY_MAX_TASKS 4096
int em_lazy_tasks(pid_t root, pid_t *host, long *nspid, size_t max, size_t *n, em_error_t *err);
/* Pages still lazy in the images (what CRIU's lazy-pages daemon will pull). */
int em_lazy_pages_count(const char *images, uint64_t *n, em_error_t *err);
int em_lazy_known_apply(const char *images, const char *cache_dir, uint64_t *applied,
                        em_error_t *err);

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
