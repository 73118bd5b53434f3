/* The pages-file digest (delta/pagelist.h): the sha256 of the page hashes,
 * zero pages included, in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "delta/criu_img.h"
#include "delta/pagelist.h"

enum { N = 5 };

/* Pages 0 and 3 zero, the others each its own byte. */
static void fill(uint8_t pages[N][EM_PAGE_SIZE])
{
        memset(pages, 0, (size_t)N * EM_PAGE_SIZE);
        memset(pages[1], 0x11, EM_PAGE_SIZE);
        memset(pages[2], 0x22, EM_PAGE_SIZE);
        pages[4][4095] = 1; /* zero but for its last byte */
}

/* The digest the long way: every page hashed, zero pages too. */
static void long_way(uint8_t pages[N][EM_PAGE_SIZE], char out[EM_DIGEST_STR_LEN + 1])
{
        cleanup_sha256 em_sha256_t *sha = em_sha256_new();
        em_phash_t h;

        assert_non_null(sha);
        for (int i = 0; i < N; i++) {
                em_page_hash(pages[i], &h);
                em_sha256_update(sha, h.b, sizeof(h.b));
        }
        em_sha256_final(sha, out);
        memcpy(out, "pglist:", 7);
}

static void test_zero_hash(void **state)
{
        static const uint8_t zero[EM_PAGE_SIZE];
        em_phash_t h;

        (void)state;
        em_page_hash(zero, &h);
        assert_memory_equal(em_page_zero_hash()->b, h.b, sizeof(h.b));
}

/* em_pagelist_add_pages and em_pagelist_add page by page give the digest
 * the long way gives, named "pglist:" and not the file's sha256. */
static void test_digest(void **state)
{
        static uint8_t pages[N][EM_PAGE_SIZE];
        char want[EM_DIGEST_STR_LEN + 1], got[EM_DIGEST_STR_LEN + 1], file[EM_DIGEST_STR_LEN + 1];
        em_sha256_t *a = em_sha256_new(), *b = em_sha256_new();
        em_phash_t h;

        (void)state;
        fill(pages);
        long_way(pages, want);
        em_pagelist_add_pages(a, &pages[0][0], N);
        em_pagelist_final(a, got);
        assert_string_equal(got, want);
        for (int i = 0; i < N; i++) {
                em_page_hash(pages[i], &h);
                em_pagelist_add(b, &h);
        }
        em_pagelist_final(b, got);
        assert_string_equal(got, want);
        assert_int_equal(strlen(got), EM_DIGEST_STR_LEN);
        assert_memory_equal(got, "pglist:", 7);
        em_sha256_buf(pages, sizeof(pages), file);
        assert_string_not_equal(got + 7, file + 7);
        em_sha256_free(&a);
        em_sha256_free(&b);
}

/* The same pages in another order, or one byte changed, digest otherwise. */
static void test_order_and_content(void **state)
{
        static uint8_t pages[N][EM_PAGE_SIZE], swapped[N][EM_PAGE_SIZE];
        char d0[EM_DIGEST_STR_LEN + 1], d1[EM_DIGEST_STR_LEN + 1], d2[EM_DIGEST_STR_LEN + 1];
        em_sha256_t *s;

        (void)state;
        fill(pages);
        memcpy(swapped, pages, sizeof(pages));
        memcpy(swapped[1], pages[2], EM_PAGE_SIZE);
        memcpy(swapped[2], pages[1], EM_PAGE_SIZE);
        s = em_sha256_new();
        em_pagelist_add_pages(s, &pages[0][0], N);
        em_pagelist_final(s, d0);
        em_sha256_free(&s);
        s = em_sha256_new();
        em_pagelist_add_pages(s, &swapped[0][0], N);
        em_pagelist_final(s, d1);
        em_sha256_free(&s);
        pages[3][100] = 1;
        s = em_sha256_new();
        em_pagelist_add_pages(s, &pages[0][0], N);
        em_pagelist_final(s, d2);
        em_sha256_free(&s);
        assert_string_not_equal(d0, d1);
        assert_string_not_equal(d0, d2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_zero_hash),
            cmocka_unit_test(test_digest),
            cmocka_unit_test(test_order_and_content),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
