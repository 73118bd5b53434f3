#include "delta/criu_img.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

static uint32_t get32(const uint8_t *p)
{
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
}

static void put32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

void em_pagemap_free(struct em_pagemap *pm)
{
        free(pm->e);
        memset(pm, 0, sizeof(*pm));
}

/* Skips a field of an unknown number; only wire types 0, 1, 2 and 5 exist in
 * CRIU's protobuf. Returns bytes used or 0. */
static size_t skip_field(unsigned wt, const uint8_t *p, const uint8_t *end)
{
        uint64_t v;
        size_t n;

        switch (wt) {
        case 0:
                return em_pb_get_varint(p, end, &v);
        case 1:
                return end - p >= 8 ? 8 : 0;
        case 5:
                return end - p >= 4 ? 4 : 0;
        case 2:
                n = em_pb_get_varint(p, end, &v);
                if (n == 0 || v > (uint64_t)(end - p - (ptrdiff_t)n))
                        return 0;
                return n + (size_t)v;
        default:
                return 0;
        }
}

/* Calls fn(field, value) for every varint field; skips other wire types. */
static int pb_walk(const uint8_t *p, size_t len, int (*fn)(void *ctx, unsigned field, uint64_t v),
                   void *ctx)
{
        const uint8_t *end = p + len;

        while (p < end) {
                uint64_t key, v;
                size_t n = em_pb_get_varint(p, end, &key), m;

                if (n == 0 || key >> 3 == 0 || key >> 3 > 0xffff)
                        return -1;
                p += n;
                if ((key & 7) == 0) {
                        m = em_pb_get_varint(p, end, &v);
                        if (m == 0 || fn(ctx, (unsigned)(key >> 3), v) < 0)
                                return -1;
                } else if ((m = skip_field((unsigned)(key & 7), p, end)) == 0) {
                        return -1;
                }
                p += m;
        }
        return 0;
}

static int head_field(void *ctx, unsigned field, uint64_t v)
{
        struct em_pagemap *pm = ctx;

        if (field == 1) {
                if (v > UINT32_MAX)
                        return -1;
                pm->pages_id = (uint32_t)v;
                pm->nr_present = 1; /* marks "seen" during parsing */
        }
        return 0;
}

static int entry_field(void *ctx, unsigned field, uint64_t v)
{
        struct em_pagemap_entry *e = ctx;

        switch (field) {
        case 1:
                e->vaddr = v;
                e->first_page |= 1; /* "vaddr seen" while parsing */
                break;
        case 2:
                if (v > UINT32_MAX)
                        return -1;
                e->compat_nr_pages = (uint32_t)v;
                e->first_page |= 2;
                break;
        case 3:
                e->in_parent = v != 0;
                e->has |= EM_PME_HAS_IN_PARENT;
                break;
        case 4:
                if (v > UINT32_MAX)
                        return -1;
                e->flags = (uint32_t)v;
                e->has |= EM_PME_HAS_FLAGS;
                break;
        case 5:
                e->nr_pages = v;
                e->has |= EM_PME_HAS_NR_PAGES;
                break;
        }
        return 0;
}

static int entry_check(struct em_pagemap_entry *e, size_t idx, em_error_t *err)
{
        if ((e->first_page & 3) != 3)
                return em_error_set(err, EBADMSG, "pagemap entry %zu lacks vaddr or nr_pages", idx);
        if (!(e->has & EM_PME_HAS_NR_PAGES))
                e->nr_pages = e->compat_nr_pages;
        if (!(e->has & EM_PME_HAS_FLAGS))
                e->flags = e->in_parent ? EM_PE_PARENT : EM_PE_PRESENT;
        if (e->flags & ~(EM_PE_PARENT | EM_PE_LAZY | EM_PE_PRESENT))
                return em_error_set(err, EBADMSG, "pagemap entry %zu: unknown flags 0x%x", idx,
                                    e->flags);
        if (e->nr_pages == 0 || e->nr_pages > EM_PAGEMAP_MAX_PAGES)
                return em_error_set(err, EBADMSG, "pagemap entry %zu: %llu pages", idx,
                                    (unsigned long long)e->nr_pages);
        if (e->vaddr % EM_PAGE_SIZE != 0 || e->vaddr + e->nr_pages * EM_PAGE_SIZE < e->vaddr)
                return em_error_set(err, EBADMSG, "pagemap entry %zu: bad vaddr 0x%llx", idx,
                                    (unsigned long long)e->vaddr);
        return 0;
}

