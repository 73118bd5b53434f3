/* CRIU image files, just enough of them for the page delta: the pagemap
 * (which vaddr each page of pages-<id>.img belongs to). A minimal, strictly
 * bounds-checked protobuf decoder/encoder for exactly these messages; no
 * protobuf-c dependency.
 *
 * Layout (CRIU 4.x, checked on real 4.2.1 images): u32 0x54564319, u32
 * 0x56084025, then records of u32 length (LE) + protobuf:
 *   pagemap_head  { uint32 pages_id = 1; }
 *   pagemap_entry { uint64 vaddr = 1; uint32 compat_nr_pages = 2;
 *                   bool in_parent = 3; uint32 flags = 4; uint64 nr_pages = 5; }
 * CRIU 4 writes compat_nr_pages = 0 and the count in field 5; older images
 * only have field 2 (and in_parent instead of flags). Entries with
 * PE_PRESENT own nr_pages pages of pages-<pages_id>.img, in entry order. */
#ifndef EDGEMIG_DELTA_CRIU_IMG_H
#define EDGEMIG_DELTA_CRIU_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/pbwire.h"
#include "util/error.h"

#define EM_CRIU_IMG_MAGIC     0x54564319u
#define EM_CRIU_PAGEMAP_MAGIC 0x56084025u
#define EM_PAGE_SIZE          4096u

#define EM_PE_PARENT  0x1u
#define EM_PE_LAZY    0x2u
#define EM_PE_PRESENT 0x4u

#define EM_PAGEMAP_MAX_FILE    (64u << 20)
#define EM_PAGEMAP_MAX_ENTRIES (1u << 22)
#define EM_PAGEMAP_MAX_RECORD  256u
/* 2^36 pages = 256 TiB: keeps every byte offset far from overflow. */
#define EM_PAGEMAP_MAX_PAGES (1ull << 36)

enum {
        EM_PME_HAS_IN_PARENT = 1 << 0,
        EM_PME_HAS_FLAGS = 1 << 1,
        EM_PME_HAS_NR_PAGES = 1 << 2,
};

struct em_pagemap_entry {
        uint64_t vaddr;
        uint64_t nr_pages; /* field 5, or field 2 in old images */
        uint32_t compat_nr_pages;
        uint32_t flags; /* effective EM_PE_* (derived from in_parent when absent) */
        uint8_t has;    /* EM_PME_HAS_*: which optional fields were present */
        bool in_parent;
        uint64_t first_page; /* index in pages-<id>.img of its first page, if present */
};

struct em_pagemap {
        uint32_t pages_id;
        size_t n;
        struct em_pagemap_entry *e;
        uint64_t nr_present; /* pages stored in pages-<pages_id>.img */
};

void em_pagemap_free(struct em_pagemap *pm);
#define cleanup_pagemap __attribute__((cleanup(em_pagemap_free)))

/* Parses a whole pagemap image. Rejects: bad magics, truncated records,
 * records over EM_PAGEMAP_MAX_RECORD, malformed varints, missing required
 * fields, vaddrs that are not page aligned or wrap, zero-page entries,
 * unknown flag bits, and totals above the limits. Unknown fields are skipped. */
int em_pagemap_parse(const uint8_t *buf, size_t len, struct em_pagemap *pm, em_error_t *err);
int em_pagemap_load(int dirfd, const char *name, struct em_pagemap *pm, em_error_t *err);
/* Rebuilds the image; byte-identical to what CRIU wrote for a parsed file. */
int em_pagemap_encode(const struct em_pagemap *pm, uint8_t **out, size_t *out_len, em_error_t *err);

/* The vaddr of the idx-th page of pages-<id>.img (binary search). */
int em_pagemap_page_vaddr(const struct em_pagemap *pm, uint64_t idx, uint64_t *vaddr,
                          em_error_t *err);
/* Checks that pages-<pages_id>.img in dirfd holds exactly nr_present pages. */
int em_pagemap_check_pages(const struct em_pagemap *pm, int dirfd, em_error_t *err);
/* "pages-<id>.img" into out (>= 32 bytes). */
void em_pages_img_name(uint32_t pages_id, char *out, size_t len);
/* Names of the pagemap*.img files in a CRIU image dir (NULL-terminated,
 * sorted; free with em_strv_free). */
int em_pagemap_list(int dirfd, char ***names, em_error_t *err);

#endif
