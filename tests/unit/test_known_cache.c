#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/source/known_cache.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static char root[64];

static int setup(void **state)
{
        (void)state;
        strcpy(root, "/tmp/em-known-XXXXXX");
        return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
        em_error_t err = NULL;
        (void)state;
        return em_rm_rf(root, &err);
}

static void fill(em_hashset_t *s, int n, em_phash_t *h)
{
        uint8_t page[4096];
        em_error_t err = NULL;

        for (int i = 0; i < n; i++) {
                memset(page, i + 1, sizeof(page));
                em_page_hash(page, &h[i]);
                assert_int_equal(em_hashset_add(s, &h[i], &err), 1);
        }
}

static const char D[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void test_round_trip_per_target(void **state)
{
        cleanup_hashset em_hashset_t *known = em_hashset_new(), *back = em_hashset_new(),
                                     *other = em_hashset_new();
        cleanup_json json_t *cs = json_pack("{s:i, s:s}", "cache_pages", 12, "cache_digest", D);
        cleanup_json json_t *off = json_pack("{s:i, s:s}", "cache_pages", 13, "cache_digest", D);
        cleanup_json json_t *prefix = NULL, *none = NULL;
        em_phash_t h[12];
        em_error_t err = NULL;

        (void)state;
        fill(known, 12, h);
        /* A count that is not the target's: positions would be wrong. */
        assert_int_equal(em_known_cache_save(root, "web", "10.0.0.2:7878", off, known, NULL, &err),
                         -1);
        em_error_free(&err);
        assert_int_equal(em_known_cache_save(root, "web", "10.0.0.2:7878", cs, known, NULL, &err),
                         0);
        assert_int_equal(
            em_known_cache_load(root, "web", "10.0.0.2:7878", back, &prefix, NULL, &err), 0);
        assert_non_null(prefix);
        assert_int_equal(em_json_int(prefix, "pages", -1), 12);
        assert_string_equal(em_json_str(prefix, "digest"), D);
        assert_int_equal(em_hashset_count(back), 12);
        for (int i = 0; i < 12; i++)
                assert_true(em_hashset_has(back, &h[i]));
        /* Another target, or another container: no record. */
        assert_int_equal(
            em_known_cache_load(root, "web", "10.0.0.3:7878", other, &none, NULL, &err), 0);
        assert_null(none);
        assert_int_equal(em_known_cache_load(root, "db", "10.0.0.2:7878", other, &none, NULL, &err),
                         0);
        assert_null(none);
        assert_int_equal(em_hashset_count(other), 0);
        /* Dropped with the container. */
        em_known_cache_drop(root, "web");
        json_decref(prefix);
        prefix = NULL;
        assert_int_equal(
            em_known_cache_load(root, "web", "10.0.0.2:7878", other, &prefix, NULL, &err), 0);
        assert_null(prefix);
}

static void test_bad_state_and_corrupt_record(void **state)
{
        cleanup_hashset em_hashset_t *known = em_hashset_new(), *back = em_hashset_new();
        cleanup_json json_t *bad = json_pack("{s:i}", "cache_pages", 3);
        cleanup_json json_t *cs = json_pack("{s:i, s:s}", "cache_pages", 3, "cache_digest", D);
        json_t *prefix = NULL;
        em_phash_t h[3];
        em_error_t err = NULL;
        char path[512];

        (void)state;
        fill(known, 3, h);
        /* A target that reports no cache state: nothing is recorded. */
        assert_int_equal(em_known_cache_save(root, "api", "t:1", bad, known, NULL, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_known_cache_save(root, "api", "t:1", cs, known, NULL, &err), 0);
        /* Cut the record short: load refuses it instead of trusting half. */
        cleanup_free char *dir = NULL;
        assert_true(asprintf(&dir, "%s/known/api", root) > 0);
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
                if (e->d_name[0] != '.')
                        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(truncate(path, st.st_size - 10), 0); /* inside the hashes */
        assert_int_equal(em_known_cache_load(root, "api", "t:1", back, &prefix, NULL, &err), -1);
        assert_null(prefix);
        assert_int_equal(em_hashset_count(back), 0);
        em_error_free(&err);
}

/* What prepare saw of the writes travels with the record; a record
 * without it (an older edgemig's, or saved without) says "not known". */
static void test_dirt_rate(void **state)
{
        cleanup_hashset em_hashset_t *known = em_hashset_new(), *back = em_hashset_new(),
                                     *again = em_hashset_new();
        cleanup_json json_t *cs = json_pack("{s:i, s:s}", "cache_pages", 4, "cache_digest", D);
        cleanup_json json_t *prefix = NULL, *prefix2 = NULL;
        const struct em_known_dirt in = {.left_wire_bps = 5120.5, .at_ms = 1796655694812};
        struct em_known_dirt out = {0};
        em_phash_t h[4];
        em_error_t err = NULL;

        (void)state;
        fill(known, 4, h);
        assert_int_equal(em_known_cache_save(root, "cam", "t:2", cs, known, &in, &err), 0);
        assert_int_equal(em_known_cache_load(root, "cam", "t:2", back, &prefix, &out, &err), 0);
        assert_non_null(prefix);
        assert_true(out.left_wire_bps == in.left_wire_bps);
        assert_true(out.at_ms == in.at_ms);
        assert_int_equal(em_hashset_count(back), 4);
        assert_int_equal(em_known_cache_save(root, "cam", "t:2", cs, known, NULL, &err), 0);
        assert_int_equal(em_known_cache_load(root, "cam", "t:2", again, &prefix2, &out, &err), 0);
        assert_non_null(prefix2);
        assert_true(out.left_wire_bps < 0);
        em_known_cache_drop(root, "cam");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip_per_target),
            cmocka_unit_test(test_bad_state_and_corrupt_record),
            cmocka_unit_test(test_dirt_rate),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
