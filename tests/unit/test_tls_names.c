/* The allow-list name rule (transfer/tls_names.h): the first of the
 * certificate's names that the list holds, case-insensitively; nothing
 * matches an absent or empty list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "transfer/tls_names.h"

static void test_first_listed_name(void **state)
{
        const char *names[] = {"edge-1.example", "Controller", NULL};
        const char *allow[] = {"controller", "edge-1.example", NULL};

        /* The certificate's order decides, not the list's. */
        assert_string_equal(em_tls_name_match(names, allow), "edge-1.example");
        const char *only[] = {"CONTROLLER", NULL};
        assert_string_equal(em_tls_name_match(names, only), "Controller");
}

static void test_no_match(void **state)
{
        const char *names[] = {"edge-1", NULL};
        const char *other[] = {"edge-10", "edge-", NULL};
        const char *empty[] = {NULL};

        assert_null(em_tls_name_match(names, other));
        assert_null(em_tls_name_match(names, empty));
        assert_null(em_tls_name_match(names, NULL));
        assert_null(em_tls_name_match(NULL, other));
        assert_null(em_tls_name_match(empty, other));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_first_listed_name),
            cmocka_unit_test(test_no_match),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
