/* util/clock: the time left to a deadline, as a poll timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/clock.h"

/* Past or now: 0, never a negative timeout (poll's "for ever"). Ahead:
 * what is left, at most INT32_MAX. */
static void test_ms_left(void **state)
{
        int64_t now = em_mono_ms();
        int left = em_ms_left(now + 1000);

        (void)state;
        assert_int_equal(em_ms_left(now - 5), 0);
        assert_int_equal(em_ms_left(INT64_MIN / 2), 0);
        assert_true(left > 900 && left <= 1000);
        assert_int_equal(em_ms_left(now + ((int64_t)1 << 40)), INT32_MAX);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ms_left),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
