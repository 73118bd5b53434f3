#include "delta/blocks.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "delta/pagefmt.h"
#include "util/cleanup.h"

uint64_t em_blocks_count(uint64_t size)
{
        return size / EM_BLOCK_SIZE + (size % EM_BLOCK_SIZE != 0);
}

size_t em_block_len(uint64_t size, uint64_t off)
{
        if (off >= size)
                return 0;
        return size - off < EM_BLOCK_SIZE ? (size_t)(size - off) : EM_BLOCK_SIZE;
}

void em_blocks_free(struct em_blocks *b)
{
        free(b->h);
        *b = (struct em_blocks){0};
}

int em_blocks_append(struct em_blocks *b, const void *block, size_t len, em_error_t *err)
{
        if (b->n == b->cap) {
                size_t cap = b->cap ? 2 * b->cap : 64;
                em_phash_t *h = realloc(b->h, cap * sizeof(*h));
                if (h == NULL)
                        return em_error_set(err, ENOMEM, "block hashes");
                b->h = h;
                b->cap = cap;
        }
        em_block_hash(block, len, &b->h[b->n++]);
        return 0;
}

static size_t b64_len(size_t bytes)
{
        return 4 * ((bytes + 2) / 3);
}

char *em_blocks_encode(const struct em_blocks *b)
{
        size_t bytes = b->n * sizeof(em_phash_t);
        char *s = malloc(b64_len(bytes) + 1);

        if (s != NULL)
                EVP_EncodeBlock((unsigned char *)s, (const unsigned char *)b->h, (int)bytes);
        return s;
}

int em_blocks_decode(const char *s, size_t slen, uint64_t size, struct em_blocks *b,
                     em_error_t *err)
{
        uint64_t n = em_blocks_count(size);
        cleanup_free unsigned char *raw = NULL;
        cleanup_free char *again = NULL;

        memset(b, 0, sizeof(*b));
        /* The length first: a hostile size never sizes an allocation. */
        if (n == 0 || n > SIZE_MAX / 64 || slen != b64_len(n * sizeof(em_phash_t)) ||
            slen > INT32_MAX)
                return em_error_set(
                    err, EPROTO, "block list of %zu bytes does not fit a file of %" PRIu64 " bytes",
                    slen, size);
        if ((raw = malloc(slen / 4 * 3 + 1)) == NULL)
                return em_error_set(err, ENOMEM, "block hashes");
        if (EVP_DecodeBlock(raw, (const unsigned char *)s, (int)slen) < 0)
                return em_error_set(err, EPROTO, "block list is not base64");
        b->n = b->cap = n;
        if ((b->h = malloc(n * sizeof(em_phash_t))) == NULL)
                return em_error_set(err, ENOMEM, "block hashes");
        memcpy(b->h, raw, n * sizeof(em_phash_t));
        /* Canonical only (no whitespace, padding as encoded). */
        if ((again = em_blocks_encode(b)) == NULL || memcmp(again, s, slen) != 0) {
                em_blocks_free(b);
                return em_error_set(err, EPROTO, "block list is not canonical base64");
        }
        return 0;
}

void em_blocks_rx_init(struct em_blocks_rx *r, uint64_t size, uint64_t have)
{
        r->size = size;
        r->next = 0;
        /* A short old last block is rewritten too. */
        r->need = have >= size ? size : have - have % EM_BLOCK_SIZE;
}

int em_blocks_rx_next(struct em_blocks_rx *r, const uint8_t *p, size_t plen, uint64_t *off,
                      const uint8_t **data, size_t *len, em_error_t *err)
{
        if (plen < EM_BLOCK_HDR)
                return em_error_set(err, EPROTO, "FILE_BLOCKS payload of %zu bytes", plen);
        *off = em_le_get(p, 8);
        *data = p + EM_BLOCK_HDR;
        *len = plen - EM_BLOCK_HDR;
        if (*off == r->size && *len == 0) {
                if (r->need < r->size)
                        return em_error_set(err, EPROTO,
                                            "FILE_BLOCKS ended without the block at %" PRIu64,
                                            r->need);
                return 1;
        }
        if (*off % EM_BLOCK_SIZE != 0 || *off < r->next || *off >= r->size ||
            *len != em_block_len(r->size, *off))
                return em_error_set(err, EPROTO,
                                    "FILE_BLOCKS: %zu bytes at offset %" PRIu64
                                    " do not fit a file of %" PRIu64 " bytes",
                                    *len, *off, r->size);
        if (*off > r->need && r->need < r->size)
                return em_error_set(err, EPROTO, "FILE_BLOCKS skipped the block at %" PRIu64,
                                    r->need);
        if (*off == r->need)
                r->need += *len;
        r->next = *off + *len;
        return 0;
}
