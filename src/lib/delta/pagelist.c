#include "delta/pagelist.h"

#include <pthread.h>
#include <string.h>

#include "delta/criu_img.h"

static em_phash_t zero_hash;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_hash_init(void)
{
        static const uint8_t zero_page[EM_PAGE_SIZE];

        em_page_hash(zero_page, &zero_hash);
}

const em_phash_t *em_page_zero_hash(void)
{
        pthread_once(&zero_once, zero_hash_init);
        return &zero_hash;
}

void em_pagelist_add(em_sha256_t *sha, const em_phash_t *h)
{
        em_sha256_update(sha, h->b, sizeof(h->b));
}

void em_pagelist_add_pages(em_sha256_t *sha, const uint8_t *pages, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const uint8_t *p = pages + i * EM_PAGE_SIZE;
                em_phash_t h;

                if (em_page_is_zero(p)) {
                        em_pagelist_add(sha, em_page_zero_hash());
                        continue;
                }
                em_page_hash(p, &h);
                em_pagelist_add(sha, &h);
        }
}

void em_pagelist_final(em_sha256_t *sha, char out[EM_DIGEST_STR_LEN + 1])
{
        em_sha256_final(sha, out);
        memcpy(out, EM_PAGELIST_PREFIX, strlen(EM_PAGELIST_PREFIX));
}
