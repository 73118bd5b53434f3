/* The page-delta decoder: rebuilds CRIU page images from the stream
 * (delta/pagefmt.h) and the receiver's page cache. */
#ifndef EDGEMIG_DELTA_DECODE_H
#define EDGEMIG_DELTA_DECODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/pagecache.h"
#include "delta/pagefmt.h"
#include "util/digest.h"
#include "util/error.h"

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

/* Appends one object per op of a delta stream (PAGES_DATA payloads) to the
 * array ops: {"op", "bytes", and the op's fields}; fails at the first op
 * the decoder would refuse for its layout (nothing is applied). */
int em_delta_ops_json(const uint8_t *buf, size_t len, json_t *ops, em_error_t *err);

#endif
