#include "delta/pages.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "delta/shadow.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

enum {
        OP_BEGIN = 1,
        OP_ZERO = 2,
        OP_REF = 3,
        OP_DATA = 4,
        OP_END = 5,
        OP_PREFILL = 6,
        OP_END_PREFILL = 7,
        OP_REF_RUN = 8, /* u64 first index, u32 count, u64 check: cached pages by position */
        OP_XDATA = 9,   /* u64 index, u64 check, 4096 bytes XOR the cached page at index */
        OP_ZBLOCK = 10, /* pages compressed against cached pages (prefill only) */
};
enum { ST_IDLE = 0, ST_FILE, ST_PREFILL };
static const char *const op_names[] = {"?",       "BEGIN",       "ZERO",    "REF",   "DATA",  "END",
                                       "PREFILL", "END_PREFILL", "REF_RUN", "XDATA", "ZBLOCK"};

struct em_zblock;
static void zblock_free(struct em_zblock **zb);

#define NAME_MAX_LEN      31
#define DEFAULT_MAX_PAGES (1ull << 24)

static const uint8_t zero_page[EM_PAGE_SIZE];

void em_page_hash(const void *page, em_phash_t *h)
{
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, XXH3_128bits(page, EM_PAGE_SIZE));
        memcpy(h->b, c.digest, 16);
}

bool em_page_is_zero(const void *page)
{
        const uint64_t *p = page;

        /* Most non-zero pages differ in their first words: check them first. */
        if (p[0] != 0 || p[1] != 0)
                return false;
        return memcmp(page, zero_page, EM_PAGE_SIZE) == 0;
}

void em_phash_hex(const em_phash_t *h, char out[33])
{
        for (int i = 0; i < 16; i++)
                snprintf(out + 2 * i, 3, "%02x", h->b[i]);
}

/* ---- hash table: em_phash_t → u64 (UINT64_MAX marks an empty slot) ---- */

struct slot {
        em_phash_t h;
        uint64_t v;
};
struct htab {
        struct slot *s;
        size_t cap, n; /* cap is a power of two */
};

static size_t slot_of(const struct htab *t, const em_phash_t *h)
{
        uint64_t k;

        memcpy(&k, h->b, 8); /* already uniformly distributed */
        return (size_t)k & (t->cap - 1);
}

static struct slot *ht_find(const struct htab *t, const em_phash_t *h)
{
        if (t->cap == 0)
                return NULL;
        for (size_t i = slot_of(t, h);; i = (i + 1) & (t->cap - 1)) {
                struct slot *s = &t->s[i];
                if (s->v == UINT64_MAX)
                        return NULL;
                if (memcmp(s->h.b, h->b, 16) == 0)
                        return s;
        }
}

static void ht_place(struct htab *t, const em_phash_t *h, uint64_t v)
{
        size_t i = slot_of(t, h);

        while (t->s[i].v != UINT64_MAX)
                i = (i + 1) & (t->cap - 1);
        t->s[i].h = *h;
        t->s[i].v = v;
        t->n++;
}

static int ht_grow(struct htab *t, em_error_t *err)
{
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        struct htab nt = {.s = malloc(ncap * sizeof(struct slot)), .cap = ncap};

        if (nt.s == NULL)
                return em_error_set(err, ENOMEM, "growing a page hash table to %zu slots", ncap);
        memset(nt.s, 0xff, ncap * sizeof(struct slot));
        for (size_t i = 0; i < t->cap; i++)
                if (t->s[i].v != UINT64_MAX)
                        ht_place(&nt, &t->s[i].h, t->s[i].v);
        free(t->s);
        *t = nt;
        return 0;
}

/* Returns 1 if inserted, 0 if present. Load factor stays below 0.7. */
static int ht_insert(struct htab *t, const em_phash_t *h, uint64_t v, em_error_t *err)
{
        if (ht_find(t, h) != NULL)
                return 0;
        if ((t->n + 1) * 10 > t->cap * 7 && ht_grow(t, err) < 0)
                return -1;
        ht_place(t, h, v);
        return 1;
}

/* A set that also remembers the position at which each hash was first
 * added (positions count every add, duplicates included): for a page cache
 * peer, the position is the page's index in the cache file. */
struct em_hashset {
        struct htab t;
        uint64_t next; /* position of the next add */
};

em_hashset_t *em_hashset_new(void)
{
        return calloc(1, sizeof(em_hashset_t));
}

void em_hashset_free(em_hashset_t **s)
{
        if (*s != NULL)
                free((*s)->t.s);
        free(*s);
        *s = NULL;
}

int em_hashset_add(em_hashset_t *s, const em_phash_t *h, em_error_t *err)
{
        return ht_insert(&s->t, h, s->next++, err);
}

bool em_hashset_position(const em_hashset_t *s, const em_phash_t *h, uint64_t *pos)
{
        const struct slot *sl = ht_find(&s->t, h);

        if (sl == NULL)
                return false;
        *pos = sl->v;
        return true;
}

uint64_t em_hashset_positions(const em_hashset_t *s)
{
        return s->next;
}

bool em_hashset_has(const em_hashset_t *s, const em_phash_t *h)
{
        return ht_find(&s->t, h) != NULL;
}

size_t em_hashset_count(const em_hashset_t *s)
{
        return s->t.n;
}

int em_hashset_export(const em_hashset_t *s, uint8_t **out, size_t *len, em_error_t *err)
{
        /* Positions of duplicates stay all-zero: no page hashes to that. */
        uint8_t *buf = calloc(s->next + 1, 16);

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "listing page hashes");
        for (size_t i = 0; i < s->t.cap; i++)
                if (s->t.s[i].v != UINT64_MAX)
                        memcpy(buf + 16 * s->t.s[i].v, s->t.s[i].h.b, 16);
        *out = buf;
        *len = s->next * 16;
        return 0;
}

int em_hashset_add_payload(em_hashset_t *s, const void *buf, size_t len, em_error_t *err)
{
        if (len % 16 != 0)
                return em_error_set_code(err, EPROTO,
                                         "PAGES_HASHES payload of %zu bytes is not a whole number "
                                         "of 16-byte hashes",
                                         len);
        for (size_t off = 0; off < len; off += 16) {
                em_phash_t h;
                memcpy(h.b, (const uint8_t *)buf + off, 16);
                if (em_hashset_add(s, &h, err) < 0)
                        return -1;
        }
        return 0;
}

/* ---- page cache ---- */

struct em_pagecache {
        int fd;
        char *dir;         /* NULL: in memory */
        uint64_t npages;   /* pages in the data file */
        uint64_t indexed;  /* pages the saved index describes */
        struct htab t;     /* hash → page index in the file */
        em_phash_t *order; /* hash of each page of the file, in file order */
        size_t order_cap;
};

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
        if (pc->fd >= 0)
                close(pc->fd);
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
                if (ht_insert(&pc->t, &h, i, err) < 0 || order_append(pc, &h, err) < 0)
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
                if (ht_insert(&pc->t, &h, i, err) < 0 || order_append(pc, &h, err) < 0)
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
        if (ht_find(&pc->t, h) != NULL)
                return 0;
        if (order_append(pc, h, err) < 0)
                return -1;
        if (pwrite(pc->fd, page, EM_PAGE_SIZE, (off_t)(pc->npages * EM_PAGE_SIZE)) != EM_PAGE_SIZE)
                return em_error_set(err, errno ? errno : ENOSPC, "writing to the page cache");
        if (ht_insert(&pc->t, h, pc->npages, err) < 0)
                return -1;
        pc->npages++;
        return 0;
}

