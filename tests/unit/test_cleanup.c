#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/cleanup.h"

static void test_strv_push_unique(void **state)
{
        cleanup_strv char **v = NULL;
        size_t n = 0;
        (void)state;

        assert_int_equal(em_strv_push_unique(&v, &n, "Host-A.example", 14), 0);
        assert_int_equal(em_strv_push_unique(&v, &n, "host-a.EXAMPLE", 14), 0);
        assert_int_equal(em_strv_push_unique(&v, &n, "host-a.examplex", 14), 0);
        assert_int_equal(em_strv_push_unique(&v, &n, "host-a", 6), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0], "Host-A.example");
        assert_string_equal(v[1], "host-a");
        assert_null(v[2]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_strv_push_unique),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
