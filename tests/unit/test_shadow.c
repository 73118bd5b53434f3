#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/shadow.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

static char dir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(dir, "/tmp/em-shadow-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        em_error_t err = NULL;
        (void)state;
        return em_rm_rf(dir, &err);
}

static void page_of(uint8_t *p, int seed)
{
        for (size_t i = 0; i < EM_PAGE_SIZE; i++)
                p[i] = (uint8_t)(seed * 31 + i * 7);
}

static off_t file_size(const char *name)
{
        char path[128];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return stat(path, &st) == 0 ? st.st_size : -1;
}

#define VA(i) (0x7f0000000000ull + (uint64_t)(i)*EM_PAGE_SIZE)

static void record(em_shadow_t *s, uint32_t vpid, int i, int seed, em_phash_t *h)
{
        uint8_t page[EM_PAGE_SIZE];
        em_error_t err = NULL;

        page_of(page, seed);
        em_page_hash(page, h);
        assert_int_equal(em_shadow_record(s, vpid, VA(i), h, page, &err), 0);
}

static void test_record_read_update(void **state)
{
        cleanup_shadow em_shadow_t *s = NULL;
        uint8_t page[EM_PAGE_SIZE], want[EM_PAGE_SIZE];
        em_phash_t h1, h2, got;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        assert_false(em_shadow_hash(s, 1, VA(0), &got));
        record(s, 1, 0, 10, &h1);
        record(s, 2, 0, 11, &h2); /* same vaddr, another process */
        assert_int_equal(em_shadow_count(s), 2);
        assert_true(em_shadow_hash(s, 1, VA(0), &got));
        assert_memory_equal(got.b, h1.b, 16);
        assert_int_equal(em_shadow_read(s, 1, VA(0), &h1, page, &err), 0);
        page_of(want, 10);
        assert_memory_equal(page, want, EM_PAGE_SIZE);
        /* Unchanged content writes nothing; changed content reuses the slot. */
        record(s, 1, 0, 10, &h1);
        assert_int_equal(file_size("pages.bin"), 2 * EM_PAGE_SIZE);
        record(s, 1, 0, 12, &h1);
        assert_int_equal(file_size("pages.bin"), 2 * EM_PAGE_SIZE);
        assert_int_equal(em_shadow_count(s), 2);
        assert_int_equal(em_shadow_read(s, 1, VA(0), &h1, page, &err), 0);
        page_of(want, 12);
        assert_memory_equal(page, want, EM_PAGE_SIZE);
        /* Asking for content under a hash it no longer has fails. */
        assert_int_equal(em_shadow_read(s, 2, VA(0), &h1, page, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
}

static void test_save_reopen_and_lock(void **state)
{
        cleanup_shadow em_shadow_t *s = NULL, *again = NULL;
        em_phash_t h[3000], got;
        uint8_t page[EM_PAGE_SIZE];
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        for (int i = 0; i < 3000; i++) /* past the first table growth */
                record(s, 7, i, i, &h[i]);
        /* One process at a time. */
        assert_int_equal(em_shadow_open(dir, &again, &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        em_error_free(&err);
        assert_int_equal(em_shadow_save(s, &err), 0);
        em_shadow_free(&s);
        assert_int_equal(em_shadow_open(dir, &again, &err), 0);
        assert_int_equal(em_shadow_count(again), 3000);
        for (int i = 0; i < 3000; i += 499) {
                assert_true(em_shadow_hash(again, 7, VA(i), &got));
                assert_memory_equal(got.b, h[i].b, 16);
                assert_int_equal(em_shadow_read(again, 7, VA(i), &h[i], page, &err), 0);
        }
}

/* An address no scan of a session saw is gone from the process: saving
 * drops it and compacts the file; a session that saw nothing keeps all. */
static void test_save_compacts_unseen(void **state)
{
        cleanup_shadow em_shadow_t *s = NULL;
        uint8_t page[EM_PAGE_SIZE], want[EM_PAGE_SIZE];
        em_phash_t h[3], got;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        for (int i = 0; i < 3; i++)
                record(s, 1, i, i, &h[i]);
        assert_int_equal(em_shadow_save(s, &err), 0);
        em_shadow_free(&s);
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        assert_int_equal(em_shadow_save(s, &err), 0); /* saw nothing: keeps all */
        em_shadow_free(&s);
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        assert_int_equal(em_shadow_count(s), 3);
        record(s, 1, 2, 2, &h[2]); /* unchanged, seen */
        assert_int_equal(em_shadow_save(s, &err), 0);
        assert_int_equal(em_shadow_count(s), 1);
        assert_int_equal(file_size("pages.bin"), EM_PAGE_SIZE);
        em_shadow_free(&s);
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        assert_int_equal(em_shadow_count(s), 1);
        assert_false(em_shadow_hash(s, 1, VA(0), &got));
        assert_int_equal(em_shadow_read(s, 1, VA(2), &h[2], page, &err), 0);
        page_of(want, 2);
        assert_memory_equal(page, want, EM_PAGE_SIZE);
}

/* A damaged slot is caught on read; a damaged index is dropped whole. */
static void test_damage(void **state)
{
        cleanup_shadow em_shadow_t *s = NULL;
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h, got;
        char path[128];
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        record(s, 1, 5, 5, &h);
        assert_int_equal(em_shadow_save(s, &err), 0);
        snprintf(path, sizeof(path), "%s/pages.bin", dir);
        cleanup_close int fd = open(path, O_WRONLY);
        assert_int_equal(pwrite(fd, "X", 1, 100), 1);
        assert_int_equal(em_shadow_read(s, 1, VA(5), &h, page, &err), -1);
        assert_int_equal(em_error_status(err), EILSEQ);
        em_error_free(&err);
        em_shadow_free(&s);

        snprintf(path, sizeof(path), "%s/index.bin", dir);
        assert_int_equal(truncate(path, 30), 0);
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        assert_int_equal(em_shadow_count(s), 0);
        assert_false(em_shadow_hash(s, 1, VA(5), &got));
        assert_int_equal(file_size("pages.bin"), 0);
        assert_false(em_path_exists(path));
}

/* A full disk (here: a file size limit) disables the shadow, it does not
 * fail the migration: the pages then travel whole. */
static void test_write_failure_disables(void **state)
{
        cleanup_shadow em_shadow_t *s = NULL;
        struct rlimit old, lim = {2 * EM_PAGE_SIZE, 0};
        em_phash_t h, got;
        char path[128];
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_shadow_open(dir, &s, &err), 0);
        record(s, 1, 0, 1, &h);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim.rlim_max = old.rlim_max;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        record(s, 1, 1, 2, &h);
        record(s, 1, 2, 3, &h); /* beyond the limit: disables, no error */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_false(em_shadow_usable(s));
        assert_false(em_shadow_hash(s, 1, VA(0), &got));
        assert_int_equal(em_shadow_save(s, &err), 0);
        snprintf(path, sizeof(path), "%s/index.bin", dir);
        assert_false(em_path_exists(path));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_record_read_update, setup, teardown),
            cmocka_unit_test_setup_teardown(test_save_reopen_and_lock, setup, teardown),
            cmocka_unit_test_setup_teardown(test_save_compacts_unseen, setup, teardown),
            cmocka_unit_test_setup_teardown(test_damage, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_failure_disables, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
