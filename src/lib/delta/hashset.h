/* Page hashes (XXH3-128) and the hash tables keyed by them: the set of
 * pages a receiver holds (em_hashset) and the hash → u64 table under it and
 * under the page cache (em_phtab). */
#ifndef EDGEMIG_DELTA_HASHSET_H
#define EDGEMIG_DELTA_HASHSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/criu_img.h"
#include "util/error.h"

typedef struct {
        uint8_t b[16];
} em_phash_t;

/* XXH3-128 of one page, in canonical (big-endian) byte order. */
void em_page_hash(const void *page, em_phash_t *h);
/* The same hash of len bytes (a file's blocks, delta/blocks.h). */
void em_block_hash(const void *buf, size_t len, em_phash_t *h);
bool em_page_is_zero(const void *page);
void em_phash_hex(const em_phash_t *h, char out[33]);

/* Open addressing, hash → u64; UINT64_MAX marks an empty slot. */
struct em_phtab_slot {
        em_phash_t h;
        uint64_t v;
};
struct em_phtab {
        struct em_phtab_slot *s;
        size_t cap, n; /* cap is a power of two */
};
struct em_phtab_slot *em_phtab_find(const struct em_phtab *t, const em_phash_t *h);
/* Returns 1 if inserted, 0 if present, -1 on OOM. */
int em_phtab_insert(struct em_phtab *t, const em_phash_t *h, uint64_t v, em_error_t *err);
void em_phtab_free(struct em_phtab *t);

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

#endif
