#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/kdat.h"
#include "util/fsutil.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* run: a directory on a disk file system (like /run on the edge VMs);
 * cache: one on a tmpfs (/dev/shm), like edgemig's own. */
static char run[64], cache[64];

static bool tmpfs(const char *dir)
{
        struct statfs st;
        return statfs(dir, &st) == 0 && st.f_type == TMPFS_MAGIC;
}

static int setup(void **state)
{
        (void)state;
        strcpy(run, "/var/tmp/em-kdat-XXXXXX");
        strcpy(cache, "/dev/shm/em-kdat-XXXXXX");
        return mkdtemp(run) && mkdtemp(cache) ? 0 : -1;
}

static int teardown(void **state)
{
        em_error_t err = NULL;
        (void)state;
        em_rm_rf(run, &err);
        em_rm_rf(cache, &err);
        em_error_free(&err);
        return 0;
}

static void put(const char *dir, const char *name, const char *text)
{
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_cold_without_link(void **state)
{
        const struct em_kdat_paths kp = {run, cache, "criu"};
        (void)state;
        if (tmpfs(run) || !tmpfs(cache))
                skip();
        put(cache, EM_KDAT_NAME, "kdat");
        assert_false(em_kdat_is_warm(&kp));
}

static void test_warm_once_linked(void **state)
{
        const struct em_kdat_paths kp = {run, cache, "criu"};
        em_error_t err = NULL;
        char link[128], got[128];
        (void)state;
        if (tmpfs(run) || !tmpfs(cache))
                skip();
        put(cache, EM_KDAT_NAME, "kdat");
        assert_int_equal(em_kdat_link(&kp, &err), 0);
        assert_true(em_kdat_is_warm(&kp));
        snprintf(link, sizeof(link), "%s/%s", run, EM_KDAT_NAME);
        ssize_t n = readlink(link, got, sizeof(got) - 1);
        assert_true(n > 0);
        got[n] = '\0';
        assert_non_null(strstr(got, cache));
        /* Linking again replaces the link (no EEXIST). */
        assert_int_equal(em_kdat_link(&kp, &err), 0);
        assert_true(em_kdat_is_warm(&kp));
}

/* A reboot: the tmpfs is gone, the link dangles. An empty file (CRIU's
 * half-written one) is no cache either. */
static void test_dangling_or_empty_is_cold(void **state)
{
        const struct em_kdat_paths kp = {run, cache, "criu"};
        char target[128];
        em_error_t err = NULL;
        (void)state;
        if (tmpfs(run) || !tmpfs(cache))
                skip();
        assert_int_equal(em_kdat_link(&kp, &err), 0);
        assert_false(em_kdat_is_warm(&kp));
        put(cache, EM_KDAT_NAME, "");
        assert_false(em_kdat_is_warm(&kp));
        snprintf(target, sizeof(target), "%s/%s", cache, EM_KDAT_NAME);
        unlink(target);
        assert_false(em_kdat_is_warm(&kp));
}

/* The cache must be on a tmpfs: a link to a disk file survives a reboot
 * into another kernel. */
static void test_cache_off_tmpfs_is_cold(void **state)
{
        const struct em_kdat_paths kp = {run, run, "criu"};
        em_error_t err = NULL;
        (void)state;
        if (tmpfs(run))
                skip();
        put(run, "x", "");
        assert_int_equal(em_kdat_link(&kp, &err), 0);
        assert_false(em_kdat_is_warm(&kp));
}

/* Where the run directory is a tmpfs, CRIU's own file is the cache and
 * nothing is linked. */
static void test_tmpfs_run_is_criu_own(void **state)
{
        const struct em_kdat_paths kp = {cache, "/nonexistent/edgemig-criu", "criu"};
        em_error_t err = NULL;
        (void)state;
        if (!tmpfs(cache))
                skip();
        assert_false(em_kdat_is_warm(&kp));
        assert_int_equal(em_kdat_warm_at(&kp, &err), 0);
        put(cache, EM_KDAT_NAME, "kdat");
        assert_true(em_kdat_is_warm(&kp));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_cold_without_link, setup, teardown),
            cmocka_unit_test_setup_teardown(test_warm_once_linked, setup, teardown),
            cmocka_unit_test_setup_teardown(test_dangling_or_empty_is_cold, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cache_off_tmpfs_is_cold, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tmpfs_run_is_criu_own, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
