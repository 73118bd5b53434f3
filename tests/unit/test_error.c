#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "util/error.h"

static int inner(em_error_t *err)
{
        return em_error_set(err, ENOENT, "opening %s", "/nope");
}

static int outer(em_error_t *err)
{
        if (inner(err) < 0)
                return em_error_wrap(err, "restoring %s", "web1");
        return 0;
}

static void test_context_chain(void **state)
{
        em_error_t err = NULL;

        assert_int_equal(outer(&err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_string_equal(em_error_msg(err),
                            "restoring web1: opening /nope: No such file or directory");
        em_error_free(&err);
        assert_null(err);
}

static void test_wrap_without_error_creates_one(void **state)
{
        em_error_t err = NULL;

        assert_int_equal(em_error_wrap(&err, "context %d", 7), -1);
        assert_int_equal(em_error_status(err), 0);
        assert_string_equal(em_error_msg(err), "context 7");
        em_error_free(&err);
}

static void test_set_replaces_previous(void **state)
{
        em_error_t err = NULL;

        em_error_set(&err, EIO, "first");
        em_error_set(&err, 0, "second");
        assert_string_equal(em_error_msg(err), "second");
        assert_int_equal(em_error_status(err), 0);
        em_error_free(&err);
}

static void test_move(void **state)
{
        em_error_t a = NULL, b = NULL;

        em_error_set(&a, EPERM, "denied");
        em_error_move(&b, &a);
        assert_null(a);
        assert_int_equal(em_error_status(b), EPERM);
        em_error_free(&b);
        assert_string_equal(em_error_msg(NULL), "no error");
}

static void test_set_code_keeps_status_without_strerror(void **state)
{
        em_error_t err = NULL;

        assert_int_equal(em_error_set_code(&err, EILSEQ, "checksum mismatch in frame %d", 3), -1);
        assert_int_equal(em_error_status(err), EILSEQ);
        assert_string_equal(em_error_msg(err), "checksum mismatch in frame 3");
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_context_chain),
            cmocka_unit_test(test_wrap_without_error_creates_one),
            cmocka_unit_test(test_set_replaces_previous),
            cmocka_unit_test(test_move),
            cmocka_unit_test(test_set_code_keeps_status_without_strerror),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
