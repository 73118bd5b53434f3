#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/lazy_set.h"
#include "util/cleanup.h"

#define P 4096ull

static em_lazy_set_t *build(void)
{
        em_lazy_set_t *s = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_lazy_set_new(&s, &err), 0);
        /* Out of order on purpose; the two of pid 1 at 0x10000 touch. */
        assert_int_equal(em_lazy_set_add(s, 2, 0x1000, 1, &err), 0);
        assert_int_equal(em_lazy_set_add(s, 1, 0x12000, 2, &err), 0);
        assert_int_equal(em_lazy_set_add(s, 1, 0x10000, 2, &err), 0);
        assert_int_equal(em_lazy_set_add(s, 1, 0x20000, 4, &err), 0);
        assert_int_equal(em_lazy_set_seal(s, &err), 0);
        return s;
}

static void test_sorted_merged_numbered(void **state)
{
        cleanup_lazy_set em_lazy_set_t *s = build();
        uint64_t idx = 99;

        (void)state;
        assert_int_equal(s->n, 3);
        assert_int_equal(s->pages, 9);
        assert_int_equal(s->r[0].pid, 1);
        assert_int_equal(s->r[0].vaddr, 0x10000);
        assert_int_equal(s->r[0].nr_pages, 4);
        assert_int_equal(s->r[1].first, 4);
        assert_int_equal(s->r[2].pid, 2);
        assert_int_equal(s->r[2].first, 8);
        assert_true(em_lazy_set_find(s, 1, 0x11000, 3, &idx));
        assert_int_equal(idx, 1);
        assert_true(em_lazy_set_find(s, 1, 0x23000, 1, &idx));
        assert_int_equal(idx, 7);
        assert_true(em_lazy_set_find(s, 2, 0x1000, 1, &idx));
        assert_int_equal(idx, 8);
        assert_ptr_equal(em_lazy_set_range(s, 0), &s->r[0]);
        assert_ptr_equal(em_lazy_set_range(s, 3), &s->r[0]);
        assert_ptr_equal(em_lazy_set_range(s, 4), &s->r[1]);
        assert_ptr_equal(em_lazy_set_range(s, 8), &s->r[2]);
}

/* Addresses a peer names: only whole runs inside one range match. */
static void test_find_hostile(void **state)
{
        cleanup_lazy_set em_lazy_set_t *s = build();
        uint64_t idx;

        (void)state;
        assert_false(em_lazy_set_find(s, 3, 0x1000, 1, &idx)); /* no such task */
        assert_false(em_lazy_set_find(s, 0, 0x10000, 1, &idx));
        assert_false(em_lazy_set_find(s, 1, 0xf000, 1, &idx));  /* just below */
        assert_false(em_lazy_set_find(s, 1, 0x14000, 1, &idx)); /* just past */
        assert_false(em_lazy_set_find(s, 1, 0x13000, 2, &idx)); /* straddles the end */
        assert_false(em_lazy_set_find(s, 1, 0x10000, 0, &idx));
        assert_false(em_lazy_set_find(s, 1, 0x10800, 1, &idx)); /* unaligned */
        assert_false(em_lazy_set_find(s, 1, 0x10000, UINT64_MAX, &idx));
        assert_false(em_lazy_set_find(s, 1, UINT64_MAX & ~0xfffull, 1, &idx));
        assert_false(em_lazy_set_find(s, 2, 0x0, 1, &idx));
        assert_false(em_lazy_set_find(s, UINT32_MAX, 0x1000, 1, &idx));
}

/* A dump with no lazy page at all (everything known, or a tiny task). */
static void test_empty(void **state)
{
        cleanup_lazy_set em_lazy_set_t *s = NULL;
        em_error_t err = NULL;
        uint64_t idx;

        (void)state;
        assert_int_equal(em_lazy_set_new(&s, &err), 0);
        assert_int_equal(em_lazy_set_seal(s, &err), 0);
        assert_int_equal(s->pages, 0);
        assert_false(em_lazy_set_find(s, 1, 0x1000, 1, &idx));
        assert_null(em_lazy_set_range(s, 0));
}

static void test_bad_ranges(void **state)
{
        cleanup_lazy_set em_lazy_set_t *s = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_lazy_set_new(&s, &err), 0);
        assert_int_equal(em_lazy_set_add(s, 1, 0x1000, 0, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_lazy_set_add(s, 1, 0x1001, 1, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_lazy_set_add(s, 1, UINT64_MAX & ~0xfffull, 2, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_lazy_set_add(s, 1, 0, EM_LAZY_SET_MAX_PAGES + 1, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_lazy_set_add(s, 1, 0x10000, 4, &err), 0);
        assert_int_equal(em_lazy_set_add(s, 1, 0x12000, 4, &err), 0); /* overlaps */
        assert_int_equal(em_lazy_set_seal(s, &err), -1);
        em_error_free(&err);
}

/* edgemig-known-<pid>.bin marks the pages the target holds; entries
 * outside the set are ignored, and a damaged list is an error. */
static void test_mark_known(void **state)
{
        cleanup_lazy_set em_lazy_set_t *s = build();
        char dir[] = "/tmp/test_lazy_set.XXXXXX", path[96];
        uint8_t st[9] = {0}, buf[16 + 3 * 24 + 71] = "EMKNOWN1";
        uint64_t n = 3, v[3] = {0x11000, 0x23000, 0x90000};
        em_error_t err = NULL;

        (void)state;
        assert_non_null(mkdtemp(dir));
        memcpy(buf + 8, &n, 8);
        for (int i = 0; i < 3; i++)
                memcpy(buf + 16 + i * 24, &v[i], 8);
        memcpy(buf + 16 + 3 * 24, "sha256:", 7);
        memset(buf + 16 + 3 * 24 + 7, 'a', 64);
        snprintf(path, sizeof(path), "%s/edgemig-known-1.bin", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, sizeof(buf), 1, f), 1);
        fclose(f);
        assert_int_equal(em_lazy_set_mark_known(s, dir, st, 2, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(st[1], 2);
        assert_int_equal(st[7], 2);
        assert_int_equal(st[0] + st[2] + st[8], 0);
        f = fopen(path, "w");
        assert_int_equal(fwrite(buf, sizeof(buf) - 1, 1, f), 1); /* truncated */
        fclose(f);
        assert_int_equal(em_lazy_set_mark_known(s, dir, st, 2, &n, &err), -1);
        em_error_free(&err);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sorted_merged_numbered),
            cmocka_unit_test(test_find_hostile),
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_bad_ranges),
            cmocka_unit_test(test_mark_known),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
