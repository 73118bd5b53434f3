#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "migrate/source/stop_rule.h"

#define MBIT(x) ((x)*1e6 / 8)

static struct em_stop_rule rule(void)
{
        struct em_stop_rule r;
        em_stop_rule_defaults(&r);
        r.max_rounds = 5;
        r.downtime_target_ms = 1000;
        return r;
}

static void test_estimate(void **state)
{
        /* 625 KB at 5 Mbit/s (625 KB/s) is one second. */
        assert_int_equal(em_transfer_estimate_ms(625000, MBIT(5)), 1000);
        /* Unmeasured bandwidth is assumed slow, never infinitely fast. */
        assert_true(em_transfer_estimate_ms(1000000, 0) >= 8000);
}

static void test_fits_target_stops(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {{100000000, 50000000, 1000}, {300000, 200000, 2000}};

        assert_int_equal(em_stop_rule_decide(&r, rs, 1, MBIT(20)), EM_STOP_CONTINUE);
        /* 200 KB at 20 Mbit/s is 80 ms <= 1000 ms. */
        assert_int_equal(em_stop_rule_decide(&r, rs, 2, MBIT(20)), EM_STOP_FITS_TARGET);
}

static void test_not_shrinking_stops(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {
            {200000000, 100000000, 1000}, {30000000, 20000000, 2000}, {29500000, 19800000, 3000}};

        assert_int_equal(em_stop_rule_decide(&r, rs, 2, MBIT(5)), EM_STOP_CONTINUE);
        assert_int_equal(em_stop_rule_decide(&r, rs, 3, MBIT(5)), EM_STOP_NOT_SHRINKING);
}

static void test_round_and_time_budget(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {{9e8, 9e8, 10}, {8e8, 8e8, 20}, {6e8, 6e8, 30}};

        r.max_rounds = 3;
        assert_int_equal(em_stop_rule_decide(&r, rs, 3, MBIT(5)), EM_STOP_ROUNDS);
        r.max_rounds = 10;
        r.time_budget_ms = 25;
        assert_int_equal(em_stop_rule_decide(&r, rs, 3, MBIT(5)), EM_STOP_TIME);
        assert_string_equal(em_stop_reason_name(EM_STOP_TIME), "time-budget");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_estimate),
            cmocka_unit_test(test_fits_target_stops),
            cmocka_unit_test(test_not_shrinking_stops),
            cmocka_unit_test(test_round_and_time_budget),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
