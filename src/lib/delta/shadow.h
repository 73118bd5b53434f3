/* The sender's shadow of the receiver's memory: for each page address
 * (process, vaddr) the content the receiver last got for it, so a page that
 * changed since can travel as its XOR with that content (delta/pagefmt.h,
 * XDATA). A page that changed in a few bytes, the usual case in a heap,
 * then costs tens of bytes on the wire instead of a compressed 4 KiB.
 *
 * One slot of <dir>/pages.bin per address, overwritten when the address
 * gets new content; the address → (slot, hash) map lives in memory and, at
 * em_shadow_save, in <dir>/index.bin, so a migration that follows a
 * `prepare` (another process) continues from it. Content is re-verified
 * against its hash when read, and the receiver checks the position it is
 * applied to, so a stale or damaged shadow can cost bytes, never
 * correctness. A write error (a full disk) disables the shadow with one
 * warning: the pages then travel whole. */
#ifndef EDGEMIG_DELTA_SHADOW_H
#define EDGEMIG_DELTA_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/hashset.h"
#include "util/error.h"

typedef struct em_shadow em_shadow_t;

/* Opens (creating) the shadow in dir and locks it; EBUSY if another process
 * holds it. An unreadable index is dropped with a warning (empty shadow). */
int em_shadow_open(const char *dir, em_shadow_t **out, em_error_t *err);
void em_shadow_free(em_shadow_t **s);
#define cleanup_shadow __attribute__((cleanup(em_shadow_free)))

/* The hash of the content last recorded for (vpid, vaddr); false if none. */
bool em_shadow_hash(const em_shadow_t *s, uint32_t vpid, uint64_t vaddr, em_phash_t *h);
/* Reads that content into page, checking it still has hash h. */
int em_shadow_read(em_shadow_t *s, uint32_t vpid, uint64_t vaddr, const em_phash_t *h,
                   uint8_t *page, em_error_t *err);
/* Records that the receiver now holds page (hash h) for (vpid, vaddr);
 * writes only if the content changed. */
int em_shadow_record(em_shadow_t *s, uint32_t vpid, uint64_t vaddr, const em_phash_t *h,
                     const uint8_t *page, em_error_t *err);
/* Writes the index (tmp + rename). Addresses this session never recorded
 * are gone from the process (each scan records every page present): they
 * are dropped and pages.bin compacted, unless the session recorded nothing
 * at all (it failed early). */
int em_shadow_save(em_shadow_t *s, em_error_t *err);
/* Addresses recorded. */
size_t em_shadow_count(const em_shadow_t *s);
/* False once a write failed: nothing is recorded or offered any more. */
bool em_shadow_usable(const em_shadow_t *s);

/* The saved index (index.bin: "EMSHADW1", u64 n, n packed records {u64
 * vaddr, u64 slot, u32 vpid, 16-byte hash}), as the shadow reads it: fn
 * gets each record in file order (for edgemig debug decode). */
struct em_shadow_record {
        uint64_t vaddr, slot;
        uint32_t vpid;
        em_phash_t h;
};
typedef int (*em_shadow_record_fn)(void *ctx, uint64_t i, const struct em_shadow_record *r,
                                   em_error_t *err);
int em_shadow_index_parse(const uint8_t *buf, size_t len, em_shadow_record_fn fn, void *ctx,
                          em_error_t *err);

#endif
