#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "transfer/ratelimit.h"
#include "util/error.h"

#define SEC 1000000000LL

static void test_unlimited_never_waits(void **state)
{
        struct em_ratelimit rl;

        em_ratelimit_init(&rl, 0, 0);
        assert_int_equal(em_ratelimit_take(&rl, 0, 1 << 30), 0);
}

/* 8 Mbit/s is 1 MB/s: after the 50 ms burst, 1 MB more costs one second,
 * and the time that passed pays for what follows. */
static void test_rate_is_kept(void **state)
{
        struct em_ratelimit rl;
        int64_t now = 5 * SEC, sent = 0;

        em_ratelimit_init(&rl, 8000000, now);
        assert_int_equal(em_ratelimit_take(&rl, now, 50000), 0); /* the burst */
        int64_t wait = em_ratelimit_take(&rl, now, 1000000);
        assert_true(wait >= SEC - 1000 && wait <= SEC + 1000);
        /* A sender that sleeps as told sends 10 MB in about 10 s. */
        now += wait;
        for (int i = 0; i < 160; i++) {
                now += em_ratelimit_take(&rl, now, 65536);
                sent += 65536;
        }
        double secs = (double)(now - 6 * SEC) / SEC;
        assert_true(secs > 0);
        double rate = (double)sent / secs;
        assert_true(rate > 0.97e6 && rate < 1.03e6);
}

/* Idle time refills the bucket only up to its size: no burst of minutes. */
static void test_idle_does_not_bank(void **state)
{
        struct em_ratelimit rl;

        em_ratelimit_init(&rl, 8000000, 0);
        assert_int_equal(em_ratelimit_take(&rl, 0, 50000), 0);
        assert_int_equal(em_ratelimit_take(&rl, 600 * SEC, 50000), 0);
        assert_true(em_ratelimit_take(&rl, 600 * SEC, 500000) >= SEC / 2 - 1000);
}

static void test_parse(void **state)
{
        uint64_t v = 0;
        em_error_t err = NULL;

        assert_int_equal(em_rate_parse("20M", &v, &err), 0);
        assert_int_equal(v, 20000000);
        assert_int_equal(em_rate_parse("500k", &v, &err), 0);
        assert_int_equal(v, 500000);
        assert_int_equal(em_rate_parse("1.5Gbit/s", &v, &err), 0);
        assert_int_equal(v, 1500000000);
        assert_int_equal(em_rate_parse("64000", &v, &err), 0);
        assert_int_equal(v, 64000);
        const char *bad[] = {"", "fast", "20X", "-5M", "0", "nan", "inf", "10", "20MB"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(em_rate_parse(bad[i], &v, &err), -1);
                assert_non_null(err);
                em_error_free(&err);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_unlimited_never_waits),
            cmocka_unit_test(test_rate_is_kept),
            cmocka_unit_test(test_idle_does_not_bank),
            cmocka_unit_test(test_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
