#include "delta/pagecache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

struct em_pagecache {
        int fd;
        char *dir;         /* NULL: in memory */
        uint64_t npages;   /* pages in the data file */
        uint64_t indexed;  /* pages the saved index describes */
        struct em_phtab t; /* hash → page index in the file */
        em_phash_t *order; /* hash of each page of the file, in file order */
        size_t order_cap;
        /* The last wn of the npages pages, not yet written: one pwrite per
         * WBATCH pages, not one per page (a GiB is 262144 pages). */
        uint8_t *wbuf;
        size_t wn;
};

#define WBATCH 256

/* Writes the buffered pages; before anything reads the file. */
static int flush_writes(em_pagecache_t *pc, em_error_t *err)
{
        size_t len = pc->wn * EM_PAGE_SIZE, done = 0;
        off_t at = (off_t)((pc->npages - pc->wn) * EM_PAGE_SIZE);

        while (done < len) {
                ssize_t w = pwrite(pc->fd, pc->wbuf + done, len - done, at + (off_t)done);
                if (w <= 0)
                        return em_error_set(err, w < 0 ? errno : ENOSPC,
                                            "writing to the page cache");
                done += (size_t)w;
        }
        pc->wn = 0;
        return 0;
}

/* The file only grows, so its pages' hashes in order name its content. */
static int order_append(em_pagecache_t *pc, const em_phash_t *h, em_error_t *err)
{
        if (pc->npages == pc->order_cap) {
                size_t ncap = pc->order_cap ? pc->order_cap * 2 : 1024;
                em_phash_t *n = realloc(pc->order, ncap * sizeof(*n));
                if (n == NULL)
                        return em_error_set(err, ENOMEM, "page cache index");
                pc->order = n;
                pc->order_cap = ncap;
        }
        pc->order[pc->npages] = *h;
        return 0;
}

void em_pagecache_free(em_pagecache_t **pcp)
{
        em_pagecache_t *pc = *pcp;

        if (pc == NULL)
                return;
        if (pc->fd >= 0) {
                em_error_t e = NULL;
                /* Best effort: pages lost here are only not cached. */
                if (pc->wn > 0 && flush_writes(pc, &e) < 0) {
                        em_log_warn("%s", em_error_msg(e));
                        em_error_free(&e);
                }
                close(pc->fd);
        }
        free(pc->wbuf);
        free(pc->t.s);
        free(pc->order);
        free(pc->dir);
        free(pc);
        *pcp = NULL;
}

#define INDEX_MAGIC "EMPCIDX1"

/* Pages the saved index describes (their hashes in file order): the
 * re-index then hashes only the pages appended after it was saved. A
 * missing, malformed or too long index describes none. Trusting it is safe:
 * every page read is re-verified against its hash. */
int em_pagecache_index_parse(const uint8_t *buf, size_t len, uint64_t *n, const uint8_t **hashes,
                             em_error_t *err)
{
        if (len < 16 || memcmp(buf, INDEX_MAGIC, 8) != 0)
                return em_error_set_code(err, EBADMSG, "not a page cache index (EMPCIDX1)");
        memcpy(n, buf + 8, 8);
        if (*n > (len - 16) / 16 || len != 16 + *n * 16)
                return em_error_set_code(err, EBADMSG, "page cache index of %zu bytes is truncated",
                                         len);
        *hashes = buf + 16;
        return 0;
}

static uint64_t load_index(em_pagecache_t *pc, uint64_t file_pages, em_error_t *err)
{
        cleanup_free char *path = em_path_join(pc->dir, "index.bin"), *buf = NULL;
        const uint8_t *hashes;
        size_t len = 0;
        uint64_t n;
        em_error_t e = NULL;

        if (path == NULL || em_read_file(path, 16 + file_pages * 16, &buf, &len, &e) < 0 ||
            em_pagecache_index_parse((const uint8_t *)buf, len, &n, &hashes, &e) < 0) {
                em_error_free(&e);
                return 0;
        }
        if (n > file_pages)
                return 0;
        for (uint64_t i = 0; i < n; i++) {
                em_phash_t h;
                memcpy(h.b, hashes + i * 16, 16);
                if (em_phtab_insert(&pc->t, &h, i, err) < 0 || order_append(pc, &h, err) < 0)
                        return UINT64_MAX;
                pc->npages++;
        }
        pc->indexed = n;
        return n;
}

