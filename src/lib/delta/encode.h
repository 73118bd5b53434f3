/* The page-delta encoder: a CRIU page image, or a live process's memory,
 * against the pages the receiver holds (format: delta/pagefmt.h). */
#ifndef EDGEMIG_DELTA_ENCODE_H
#define EDGEMIG_DELTA_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "delta/criu_img.h"
#include "delta/hashset.h"
#include "delta/pagefmt.h"
#include "delta/procmem.h"
#include "util/digest.h"
#include "util/error.h"

struct em_shadow;
struct em_zblock;

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
/* Encodes pages-<id>.img from dirfd (one pass: the page hashes are the digest's). */
/* digest_out (may be NULL) receives the file's "pglist:<hex>"
 * (delta/pagelist.h), the digest the END op carries. */
int em_delta_encode_file(struct em_delta_enc *e, int dirfd, const char *name,
                         char digest_out[EM_DIGEST_STR_LEN + 1], em_error_t *err);
/* Emits whatever is buffered. */
int em_delta_enc_flush(struct em_delta_enc *e, em_error_t *err);

/* Appends one whole op (op, then a, then b), flushing first if it would
 * not fit. */
int em_delta_enc_put_op(struct em_delta_enc *e, uint8_t op, const void *a, size_t alen,
                        const void *b, size_t blen, em_error_t *err);
/* A PREFILL section with every non-zero page of pid the receiver lacks. */
int em_delta_encode_procmem(struct em_delta_enc *e, pid_t pid, struct em_procmem_stats *st,
                            em_error_t *err);
/* The same for only the pages of runs (an earlier scan's pick: the pages
 * em_delta_page_kind found missing). */
int em_delta_encode_procmem_runs(struct em_delta_enc *e, pid_t pid,
                                 const struct em_procmem_run *runs, size_t n,
                                 struct em_procmem_stats *st, em_error_t *err);
/* What a live process's page costs the receiver (known): nothing (a zero
 * page travels as a count), a reference (its hash, into *h, is known) or
 * the page. The one test for the pushes and for the scans that estimate
 * them. */
enum em_page_kind { EM_PAGE_ZERO, EM_PAGE_KNOWN, EM_PAGE_MISSING };
enum em_page_kind em_delta_page_kind(const em_hashset_t *known, const uint8_t *page, em_phash_t *h);

#endif
