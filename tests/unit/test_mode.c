/* Migration modes by name (migrate/common/mode.h): every name round-trips,
 * anything else is refused with the list of valid names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "migrate/common/mode.h"

static void test_round_trip(void **state)
{
        const char *names[] = {"precopy", "stop-and-copy", "prepare", "postcopy", "hybrid", "auto"};

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                enum em_migrate_mode m = EM_MIGRATE_AUTO;
                em_error_t err = NULL;
                assert_int_equal(em_migrate_mode_parse(names[i], &m, &err), 0);
                assert_int_equal(m, (enum em_migrate_mode)i);
                assert_string_equal(em_migrate_mode_name(m), names[i]);
        }
}

static void test_unknown(void **state)
{
        enum em_migrate_mode m = EM_MIGRATE_HYBRID;
        em_error_t err = NULL;

        assert_int_equal(em_migrate_mode_parse("pre-copy", &m, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "unknown mode 'pre-copy'"));
        assert_non_null(strstr(em_error_msg(err), "stop-and-copy"));
        assert_int_equal(m, EM_MIGRATE_HYBRID);
        em_error_free(&err);
        assert_int_equal(em_migrate_mode_parse("", &m, &err), -1);
        em_error_free(&err);
        assert_string_equal(em_migrate_mode_name((enum em_migrate_mode)99), "?");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_unknown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
