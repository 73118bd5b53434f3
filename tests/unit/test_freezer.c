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

/* A fake cgroup file system: the freezer's files are plain files here, so
 * a state reads back as written unless a test says otherwise. */
static char fs[64];

static int setup(void **state)
{
        (void)state;
        strcpy(fs, "/tmp/em-freezer-XXXXXX");
        return mkdtemp(fs) ? 0 : -1;
}

static int teardown(void **state)
{
        em_error_t err = NULL;
        (void)state;
        return em_rm_rf(fs, &err);
}

static void put(const char *rel, const char *text)
{
        char path[256];
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/%s", fs, rel);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        assert_int_equal(em_mkdir_p(path, 0755, &err), 0);
        *slash = '/';
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
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
        put("freezer/edgemig-x-web/freezer.state", "THAWED\n");
        assert_int_equal(em_freezer_freeze(fs, "/edgemig-x-web", 100, &err), 0);
        assert_content("freezer/edgemig-x-web/freezer.state", "FROZEN");
        assert_int_equal(em_freezer_thaw(fs, "/edgemig-x-web", &err), 0);
        assert_content("freezer/edgemig-x-web/freezer.state", "THAWED");
}

static void test_v2_waits_for_frozen_event(void **state)
{
        em_error_t err = NULL;

        (void)state;
        put("edgemig-x-web/cgroup.freeze", "0\n");
        put("edgemig-x-web/cgroup.events", "populated 1\nfrozen 1\n");
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
        put("edgemig-x-web/cgroup.freeze", "0\n");
        put("edgemig-x-web/cgroup.events", "populated 1\nfrozen 0\n");
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
        put("freezer/other/freezer.state", "THAWED\n");
        assert_int_equal(em_freezer_freeze(fs, "/edgemig-gone", 100, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        /* Thawing what is gone (runc removed it) is not an error. */
        assert_int_equal(em_freezer_thaw(fs, "/edgemig-gone", &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_v1_freeze_and_thaw, setup, teardown),
            cmocka_unit_test_setup_teardown(test_v2_waits_for_frozen_event, setup, teardown),
            cmocka_unit_test_setup_teardown(test_timeout_thaws_again, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_cgroup, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
