#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/features.h"
#include "checkpoint/features_probes.h"
#include "util/fsutil.h"

static void test_version_cmp(void **state)
{
        assert_true(em_version_cmp("4.2.1", "4.2") > 0);
        assert_true(em_version_cmp("4.2", "4.2.0") == 0);
        assert_true(em_version_cmp("4.2", "4.2") == 0);
        assert_true(em_version_cmp("4.1.1", "4.2") < 0);
        assert_true(em_version_cmp("3.17", "4.2") < 0);
        assert_true(em_version_cmp("4.10", "4.9") > 0);
        assert_true(em_version_cmp("10.0", "9.99") > 0);
        assert_true(em_version_cmp("6.18.44-fc-v669", "5.10") > 0);
        assert_true(em_version_cmp("5.10.0-rc1", "5.10") == 0);
        assert_true(em_version_cmp("1.1.5+ds1", "1.1.5") == 0);
        assert_true(em_version_cmp(NULL, "1") < 0);
        assert_true(em_version_cmp("1", NULL) > 0);
        assert_true(em_version_cmp(NULL, NULL) == 0);
}

static void test_version_from_output(void **state)
{
        char *v = em_version_from_output("Version: 4.2.1\nGitID: v4.2.1\n", "Version:");
        assert_string_equal(v, "4.2.1");
        free(v);
        v = em_version_from_output("runc version 1.1.5+ds1\ncommit: x\n", "runc version");
        assert_string_equal(v, "1.1.5");
        free(v);
        v = em_version_from_output("Version: 4.2.\n", "Version:");
        assert_string_equal(v, "4.2");
        free(v);
        assert_null(em_version_from_output("criu: no version here\n", "Version:"));
        assert_null(em_version_from_output("Version: unknown\n", "Version:"));
        assert_null(em_version_from_output(NULL, "Version:"));
}

static void touch(const char *path, const char *content)
{
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0755);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
}

static void test_cache_key_invalidation(void **state)
{
        char dir[] = "/tmp/em-feat-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char *criu = em_path_join(dir, "criu"), *other = em_path_join(dir, "criu2");
        touch(criu, "#!/bin/sh\n");
        struct em_config cfg = {.root = dir, .criu = criu, .runc = "runc"};
        json_t *k1 = em_features_cache_key(&cfg);
        assert_non_null(k1);
        assert_string_equal(json_string_value(json_object_get(json_object_get(k1, "criu"), "path")),
                            criu);
        json_t *cache = json_pack("{s:o, s:{}}", "key", k1, "features");
        json_t *k2 = em_features_cache_key(&cfg);
        assert_true(em_features_cache_matches(cache, k2)); /* nothing changed */
        json_decref(k2);
        /* The binary changes size (a new CRIU installed over it). */
        touch(criu, "#!/bin/sh\nexec true\n");
        k2 = em_features_cache_key(&cfg);
        assert_false(em_features_cache_matches(cache, k2));
        json_decref(k2);
        /* Same size, new mtime. */
        json_decref(cache);
        k1 = em_features_cache_key(&cfg);
        cache = json_pack("{s:o}", "key", k1);
        struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 0}};
        assert_int_equal(utimensat(AT_FDCWD, criu, ts, 0), 0);
        k2 = em_features_cache_key(&cfg);
        assert_false(em_features_cache_matches(cache, k2));
        json_decref(k2);
        /* Another path, or a CRIU that vanished. */
        touch(other, "#!/bin/sh\n");
        cfg.criu = other;
        k2 = em_features_cache_key(&cfg);
        assert_false(em_features_cache_matches(cache, k2));
        json_decref(k2);
        cfg.criu = "/nonexistent/criu";
        k2 = em_features_cache_key(&cfg);
        assert_non_null(k2);
        assert_true(json_is_null(json_object_get(json_object_get(k2, "criu"), "path")));
        assert_false(em_features_cache_matches(cache, k2));
        /* A cache without key, or no key at all, never matches. */
        json_t *nokey = json_object();
        assert_false(em_features_cache_matches(nokey, k2));
        assert_false(em_features_cache_matches(cache, NULL));
        json_decref(nokey);
        json_decref(k2);
        json_decref(cache);
        em_error_t err = NULL;
        assert_int_equal(em_rm_rf(dir, &err), 0);
        free(criu);
        free(other);
}

