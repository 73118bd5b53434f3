/* The page-delta wire format (delta/encode.h writes it, delta/decode.h
 * reads it): the page-level content-hash delta for memory images.
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
#ifndef EDGEMIG_DELTA_PAGEFMT_H
#define EDGEMIG_DELTA_PAGEFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "delta/hashset.h"

enum {
        EM_OP_BEGIN = 1,
        EM_OP_ZERO = 2,
        EM_OP_REF = 3,
        EM_OP_DATA = 4,
        EM_OP_END = 5,
        EM_OP_PREFILL = 6,
        EM_OP_END_PREFILL = 7,
        EM_OP_REF_RUN = 8, /* u64 first index, u32 count, u64 check: cached pages by position */
        EM_OP_XDATA = 9,   /* u64 index, u64 check, 4096 bytes XOR the cached page at index */
        EM_OP_ZBLOCK = 10, /* pages compressed against cached pages (prefill only) */
};

#define EM_DELTA_NAME_MAX 31 /* "pages-<N>.img" */
#define EM_ZB_MAX_PAGES   128
#define EM_ZB_MAX_REF     2048 /* reference pages (8 MiB) */

struct em_delta_stats {
        uint64_t pages; /* pages described */
        uint64_t zero, ref, data;
        uint64_t xdata; /* of data: sent as XDATA */
        uint64_t zdata; /* of data: sent in ZBLOCKs */
        uint64_t ref_runs;
        uint64_t bytes; /* delta bytes produced / consumed */
};

static inline void em_le_put(uint8_t *p, uint64_t v, int n)
{
        for (int i = 0; i < n; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static inline uint64_t em_le_get(const uint8_t *p, int n)
{
        uint64_t v = 0;

        for (int i = 0; i < n; i++)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

/* A hash's first 8 bytes: the checks of REF_RUN, XDATA and ZBLOCK fold them. */
static inline uint64_t em_phash_word(const em_phash_t *h)
{
        uint64_t w;

        memcpy(&w, h->b, 8);
        return w;
}

#endif
