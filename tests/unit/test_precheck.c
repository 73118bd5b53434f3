/* The pre-check's service IP rule, shared with a migration's plan check:
 * free, used by a container, reserved for the same or another name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/target/precheck_target.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

static void test_ip_free(void **state)
{
        char root[] = "/tmp/test_precheck.XXXXXX";
        struct em_config cfg;
        cleanup_error em_error_t err = NULL;
        struct em_state *st = NULL;

        assert_non_null(mkdtemp(root));
        assert_int_equal(em_config_init(&cfg, root, &err), 0);
        assert_int_equal(em_state_open(root, &st, &err), 0);
        struct em_container_rec r = {
            .name = "squat", .image = "i", .ip = "10.66.0.9", .state = EM_CSTATE_RUNNING};
        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        assert_int_equal(em_state_ip_reserve(st, "10.66.0.7", "gone", &err), 0);
        em_state_close(&st);

        assert_int_equal(em_precheck_ip_free(&cfg, "10.66.0.8", "web", &err), 0);
        assert_int_equal(em_precheck_ip_free(&cfg, NULL, "web", &err), 0);
        assert_int_equal(em_precheck_ip_free(&cfg, "10.66.0.7", "gone", &err), 0);
        assert_int_equal(em_precheck_ip_free(&cfg, "10.66.0.9", "web", &err), -1);
        assert_int_equal(em_error_status(err), EADDRINUSE);
        assert_non_null(strstr(em_error_msg(err), "used on this host by squat;"));
        em_error_free(&err);
        assert_int_equal(em_precheck_ip_free(&cfg, "10.66.0.7", "web", &err), -1);
        assert_non_null(strstr(em_error_msg(err), "by gone (reserved: it migrated away)"));
        em_error_free(&err);
        em_config_free(&cfg);
        em_rm_rf(root, &err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ip_free),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
