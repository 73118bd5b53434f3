#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/cpu_throttle.h"
#include "util/fsutil.h"
#include "support/fixture.h"

/* A fake cgroup file system: the files are plain files here. */
static char *fs;

static int setup(void **state)
{
        (void)state;
        fs = em_test_tmpdir("throttle");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(fs);
        return 0;
}

static void test_v1_quota_and_lift(void **state)
{
        struct em_cpu_throttle t = {0};
        em_error_t err = NULL;

        em_test_put(fs, "cpu/edgemig-x-web/cpu.cfs_quota_us", "-1\n");
        em_test_put(fs, "cpu/edgemig-x-web/cpu.cfs_period_us", "100000\n");
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/edgemig-x-web", 50, &err), 0);
        assert_string_equal(em_test_get(fs, "cpu/edgemig-x-web/cpu.cfs_quota_us"), "50000");
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/edgemig-x-web", 25, &err), 0);
        assert_string_equal(em_test_get(fs, "cpu/edgemig-x-web/cpu.cfs_quota_us"), "25000");
        /* The kernel's floor is 1 ms a period. */
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/edgemig-x-web", 1, &err), 0);
        assert_string_equal(em_test_get(fs, "cpu/edgemig-x-web/cpu.cfs_quota_us"), "1000");
        assert_int_equal(t.pct, 1);
        assert_int_equal(em_cpu_throttle_lift(&t, &err), 0);
        assert_string_equal(em_test_get(fs, "cpu/edgemig-x-web/cpu.cfs_quota_us"), "-1");
        assert_false(t.active);
        assert_int_equal(em_cpu_throttle_lift(&t, &err), 0); /* idempotent */
}

/* v2 (no cpu/ hierarchy): cpu.max, and the container's own --cpus limit is
 * never raised, and comes back on lift. */
static void test_v2_keeps_own_limit(void **state)
{
        struct em_cpu_throttle t = {0};
        em_error_t err = NULL;

        em_test_put(fs, "edgemig-y-db/cpu.max", "30000 100000\n");
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/edgemig-y-db", 50, &err), 0);
        assert_string_equal(em_test_get(fs, "edgemig-y-db/cpu.max"), "30000 100000");
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/edgemig-y-db", 10, &err), 0);
        assert_string_equal(em_test_get(fs, "edgemig-y-db/cpu.max"), "10000 100000");
        assert_int_equal(em_cpu_throttle_lift(&t, &err), 0);
        assert_string_equal(em_test_get(fs, "edgemig-y-db/cpu.max"), "30000 100000");
}

static void test_errors(void **state)
{
        struct em_cpu_throttle t = {0};
        em_error_t err = NULL;

        assert_int_equal(em_cpu_throttle_set(&t, fs, "/gone", 50, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "throttling the CPU of /gone"));
        em_error_free(&err);
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/gone", 0, &err), -1);
        em_error_free(&err);
        /* The container went with the migration: lifting is not an error. */
        em_test_put(fs, "edgemig-z-c/cpu.max", "max 100000\n");
        assert_int_equal(em_cpu_throttle_set(&t, fs, "/edgemig-z-c", 50, &err), 0);
        char path[256];
        snprintf(path, sizeof(path), "%s/edgemig-z-c", fs);
        assert_int_equal(em_rm_rf(path, &err), 0);
        assert_int_equal(em_cpu_throttle_lift(&t, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_v1_quota_and_lift, setup, teardown),
            cmocka_unit_test_setup_teardown(test_v2_keeps_own_limit, setup, teardown),
            cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
