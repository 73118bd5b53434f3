/* The digest of a CRIU pages file on the wire: what END carries and FINAL
 * names for pages-<id>.img (delta/pagefmt.h).
 *
 * "pglist:<hex>", the sha256 of the XXH3-128 hashes (em_page_hash) of the
 * file's pages in order, zero pages included. Both ends hash every page
 * anyway (the sender to find it in the receiver's set, the receiver the
 * bytes it writes), so the digest costs 16 bytes of sha256 a page where a
 * sha256 of the file cost 4096: for redis's 90 MB image, about 90 ms of
 * sha256 on each side inside the downtime (1 GB/s with SHA-NI here)
 * against 1.4 MB of it. What it proves is the same for every byte the
 * receiver writes: each page it wrote hashes to the page the sender read
 * from its file, at that place. A peer can forge a digest either way; the
 * receiver's guarantee against a hostile peer is that it writes only
 * pages this peer sent it (delta/decode.c), not the digest. */
#ifndef EDGEMIG_DELTA_PAGELIST_H
#define EDGEMIG_DELTA_PAGELIST_H

#include <stddef.h>
#include <stdint.h>

#include "delta/hashset.h"
#include "util/digest.h"

#define EM_PAGELIST_PREFIX "pglist:" /* as long as "sha256:" */

/* The hash of a page of zeros (computed once). */
const em_phash_t *em_page_zero_hash(void);
/* Adds one page, by its hash, to a running digest. */
void em_pagelist_add(em_sha256_t *sha, const em_phash_t *h);
/* Hashes n pages (a zero page by em_page_zero_hash) and adds them. */
void em_pagelist_add_pages(em_sha256_t *sha, const uint8_t *pages, size_t n);
/* Writes "pglist:<hex>" (EM_DIGEST_STR_LEN + 1 bytes); the hash is spent. */
void em_pagelist_final(em_sha256_t *sha, char out[EM_DIGEST_STR_LEN + 1]);

#endif
