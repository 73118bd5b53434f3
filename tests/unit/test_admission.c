#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "platform/admission.h"

static em_admission_t *make(int max, int per, int rate, int64_t deadline)
{
        struct em_admission_limits l = {max, per, rate, deadline, 1};
        em_admission_t *a = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_admission_new(&l, &a, &err), 0);
        return a;
}

/* One address gets max_per_addr children, others still get in, up to
 * max_children in all; a reaped child frees its slot. */
static void test_caps(void **state)
{
        cleanup_admission em_admission_t *a = make(4, 2, 1000, 0);
        pid_t pid = 100;

        (void)state;
        for (int i = 0; i < 2; i++) {
                assert_null(em_admission_check(a, "10.0.0.1:5000", 0));
                em_admission_add(a, pid++, "10.0.0.1:5000", 0);
        }
        assert_string_equal(em_admission_check(a, "10.0.0.1:6000", 0), "per-peer");
        assert_null(em_admission_check(a, "[fd00::1]:7", 0));
        em_admission_add(a, pid++, "[fd00::1]:7", 0);
        assert_null(em_admission_check(a, "10.0.0.2:1", 0));
        em_admission_add(a, pid++, "10.0.0.2:1", 0);
        assert_string_equal(em_admission_check(a, "10.0.0.3:1", 0), "connections");
        em_admission_remove(a, 100);
        em_admission_remove(a, 9999); /* unknown: ignored */
        assert_int_equal(em_admission_count(a), 3);
        assert_null(em_admission_check(a, "10.0.0.1:1", 0));
}

/* Bursts of twice the rate, then the rate; time refills the bucket. */
static void test_rate(void **state)
{
        cleanup_admission em_admission_t *a = make(1000, 1000, 10, 0);
        int admitted = 0;

        (void)state;
        for (int i = 0; i < 100; i++)
                admitted += em_admission_check(a, "10.0.0.1:1", 1000) == NULL;
        assert_int_equal(admitted, 20);
        assert_string_equal(em_admission_check(a, "10.0.0.1:1", 1000), "rate");
        admitted = 0;
        for (int i = 0; i < 100; i++)
                admitted += em_admission_check(a, "10.0.0.1:1", 1500) == NULL;
        assert_int_equal(admitted, 5);
}

/* A child past its deadline is reported once. */
static void test_deadline(void **state)
{
        cleanup_admission em_admission_t *a = make(4, 4, 100, 1000);
        const char *peer = NULL;

        (void)state;
        em_admission_add(a, 42, "10.0.0.9:1", 0);
        em_admission_add(a, 43, "10.0.0.9:2", 600);
        assert_int_equal(em_admission_overdue(a, 999, &peer), 0);
        assert_int_equal(em_admission_overdue(a, 1000, &peer), 42);
        assert_string_equal(peer, "10.0.0.9");
        assert_int_equal(em_admission_overdue(a, 1200, &peer), 0);
        assert_int_equal(em_admission_overdue(a, 1600, &peer), 43);
}

static void test_bad_limits(void **state)
{
        struct em_admission_limits l;
        em_admission_t *a = NULL;
        em_error_t err = NULL;

        (void)state;
        em_admission_limits_init(&l);
        l.max_per_addr = 0;
        assert_int_equal(em_admission_new(&l, &a, &err), -1);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_caps),
            cmocka_unit_test(test_rate),
            cmocka_unit_test(test_deadline),
            cmocka_unit_test(test_bad_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
