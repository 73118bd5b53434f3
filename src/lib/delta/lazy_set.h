/* The pages of a lazy dump that CRIU's lazy-pages daemon will fetch: every
 * PE_LAZY page not present in pagemap-<pid>.img, as ranges sorted by (pid,
 * vaddr), contiguous ones merged, each page numbered 0..pages-1 in that
 * order. Both ends of a post-copy push index their per-page state by these
 * numbers, and every page address a peer names is checked against it. */
#ifndef EDGEMIG_DELTA_LAZY_SET_H
#define EDGEMIG_DELTA_LAZY_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct em_lazy_range {
        uint32_t pid; /* the task's pid in the dump (CRIU's) */
        uint64_t vaddr, nr_pages;
        uint64_t first; /* number of its first page */
};

typedef struct em_lazy_set {
        struct em_lazy_range *r;
        size_t n, cap;
        uint64_t pages;
} em_lazy_set_t;

/* At most this many pages (1 TiB) in one dump. */
#define EM_LAZY_SET_MAX_PAGES (1ull << 28)

int em_lazy_set_new(em_lazy_set_t **out, em_error_t *err);
/* Adds a range; em_lazy_set_seal then sorts, merges and numbers. */
int em_lazy_set_add(em_lazy_set_t *s, uint32_t pid, uint64_t vaddr, uint64_t nr_pages,
                    em_error_t *err);
/* Fails on overlapping ranges (a malformed dump) or too many pages. */
int em_lazy_set_seal(em_lazy_set_t *s, em_error_t *err);
/* The lazy pages of the dump in images (pagemap-<pid>.img files). */
int em_lazy_set_load(const char *images, em_lazy_set_t **out, em_error_t *err);
void em_lazy_set_free(em_lazy_set_t **s);
#define cleanup_lazy_set __attribute__((cleanup(em_lazy_set_free)))

/* True, with the number of the first page, when all nr pages from vaddr of
 * pid lie in one range of the set. */
bool em_lazy_set_find(const em_lazy_set_t *s, uint32_t pid, uint64_t vaddr, uint64_t nr,
                      uint64_t *idx);
/* The range holding page number idx (< s->pages). */
const struct em_lazy_range *em_lazy_set_range(const em_lazy_set_t *s, uint64_t idx);

/* Sets state[i] = v for every page listed in the edgemig-known-<pid>.bin
 * files in images (pages the target turns present: delta/lazy_known.h);
 * *n counts them. Pages outside the set are ignored. */
int em_lazy_set_mark_known(const em_lazy_set_t *s, const char *images, uint8_t *state, uint8_t v,
                           uint64_t *n, em_error_t *err);

#endif
