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
        /* sent, on the wire, left on the wire, elapsed */
        struct em_round_stat rs[] = {{100000000, 50000000, 3000000, 1000},
                                     {3000000, 3000000, 200000, 2000}};

        assert_int_equal(em_stop_rule_decide(&r, rs, 1, MBIT(20)), EM_STOP_CONTINUE);
        /* 200 KB left at 20 Mbit/s is 80 ms <= 1000 ms. */
        assert_int_equal(em_stop_rule_decide(&r, rs, 2, MBIT(20)), EM_STOP_FITS_TARGET);
}

/* A service rewriting its memory faster than the link drains it: the
 * base round leaves as much as it sent. Pre-copy ends after that first
 * round, not after a second copy of the whole memory. */
static void test_not_converging_from_the_first_round(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {{32 << 20, 32 << 20, 30 << 20, 14000}};

        assert_int_equal(em_stop_rule_decide(&r, rs, 1, MBIT(20)), EM_STOP_NOT_CONVERGING);
        assert_false(em_stop_rule_converged(&r, &rs[0]));
        assert_string_equal(em_stop_reason_name(EM_STOP_NOT_CONVERGING), "not-converging");
}

/* "Clearly shrink" is halving: 60 % left is not converging, 50 % is. */
static void test_halving_is_the_line(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat shrunk[] = {{20000000, 20000000, 10000000, 1000}};
        struct em_round_stat slow[] = {{20000000, 20000000, 12000000, 1000}};

        assert_int_equal(em_stop_rule_decide(&r, shrunk, 1, MBIT(5)), EM_STOP_CONTINUE);
        assert_int_equal(em_stop_rule_decide(&r, slow, 1, MBIT(5)), EM_STOP_NOT_CONVERGING);
        r.converge_ratio = 0.7;
        assert_int_equal(em_stop_rule_decide(&r, slow, 1, MBIT(5)), EM_STOP_CONTINUE);
}

/* Fitting the downtime target wins over convergence: a small remainder is
 * sent during the freeze however it came about. */
static void test_small_remainder_fits(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {{10000, 10000, 40000, 100}};

        assert_int_equal(em_stop_rule_decide(&r, rs, 1, MBIT(20)), EM_STOP_FITS_TARGET);
        /* Unmeasured link (1 Mbit/s assumed): 40 KB and the final step's
         * own 16 KiB are 451 ms. */
        assert_int_equal(em_stop_rule_decide(&r, rs, 1, 0), EM_STOP_FITS_TARGET);
        /* Nothing left never fits a zero target: the final step sends its
         * images anyway. */
        struct em_round_stat idle[] = {{4096, 4096, 0, 100}};
        r.downtime_target_ms = 0;
        assert_int_equal(em_stop_rule_decide(&r, idle, 1, MBIT(20)), EM_STOP_CONTINUE);
}

static void test_round_and_time_budget(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {
            {9e8, 9e8, 4e8, 10}, {4e8, 4e8, 1.5e8, 20}, {1.5e8, 1.5e8, 6e7, 30}};

        r.max_rounds = 3;
        assert_int_equal(em_stop_rule_decide(&r, rs, 3, MBIT(5)), EM_STOP_ROUNDS);
        r.max_rounds = 10;
        r.time_budget_ms = 25;
        assert_int_equal(em_stop_rule_decide(&r, rs, 3, MBIT(5)), EM_STOP_TIME);
        assert_int_equal(em_stop_rule_decide(&r, rs, 2, MBIT(5)), EM_STOP_CONTINUE);
        assert_string_equal(em_stop_reason_name(EM_STOP_TIME), "time-budget");
}

/* A round that did not converge stops pre-copy whatever the budgets say;
 * whether they would allow another (auto-converge throttles, then goes
 * on) is the same test the converging rounds get, from the stop rule. */
static void test_budget_after_a_round_that_did_not_converge(void **state)
{
        struct em_stop_rule r = rule();
        struct em_round_stat rs[] = {{3e7, 3e7, 3e7, 1000}, {3e7, 3e7, 3e7, 2000}};

        r.max_rounds = 2;
        r.time_budget_ms = 1500;
        assert_int_equal(em_stop_rule_decide(&r, rs, 1, MBIT(20)), EM_STOP_NOT_CONVERGING);
        assert_int_equal(em_stop_rule_budget(&r, rs, 1), EM_STOP_CONTINUE);
        assert_int_equal(em_stop_rule_decide(&r, rs, 2, MBIT(20)), EM_STOP_NOT_CONVERGING);
        assert_int_equal(em_stop_rule_budget(&r, rs, 2), EM_STOP_ROUNDS);
        r.max_rounds = 5;
        assert_int_equal(em_stop_rule_budget(&r, rs, 2), EM_STOP_TIME);
        r.time_budget_ms = 0; /* none */
        assert_int_equal(em_stop_rule_budget(&r, rs, 2), EM_STOP_CONTINUE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_estimate),
            cmocka_unit_test(test_fits_target_stops),
            cmocka_unit_test(test_not_converging_from_the_first_round),
            cmocka_unit_test(test_halving_is_the_line),
            cmocka_unit_test(test_small_remainder_fits),
            cmocka_unit_test(test_round_and_time_budget),
            cmocka_unit_test(test_budget_after_a_round_that_did_not_converge),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
