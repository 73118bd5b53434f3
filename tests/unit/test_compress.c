#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transfer/compress.h"
#include "util/cleanup.h"

static void test_parse(void **state)
{
        struct em_compress_opt o;
        em_error_t err = NULL;

        assert_int_equal(em_compress_parse("auto", &o, &err), 0);
        assert_int_equal(o.mode, EM_COMPRESS_AUTO);
        assert_int_equal(em_compress_parse("none", &o, &err), 0);
        assert_int_equal(o.mode, EM_COMPRESS_NONE);
        assert_int_equal(em_compress_parse("zstd:9", &o, &err), 0);
        assert_int_equal(o.mode, EM_COMPRESS_ZSTD);
        assert_int_equal(o.level, 9);
        assert_int_equal(em_compress_level(&o, 1e9, NULL), 9);
        const char *bad[] = {"zstd:", "zstd:0", "zstd:20", "zstd:3x", "gzip", "zstd:-1", ""};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(em_compress_parse(bad[i], &o, &err), -1);
                assert_int_equal(em_error_status(err), EINVAL);
                em_error_free(&err);
        }
}

static void fill(uint8_t *p, size_t n)
{
        /* Half text-like, half random: compresses, but not to nothing. */
        for (size_t i = 0; i < n; i++)
                p[i] = (i / 4096) % 2 ? (uint8_t)rand() : (uint8_t)("edgemig "[i % 8]);
}

static void test_roundtrip_and_strict_size(void **state)
{
        size_t n = 256 * 1024, zlen = 0;
        cleanup_free uint8_t *src = malloc(n);
        cleanup_free uint8_t *out = malloc(n + 1);
        cleanup_free uint8_t *z = NULL;
        cleanup_free uint8_t *padded = NULL;
        cleanup_zstd em_zstd_t *ctx = em_zstd_new();
        em_error_t err = NULL;

        fill(src, n);
        assert_int_equal(em_zstd_compress(ctx, 3, src, n, &z, &zlen, &err), 0);
        assert_true(zlen < n);
        assert_int_equal(em_zstd_decompress(ctx, z, zlen, out, n, &err), 0);
        assert_memory_equal(out, src, n);
        /* Announced size too small, too large, truncated input, trailing garbage. */
        assert_int_equal(em_zstd_decompress(ctx, z, zlen, out, n - 1, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_zstd_decompress(ctx, z, zlen, out, n + 1, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_zstd_decompress(ctx, z, zlen - 5, out, n, &err), -1);
        em_error_free(&err);
        padded = malloc(zlen + 3);
        memcpy(padded, z, zlen);
        memcpy(padded + zlen, "xyz", 3);
        assert_int_equal(em_zstd_decompress(ctx, padded, zlen + 3, out, n, &err), -1);
        em_error_free(&err);
        z[zlen / 2] ^= 0x55;
        if (em_zstd_decompress(ctx, z, zlen, out, n, &err) == 0)
                assert_memory_not_equal(out, src, n); /* no checksum flag: may decode */
        em_error_free(&err);
        /* Empty input round-trips. */
        free(z);
        z = NULL;
        assert_int_equal(em_zstd_compress(ctx, 1, "", 0, &z, &zlen, &err), 0);
        assert_int_equal(em_zstd_decompress(ctx, z, zlen, out, 0, &err), 0);
}

static void test_auto_rule(void **state)
{
        /* Typical of this VM on page data: level 1 at 400 MB/s to 35 %, level 3
         * at 150 MB/s to 30 %, level 9 at 25 MB/s to 26 %. */
        struct em_compress_calibration cal = {
            .n = 3,
            .s = {{1, 400e6, 0.35}, {3, 150e6, 0.30}, {9, 25e6, 0.26}},
        };
        struct em_compress_opt o = {EM_COMPRESS_AUTO, 0};

        /* 10 Gbit/s: compression cannot keep up with the link: off. */
        assert_int_equal(em_compress_choose(1.25e9, &cal), 0);
        /* 1 Gbit/s: level 1 (400 MB/s) beats 125 MB/s raw; level 3 is CPU bound. */
        assert_int_equal(em_compress_choose(125e6, &cal), 1);
        /* 100 Mbit/s: level 3 is still faster than the link after compression. */
        assert_int_equal(em_compress_choose(12.5e6, &cal), 3);
        /* 5 Mbit/s: the strongest measured level. */
        assert_int_equal(em_compress_choose(625e3, &cal), 9);
        assert_int_equal(em_compress_level(&o, 625e3, &cal), 9);
        /* Incompressible data: never worth it. */
        struct em_compress_calibration noise = {
            .n = 3,
            .s = {{1, 900e6, 1.0}, {3, 300e6, 0.99}, {9, 50e6, 0.99}},
        };
        assert_int_equal(em_compress_choose(625e3, &noise), 0);
        /* No measurement yet: cheap level 1. */
        assert_int_equal(em_compress_choose(0, &cal), 1);
        assert_int_equal(em_compress_choose(625e3, NULL), 1);
}

static void test_calibrate(void **state)
{
        size_t n = 1 << 20;
        cleanup_free uint8_t *src = malloc(n);
        struct em_compress_calibration cal;
        em_error_t err = NULL;

        fill(src, n);
        assert_int_equal(em_compress_calibrate(src, n, &cal, &err), 0);
        assert_int_equal(cal.n, EM_COMPRESS_CAL_LEVELS);
        assert_int_equal(cal.s[2].level, 9);
        for (int i = 0; i < 3; i++) {
                assert_true(cal.s[i].speed > 1e6);
                assert_true(cal.s[i].ratio > 0.3 && cal.s[i].ratio < 0.7);
        }
}

struct staged {
        const struct em_compress_calibration *cal;
        int calls, n_then;
};

static void fast_done(void *arg)
{
        struct staged *st = arg;

        st->calls++;
        st->n_then = st->cal->n;
}

/* The fast levels are announced before the slow one is measured: the
 * first round takes them up instead of waiting for level 19. */
static void test_calibrate_staged(void **state)
{
        size_t n = 256 << 10;
        cleanup_free uint8_t *src = malloc(n);
        struct em_compress_calibration cal = {0};
        struct staged st = {&cal, 0, -1};
        em_error_t err = NULL;

        (void)state;
        fill(src, n);
        assert_int_equal(em_compress_calibrate_staged(src, n, &cal, fast_done, &st, &err), 0);
        assert_int_equal(st.calls, 1);
        assert_int_equal(st.n_then, EM_COMPRESS_FAST_LEVELS);
        assert_int_equal(cal.n, EM_COMPRESS_CAL_LEVELS);
        assert_int_equal(cal.s[EM_COMPRESS_FAST_LEVELS].level, EM_COMPRESS_SLOW_LEVEL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_roundtrip_and_strict_size),
            cmocka_unit_test(test_auto_rule),
            cmocka_unit_test(test_calibrate),
            cmocka_unit_test(test_calibrate_staged),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
