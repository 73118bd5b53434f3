/* Block-level deltas of large regular files in the writable layer and in
 * named volumes (delta/upper.h). A database rewrites a few pages inside
 * files of many megabytes; sending such a file whole each round would
 * resend all of it. So a file of at least EM_BLOCK_MIN bytes is cut into
 * EM_BLOCK_SIZE blocks, each hashed as a page is (em_block_hash,
 * XXH3-128); a sender that knows the hashes of the receiver's copy sends
 * only the blocks whose hash differs.
 *
 * A block list travels in a manifest entry as "b": base64 of the 16-byte
 * hashes in block order (a target reports its copy of a volume this way).
 *
 * FILE_BLOCKS data payloads (delta/upper.h applies them): u64 offset,
 * little-endian, then the block's bytes (a whole block, or the file's
 * short last block); the last payload is the terminator, offset = the
 * file's size and no bytes. The receiver (em_blocks_rx) takes offsets only
 * ascending, block aligned and inside the announced size, each with its
 * block's exact length, and requires every block it cannot hold already:
 * from the end of its old copy on (all of them for a new file), so a file
 * grows only by bytes that crossed. */
#ifndef EDGEMIG_DELTA_BLOCKS_H
#define EDGEMIG_DELTA_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/hashset.h"
#include "util/error.h"

#define EM_BLOCK_SIZE (64u << 10)
#define EM_BLOCK_MIN  (256u << 10) /* smaller files travel whole */
#define EM_BLOCK_HDR  8            /* the offset before a block's bytes */

/* Blocks of a file of size bytes, and the length of the one at off. */
uint64_t em_blocks_count(uint64_t size);
size_t em_block_len(uint64_t size, uint64_t off);

/* Hashes in block order, as a growing list (the scan appends). */
struct em_blocks {
        size_t n, cap;
        em_phash_t *h;
};
void em_blocks_free(struct em_blocks *b);
int em_blocks_append(struct em_blocks *b, const void *block, size_t len, em_error_t *err);

/* base64 of the hashes (malloc'd), and back: refused unless s is
 * canonical base64 of exactly em_blocks_count(size) hashes. */
char *em_blocks_encode(const struct em_blocks *b);
int em_blocks_decode(const char *s, size_t slen, uint64_t size, struct em_blocks *b,
                     em_error_t *err);

/* The receiver's check of a FILE_BLOCKS stream for a file of size bytes
 * of which it holds the first have bytes. */
struct em_blocks_rx {
        uint64_t size, next, need;
};
void em_blocks_rx_init(struct em_blocks_rx *r, uint64_t size, uint64_t have);
/* One payload: 0 and the block (*off, *data, *len), 1 for the terminator
 * (every required block arrived), -1 if the payload breaks a rule. */
int em_blocks_rx_next(struct em_blocks_rx *r, const uint8_t *p, size_t plen, uint64_t *off,
                      const uint8_t **data, size_t *len, em_error_t *err);

#endif