int em_pagecache_save_index(em_pagecache_t *pc, em_error_t *err)
{
        cleanup_free char *path = NULL;
        cleanup_free uint8_t *buf = NULL;
        size_t len = 16 + (size_t)pc->npages * 16;

        if (pc->dir == NULL || pc->indexed == pc->npages)
                return 0;
        if (flush_writes(pc, err) < 0) /* the index describes only written pages */
                return -1;
        path = em_path_join(pc->dir, "index.bin");
        buf = malloc(len);
        if (path == NULL || buf == NULL)
                return em_error_set(err, ENOMEM, "saving the page cache index");
        memcpy(buf, INDEX_MAGIC, 8);
        memcpy(buf + 8, &pc->npages, 8);
        if (pc->npages > 0)
                memcpy(buf + 16, pc->order, (size_t)pc->npages * 16);
        if (em_write_file_atomic(path, buf, len, 0600, err) < 0)
                return -1;
        pc->indexed = pc->npages;
        return 0;
}

/* Re-indexes an existing data file; a torn last page (crash) is cut off. */
static int pagecache_index(em_pagecache_t *pc, em_error_t *err)
{
        struct stat st;
        uint8_t page[EM_PAGE_SIZE];

        if (fstat(pc->fd, &st) < 0)
                return em_error_set(err, errno, "page cache");
        uint64_t n = (uint64_t)st.st_size / EM_PAGE_SIZE;
        if ((uint64_t)st.st_size % EM_PAGE_SIZE != 0 &&
            ftruncate(pc->fd, (off_t)(n * EM_PAGE_SIZE)) < 0)
                return em_error_set(err, errno, "trimming page cache");
        if (pc->dir != NULL && load_index(pc, n, err) == UINT64_MAX)
                return -1;
        for (; pc->npages < n; pc->npages++) {
                em_phash_t h;
                uint64_t i = pc->npages;
                if (pread(pc->fd, page, EM_PAGE_SIZE, (off_t)(i * EM_PAGE_SIZE)) != EM_PAGE_SIZE)
                        return em_error_set(err, errno ? errno : EIO, "reading page cache");
                em_page_hash(page, &h);
                if (em_phtab_insert(&pc->t, &h, i, err) < 0 || order_append(pc, &h, err) < 0)
                        return -1;
        }
        return 0;
}

int em_pagecache_open(const char *dir, em_pagecache_t **out, em_error_t *err)
{
        em_pagecache_t *pc = calloc(1, sizeof(*pc));
        cleanup_free char *path = NULL;

        if (pc == NULL)
                return em_error_set(err, ENOMEM, "page cache");
        if (dir == NULL) {
                pc->fd = memfd_create("edgemig-pagecache", MFD_CLOEXEC);
        } else {
                if (em_mkdir_p(dir, 0700, err) < 0)
                        goto fail_free;
                if ((pc->dir = strdup(dir)) == NULL) {
                        em_error_set(err, ENOMEM, "page cache");
                        goto fail_free;
                }
                path = em_path_join(dir, "pages.bin");
                pc->fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
        }
        if (pc->fd < 0) {
                em_error_set(err, errno ? errno : ENOMEM, "opening page cache in %s",
                             dir ? dir : "memory");
                goto fail_free;
        }
        /* Opened is used: the target's sweep expires caches by their
         * files' times (migrate/common/cache_prune.h). */
        if (dir != NULL)
                (void)futimens(pc->fd, NULL);
        if (pagecache_index(pc, err) < 0)
                goto fail_free;
        *out = pc;
        return 0;
fail_free:
        em_pagecache_free(&pc);
        return -1;
}

int em_pagecache_put(em_pagecache_t *pc, const void *page, em_phash_t *h, em_error_t *err)
{
        em_page_hash(page, h);
        if (em_phtab_find(&pc->t, h) != NULL)
                return 0;
        if (pc->wbuf == NULL && (pc->wbuf = malloc(WBATCH * EM_PAGE_SIZE)) == NULL)
                return em_error_set(err, ENOMEM, "page cache");
        if (order_append(pc, h, err) < 0 || em_phtab_insert(&pc->t, h, pc->npages, err) < 0)
                return -1;
        memcpy(pc->wbuf + pc->wn * EM_PAGE_SIZE, page, EM_PAGE_SIZE);
        pc->wn++;
        pc->npages++;
        return pc->wn == WBATCH ? flush_writes(pc, err) : 0;
}

int em_pagecache_flush(em_pagecache_t *pc, em_error_t *err)
{
        return pc->wn > 0 ? flush_writes(pc, err) : 0;
}

