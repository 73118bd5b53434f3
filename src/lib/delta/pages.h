/* The page-level content-hash delta for memory images.
 *
 * Every 4 KiB page of a CRIU pages-<id>.img is hashed with XXH3-128. The
 * sender knows which hashes the receiver holds (what it sent earlier, or a
 * PAGES_HASHES list) and emits, per page, ZERO (runs), REF(hash) or
 * DATA(4096 bytes). The receiver rebuilds pages-<id>.img byte for byte from
 * the delta and its content-addressed page cache, and checks the result
 * against the source's sha256 before it is renamed into place.
 *
 * Delta stream (payload of PAGES_DATA frames; an op never straddles two
 * payloads; integers little-endian):
 *   0x01 BEGIN   u16 name_len, name ("pages-<N>.img"), u64 nr_pages
 *   0x02 ZERO    u32 count (>= 1)
 *   0x03 REF     16-byte hash
 *   0x04 DATA    4096 bytes (also stored in the receiver's cache)
 *   0x05 END     71-byte "sha256:<hex>" of the whole source file
 *   0x06 PREFILL (DATA ops that only fill the cache, closed by END_PREFILL)
 *   0x07 END_PREFILL
 *   0x08 REF_RUN u64 first position, u32 count, u64 check: cached pages by
 *                position in the receiver's cache file (check: XOR of each
 *                hash's first 8 bytes, little-endian)
 *   0x09 XDATA   u64 position, u64 check, 4096 bytes: the page is these
 *                bytes XORed with the cached page at that position (the
 *                address's previous content, delta/shadow.h); stored like DATA
 *   0x0a ZBLOCK  (prefill only) u32 nref, u64 ref_check, nref x u64 position,
 *                u32 npages, u64 check, u32 len, len bytes: a zstd frame of
 *                npages pages compressed against the cached pages at those
 *                positions (the old content around their addresses: a
 *                rewritten buffer whose data moved compresses to almost
 *                nothing); the pages go into the cache. Checks as REF_RUN's.
 * PAGES_HASHES payload: n * 16-byte hashes. */
#ifndef EDGEMIG_DELTA_PAGES_H
#define EDGEMIG_DELTA_PAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "delta/criu_img.h"
#include "util/digest.h"
#include "util/error.h"

typedef struct {
        uint8_t b[16];
} em_phash_t;

/* XXH3-128 of one page, in canonical (big-endian) byte order. */
void em_page_hash(const void *page, em_phash_t *h);
bool em_page_is_zero(const void *page);
void em_phash_hex(const em_phash_t *h, char out[33]);

/* A set of page hashes (open addressing, 24 bytes a page). */
typedef struct em_hashset em_hashset_t;
em_hashset_t *em_hashset_new(void);
void em_hashset_free(em_hashset_t **s);
#define cleanup_hashset __attribute__((cleanup(em_hashset_free)))
/* Returns 1 if added, 0 if already there, -1 on OOM. */
int em_hashset_add(em_hashset_t *s, const em_phash_t *h, em_error_t *err);
bool em_hashset_has(const em_hashset_t *s, const em_phash_t *h);
/* The position at which h was first added (adds are numbered from 0,
 * duplicates included); false if absent. */
bool em_hashset_position(const em_hashset_t *s, const em_phash_t *h, uint64_t *pos);
/* Adds so far (the next add's position). */
uint64_t em_hashset_positions(const em_hashset_t *s);
size_t em_hashset_count(const em_hashset_t *s);
/* Every position's hash, 16 bytes each, in position order (a duplicate's
 * position holds zeros), malloc'd. Adding the list back to an empty set
 * gives the same positions. */
int em_hashset_export(const em_hashset_t *s, uint8_t **out, size_t *len, em_error_t *err);
/* PAGES_HASHES payloads: decode fails unless len is a multiple of 16. */
int em_hashset_add_payload(em_hashset_t *s, const void *buf, size_t len, em_error_t *err);

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
/* Stores a page (deduplicated) and returns its hash. */
int em_pagecache_put(em_pagecache_t *pc, const void *page, em_phash_t *h, em_error_t *err);
bool em_pagecache_has(const em_pagecache_t *pc, const em_phash_t *h);
/* Whether pages first..first+n-1 exist and their hashes fold (XOR of each
 * hash's first 8 bytes, little-endian) to check: the sender's view of them. */
int em_pagecache_check_run(const em_pagecache_t *pc, uint64_t first, uint64_t n, uint64_t check,
                           em_error_t *err);
/* Reads pages first..first+n-1 into pages (n * 4096 bytes), re-verifying
 * each page's hash. */
