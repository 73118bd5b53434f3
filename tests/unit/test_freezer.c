#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/freezer.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "support/fixture.h"

/* A fake cgroup file system: the freezer's files are plain files here, so
 * a state reads back as written unless a test says otherwise. */
static char *fs;

static int setup(void **state)
{
        (void)state;
        fs = em_test_tmpdir("freezer");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(fs);
        return 0;
}

static void assert_content(const char *rel, const char *prefix)
{
        char path[256];
        cleanup_free char *text = NULL;
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/%s", fs, rel);
        assert_int_equal(em_read_file(path, 4096, &text, NULL, &err), 0);
        assert_memory_equal(text, prefix, strlen(prefix));
}

static void test_v1_freeze_and_thaw(void **state)
{
        em_error_t err = NULL;

        (void)state;
        em_test_put(fs, "freezer/edgemig-x-web/freezer.state", "THAWED\n");
        assert_int_equal(em_freezer_freeze(fs, "/edgemig-x-web", 100, &err), 0);
        assert_content("freezer/edgemig-x-web/freezer.state", "FROZEN");
        assert_int_equal(em_freezer_thaw(fs, "/edgemig-x-web", &err), 0);
        assert_content("freezer/edgemig-x-web/freezer.state", "THAWED");
}

static void test_v2_waits_for_frozen_event(void **state)
{
        em_error_t err = NULL;

        (void)state;
        em_test_put(fs, "edgemig-x-web/cgroup.freeze", "0\n");
        em_test_put(fs, "edgemig-x-web/cgroup.events", "populated 1\nfrozen 1\n");
        assert_int_equal(em_freezer_freeze(fs, "/edgemig-x-web", 100, &err), 0);
        assert_content("edgemig-x-web/cgroup.freeze", "1");
        assert_int_equal(em_freezer_thaw(fs, "/edgemig-x-web", &err), 0);
        assert_content("edgemig-x-web/cgroup.freeze", "0");
}

/* Tasks that never freeze: the freezer gives up, thaws them, and says so. */
static void test_timeout_thaws_again(void **state)
{
        em_error_t err = NULL;
        int64_t t0 = em_mono_ms();

        (void)state;
        em_test_put(fs, "edgemig-x-web/cgroup.freeze", "0\n");
        em_test_put(fs, "edgemig-x-web/cgroup.events", "populated 1\nfrozen 0\n");
        assert_int_equal(em_freezer_freeze(fs, "/edgemig-x-web", 30, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        assert_non_null(strstr(em_error_msg(err), "/edgemig-x-web"));
        assert_true(em_mono_ms() - t0 >= 30);
        assert_content("edgemig-x-web/cgroup.freeze", "0");
        em_error_free(&err);
}

static void test_missing_cgroup(void **state)
{
        em_error_t err = NULL;

        (void)state;
        em_test_put(fs, "freezer/other/freezer.state", "THAWED\n");
        assert_int_equal(em_freezer_freeze(fs, "/edgemig-gone", 100, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        /* Thawing what is gone (runc removed it) is not an error. */
        assert_int_equal(em_freezer_thaw(fs, "/edgemig-gone", &err), 0);
}

/* Every process a freeze stops: the cgroup's own and those in cgroups
 * below it (an `edgemig exec`'d process is in the cgroup, not pid 1's
 * tree), v1 and v2; a cgroup that is gone is ENOENT; more than max is
 * E2BIG, never a list silently cut short. */
static void test_procs(void **state)
{
        em_error_t err = NULL;
        pid_t pids[8];
        size_t n = 9;

        (void)state;
        em_test_put(fs, "freezer/freezer.state", "THAWED\n"); /* v1: a freezer hierarchy */
        em_test_put(fs, "freezer/edgemig-x-web/cgroup.procs", "101\n202\n");
        em_test_put(fs, "freezer/edgemig-x-web/sub/cgroup.procs", "303\n");
        assert_int_equal(em_freezer_procs(fs, "/edgemig-x-web", pids, 8, &n, &err), 0);
        assert_int_equal(n, 3);
        assert_int_equal(pids[0] + pids[1] + pids[2], 606);
        assert_int_equal(em_freezer_procs(fs, "/edgemig-x-web", pids, 2, &n, &err), -1);
        assert_int_equal(em_error_status(err), E2BIG);
        em_error_free(&err);
        assert_int_equal(em_freezer_procs(fs, "/edgemig-x-gone", pids, 8, &n, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_int_equal(n, 0);
        em_error_free(&err);
}

/* More processes than the first guess (4096 was the old silent bound):
 * the list grows to hold every one of them. */
static void test_procs_all_grows(void **state)
{
        enum { MANY = 5000 };
        cleanup_free char *text = malloc(MANY * 8);
        cleanup_free pid_t *pids = NULL;
        em_error_t err = NULL;
        size_t n = 0, len = 0;
        long sum = 0;

        (void)state;
        assert_non_null(text);
        for (int i = 1; i <= MANY; i++)
                len += (size_t)sprintf(text + len, "%d\n", i);
        em_test_put(fs, "freezer/freezer.state", "THAWED\n");
        em_test_put(fs, "freezer/edgemig-x-big/cgroup.procs", text);
        em_test_put(fs, "freezer/edgemig-x-big/sub/cgroup.procs", "6000\n");
        assert_int_equal(em_freezer_procs_all(fs, "/edgemig-x-big", &pids, &n, &err), 0);
        assert_int_equal(n, MANY + 1);
        for (size_t i = 0; i < n; i++)
                sum += pids[i];
        assert_int_equal(sum, (long)MANY * (MANY + 1) / 2 + 6000);
        free(steal_pointer(&pids));
        assert_int_equal(em_freezer_procs_all(fs, "/edgemig-x-gone", &pids, &n, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_null(pids);
        em_error_free(&err);
}

/* A cgroup below the container's removed during the walk (here: listed
 * by its parent, its cgroup.procs gone) has no process to list: not an
 * error, the others are listed (an error refused the migration). */
static void test_procs_sub_gone(void **state)
{
        em_error_t err = NULL;
        pid_t pids[8];
        size_t n = 0;
        char path[256];

        (void)state;
        em_test_put(fs, "freezer/freezer.state", "THAWED\n");
        em_test_put(fs, "freezer/edgemig-x-web/cgroup.procs", "101\n");
        em_test_put(fs, "freezer/edgemig-x-web/gone/keep", "");
        snprintf(path, sizeof(path), "%s/freezer/edgemig-x-web/gone/keep", fs);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(em_freezer_procs(fs, "/edgemig-x-web", pids, 8, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(pids[0], 101);
}

static void test_procs_v2(void **state)
{
        em_error_t err = NULL;
        pid_t pids[8];
        size_t n = 0;

        (void)state;
        em_test_put(fs, "edgemig-x-web/cgroup.procs", "7\n");
        assert_int_equal(em_freezer_procs(fs, "/edgemig-x-web", pids, 8, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(pids[0], 7);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_v1_freeze_and_thaw, setup, teardown),
            cmocka_unit_test_setup_teardown(test_v2_waits_for_frozen_event, setup, teardown),
            cmocka_unit_test_setup_teardown(test_timeout_thaws_again, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_cgroup, setup, teardown),
            cmocka_unit_test_setup_teardown(test_procs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_procs_all_grows, setup, teardown),
            cmocka_unit_test_setup_teardown(test_procs_sub_gone, setup, teardown),
            cmocka_unit_test_setup_teardown(test_procs_v2, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