static const char *sample =
    "{\"probes\":["
    "{\"name\":\"criu\",\"status\":\"ok\",\"required\":true,\"value\":\"4.2.1\","
    "\"detail\":\"/opt/criu\",\"hint\":null},"
    "{\"name\":\"soft_dirty\",\"status\":\"missing\",\"required\":false,\"value\":\"no\","
    "\"hint\":\"use page deltas\"},"
    "{\"name\":\"pipe_max_size\",\"status\":\"warn\",\"required\":false,\"value\":\"1048576\"}"
    "]}";

static void test_json_round_trip_and_accessors(void **state)
{
        json_t *j = json_loads(sample, 0, NULL);
        struct em_features *f = NULL;
        em_error_t err = NULL;

        assert_non_null(j);
        assert_int_equal(em_features_from_json(j, &f, &err), 0);
        assert_int_equal(em_features_count(f), 3);
        assert_true(em_features_has(f, "criu"));
        assert_false(em_features_has(f, "soft_dirty"));
        assert_false(em_features_has(f, "pipe_max_size"));
        assert_false(em_features_has(f, "nonexistent"));
        assert_string_equal(em_features_get(f, "criu")->value, "4.2.1");
        assert_int_equal(em_features_get(f, "pipe_max_size")->status, EM_FEATURE_WARN);
        assert_true(em_features_can_migrate(f)); /* only criu is required, and ok */
        json_t *back = em_features_to_json(f);
        assert_true(json_is_true(json_object_get(back, "can_migrate")));
        struct em_features *f2 = NULL;
        assert_int_equal(em_features_from_json(back, &f2, &err), 0);
        json_t *back2 = em_features_to_json(f2);
        assert_true(json_equal(back, back2));
        json_decref(back);
        json_decref(back2);
        em_features_free(f2);
        em_features_free(f);
        json_decref(j);
}

static void test_required_missing_blocks_migration(void **state)
{
        const char *s = "{\"probes\":[{\"name\":\"dump_restore\",\"status\":\"missing\","
                        "\"required\":true},{\"name\":\"kernel\",\"status\":\"ok\","
                        "\"required\":true}]}";
        json_t *j = json_loads(s, 0, NULL);
        cleanup_features struct em_features *f = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_features_from_json(j, &f, &err), 0);
        assert_false(em_features_can_migrate(f));
        json_decref(j);
        /* Malformed input is rejected with a reason. */
        const char *bad[] = {"{}", "{\"probes\":[{\"status\":\"ok\"}]}",
                             "{\"probes\":[{\"name\":\"x\",\"status\":\"maybe\"}]}"};
        for (size_t i = 0; i < 3; i++) {
                struct em_features *g = NULL;
                j = json_loads(bad[i], 0, NULL);
                assert_int_equal(em_features_from_json(j, &g, &err), -1);
                assert_null(g);
                assert_non_null(strstr(em_error_msg(err), "feature set"));
                em_error_free(&err);
                json_decref(j);
        }
        /* An empty set cannot migrate. */
        j = json_loads("{\"probes\":[]}", 0, NULL);
        struct em_features *e = NULL;
        assert_int_equal(em_features_from_json(j, &e, &err), 0);
        assert_false(em_features_can_migrate(e));
        em_features_free(e);
        json_decref(j);
}

/* The warning's threshold, and the probe on this host agreeing with it
 * (the module parameter is the kernel's, so both outcomes are checked as
 * they come). */
static void test_conntrack_hash(void **state)
{
        assert_true(em_conntrack_hash_large(262144));
        assert_true(em_conntrack_hash_large(EM_CONNTRACK_HASH_WARN + 1));
        assert_false(em_conntrack_hash_large(EM_CONNTRACK_HASH_WARN));
        assert_false(em_conntrack_hash_large(16384));
        assert_false(em_conntrack_hash_large(0));

        struct em_feature f = {0};
        em_probe_conntrack_hash(NULL, &f);
        assert_non_null(f.value);
        if (strcmp(f.value, "not loaded") == 0) {
                assert_int_equal(f.status, EM_FEATURE_OK);
        } else {
                bool large = em_conntrack_hash_large(strtoul(f.value, NULL, 10));
                assert_int_equal(f.status, large ? EM_FEATURE_WARN : EM_FEATURE_OK);
                assert_true(large == (f.hint != NULL));
        }
        free(f.value);
        free(f.detail);
        free(f.hint);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_version_cmp),
            cmocka_unit_test(test_version_from_output),
            cmocka_unit_test(test_cache_key_invalidation),
            cmocka_unit_test(test_json_round_trip_and_accessors),
            cmocka_unit_test(test_required_missing_blocks_migration),
            cmocka_unit_test(test_conntrack_hash),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