int em_pagecache_get_run(em_pagecache_t *pc, uint64_t first, uint64_t n, uint8_t *pages,
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

struct em_delta_stats {
        uint64_t pages; /* pages described */
        uint64_t zero, ref, data;
        uint64_t xdata; /* of data: sent as XDATA */
        uint64_t zdata; /* of data: sent in ZBLOCKs */
        uint64_t ref_runs;
        uint64_t bytes; /* delta bytes produced / consumed */
};

/* Receives each finished chunk of the delta stream (e.g. sends a PAGES_DATA
 * frame). */
typedef int (*em_delta_emit_fn)(void *ctx, const void *buf, size_t len, em_error_t *err);

struct em_delta_enc {
        em_hashset_t *known; /* hashes the receiver has; DATA pages are added */
        em_delta_emit_fn emit;
        void *ctx;
        uint8_t *buf;
        size_t len, chunk;
        uint32_t zero_run;
        /* Pending run of known pages at consecutive positions of `known`,
         * which for a page cache peer are its cache file's page indices. */
        uint64_t ref_first, ref_n, ref_check;
        /* Optional: the sender's shadow of the receiver's memory; a changed
         * page whose address it knows goes as XDATA. The address is vpid
         * (the pid inside the container, as in CRIU's images) and the
         * page's vaddr: from the scan, or for an image file from pagemap. */
        struct em_shadow *shadow;
        uint32_t vpid;
        const struct em_pagemap *pagemap;
        /* Image files: a first pass sends their changed pages as ZBLOCKs
         * (needless when the target already got the frozen memory). */
        bool prescan;
        struct em_zblock *zb; /* changed pages waiting for a ZBLOCK (internal) */
        bool in_prefill;      /* where a ZBLOCK may go (internal) */
        struct em_delta_stats st;
};
/* chunk: payload size to aim for (>= 8 KiB; 0 → 1 MiB). */
int em_delta_enc_init(struct em_delta_enc *e, em_hashset_t *known, size_t chunk,
                      em_delta_emit_fn emit, void *ctx, em_error_t *err);
void em_delta_enc_free(struct em_delta_enc *e);
/* Encodes pages-<id>.img from dirfd (one pass: hashes and sha256 together). */
/* digest_out (may be NULL) receives the file's "sha256:<hex>", the same
 * digest the END op carries, so callers need not read the file again. */
int em_delta_encode_file(struct em_delta_enc *e, int dirfd, const char *name,
                         char digest_out[EM_DIGEST_STR_LEN + 1], em_error_t *err);
/* Emits whatever is buffered. */
int em_delta_enc_flush(struct em_delta_enc *e, em_error_t *err);

/* Reading a running process without freezing it: /proc/PID/maps + pagemap
 * select the pages CRIU would dump (present or swapped; anonymous, or
 * private copies of file pages), process_vm_readv copies them. Pages that
 * vanish while reading are skipped. */
struct em_procmem_stats {
        uint64_t mappings, pages_read, bytes_read;
        int64_t elapsed_ns;
};
typedef int (*em_procmem_page_fn)(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err);
int em_procmem_scan(pid_t pid, em_procmem_page_fn fn, void *ctx, struct em_procmem_stats *st,
                    em_error_t *err);
/* A PREFILL section with every non-zero page of pid the receiver lacks. */
int em_delta_encode_procmem(struct em_delta_enc *e, pid_t pid, struct em_procmem_stats *st,
                            em_error_t *err);

struct em_delta_dec {
        em_pagecache_t *pc;
        int dirfd;          /* where files are rebuilt; -1: verify only */
        uint64_t max_pages; /* per file; default 2^24 (64 GiB) */
        int state;
        char name[32];
        uint64_t nr_pages, done;
        int out_fd;
        em_sha256_t *sha;
        struct em_delta_stats st;
        /* Called with each file's name and sha256 once it verified at END,
         * so the receiver need not hash it again (optional). */
        void (*on_file)(void *ud, const char *name, const char *digest);
        void *on_file_ud;
        void *zstd; /* ZSTD_DCtx for ZBLOCKs, created on first use */
};
void em_delta_dec_init(struct em_delta_dec *d, em_pagecache_t *pc, int dirfd);
/* Consumes one chunk. Errors (the connection should be closed): unknown op,
 * truncated op, bad name, more pages than announced, a REF to a page the
 * cache lacks, a digest mismatch at END. */
int em_delta_dec_feed(struct em_delta_dec *d, const uint8_t *buf, size_t len, em_error_t *err);
/* Fails if a file or prefill section is still open. */
int em_delta_dec_finish(struct em_delta_dec *d, em_error_t *err);
void em_delta_dec_free(struct em_delta_dec *d);

/* For edgemig debug decode: the saved page cache index (index.bin,
 * "EMPCIDX1", u64 n, n x 16-byte hashes in cache order), as the cache reads
 * it. *hashes points into buf. */
int em_pagecache_index_parse(const uint8_t *buf, size_t len, uint64_t *n, const uint8_t **hashes,
                             em_error_t *err);
/* Appends one object per op of a delta stream (PAGES_DATA payloads) to the
 * array ops: {"op", "bytes", and the op's fields}; fails at the first op
 * the decoder would refuse for its layout (nothing is applied). */
int em_delta_ops_json(const uint8_t *buf, size_t len, json_t *ops, em_error_t *err);

#endif
