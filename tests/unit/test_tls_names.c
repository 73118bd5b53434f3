/* The allow-list name rule (transfer/tls_names.h): the first of the
 * certificate's names that the list holds, case-insensitively; nothing
 * matches an absent or empty list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "transfer/tls_names.h"
#include "util/cleanup.h"

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

/* Both TLS backends: an empty list admits any name of the CA (the
 * first), a list admits what it holds, and a refusal names both lists. */
static void test_admit(void **state)
{
        char *names[] = {"edge-1", "Edge-1.example", NULL};
        char *any[] = {NULL}, *listed[] = {"edge-1.EXAMPLE", NULL}, *other[] = {"a", "b", NULL};
        char reason[128] = "";

        (void)state;
        assert_string_equal(em_tls_name_admit(names, any, reason, sizeof(reason)), "edge-1");
        assert_string_equal(em_tls_name_admit(names, listed, reason, sizeof(reason)),
                            "Edge-1.example");
        assert_string_equal(reason, "");
        assert_null(em_tls_name_admit(names, other, reason, sizeof(reason)));
        assert_string_equal(reason,
                            "peer 'edge-1, Edge-1.example' is not an allowed peer (allowed: a, b)");
}

static void test_copy(void **state)
{
        const char *src[] = {"a", "b", NULL};
        cleanup_strv char **copy = NULL, **none = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_tls_names_copy(src, &copy, &err), 0);
        assert_string_equal(copy[0], "a");
        assert_string_equal(copy[1], "b");
        assert_null(copy[2]);
        assert_true(copy[0] != src[0]);
        assert_int_equal(em_tls_names_copy(NULL, &none, &err), 0);
        assert_null(none[0]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_first_listed_name),
            cmocka_unit_test(test_no_match),
            cmocka_unit_test(test_admit),
            cmocka_unit_test(test_copy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
