/* Restart policies: parsing, the spec field, and which containers come back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "container/restart.h"
#include "util/cleanup.h"
#include "util/json.h"

static void test_parse_and_names(void **state)
{
        cleanup_error em_error_t err = NULL;
        enum em_restart r;

        assert_int_equal(em_restart_parse("on-failure", &r, &err), 0);
        assert_int_equal(r, EM_RESTART_ON_FAILURE);
        assert_string_equal(em_restart_name(EM_RESTART_ALWAYS), "always");
        assert_int_equal(em_restart_parse("unless-stopped", &r, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "use no, on-failure or always"));
        em_error_free(&err);
        assert_int_equal(em_restart_parse(NULL, &r, &err), -1);
}

static void test_of_spec(void **state)
{
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *none = json_object();
        cleanup_json json_t *always = json_pack("{s:s}", "restart", "always");
        cleanup_json json_t *num = json_pack("{s:i}", "restart", 2);
        enum em_restart r = EM_RESTART_ALWAYS;

        assert_int_equal(em_restart_of_spec(none, &r, &err), 0);
        assert_int_equal(r, EM_RESTART_NO);
        assert_int_equal(em_restart_of_spec(always, &r, &err), 0);
        assert_int_equal(r, EM_RESTART_ALWAYS);
        assert_int_equal(em_restart_of_spec(num, &r, &err), -1);
}

static void test_wanted(void **state)
{
        struct em_container_rec died = {.state = EM_CSTATE_RUNNING};
        struct em_container_rec reconciled = {.state = EM_CSTATE_STOPPED};
        struct em_container_rec stopped = {.state = EM_CSTATE_STOPPED, .stopped_by_user = true};
        struct em_container_rec migrating = {.state = EM_CSTATE_MIGRATING};
        struct em_container_rec ckpt = {.state = EM_CSTATE_CHECKPOINTED};
        struct em_container_rec created = {.state = EM_CSTATE_CREATED};

        for (int boot = 0; boot < 2; boot++) {
                assert_false(em_restart_wanted(EM_RESTART_NO, &died, boot));
                assert_true(em_restart_wanted(EM_RESTART_ON_FAILURE, &died, boot));
                assert_true(em_restart_wanted(EM_RESTART_ON_FAILURE, &reconciled, boot));
                assert_false(em_restart_wanted(EM_RESTART_ON_FAILURE, &stopped, boot));
                assert_true(em_restart_wanted(EM_RESTART_ALWAYS, &died, boot));
                assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &migrating, boot));
                assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &ckpt, boot));
                assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &created, boot));
        }
        /* always: a user's stop holds until edgemigd starts again. */
        assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &stopped, false));
        assert_true(em_restart_wanted(EM_RESTART_ALWAYS, &stopped, true));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_and_names),
            cmocka_unit_test(test_of_spec),
            cmocka_unit_test(test_wanted),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
