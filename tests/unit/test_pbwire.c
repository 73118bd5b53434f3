#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "checkpoint/pbwire.h"

static int count_fields(const uint8_t *p, size_t n, int *last)
{
        struct em_pb_iter it;
        struct em_pb_field f;
        int k = 0, r;

        em_pb_iter_init(&it, p, n);
        while ((r = em_pb_next(&it, &f)) > 0)
                k++;
        *last = r;
        return k;
}

static void test_fields(void **state)
{
        /* 1: varint 150, 2: "hi", 3: fixed32, 4: fixed64 */
        const uint8_t msg[] = {0x08, 0x96, 0x01, 0x12, 0x02, 'h', 'i', 0x1d, 1, 2, 3,
                               4,    0x21, 1,    0,    0,    0,   0,   0,    0, 0};
        struct em_pb_iter it;
        struct em_pb_field f;
        uint32_t v;
        char s[4];

        (void)state;
        em_pb_iter_init(&it, msg, sizeof(msg));
        assert_int_equal(em_pb_next(&it, &f), 1);
        assert_int_equal(f.num, 1);
        assert_int_equal(em_pb_u32(&f, &v), 0);
        assert_int_equal(v, 150);
        assert_int_equal(em_pb_next(&it, &f), 1);
        assert_int_equal(em_pb_str(&f, s, sizeof(s)), 0);
        assert_string_equal(s, "hi");
        assert_int_equal(em_pb_str(&f, s, 2), -1); /* does not fit */
        assert_int_equal(em_pb_u32(&f, &v), -1);   /* wrong wire type */
        assert_int_equal(em_pb_next(&it, &f), 1);
        assert_true(f.wt == EM_PB_FIXED32 && f.v == 0x04030201);
        assert_int_equal(em_pb_next(&it, &f), 1);
        assert_true(f.wt == EM_PB_FIXED64 && f.v == 1);
        assert_int_equal(em_pb_next(&it, &f), 0);
}

static void test_hostile(void **state)
{
        /* Each one must end in -1 after reading only what it holds. */
        static const struct {
                uint8_t b[12];
                size_t n;
        } bad[] = {
            {{0x08}, 1},            /* key, no value */
            {{0x08, 0x80}, 2},      /* truncated varint */
            {{0x12, 0x05, 'a'}, 3}, /* length past the end */
            {{0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 10}, /* 2^63 */
            {{0x0b}, 1},                      /* wire type 3 (group) */
            {{0x0c}, 1},                      /* wire type 4 */
            {{0x0e, 0}, 2},                   /* wire type 6 */
            {{0x00, 0}, 2},                   /* field 0 */
            {{0x1d, 1, 2}, 3},                /* short fixed32 */
            {{0x21, 1, 2, 3, 4, 5, 6, 7}, 8}, /* short fixed64 */
            {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11}, /* 11 bytes */
        };
        int last;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                count_fields(bad[i].b, bad[i].n, &last);
                assert_int_equal(last, -1);
        }
}

static void test_repeated(void **state)
{
        /* field 9 unpacked twice, then packed {1, 300} */
        const uint8_t msg[] = {0x48, 0x07, 0x48, 0x08, 0x4a, 0x03, 0x01, 0xac, 0x02};
        struct em_pb_iter it;
        struct em_pb_field f;
        uint32_t out[4];
        size_t n = 0;

        (void)state;
        em_pb_iter_init(&it, msg, sizeof(msg));
        while (em_pb_next(&it, &f) > 0)
                assert_int_equal(em_pb_rep_u32(&f, out, 4, &n), 0);
        assert_int_equal(n, 4);
        assert_true(out[0] == 7 && out[1] == 8 && out[2] == 1 && out[3] == 300);
        /* more values than room: refused, nothing written past max */
        n = 0;
        em_pb_iter_init(&it, msg, sizeof(msg));
        int r = 0;
        while (em_pb_next(&it, &f) > 0 && r == 0)
                r = em_pb_rep_u32(&f, out, 3, &n);
        assert_int_equal(r, -1);
        assert_int_equal(n, 3);
}

static void test_once(void **state)
{
        uint64_t seen = 0;

        (void)state;
        assert_int_equal(em_pb_once(&seen, 5), 0);
        assert_int_equal(em_pb_once(&seen, 5), -1);
        assert_true(em_pb_has(seen, 5));
        assert_false(em_pb_has(seen, 6));
        assert_int_equal(em_pb_once(&seen, 64), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fields),
            cmocka_unit_test(test_hostile),
            cmocka_unit_test(test_repeated),
            cmocka_unit_test(test_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
