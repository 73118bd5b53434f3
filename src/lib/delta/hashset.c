#include "delta/hashset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const uint8_t zero_page[EM_PAGE_SIZE];

void em_block_hash(const void *buf, size_t len, em_phash_t *h)
{
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
        memcpy(h->b, c.digest, 16);
}

void em_page_hash(const void *page, em_phash_t *h)
{
        em_block_hash(page, EM_PAGE_SIZE, h);
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

static size_t slot_of(const struct em_phtab *t, const em_phash_t *h)
{
        uint64_t k;

        memcpy(&k, h->b, 8); /* already uniformly distributed */
        return (size_t)k & (t->cap - 1);
}

struct em_phtab_slot *em_phtab_find(const struct em_phtab *t, const em_phash_t *h)
{
        if (t->cap == 0)
                return NULL;
        for (size_t i = slot_of(t, h);; i = (i + 1) & (t->cap - 1)) {
                struct em_phtab_slot *s = &t->s[i];
                if (s->v == UINT64_MAX)
                        return NULL;
                if (memcmp(s->h.b, h->b, 16) == 0)
                        return s;
        }
}

static void ht_place(struct em_phtab *t, const em_phash_t *h, uint64_t v)
{
        size_t i = slot_of(t, h);

        while (t->s[i].v != UINT64_MAX)
                i = (i + 1) & (t->cap - 1);
        t->s[i].h = *h;
        t->s[i].v = v;
        t->n++;
}

static int ht_grow(struct em_phtab *t, em_error_t *err)
{
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        struct em_phtab nt = {.s = malloc(ncap * sizeof(struct em_phtab_slot)), .cap = ncap};

        if (nt.s == NULL)
                return em_error_set(err, ENOMEM, "growing a page hash table to %zu slots", ncap);
        memset(nt.s, 0xff, ncap * sizeof(struct em_phtab_slot));
        for (size_t i = 0; i < t->cap; i++)
                if (t->s[i].v != UINT64_MAX)
                        ht_place(&nt, &t->s[i].h, t->s[i].v);
        free(t->s);
        *t = nt;
        return 0;
}

/* Load factor stays below 0.7. */
int em_phtab_insert(struct em_phtab *t, const em_phash_t *h, uint64_t v, em_error_t *err)
{
        if (em_phtab_find(t, h) != NULL)
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
        struct em_phtab t;
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
        return em_phtab_insert(&s->t, h, s->next++, err);
}

bool em_hashset_position(const em_hashset_t *s, const em_phash_t *h, uint64_t *pos)
{
        const struct em_phtab_slot *sl = em_phtab_find(&s->t, h);

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
        return em_phtab_find(&s->t, h) != NULL;
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

void em_phtab_free(struct em_phtab *t)
{
        free(t->s);
        t->s = NULL;
        t->cap = t->n = 0;
}
