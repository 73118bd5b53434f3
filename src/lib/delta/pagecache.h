#ifndef EDGEMIG_DELTA_PAGECACHE_H
#define EDGEMIG_DELTA_PAGECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/hashset.h"
#include "util/digest.h"
#include "util/error.h"

/* The receiver's content-addressed page cache. Page data lives in one file,
 * <dir>/pages.bin (or an anonymous memfd when dir is NULL); memory holds only
 * the index, 24 bytes a page. Reopening a directory re-indexes its file
 * (from the saved index, plus the pages appended since), so a cache survives
 * a daemon restart (e.g. between prepare and migrate). */
typedef struct em_pagecache em_pagecache_t;
int em_pagecache_open(const char *dir, em_pagecache_t **out, em_error_t *err);
void em_pagecache_free(em_pagecache_t **pc);
#define cleanup_pagecache __attribute__((cleanup(em_pagecache_free)))
/* Saves the hashes of the file's pages (<dir>/index.bin), so that the next
 * open hashes only pages appended since instead of the whole file; nothing
 * to do if the saved index already describes every page. */
int em_pagecache_save_index(em_pagecache_t *pc, em_error_t *err);
/* Stores a page (deduplicated) and returns its hash. New pages reach the
 * file in batches: the reads here and em_pagecache_save_index write them
 * first; another opener of the directory sees them after
 * em_pagecache_flush (or em_pagecache_free). */
int em_pagecache_put(em_pagecache_t *pc, const void *page, em_phash_t *h, em_error_t *err);
/* Writes the pages em_pagecache_put holds back. */
int em_pagecache_flush(em_pagecache_t *pc, em_error_t *err);
bool em_pagecache_has(const em_pagecache_t *pc, const em_phash_t *h);
/* Whether pages first..first+n-1 exist and their hashes fold (XOR of each
 * hash's first 8 bytes, little-endian) to check: the sender's view of them. */
int em_pagecache_check_run(const em_pagecache_t *pc, uint64_t first, uint64_t n, uint64_t check,
                           em_error_t *err);
/* Reads pages first..first+n-1 into pages (n * 4096 bytes), re-verifying
 * each page's hash. */
int em_pagecache_get_run(em_pagecache_t *pc, uint64_t first, uint64_t n, uint8_t *pages,
                         em_error_t *err);
/* Reads pages first..first+n-1 into pages without re-hashing them: only for
 * a caller whose own check covers the bytes read (the decoder's rebuilt
 * file, held to the source's sha256 at END). */
int em_pagecache_read_run(em_pagecache_t *pc, uint64_t first, uint64_t n, uint8_t *pages,
                          em_error_t *err);
/* Reads a page back and re-verifies its hash (detects a corrupted cache). */
int em_pagecache_get(em_pagecache_t *pc, const em_phash_t *h, void *page, em_error_t *err);
size_t em_pagecache_count(const em_pagecache_t *pc);
/* The hash of the page at position pos of the cache file. */
bool em_pagecache_hash_at(const em_pagecache_t *pc, uint64_t pos, em_phash_t *h);
/* Pages in the cache's file (it only grows; duplicates after a crash count). */
uint64_t em_pagecache_pages(const em_pagecache_t *pc);
/* The hashes of the file's pages from page `from` on, in file order, as a
 * PAGES_HASHES payload (malloc'd). */
int em_pagecache_hashes(const em_pagecache_t *pc, uint64_t from, uint8_t **out, size_t *len,
                        em_error_t *err);
/* sha256 of the hashes of the first n pages in file order: equal digests
 * mean the same first n pages, so a peer's record of them is still true. */
int em_pagecache_prefix_digest(const em_pagecache_t *pc, uint64_t n,
                               char out[EM_DIGEST_STR_LEN + 1], em_error_t *err);

/* For edgemig debug decode: the saved page cache index (index.bin,
 * "EMPCIDX1", u64 n, n x 16-byte hashes in cache order), as the cache reads
 * it. *hashes points into buf. */
int em_pagecache_index_parse(const uint8_t *buf, size_t len, uint64_t *n, const uint8_t **hashes,
                             em_error_t *err);

#endif