bool em_pagecache_has(const em_pagecache_t *pc, const em_phash_t *h)
{
        return ht_find(&pc->t, h) != NULL;
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

int em_pagecache_get_run(em_pagecache_t *pc, uint64_t first, uint64_t n, uint8_t *pages,
                         em_error_t *err)
{
        if (first > pc->npages || n > pc->npages - first)
                return em_error_set_code(err, ENOENT, "page %" PRIu64 " is not in the page cache",
                                         first + n - 1);
        ssize_t r = pread(pc->fd, pages, n * EM_PAGE_SIZE, (off_t)(first * EM_PAGE_SIZE));
        if (r != (ssize_t)(n * EM_PAGE_SIZE))
                return em_error_set(err, errno ? errno : EIO, "reading the page cache");
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
        struct slot *s = ht_find(&pc->t, h);
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

/* ---- encoder ---- */

int em_delta_enc_init(struct em_delta_enc *e, em_hashset_t *known, size_t chunk,
                      em_delta_emit_fn emit, void *ctx, em_error_t *err)
{
        memset(e, 0, sizeof(*e));
        e->known = known;
        e->emit = emit;
        e->ctx = ctx;
        e->chunk = chunk == 0 ? (1u << 20) : chunk < 8192 ? 8192 : chunk;
        e->buf = malloc(e->chunk);
        if (e->buf == NULL)
                return em_error_set(err, ENOMEM, "page delta buffer");
        return 0;
}

void em_delta_enc_free(struct em_delta_enc *e)
{
        free(e->buf);
        e->buf = NULL;
        zblock_free(&e->zb);
}

int em_delta_enc_flush(struct em_delta_enc *e, em_error_t *err)
{
        if (e->len == 0)
                return 0;
        if (e->emit(e->ctx, e->buf, e->len, err) < 0)
                return -1;
        e->st.bytes += e->len;
        e->len = 0;
        return 0;
}

/* Appends one whole op, flushing first if it would not fit. */
static int put_op(struct em_delta_enc *e, uint8_t op, const void *a, size_t alen, const void *b,
                  size_t blen, em_error_t *err)
{
        if (e->len + 1 + alen + blen > e->chunk && em_delta_enc_flush(e, err) < 0)
                return -1;
        e->buf[e->len++] = op;
        if (alen)
                memcpy(e->buf + e->len, a, alen);
        e->len += alen;
        if (blen)
                memcpy(e->buf + e->len, b, blen);
        e->len += blen;
        return 0;
}

static void le(uint8_t *p, uint64_t v, int n)
{
        for (int i = 0; i < n; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static uint64_t get_le(const uint8_t *p, int n)
{
        uint64_t v = 0;

        for (int i = 0; i < n; i++)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

static int flush_zero_run(struct em_delta_enc *e, em_error_t *err)
{
        uint8_t cnt[4];

        if (e->zero_run == 0)
                return 0;
        le(cnt, e->zero_run, 4);
        e->zero_run = 0;
        return put_op(e, OP_ZERO, cnt, 4, NULL, 0, err);
}

static int flush_ref_run(struct em_delta_enc *e, em_error_t *err)
{
        uint8_t arg[20];

        if (e->ref_n == 0)
                return 0;
        e->st.ref_runs++;
        le(arg, e->ref_first, 8);
        le(arg + 8, e->ref_n, 4);
        le(arg + 12, e->ref_check, 8);
        e->ref_n = 0;
        return put_op(e, OP_REF_RUN, arg, sizeof(arg), NULL, 0, err);
}

static int flush_runs(struct em_delta_enc *e, em_error_t *err)
{
        return flush_zero_run(e, err) < 0 ? -1 : flush_ref_run(e, err);
}

static uint64_t hash_word(const em_phash_t *h)
{
        uint64_t w;

        memcpy(&w, h->b, 8);
        return w;
}

/* A known page: most follow the previous one in the receiver's cache (both
 * were sent, or cached, in address order), so runs are long. */
static int ref_page(struct em_delta_enc *e, const em_phash_t *h, uint64_t pos, em_error_t *err)
{
        e->st.ref++;
        if (e->ref_n > 0 && pos == e->ref_first + e->ref_n && e->ref_n < UINT32_MAX) {
                e->ref_n++;
        } else {
                if (flush_ref_run(e, err) < 0)
                        return -1;
                e->ref_first = pos;
                e->ref_n = 1;
                e->ref_check = 0;
        }
        e->ref_check ^= hash_word(h);
        return 0;
}

/* ---- changed pages against the receiver's old content ---- */

/* An XOR with fewer zero bytes than this is no better than the page. */
#define XOR_MIN_ZERO_WORDS (EM_PAGE_SIZE / 8 / 2)

/* The XOR of page with what the receiver holds for its address, into
 * arg (16-byte XDATA header, then the XOR). Returns 1 if it is worth
 * sending, 0 if the shadow cannot say what the receiver holds there, 2 if
 * the content is too different for an XOR to pay. */
static int xor_delta(struct em_delta_enc *e, uint64_t vaddr, const uint8_t *page,
                     uint8_t arg[16 + EM_PAGE_SIZE])
{
        uint64_t *x = (uint64_t *)(arg + 16);
        const uint64_t *p = (const uint64_t *)page;
        em_phash_t old;
        uint64_t pos;
        size_t zeros = 0;
        em_error_t e2 = NULL;

        if (!em_shadow_hash(e->shadow, e->vpid, vaddr, &old) ||
            !em_hashset_position(e->known, &old, &pos))
                return 0;
        if (em_shadow_read(e->shadow, e->vpid, vaddr, &old, arg + 16, &e2) < 0) {
                em_log_debug("sending page %#" PRIx64 " whole: %s", vaddr, em_error_msg(e2));
                em_error_free(&e2);
                return 0;
        }
        for (size_t i = 0; i < EM_PAGE_SIZE / 8; i++) {
                x[i] ^= p[i];
                zeros += x[i] == 0;
        }
        le(arg, pos, 8);
        le(arg + 8, hash_word(&old), 8);
        return zeros < XOR_MIN_ZERO_WORDS ? 2 : 1;
}

/* XDATA if it pays (1); else xor_delta's 0 or 2. */
static int put_xdata(struct em_delta_enc *e, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        uint8_t arg[16 + EM_PAGE_SIZE];
        int r = xor_delta(e, vaddr, page, arg);

        if (r != 1)
                return r;
        e->st.xdata++;
        return put_op(e, OP_XDATA, arg, sizeof(arg), NULL, 0, err) < 0 ? -1 : 1;
}

/* Pages too different from their address's old content are gathered (in
 * address order) and compressed against the old content around them, which
 * often holds the same data elsewhere: a buffer rewritten with what moved. */
#define ZB_MAX_PAGES 128
#define ZB_SPAN      (2ull << 20) /* a block's pages lie within 2 MiB */
#define ZB_MARGIN    (4ull << 20) /* reference: 4 MiB either side of them */
#define ZB_MAX_REF   2048         /* reference pages (8 MiB) */
#define ZB_LEVEL     3

struct em_zblock {
        uint8_t pages[ZB_MAX_PAGES][EM_PAGE_SIZE];
        uint64_t vaddr[ZB_MAX_PAGES];
        em_phash_t h[ZB_MAX_PAGES];
        size_t n;
        uint32_t vpid;
        uint8_t ref[ZB_MAX_REF][EM_PAGE_SIZE];
        uint8_t hdr[4 + 8 + ZB_MAX_REF * 8 + 4 + 8 + 4];
        ZSTD_CCtx *cctx;
};

static void zblock_free(struct em_zblock **zb)
{
        if (*zb == NULL)
                return;
        ZSTD_freeCCtx((*zb)->cctx);
        free(*zb);
        *zb = NULL;
}

/* The receiver's pages around the block's addresses, as the shadow says
 * it holds them: fills zb->ref and the positions into hdr; returns count. */
static size_t zblock_reference(struct em_delta_enc *e, struct em_zblock *zb, uint64_t *check)
{
        uint64_t lo = zb->vaddr[0] > ZB_MARGIN ? zb->vaddr[0] - ZB_MARGIN : 0;
        uint64_t hi = zb->vaddr[zb->n - 1] + ZB_MARGIN;
        size_t n = 0;
        em_error_t e2 = NULL;

        *check = 0;
        for (uint64_t va = lo; va < hi && n < ZB_MAX_REF; va += EM_PAGE_SIZE) {
                em_phash_t h;
                uint64_t pos;
                if (!em_shadow_hash(e->shadow, zb->vpid, va, &h) ||
                    !em_hashset_position(e->known, &h, &pos))
                        continue;
                if (em_shadow_read(e->shadow, zb->vpid, va, &h, zb->ref[n], &e2) < 0) {
                        em_error_free(&e2);
                        continue;
                }
                le(zb->hdr + 12 + n * 8, pos, 8);
                *check ^= hash_word(&h);
                n++;
        }
        return n;
}

/* Compresses the pages against ref (nref pages) into out; 0 if it failed. */
static size_t zblock_compress(struct em_zblock *zb, size_t nref, uint8_t *out, size_t cap)
{
        size_t src = zb->n * EM_PAGE_SIZE, span = nref * EM_PAGE_SIZE + src, r;
        int wlog = 10;

        while (((size_t)1 << wlog) < span)
                wlog++;
        if (zb->cctx == NULL && (zb->cctx = ZSTD_createCCtx()) == NULL)
                return 0;
        ZSTD_CCtx_reset(zb->cctx, ZSTD_reset_session_and_parameters);
        if (ZSTD_isError(ZSTD_CCtx_setParameter(zb->cctx, ZSTD_c_compressionLevel, ZB_LEVEL)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(zb->cctx, ZSTD_c_windowLog, wlog)) ||
            ZSTD_isError(ZSTD_CCtx_refPrefix(zb->cctx, zb->ref, nref * EM_PAGE_SIZE)))
                return 0;
        r = ZSTD_compress2(zb->cctx, out, cap, zb->pages, src);
        return ZSTD_isError(r) ? 0 : r;
}

static int page_data(struct em_delta_enc *e, const em_phash_t *h, const uint8_t *page,
                     em_error_t *err)
{
        if (put_op(e, OP_DATA, page, EM_PAGE_SIZE, NULL, 0, err) < 0)
                return -1;
        return em_hashset_add(e->known, h, err) < 0 ? -1 : 0;
}

/* Emits the gathered pages: one ZBLOCK, or DATA if no reference helps;
 * then the receiver holds them. */
static int zblock_flush(struct em_delta_enc *e, em_error_t *err)
{
        struct em_zblock *zb = e->zb;
        size_t nref, len = 0, hl;
        uint64_t ref_check, check = 0;
        cleanup_free uint8_t *out = NULL;

        if (zb == NULL || zb->n == 0)
                return 0;
        nref = zblock_reference(e, zb, &ref_check);
        hl = 4 + 8 + nref * 8 + 4 + 8 + 4;
        size_t cap = ZSTD_compressBound(zb->n * EM_PAGE_SIZE);
        if (nref > 0 && hl + cap + 1 <= e->chunk && (out = malloc(cap)) != NULL)
                len = zblock_compress(zb, nref, out, cap);
        for (size_t i = 0; i < zb->n; i++)
                check ^= hash_word(&zb->h[i]);
        if (len > 0) {
                le(zb->hdr, nref, 4);
                le(zb->hdr + 4, ref_check, 8);
                le(zb->hdr + 12 + nref * 8, zb->n, 4);
                le(zb->hdr + 16 + nref * 8, check, 8);
                le(zb->hdr + 24 + nref * 8, len, 4);
                if (put_op(e, OP_ZBLOCK, zb->hdr, hl, out, len, err) < 0)
                        return -1;
                e->st.zdata += zb->n;
        }
        for (size_t i = 0; i < zb->n; i++) {
                /* Positions count every add: a page the receiver already
                 * has (a duplicate) is neither sent nor added again. */
                if (!em_hashset_has(e->known, &zb->h[i])) {
                        e->st.data++;
                        if ((len == 0 &&
                             put_op(e, OP_DATA, zb->pages[i], EM_PAGE_SIZE, NULL, 0, err) < 0) ||
                            em_hashset_add(e->known, &zb->h[i], err) < 0)
                                return -1;
                }
                if (em_shadow_record(e->shadow, zb->vpid, zb->vaddr[i], &zb->h[i], zb->pages[i],
                                     err) < 0)
                        return -1;
        }
        zb->n = 0;
        return 0;
}

/* Gathers a page for a ZBLOCK (flushing the block it does not fit). */
static int zblock_add(struct em_delta_enc *e, uint64_t vaddr, const em_phash_t *h,
                      const uint8_t *page, em_error_t *err)
{
        struct em_zblock *zb = e->zb;

        if (zb == NULL && (zb = e->zb = calloc(1, sizeof(*zb))) == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        if (zb->n > 0 &&
            (zb->n == ZB_MAX_PAGES || zb->vpid != e->vpid || vaddr - zb->vaddr[0] >= ZB_SPAN) &&
            zblock_flush(e, err) < 0)
                return -1;
        zb->vpid = e->vpid;
        zb->vaddr[zb->n] = vaddr;
        zb->h[zb->n] = *h;
        memcpy(zb->pages[zb->n++], page, EM_PAGE_SIZE);
        return 0;
}

/* A page the receiver lacks (h): as XDATA if the shadow allows; in a
 * prefill section, gathered for a ZBLOCK if its address had other content
 * the XOR would not carry well; else DATA. A gathered page is counted and
 * recorded when its block goes. */
static int send_page(struct em_delta_enc *e, bool addr, uint64_t vaddr, const em_phash_t *h,
                     const uint8_t *page, bool *deferred, em_error_t *err)
{
        int r = 0;

        *deferred = false;
        if (addr && e->shadow != NULL && em_shadow_usable(e->shadow)) {
                if ((r = put_xdata(e, vaddr, page, err)) < 0)
                        return -1;
                if (r == 2 && e->in_prefill) {
                        *deferred = true;
                        return zblock_add(e, vaddr, h, page, err);
                }
        }
        e->st.data++;
        if (r == 1)
                return em_hashset_add(e->known, h, err) < 0 ? -1 : 0;
        return page_data(e, h, page, err);
}

/* The receiver now holds page for this address. */
static int note_page(struct em_delta_enc *e, bool addr, uint64_t vaddr, const em_phash_t *h,
                     const uint8_t *page, em_error_t *err)
{
        if (!addr || e->shadow == NULL)
                return 0;
        return em_shadow_record(e->shadow, e->vpid, vaddr, h, page, err);
}

static int encode_page(struct em_delta_enc *e, bool addr, uint64_t vaddr, const uint8_t *page,
                       em_error_t *err)
{
        em_phash_t h;
        uint64_t pos;
        bool deferred = false;

        e->st.pages++;
        if (em_page_is_zero(page)) {
                e->st.zero++;
                if (flush_ref_run(e, err) < 0)
                        return -1;
                if (++e->zero_run == UINT32_MAX)
                        return flush_zero_run(e, err);
                return 0;
        }
        if (flush_zero_run(e, err) < 0)
                return -1;
        em_page_hash(page, &h);
        if (em_hashset_position(e->known, &h, &pos)) {
                if (ref_page(e, &h, pos, err) < 0)
                        return -1;
        } else if (flush_ref_run(e, err) < 0 ||
                   send_page(e, addr, vaddr, &h, page, &deferred, err) < 0) {
                return -1;
        }
        return note_page(e, addr, vaddr, &h, page, err);
}

static int begin_file(struct em_delta_enc *e, const char *name, uint64_t nr_pages, em_error_t *err)
{
        uint8_t hdr[2 + NAME_MAX_LEN + 8];
        size_t nl = strlen(name);

        if (nl == 0 || nl > NAME_MAX_LEN)
                return em_error_set(err, EINVAL, "page image name '%s'", name);
        le(hdr, nl, 2);
        memcpy(hdr + 2, name, nl);
        le(hdr + 2 + nl, nr_pages, 8);
        return put_op(e, OP_BEGIN, hdr, 2 + nl + 8, NULL, 0, err);
}

/* A page of an image file whose address had other content, which the XOR
 * cannot carry well: for a ZBLOCK, in a prefill section ahead of the file
 * (opened on first use). */
static int prescan_page(struct em_delta_enc *e, uint64_t idx, const uint8_t *page, bool *open,
                        em_error_t *err)
{
        uint8_t arg[16 + EM_PAGE_SIZE];
        em_phash_t h;
        uint64_t vaddr;

        if (em_page_is_zero(page))
                return 0;
        em_page_hash(page, &h);
        if (em_hashset_has(e->known, &h) ||
            em_pagemap_page_vaddr(e->pagemap, idx, &vaddr, NULL) < 0 ||
            xor_delta(e, vaddr, page, arg) != 2)
                return 0;
        if (!*open && put_op(e, OP_PREFILL, NULL, 0, NULL, 0, err) < 0)
                return -1;
        *open = true;
        return zblock_add(e, vaddr, &h, page, err);
}

/* First pass over an image file: its pages that would go whole go as
 * ZBLOCKs first, so that the file itself then references them. */
static int prescan_file(struct em_delta_enc *e, int fd, const char *name, uint8_t *buf,
                        em_error_t *err)
{
        bool open = false;
        uint64_t idx = 0;
        int rc = 0;

        e->in_prefill = true;
        for (;;) {
                ssize_t n = em_read_all(fd, buf, 256 * EM_PAGE_SIZE, err);
                if (n < 0) {
                        rc = em_error_wrap(err, "reading %s", name);
                        break;
                }
                for (ssize_t off = 0; off < n && rc == 0; off += EM_PAGE_SIZE)
                        rc = prescan_page(e, idx++, buf + off, &open, err);
                if (rc < 0 || n < 256 * EM_PAGE_SIZE)
                        break;
        }
        e->in_prefill = false;
        if (rc == 0 && open &&
            (zblock_flush(e, err) < 0 || put_op(e, OP_END_PREFILL, NULL, 0, NULL, 0, err) < 0))
                rc = -1;
        if (rc == 0 && lseek(fd, 0, SEEK_SET) < 0)
                rc = em_error_set(err, errno, "rewinding %s", name);
        return rc;
}

int em_delta_encode_file(struct em_delta_enc *e, int dirfd, const char *name,
                         char digest_out[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        cleanup_sha256 em_sha256_t *sha = em_sha256_new();
        cleanup_free uint8_t *buf = malloc(256 * EM_PAGE_SIZE);
        char digest[EM_DIGEST_STR_LEN + 1];
        struct stat st;
        uint64_t idx = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", name);
        if (sha == NULL || buf == NULL)
                return em_error_set(err, ENOMEM, "encoding %s", name);
        if (st.st_size % EM_PAGE_SIZE != 0)
                return em_error_set(err, EBADMSG, "%s is not a whole number of pages", name);
        if (e->prescan && e->shadow != NULL && e->pagemap != NULL && em_shadow_usable(e->shadow) &&
            prescan_file(e, fd, name, buf, err) < 0)
                return -1;
        if (begin_file(e, name, (uint64_t)st.st_size / EM_PAGE_SIZE, err) < 0)
                return -1;
        for (;;) {
                ssize_t n = em_read_all(fd, buf, 256 * EM_PAGE_SIZE, err);
                if (n < 0)
                        return em_error_wrap(err, "reading %s", name);
                if (n % EM_PAGE_SIZE != 0)
                        return em_error_set(err, EIO, "%s changed while encoding", name);
                em_sha256_update(sha, buf, (size_t)n);
                for (ssize_t off = 0; off < n; off += EM_PAGE_SIZE, idx++) {
                        uint64_t vaddr = 0;
                        bool addr = e->pagemap != NULL &&
                                    em_pagemap_page_vaddr(e->pagemap, idx, &vaddr, NULL) == 0;
                        if (encode_page(e, addr, vaddr, buf + off, err) < 0)
                                return -1;
                }
                if (n < 256 * EM_PAGE_SIZE)
                        break;
        }
        if (flush_runs(e, err) < 0)
                return -1;
        em_sha256_final(sha, digest);
        if (digest_out != NULL)
                memcpy(digest_out, digest, sizeof(digest));
        em_log_debug("%s: %" PRIu64 " pages: %" PRIu64 " zero, %" PRIu64 " known in %" PRIu64
                     " runs, %" PRIu64 " sent (%" PRIu64 " as XOR, %" PRIu64 " in ZBLOCKs)",
                     name, e->st.pages, e->st.zero, e->st.ref, e->st.ref_runs, e->st.data,
                     e->st.xdata, e->st.zdata);
        return put_op(e, OP_END, digest, EM_DIGEST_STR_LEN, NULL, 0, err);
}

/* ---- live process memory ---- */

struct vma {
        uint64_t start, end;
        bool file_private; /* only COWed (anonymous) pages count */
};

/* One /proc/PID/maps line → a mapping to scan, or false to skip it. */
static bool parse_maps_line(const char *line, struct vma *v)
{
        unsigned long long s, e, off, ino;
        char perms[5], dev[16], path[4096] = "";

        if (sscanf(line, "%llx-%llx %4s %llx %15s %llu %4095[^\n]", &s, &e, perms, &off, dev, &ino,
                   path) < 6)
                return false;
        if (perms[0] != 'r' || strncmp(path, "[vvar", 5) == 0 || strcmp(path, "[vsyscall]") == 0)
                return false;
        /* Shared file mappings live in the file, not in the image. */
        if (perms[3] == 's' && ino != 0 && strncmp(path, "/dev/zero", 9) != 0 &&
            strncmp(path, "/SYSV", 5) != 0 && strncmp(path, "/memfd:", 7) != 0)
                return false;
        v->start = s;
        v->end = e;
        v->file_private = perms[3] == 'p' && ino != 0;
        return true;
}

/* PAGEMAP_SCAN (Linux 6.7+) lists only the populated ranges, so a process
 * with terabytes of reserved address space (sanitizers, Go, JVMs) costs no
 * more than its resident memory. Older kernels fall back to reading
 * /proc/PID/pagemap entry by entry. */
#ifndef PAGEMAP_SCAN
struct page_region {
        uint64_t start, end, categories;
};
struct pm_scan_arg {
        uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
        uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN    _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_FILE    (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#endif

#define PM_PRESENT (1ull << 63)
#define PM_SWAP    (1ull << 62)
#define PM_FILE    (1ull << 61)
#define BATCH      256
#define NREGIONS   512

struct scan {
        pid_t pid;
        int pidfd; /* the process itself (-1: kernel without pidfd_open) */
        int pmfd;
        bool no_ioctl;
        uint8_t *buf; /* BATCH pages */
        em_procmem_page_fn fn;
        void *ctx;
        struct em_procmem_stats *st;
};

/* Copies n <= BATCH pages at addr and hands them out. A page that went away
 * meanwhile ends a partial read; it is skipped and the rest retried. */
static int read_pages(struct scan *sc, uint64_t addr, size_t n, em_error_t *err)
{
        while (n > 0) {
                struct iovec local = {sc->buf, n * EM_PAGE_SIZE};
                struct iovec remote = {(void *)(uintptr_t)addr, n * EM_PAGE_SIZE};
                ssize_t got = process_vm_readv(sc->pid, &local, 1, &remote, 1, 0);
                size_t full;

                if (got < 0 && errno != EFAULT && errno != ENOMEM)
                        return em_error_set(err, errno, "process_vm_readv of pid %d", sc->pid);
                /* Still the same process? If it exited, its pid may name
                 * another one by now: what was just read is not ours. */
                if (sc->pidfd >= 0 && syscall(SYS_pidfd_send_signal, sc->pidfd, 0, NULL, 0) < 0)
                        return em_error_set(err, ESRCH, "pid %d exited", sc->pid);
                full = got > 0 ? (size_t)got / EM_PAGE_SIZE : 0;
                for (size_t i = 0; i < full; i++) {
                        sc->st->pages_read++;
                        sc->st->bytes_read += EM_PAGE_SIZE;
                        if (sc->fn(sc->ctx, addr + i * EM_PAGE_SIZE, sc->buf + i * EM_PAGE_SIZE,
                                   err) < 0)
                                return -1;
                }
                if (full < n)
                        full++; /* skip the unreadable page */
                addr += full * EM_PAGE_SIZE;
                n -= full;
        }
        return 0;
}

static int read_range(struct scan *sc, uint64_t start, uint64_t end, em_error_t *err)
{
        for (uint64_t a = start; a < end;) {
                size_t n = (size_t)((end - a) / EM_PAGE_SIZE);
                if (n > BATCH)
                        n = BATCH;
                if (read_pages(sc, a, n, err) < 0)
                        return -1;
                a += n * EM_PAGE_SIZE;
        }
        return 0;
}

/* Fallback: pagemap entries, BATCH at a time. */
static int scan_vma_pagemap(struct scan *sc, const struct vma *v, em_error_t *err)
{
        uint64_t ents[BATCH];

        for (uint64_t a = v->start; a < v->end;) {
                size_t n = (size_t)((v->end - a) / EM_PAGE_SIZE), i = 0;
                ssize_t got;

                if (n > BATCH)
                        n = BATCH;
                got = pread(sc->pmfd, ents, n * 8, (off_t)(a / EM_PAGE_SIZE * 8));
                if (got < 0)
                        return em_error_set(err, errno, "reading /proc/%d/pagemap", sc->pid);
                while (i < (size_t)got / 8) {
                        size_t j = i;
                        /* A run of pages CRIU would dump. */
                        while (j < (size_t)got / 8 && (ents[j] & (PM_PRESENT | PM_SWAP)) &&
                               !(v->file_private && (ents[j] & PM_FILE)))
                                j++;
                        if (j > i && read_pages(sc, a + i * EM_PAGE_SIZE, j - i, err) < 0)
                                return -1;
                        i = j + 1;
                }
                a += n * EM_PAGE_SIZE;
        }
        return 0;
}

static int scan_vma(struct scan *sc, const struct vma *v, em_error_t *err)
{
        struct page_region r[NREGIONS];
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .start = v->start,
            .end = v->end,
            .vec = (uintptr_t)r,
            .vec_len = NREGIONS,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO,
        };

        if (sc->no_ioctl)
                return scan_vma_pagemap(sc, v, err);
        while (arg.start < v->end) {
                int n = ioctl(sc->pmfd, PAGEMAP_SCAN, &arg);
                if (n < 0 && (errno == ENOTTY || errno == EINVAL) && arg.start == v->start) {
                        sc->no_ioctl = true;
                        return scan_vma_pagemap(sc, v, err);
                }
                if (n < 0)
                        return em_error_set(err, errno, "PAGEMAP_SCAN of pid %d", sc->pid);
                for (int i = 0; i < n; i++) {
                        if ((r[i].categories & PAGE_IS_PFNZERO) ||
                            (v->file_private && (r[i].categories & PAGE_IS_FILE)))
                                continue;
                        if (read_range(sc, r[i].start, r[i].end, err) < 0)
                                return -1;
                }
                if (arg.walk_end <= arg.start)
                        break;
                arg.start = arg.walk_end;
        }
        return 0;
}

int em_procmem_scan(pid_t pid, em_procmem_page_fn fn, void *ctx, struct em_procmem_stats *st,
                    em_error_t *err)
{
        char path[64], *line = NULL;
        size_t cap = 0;
        cleanup_fclose FILE *maps = NULL;
        cleanup_close int pmfd = -1;
        cleanup_free uint8_t *buf = malloc(BATCH * EM_PAGE_SIZE);
        struct scan sc = {.pid = pid, .buf = buf, .fn = fn, .ctx = ctx, .st = st};
        cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        int ret = 0;

        memset(st, 0, sizeof(*st));
        int64_t t0 = em_mono_ns();
        snprintf(path, sizeof(path), "/proc/%d/maps", pid);
        maps = fopen(path, "re");
        snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
        pmfd = open(path, O_RDONLY | O_CLOEXEC);
        if (maps == NULL || pmfd < 0 || buf == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "opening memory of pid %d", pid);
        sc.pmfd = pmfd;
        sc.pidfd = pidfd;
        while (ret == 0 && getline(&line, &cap, maps) > 0) {
                struct vma v;
                if (!parse_maps_line(line, &v))
                        continue;
                st->mappings++;
                ret = scan_vma(&sc, &v, err);
        }
        free(line);
        st->elapsed_ns = em_mono_ns() - t0;
        return ret;
}

static int prefill_page(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        struct em_delta_enc *e = ctx;
        em_phash_t h;
        bool deferred = false;

        if (em_page_is_zero(page))
                return 0;
        em_page_hash(page, &h);
        if (!em_hashset_has(e->known, &h)) {
                e->st.pages++;
                if (send_page(e, true, vaddr, &h, page, &deferred, err) < 0)
                        return -1;
        }
        return deferred ? 0 : note_page(e, true, vaddr, &h, page, err);
}

/* pid as the container sees it (the last NSpid), which is how CRIU's
 * images name processes; pid itself if the kernel does not say. */
static uint32_t ns_pid(pid_t pid)
{
        char path[64], *line = NULL;
        size_t cap = 0;
        uint32_t v = (uint32_t)pid;
        cleanup_fclose FILE *f = NULL;

        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        f = fopen(path, "re");
        while (f != NULL && getline(&line, &cap, f) > 0) {
                if (strncmp(line, "NSpid:", 6) != 0)
                        continue;
                char *last = strrchr(line, '\t');
                if (last != NULL)
                        v = (uint32_t)strtoul(last + 1, NULL, 10);
                break;
        }
        free(line);
        return v;
}

int em_delta_encode_procmem(struct em_delta_enc *e, pid_t pid, struct em_procmem_stats *st,
                            em_error_t *err)
{
        e->vpid = ns_pid(pid);
        if (put_op(e, OP_PREFILL, NULL, 0, NULL, 0, err) < 0)
                return -1;
        e->in_prefill = true;
        int rc = em_procmem_scan(pid, prefill_page, e, st, err);
        e->in_prefill = false;
        if (rc < 0) {
                /* A process that exits mid-scan (a container's short-lived
                 * child) has nothing more to prefill; what was read is valid. */
                if (em_error_status(*err) != ENOENT && em_error_status(*err) != ESRCH)
                        return -1;
                em_error_free(err);
        }
        if (zblock_flush(e, err) < 0)
                return -1;
        return put_op(e, OP_END_PREFILL, NULL, 0, NULL, 0, err);
}

/* ---- decoder ---- */

void em_delta_dec_init(struct em_delta_dec *d, em_pagecache_t *pc, int dirfd)
{
        memset(d, 0, sizeof(*d));
        d->pc = pc;
        d->dirfd = dirfd;
        d->max_pages = DEFAULT_MAX_PAGES;
        d->out_fd = -1;
}

static void close_file(struct em_delta_dec *d, bool keep)
{
        char part[NAME_MAX_LEN + 8];

        if (d->out_fd >= 0) {
                close(d->out_fd);
                d->out_fd = -1;
                if (!keep) {
                        snprintf(part, sizeof(part), ".%s.part", d->name);
                        unlinkat(d->dirfd, part, 0);
                }
        }
        em_sha256_free(&d->sha);
        d->state = ST_IDLE;
}

void em_delta_dec_free(struct em_delta_dec *d)
{
        close_file(d, false);
        ZSTD_freeDCtx(d->zstd);
        d->zstd = NULL;
}

/* Only CRIU page image names: nothing else can ever be written. */
static bool name_ok(const char *n)
{
        size_t digits;

        if (strncmp(n, "pages-", 6) != 0)
                return false;
        digits = strspn(n + 6, "0123456789");
        return digits >= 1 && digits <= 10 && strcmp(n + 6 + digits, ".img") == 0;
}

static int op_begin(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        size_t nl;
        char part[NAME_MAX_LEN + 8];

        nl = get_le(p, 2);
        memcpy(d->name, p + 2, nl);
        d->name[nl] = '\0';
        if (!name_ok(d->name))
                return em_error_set_code(
                    err, EPROTO, "page delta: refusing to write '%s' (not pages-N.img)", d->name);
        d->nr_pages = get_le(p + 2 + nl, 8);
        if (d->nr_pages > d->max_pages)
                return em_error_set_code(err, EFBIG,
                                         "page delta: %s of %" PRIu64 " pages is above the limit",
                                         d->name, d->nr_pages);
        d->done = 0;
        d->sha = em_sha256_new();
        if (d->sha == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        d->state = ST_FILE;
        if (d->dirfd >= 0) {
                snprintf(part, sizeof(part), ".%s.part", d->name);
                d->out_fd = openat(d->dirfd, part,
                                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (d->out_fd < 0)
                        return em_error_set(err, errno, "creating %s", part);
        }
        return (int)(2 + nl + 8);
}

static int out_page(struct em_delta_dec *d, const uint8_t *page, bool zero, em_error_t *err)
{
        if (d->done >= d->nr_pages)
                return em_error_set_code(
                    err, EPROTO, "page delta: more pages than the %" PRIu64 " announced for %s",
                    d->nr_pages, d->name);
        em_sha256_update(d->sha, page, EM_PAGE_SIZE);
        if (d->out_fd >= 0) {
                /* Zero pages become holes; the final ftruncate sets the size. */
                if (zero && lseek(d->out_fd, EM_PAGE_SIZE, SEEK_CUR) < 0)
                        return em_error_set(err, errno, "writing %s", d->name);
                if (!zero && em_write_all(d->out_fd, page, EM_PAGE_SIZE, err) < 0)
                        return em_error_wrap(err, "writing %s", d->name);
        }
        d->done++;
        d->st.pages++;
        return 0;
}

static int op_end(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        char want[EM_DIGEST_STR_LEN + 1], got[EM_DIGEST_STR_LEN + 1], part[NAME_MAX_LEN + 8];

        memcpy(want, p, EM_DIGEST_STR_LEN);
        want[EM_DIGEST_STR_LEN] = '\0';
        if (d->done != d->nr_pages)
                return em_error_set_code(
                    err, EPROTO, "page delta: %s ended after %" PRIu64 " of %" PRIu64 " pages",
                    d->name, d->done, d->nr_pages);
        em_sha256_final(d->sha, got);
        if (strcmp(want, got) != 0)
                return em_error_set_code(
                    err, EILSEQ, "rebuilt %s does not match the source: %s, want %.80s", d->name,
                    got, em_digest_valid(want) ? want : "(malformed digest)");
        /* No fsync: a rebuilt image only feeds the restore that follows; until
         * the commit the source keeps its own copy. */
        if (d->out_fd >= 0) {
                snprintf(part, sizeof(part), ".%s.part", d->name);
                if (ftruncate(d->out_fd, (off_t)(d->nr_pages * EM_PAGE_SIZE)) < 0 ||
                    renameat(d->dirfd, part, d->dirfd, d->name) < 0)
                        return em_error_set(err, errno, "finishing %s", d->name);
        }
        if (d->on_file != NULL)
                d->on_file(d->on_file_ud, d->name, got);
        close_file(d, true);
        return EM_DIGEST_STR_LEN;
}

static int op_ref(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;
        char hex[33];

        memcpy(h.b, p, 16);
        if (!em_pagecache_has(d->pc, &h)) {
                em_phash_hex(&h, hex);
                return em_error_set_code(
                    err, ENOENT, "page delta references page %s, which the target does not have",
                    hex);
        }
        if (em_pagecache_get(d->pc, &h, page, err) < 0 || out_page(d, page, false, err) < 0)
                return -1;
        d->st.ref++;
        return 16;
}

#define RUN_BATCH 64 /* pages read from the cache at once */

static int op_ref_run(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint8_t pages[RUN_BATCH * EM_PAGE_SIZE];
        uint64_t first, n, check;

        n = get_le(p + 8, 4);
        first = get_le(p, 8);
        check = get_le(p + 12, 8);
        if (n > d->nr_pages - d->done)
                return em_error_set_code(err, EPROTO,
                                         "page delta: run of %" PRIu64 " cached pages overruns %s",
                                         n, d->name);
        /* The check covers the whole run: verify it before writing any page. */
        if (em_pagecache_check_run(d->pc, first, n, check, err) < 0)
                return -1;
        for (uint64_t i = 0; i < n; i += RUN_BATCH) {
                uint64_t k = n - i < RUN_BATCH ? n - i : RUN_BATCH;
                if (em_pagecache_get_run(d->pc, first + i, k, pages, err) < 0)
                        return -1;
                for (uint64_t j = 0; j < k; j++)
                        if (out_page(d, pages + j * EM_PAGE_SIZE, false, err) < 0)
                                return -1;
        }
        d->st.ref += n;
        return 20;
}

static int op_zero(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint32_t n;

        n = (uint32_t)get_le(p, 4);
        if (n > d->nr_pages - d->done)
                return em_error_set_code(
                    err, EPROTO, "page delta: zero run of %u pages overruns %s", n, d->name);
        for (uint32_t i = 0; i < n; i++)
                if (out_page(d, zero_page, true, err) < 0)
                        return -1;
        d->st.zero += n;
        return 4;
}

/* A file being rebuilt takes no more pages than BEGIN announced. */
static int room_for_page(struct em_delta_dec *d, em_error_t *err)
{
        if (d->state == ST_FILE && d->done >= d->nr_pages)
                return em_error_set_code(err, EPROTO,
                                         "page delta: more pages than announced for %s", d->name);
        return 0;
}

/* A page that arrived (DATA, XDATA): into the cache, and into the file
 * being rebuilt if there is one. */
static int take_page(struct em_delta_dec *d, const uint8_t *page, em_error_t *err)
{
        em_phash_t h;

        if (em_pagecache_put(d->pc, page, &h, err) < 0)
                return -1;
        if (d->state == ST_FILE && out_page(d, page, false, err) < 0)
                return -1;
        if (d->state == ST_PREFILL)
                d->st.pages++;
        d->st.data++;
        return 0;
}

static int op_data(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        if (room_for_page(d, err) < 0 || take_page(d, p, err) < 0)
                return -1;
        return EM_PAGE_SIZE;
}

static int op_xdata(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint8_t page[EM_PAGE_SIZE];
        uint64_t *x = (uint64_t *)page;

        if (room_for_page(d, err) < 0)
                return -1;
        uint64_t pos = get_le(p, 8), check = get_le(p + 8, 8);
        if (em_pagecache_check_run(d->pc, pos, 1, check, err) < 0 ||
            em_pagecache_get_run(d->pc, pos, 1, page, err) < 0)
                return em_error_wrap(err, "page delta: XDATA base");
        for (size_t i = 0; i < EM_PAGE_SIZE / 8; i++) {
                uint64_t w;
                memcpy(&w, p + 16 + i * 8, 8);
                x[i] ^= w;
        }
        if (take_page(d, page, err) < 0)
                return -1;
        d->st.xdata++;
        return 16 + EM_PAGE_SIZE;
}

/* The reference pages of a ZBLOCK, read from the cache and checked. */
static int zblock_reference_in(struct em_delta_dec *d, const uint8_t *p, uint32_t nref,
                               uint64_t check, uint8_t *ref, em_error_t *err)
{
        uint64_t got = 0;

        for (uint32_t i = 0; i < nref; i++) {
                uint64_t pos = get_le(p + (size_t)i * 8, 8);
                em_phash_t h;
                if (!em_pagecache_hash_at(d->pc, pos, &h))
                        return em_error_set_code(err, ENOENT,
                                                 "page delta: ZBLOCK references page %" PRIu64
                                                 ", beyond the cache",
                                                 pos);
                if (em_pagecache_get_run(d->pc, pos, 1, ref + (size_t)i * EM_PAGE_SIZE, err) < 0)
                        return -1;
                got ^= hash_word(&h);
        }
        if (got != check)
                return em_error_set_code(err, EILSEQ,
                                         "page delta: ZBLOCK reference is out of step with the "
                                         "sender's view of the cache");
        return 0;
}

static int zblock_decompress(struct em_delta_dec *d, const uint8_t *ref, size_t reflen,
                             const uint8_t *src, size_t len, uint8_t *out, size_t outlen,
                             em_error_t *err)
{
        size_t r;

        if (d->zstd == NULL && (d->zstd = ZSTD_createDCtx()) == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_and_parameters);
        if (ZSTD_isError(ZSTD_DCtx_setParameter(d->zstd, ZSTD_d_windowLogMax, 24)) ||
            ZSTD_isError(ZSTD_DCtx_refPrefix(d->zstd, ref, reflen)))
                return em_error_set(err, ENOMEM, "page delta: ZBLOCK decoder");
        r = ZSTD_decompressDCtx(d->zstd, out, outlen, src, len);
        if (ZSTD_isError(r) || r != outlen)
                return em_error_set_code(err, EPROTO, "page delta: corrupt ZBLOCK (%s)",
                                         ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
        return 0;
}

static int op_zblock(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint32_t nref = (uint32_t)get_le(p, 4);
        size_t at = 12 + (size_t)nref * 8;
        uint32_t npages = (uint32_t)get_le(p + at, 4), len = (uint32_t)get_le(p + at + 12, 4);
        uint64_t check = get_le(p + at + 4, 8), got = 0;

        cleanup_free uint8_t *ref = malloc((size_t)nref * EM_PAGE_SIZE);
        cleanup_free uint8_t *out = malloc((size_t)npages * EM_PAGE_SIZE);
        if (ref == NULL || out == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        if (zblock_reference_in(d, p + 12, nref, get_le(p + 4, 8), ref, err) < 0 ||
            zblock_decompress(d, ref, (size_t)nref * EM_PAGE_SIZE, p + at + 16, len, out,
                              (size_t)npages * EM_PAGE_SIZE, err) < 0)
                return -1;
        /* Checked before any page enters the cache: a block that fails
         * leaves nothing behind. */
        for (uint32_t i = 0; i < npages; i++) {
                em_phash_t h;
                em_page_hash(out + (size_t)i * EM_PAGE_SIZE, &h);
                got ^= hash_word(&h);
        }
        if (got != check)
                return em_error_set_code(err, EILSEQ, "page delta: ZBLOCK pages fail their check");
        for (uint32_t i = 0; i < npages; i++) {
                em_phash_t h;
                if (em_pagecache_put(d->pc, out + (size_t)i * EM_PAGE_SIZE, &h, err) < 0)
                        return -1;
        }
        d->st.pages += npages;
        d->st.data += npages;
        d->st.zdata += npages;
        return (int)(at + 16 + len);
}

/* The wire layout of the ops: the length of op's arguments at p (left
 * bytes there), or -1 if they are truncated, empty or oversized. The one
 * reading of it, shared by the decoder and em_delta_ops_json. */
static int zblock_len(const uint8_t *p, size_t left, em_error_t *err)
{
        uint32_t nref = left >= 12 ? (uint32_t)get_le(p, 4) : 0, npages, len;
        size_t at = 12 + (size_t)nref * 8;

        if (nref == 0 || nref > ZB_MAX_REF || left < at + 16)
                return em_error_set_code(err, EPROTO, "page delta: truncated or oversized ZBLOCK");
        npages = (uint32_t)get_le(p + at, 4);
        len = (uint32_t)get_le(p + at + 12, 4);
        if (npages == 0 || npages > ZB_MAX_PAGES || left - at - 16 < len)
                return em_error_set_code(err, EPROTO, "page delta: truncated or oversized ZBLOCK");
        return (int)(at + 16 + len);
}

static int op_arg_len(uint8_t op, const uint8_t *p, size_t left, em_error_t *err)
{
        switch (op) {
        case OP_BEGIN: {
                size_t nl = left >= 2 ? get_le(p, 2) : 0;
                if (left < 2 || nl > NAME_MAX_LEN || left < 2 + nl + 8)
                        return em_error_set_code(err, EPROTO,
                                                 "page delta: truncated or oversized BEGIN");
                return (int)(2 + nl + 8);
        }
        case OP_PREFILL:
        case OP_END_PREFILL:
                return 0;
        case OP_ZERO:
                if (left < 4 || get_le(p, 4) == 0)
                        return em_error_set_code(err, EPROTO,
                                                 "page delta: truncated or empty ZERO run");
                return 4;
        case OP_REF:
                return left < 16 ? em_error_set_code(err, EPROTO, "page delta: truncated REF") : 16;
        case OP_REF_RUN:
                if (left < 20 || get_le(p + 8, 4) == 0)
                        return em_error_set_code(err, EPROTO,
                                                 "page delta: truncated or empty REF_RUN");
                return 20;
        case OP_DATA:
                return left < EM_PAGE_SIZE
                           ? em_error_set_code(err, EPROTO, "page delta: truncated DATA")
                           : (int)EM_PAGE_SIZE;
        case OP_XDATA:
                return left < 16 + EM_PAGE_SIZE
                           ? em_error_set_code(err, EPROTO, "page delta: truncated XDATA")
                           : (int)(16 + EM_PAGE_SIZE);
        case OP_ZBLOCK:
                return zblock_len(p, left, err);
        case OP_END:
                return left < EM_DIGEST_STR_LEN
                           ? em_error_set_code(err, EPROTO, "page delta: truncated END")
                           : EM_DIGEST_STR_LEN;
        default:
                return em_error_set_code(err, EPROTO, "page delta: unknown op 0x%02x", op);
        }
}

/* Whether op may come in the decoder's state (a BEGIN inside a section,
 * a REF outside a file, ...). */
static int state_check(const struct em_delta_dec *d, uint8_t op, em_error_t *err)
{
        bool in_file = d->state == ST_FILE, idle = d->state == ST_IDLE, ok;
        const char *where;

        switch (op) {
        case OP_BEGIN:
        case OP_PREFILL:
                ok = idle, where = "inside a section";
                break;
        case OP_END_PREFILL:
                ok = d->state == ST_PREFILL, where = "outside a prefill";
                break;
        case OP_DATA:
        case OP_XDATA:
                ok = !idle, where = "outside a section";
                break;
        case OP_ZBLOCK:
                ok = d->state == ST_PREFILL, where = "outside a prefill";
                break;
        case OP_ZERO:
        case OP_REF:
        case OP_REF_RUN:
        case OP_END:
                ok = in_file, where = "outside a file";
                break;
        default:
                return 0; /* unknown: op_arg_len says so */
        }
        return ok ? 0 : em_error_set_code(err, EPROTO, "page delta: %s %s", op_names[op], where);
}

/* Decodes one op; returns its argument length or -1. */
static int dec_op(struct em_delta_dec *d, uint8_t op, const uint8_t *p, size_t left,
                  em_error_t *err)
{
        if (state_check(d, op, err) < 0 || op_arg_len(op, p, left, err) < 0)
                return -1;
        switch (op) {
        case OP_BEGIN:
                return op_begin(d, p, left, err);
        case OP_PREFILL:
                d->state = ST_PREFILL;
                d->name[0] = '\0';
                return 0;
        case OP_END_PREFILL:
                d->state = ST_IDLE;
                return 0;
        case OP_DATA:
                return op_data(d, p, left, err);
        case OP_XDATA:
                return op_xdata(d, p, left, err);
        case OP_ZBLOCK:
                return op_zblock(d, p, left, err);
        case OP_ZERO:
                return op_zero(d, p, left, err);
        case OP_REF:
                return op_ref(d, p, left, err);
        case OP_REF_RUN:
                return op_ref_run(d, p, left, err);
        default:
                return op_end(d, p, left, err);
        }
}

int em_delta_dec_feed(struct em_delta_dec *d, const uint8_t *buf, size_t len, em_error_t *err)
{
        size_t pos = 0;

        while (pos < len) {
                int n = dec_op(d, buf[pos], buf + pos + 1, len - pos - 1, err);
                if (n < 0) {
                        close_file(d, false);
                        return -1;
                }
                pos += 1 + (size_t)n;
        }
        d->st.bytes += len;
        return 0;
}

/* ---- describing a delta stream (edgemig debug decode) ---- */

static json_t *hash_json(const uint8_t *b)
{
        em_phash_t h;
        char hex[33];

        memcpy(h.b, b, 16);
        em_phash_hex(&h, hex);
        return json_string(hex);
}

static json_t *describe_op(uint8_t op, const uint8_t *p, int n)
{
        json_t *o = json_pack("{s:s, s:I}", "op", op_names[op], "bytes", (json_int_t)n + 1);
        em_phash_t h;
        size_t at;

        switch (op) {
        case OP_BEGIN:
                json_object_set_new(o, "name", json_stringn((const char *)p + 2, get_le(p, 2)));
                json_object_set_new(o, "nr_pages",
                                    json_integer((json_int_t)get_le(p + 2 + get_le(p, 2), 8)));
                break;
        case OP_ZERO:
                json_object_set_new(o, "count", json_integer((json_int_t)get_le(p, 4)));
                break;
        case OP_REF:
                json_object_set_new(o, "hash", hash_json(p));
                break;
        case OP_DATA:
                em_page_hash(p, &h);
                json_object_set_new(o, "hash", hash_json(h.b));
                break;
        case OP_END:
                json_object_set_new(o, "sha256", json_stringn((const char *)p, EM_DIGEST_STR_LEN));
                break;
        case OP_REF_RUN:
                json_object_set_new(o, "first", json_integer((json_int_t)get_le(p, 8)));
                json_object_set_new(o, "count", json_integer((json_int_t)get_le(p + 8, 4)));
                break;
        case OP_XDATA:
                json_object_set_new(o, "position", json_integer((json_int_t)get_le(p, 8)));
                break;
        case OP_ZBLOCK:
                at = 12 + (size_t)get_le(p, 4) * 8;
                json_object_set_new(o, "references", json_integer((json_int_t)get_le(p, 4)));
                json_object_set_new(o, "pages", json_integer((json_int_t)get_le(p + at, 4)));
                json_object_set_new(o, "compressed",
                                    json_integer((json_int_t)get_le(p + at + 12, 4)));
                break;
        default:
                break;
        }
        return o;
}

int em_delta_ops_json(const uint8_t *buf, size_t len, json_t *ops, em_error_t *err)
{
        for (size_t pos = 0; pos < len;) {
                int n = op_arg_len(buf[pos], buf + pos + 1, len - pos - 1, err);
                if (n < 0)
                        return em_error_wrap(err, "at byte %zu", pos);
                json_t *o = describe_op(buf[pos], buf + pos + 1, n);
                if (o == NULL || json_array_append_new(ops, o) < 0)
                        return em_error_set(err, ENOMEM, "describing a page delta");
                pos += 1 + (size_t)n;
        }
        return 0;
}

int em_delta_dec_finish(struct em_delta_dec *d, em_error_t *err)
{
        if (d->state == ST_IDLE)
                return 0;
        close_file(d, false);
        return em_error_set_code(err, EPROTO, "page delta ended inside %s",
                                 d->name[0] ? d->name : "a prefill section");
}