static int next_record(const uint8_t **p, const uint8_t *end, const uint8_t **rec, size_t *rlen,
                       em_error_t *err)
{
        uint32_t n;

        if (end - *p < 4)
                return em_error_set(err, EBADMSG, "pagemap: truncated record length");
        n = get32(*p);
        if (n > EM_PAGEMAP_MAX_RECORD || n > (size_t)(end - *p - 4))
                return em_error_set(err, EBADMSG, "pagemap: record of %u bytes (%td left)", n,
                                    end - *p - 4);
        *rec = *p + 4;
        *rlen = n;
        *p += 4 + n;
        return 0;
}

static int add_entry(struct em_pagemap *pm, const uint8_t *rec, size_t rlen, size_t *cap,
                     em_error_t *err)
{
        struct em_pagemap_entry e = {0};

        if (pm->n >= EM_PAGEMAP_MAX_ENTRIES)
                return em_error_set(err, E2BIG, "pagemap: more than %u entries",
                                    EM_PAGEMAP_MAX_ENTRIES);
        if (pb_walk(rec, rlen, entry_field, &e) < 0)
                return em_error_set(err, EBADMSG, "pagemap entry %zu: malformed protobuf", pm->n);
        if (entry_check(&e, pm->n, err) < 0)
                return -1;
        e.first_page = pm->nr_present;
        if (e.flags & EM_PE_PRESENT) {
                pm->nr_present += e.nr_pages;
                if (pm->nr_present > EM_PAGEMAP_MAX_PAGES)
                        return em_error_set(err, E2BIG, "pagemap: too many pages");
        }
        if (pm->n == *cap) {
                size_t ncap = *cap ? *cap * 2 : 64;
                struct em_pagemap_entry *ne = realloc(pm->e, ncap * sizeof(*ne));
                if (ne == NULL)
                        return em_error_set(err, ENOMEM, "pagemap entries");
                pm->e = ne;
                *cap = ncap;
        }
        pm->e[pm->n++] = e;
        return 0;
}

static int parse_body(const uint8_t *p, const uint8_t *end, struct em_pagemap *pm, em_error_t *err)
{
        const uint8_t *rec;
        size_t rlen, cap = 0;

        if (next_record(&p, end, &rec, &rlen, err) < 0)
                return em_error_wrap(err, "pagemap head");
        if (pb_walk(rec, rlen, head_field, pm) < 0 || pm->nr_present != 1)
                return em_error_set(err, EBADMSG, "pagemap: malformed head");
        pm->nr_present = 0;
        while (p < end) {
                if (next_record(&p, end, &rec, &rlen, err) < 0 ||
                    add_entry(pm, rec, rlen, &cap, err) < 0)
                        return -1;
        }
        return 0;
}

int em_pagemap_parse(const uint8_t *buf, size_t len, struct em_pagemap *pm, em_error_t *err)
{
        memset(pm, 0, sizeof(*pm));
        if (len > EM_PAGEMAP_MAX_FILE)
                return em_error_set(err, EFBIG, "pagemap of %zu bytes", len);
        if (len < 8 || get32(buf) != EM_CRIU_IMG_MAGIC || get32(buf + 4) != EM_CRIU_PAGEMAP_MAGIC)
                return em_error_set(err, EBADMSG, "not a CRIU pagemap image (bad magic)");
        if (parse_body(buf + 8, buf + len, pm, err) < 0) {
                em_pagemap_free(pm);
                return -1;
        }
        return 0;
}

int em_pagemap_load(int dirfd, const char *name, struct em_pagemap *pm, em_error_t *err)
{
        cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        cleanup_free uint8_t *buf = NULL;
        struct stat st;
        ssize_t n;

        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", name);
        if (!S_ISREG(st.st_mode) || st.st_size > EM_PAGEMAP_MAX_FILE)
                return em_error_set(err, EFBIG, "%s: not a regular file of sane size", name);
        buf = malloc((size_t)st.st_size + 1);
        if (buf == NULL)
                return em_error_set(err, ENOMEM, "reading %s", name);
        n = em_read_all(fd, buf, (size_t)st.st_size, err);
        if (n < 0)
                return em_error_wrap(err, "reading %s", name);
        if (em_pagemap_parse(buf, (size_t)n, pm, err) < 0)
                return em_error_wrap(err, "%s", name);
        return 0;
}

