/* migrate/common/cache_prune: a target's page caches unused for longer
 * than the age go, those used since stay, and opening a cache marks it
 * used (delta/pagecache.h); a name a session reserved keeps its caches,
 * and the sweep waits for the names lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/pagecache.h"
#include "migrate/common/cache_prune.h"
#include "support/fixture.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define DAY 86400

/* Sets rel's (under root) times to now - age. */
static void age(const char *root, const char *rel, time_t now, time_t age_s)
{
        struct timespec ts[2] = {{now - age_s, 0}, {now - age_s, 0}};
        cleanup_free char *path = em_path_join(root, rel);

        assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static bool exists(const char *root, const char *rel)
{
        cleanup_free char *path = em_path_join(root, rel);

        return em_path_exists(path);
}

/* A cache as a session leaves it, all of it last changed age_s ago. */
static void cache(const char *root, const char *rel, time_t now, time_t age_s)
{
        char f[256];

        snprintf(f, sizeof(f), "%s/pages.bin", rel);
        em_test_put(root, f, "p");
        snprintf(f, sizeof(f), "%s/volumes/db/kept", rel);
        em_test_put(root, f, "v");
        snprintf(f, sizeof(f), "%s/volumes", rel);
        age(root, f, now, age_s);
        snprintf(f, sizeof(f), "%s/pages.bin", rel);
        age(root, f, now, age_s);
        age(root, rel, now, age_s);
}

static void test_prune(void **state)
{
        char *root = em_test_tmpdir("cacheprune");
        time_t now = time(NULL);
        em_error_t err = NULL;
        size_t n = 9;

        (void)state;
        assert_int_equal(em_pagecache_prune(root, DAY, now, &n, &err), 0); /* none yet */
        assert_int_equal(n, 0);
        cache(root, "pagecache/web/sha256-a", now, 2 * DAY);
        cache(root, "pagecache/web/sha256-b", now, 3600);
        cache(root, "pagecache/db/sha256-a", now, 2 * DAY);
        /* Old, but a volume copy in it changed an hour ago. */
        cache(root, "pagecache/mq/sha256-a", now, 2 * DAY);
        age(root, "pagecache/mq/sha256-a/volumes", now, 3600);
        assert_int_equal(em_pagecache_prune(root, DAY, now, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_false(exists(root, "pagecache/web/sha256-a"));
        assert_true(exists(root, "pagecache/web/sha256-b/pages.bin"));
        assert_false(exists(root, "pagecache/db")); /* its last cache went */
        assert_true(exists(root, "pagecache/mq/sha256-a/volumes/db/kept"));
        em_test_rm(root);
}

/* A session's open marks the cache used: an old one it opens stays. */
static void test_open_marks_used(void **state)
{
        char *root = em_test_tmpdir("cacheprune");
        cleanup_free char *dir = em_path_join(root, "pagecache/web/sha256-a");
        time_t now = time(NULL);
        em_error_t err = NULL;
        em_pagecache_t *pc = NULL;
        size_t n = 0;

        (void)state;
        cache(root, "pagecache/web/sha256-a", now, 2 * DAY);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        em_pagecache_free(&pc);
        age(root, "pagecache/web/sha256-a", now, 2 * DAY); /* not the dir's time */
        assert_int_equal(em_pagecache_prune(root, DAY, now, &n, &err), 0);
        assert_int_equal(n, 0);
        assert_true(exists(root, "pagecache/web/sha256-a/pages.bin"));
        em_test_rm(root);
}

/* An old cache of a name that a session reserved (containers/<name>,
 * made before it opens the cache at its plan) stays: the source may have
 * its manifest already. One of a free name goes, and so does what a
 * sweep that died left aside. */
static void test_reserved_name_kept(void **state)
{
        char *root = em_test_tmpdir("cacheprune");
        cleanup_free char *reserved = em_path_join(root, "containers/web");
        time_t now = time(NULL);
        em_error_t err = NULL;
        size_t n = 0;

        (void)state;
        cache(root, "pagecache/web/sha256-a", now, 2 * DAY);
        cache(root, "pagecache/db/sha256-a", now, 2 * DAY);
        em_test_put(root, "pagecache/.expired-x1Yz9Q/0/pages.bin", "p");
        assert_int_equal(em_mkdir_p(reserved, 0700, &err), 0);
        assert_int_equal(em_pagecache_prune(root, DAY, now, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_true(exists(root, "pagecache/web/sha256-a/volumes/db/kept"));
        assert_false(exists(root, "pagecache/db"));
        assert_false(exists(root, "pagecache/.expired-x1Yz9Q"));
        em_test_rm(root);
}

/* While a session reserves a name (the names lock held shared), the
 * sweep expires nothing; once it is released, the sweep goes on. */
static void test_sweep_waits_for_names_lock(void **state)
{
        char *root = em_test_tmpdir("cacheprune");
        time_t now = time(NULL);
        em_error_t err = NULL;
        size_t n = 9;
        int fd = -1;

        (void)state;
        cache(root, "pagecache/web/sha256-a", now, 2 * DAY);
        assert_int_equal(em_pagecache_names_lock(root, &fd, &err), 0);
        assert_int_equal(em_pagecache_prune(root, DAY, now, &n, &err), 0);
        assert_int_equal(n, 0);
        assert_true(exists(root, "pagecache/web/sha256-a/pages.bin"));
        close(fd);
        assert_int_equal(em_pagecache_prune(root, DAY, now, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_false(exists(root, "pagecache/web"));
        em_test_rm(root);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_prune),
            cmocka_unit_test(test_open_marks_used),
            cmocka_unit_test(test_reserved_name_kept),
            cmocka_unit_test(test_sweep_waits_for_names_lock),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