bool em_pagecache_has(const em_pagecache_t *pc, const em_phash_t *h)
{
        return em_phtab_find(&pc->t, h) != NULL;
}

size_t em_pagecache_count(const em_pagecache_t *pc)
{
        return pc->t.n;
}

/* XOR of the first 8 bytes of each hash: lets a REF_RUN say which pages it
 * means, so a cache out of step with the sender fails at once. */
static uint64_t run_check(const em_phash_t *h, uint64_t n)
{
        uint64_t c = 0, w;

        for (uint64_t i = 0; i < n; i++) {
                memcpy(&w, h[i].b, 8);
                c ^= w;
        }
        return c;
}

int em_pagecache_check_run(const em_pagecache_t *pc, uint64_t first, uint64_t n, uint64_t check,
                           em_error_t *err)
{
        if (first > pc->npages || n > pc->npages - first)
                return em_error_set_code(err, ENOENT,
                                         "page delta references cached pages %" PRIu64 "..+%" PRIu64
                                         ", beyond the %" PRIu64 " the target holds",
                                         first, n, pc->npages);
        if (run_check(pc->order + first, n) != check)
                return em_error_set_code(err, EILSEQ,
                                         "page delta references cached pages %" PRIu64 "..+%" PRIu64
                                         " that differ from the source's (cache out of step)",
                                         first, n);
        return 0;
}

int em_pagecache_read_run(em_pagecache_t *pc, uint64_t first, uint64_t n, uint8_t *pages,
                          em_error_t *err)
{
        if (first > pc->npages || n > pc->npages - first)
                return em_error_set_code(err, ENOENT, "page %" PRIu64 " is not in the page cache",
                                         first + n - 1);
        if (first + n > pc->npages - pc->wn && flush_writes(pc, err) < 0)
                return -1;
        ssize_t r = pread(pc->fd, pages, n * EM_PAGE_SIZE, (off_t)(first * EM_PAGE_SIZE));
        if (r != (ssize_t)(n * EM_PAGE_SIZE))
                return em_error_set(err, errno ? errno : EIO, "reading the page cache");
        return 0;
}

int em_pagecache_get_run(em_pagecache_t *pc, uint64_t first, uint64_t n, uint8_t *pages,
                         em_error_t *err)
{
        if (em_pagecache_read_run(pc, first, n, pages, err) < 0)
                return -1;
        for (uint64_t i = 0; i < n; i++) {
                em_phash_t h;
                em_page_hash(pages + i * EM_PAGE_SIZE, &h);
                if (memcmp(h.b, pc->order[first + i].b, 16) != 0)
                        return em_error_set_code(
                            err, EILSEQ, "page cache corrupted: page %" PRIu64 " has changed",
                            first + i);
        }
        return 0;
}

int em_pagecache_get(em_pagecache_t *pc, const em_phash_t *h, void *page, em_error_t *err)
{
        struct em_phtab_slot *s = em_phtab_find(&pc->t, h);
        char hex[33];

        if (s == NULL) {
                em_phash_hex(h, hex);
                return em_error_set_code(err, ENOENT, "page %s is not in the page cache", hex);
        }
        return em_pagecache_get_run(pc, s->v, 1, page, err);
}

bool em_pagecache_hash_at(const em_pagecache_t *pc, uint64_t pos, em_phash_t *h)
{
        if (pos >= pc->npages)
                return false;
        *h = pc->order[pos];
        return true;
}

uint64_t em_pagecache_pages(const em_pagecache_t *pc)
{
        return pc->npages;
}

int em_pagecache_hashes(const em_pagecache_t *pc, uint64_t from, uint8_t **out, size_t *len,
                        em_error_t *err)
{
        size_t n = from < pc->npages ? (size_t)(pc->npages - from) : 0;
        uint8_t *buf = malloc(n * 16 + 1);

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "listing cached pages");
        if (n > 0)
                memcpy(buf, pc->order + from, n * 16);
        *out = buf;
        *len = n * 16;
        return 0;
}

int em_pagecache_prefix_digest(const em_pagecache_t *pc, uint64_t n,
                               char out[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        if (n > pc->npages)
                return em_error_set_code(err, ERANGE,
                                         "the page cache holds %" PRIu64 " pages, not %" PRIu64,
                                         pc->npages, n);
        em_sha256_buf(pc->order, (size_t)n * 16, out);
        return 0;
}