static size_t put_field(uint8_t *p, unsigned field, uint64_t v)
{
        size_t n = em_pb_put_varint(p, (uint64_t)field << 3);
        return n + em_pb_put_varint(p + n, v);
}

static size_t encode_entry(const struct em_pagemap_entry *e, uint8_t *rec)
{
        size_t n = 0;

        /* protobuf-c order: by field number; required fields always, optional
         * ones only when present in the source. */
        n += put_field(rec + n, 1, e->vaddr);
        n += put_field(rec + n, 2, e->has & EM_PME_HAS_NR_PAGES ? e->compat_nr_pages : e->nr_pages);
        if (e->has & EM_PME_HAS_IN_PARENT)
                n += put_field(rec + n, 3, e->in_parent);
        if (e->has & EM_PME_HAS_FLAGS)
                n += put_field(rec + n, 4, e->flags);
        if (e->has & EM_PME_HAS_NR_PAGES)
                n += put_field(rec + n, 5, e->nr_pages);
        return n;
}

int em_pagemap_encode(const struct em_pagemap *pm, uint8_t **out, size_t *out_len, em_error_t *err)
{
        /* Each entry record is at most 4 + 5 fields * (2 + 10) bytes. */
        size_t cap = 8 + 4 + 12 + pm->n * 64, n = 8;
        cleanup_free uint8_t *buf = malloc(cap);

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "encoding pagemap");
        put32(buf, EM_CRIU_IMG_MAGIC);
        put32(buf + 4, EM_CRIU_PAGEMAP_MAGIC);
        put32(buf + n, (uint32_t)put_field(buf + n + 4, 1, pm->pages_id));
        n += 4 + get32(buf + n);
        for (size_t i = 0; i < pm->n; i++) {
                size_t r = encode_entry(&pm->e[i], buf + n + 4);
                put32(buf + n, (uint32_t)r);
                n += 4 + r;
        }
        *out = steal_pointer(&buf);
        *out_len = n;
        return 0;
}

int em_pagemap_page_vaddr(const struct em_pagemap *pm, uint64_t idx, uint64_t *vaddr,
                          em_error_t *err)
{
        size_t lo = 0, hi = pm->n;

        if (idx >= pm->nr_present)
                return em_error_set(err, ERANGE, "page %llu beyond the %llu pages of the image",
                                    (unsigned long long)idx, (unsigned long long)pm->nr_present);
        /* Last present entry with first_page <= idx. */
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (pm->e[mid].first_page <= idx)
                        lo = mid;
                else
                        hi = mid;
        }
        while (!(pm->e[lo].flags & EM_PE_PRESENT) ||
               idx - pm->e[lo].first_page >= pm->e[lo].nr_pages)
                lo--; /* skip non-present entries sharing the same first_page */
        *vaddr = pm->e[lo].vaddr + (idx - pm->e[lo].first_page) * EM_PAGE_SIZE;
        return 0;
}

void em_pages_img_name(uint32_t pages_id, char *out, size_t len)
{
        snprintf(out, len, "pages-%u.img", pages_id);
}

int em_pagemap_check_pages(const struct em_pagemap *pm, int dirfd, em_error_t *err)
{
        char name[32];
        struct stat st;

        em_pages_img_name(pm->pages_id, name, sizeof(name));
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT && pm->nr_present == 0)
                        return 0;
                return em_error_set(err, errno, "%s", name);
        }
        if ((uint64_t)st.st_size != pm->nr_present * EM_PAGE_SIZE)
                return em_error_set(
                    err, EBADMSG, "%s has %lld bytes, the pagemap accounts for %llu", name,
                    (long long)st.st_size, (unsigned long long)(pm->nr_present * EM_PAGE_SIZE));
        return 0;
}

static bool is_pagemap(const char *name)
{
        size_t l = strlen(name);

        return strncmp(name, "pagemap", 7) == 0 && l >= 11 && strcmp(name + l - 4, ".img") == 0;
}

int em_pagemap_list(int dirfd, char ***names, em_error_t *err)
{
        return em_dir_names_at(dirfd, is_pagemap, SIZE_MAX, "CRIU images", names, err);
}
