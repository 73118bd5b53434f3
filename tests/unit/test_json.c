#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/fsutil.h"
#include "util/json.h"

static void test_parse_ok_and_getters(void **state)
{
        const char *s = "{\"name\":\"web1\",\"n\":42,\"s\":\"x\"}";
        json_t *j = NULL;
        em_error_t err = NULL;
        assert_int_equal(em_json_parse(s, strlen(s), "test", &j, &err), 0);
        assert_string_equal(em_json_str(j, "name"), "web1");
        assert_null(em_json_str(j, "n")); /* mistyped */
        assert_null(em_json_str(j, "absent"));
        assert_int_equal(em_json_int(j, "n", -1), 42);
        assert_int_equal(em_json_int(j, "s", -1), -1);
        assert_int_equal(em_json_int(j, "absent", 7), 7);
        json_decref(j);
}

static void test_parse_errors(void **state)
{
        json_t *j = NULL;
        em_error_t err = NULL;
        const char *bad = "{\"a\":1,\n\"b\":}";
        assert_int_equal(em_json_parse(bad, strlen(bad), "manifest", &j, &err), -1);
        assert_null(j);
        assert_non_null(strstr(em_error_msg(err), "parsing manifest"));
        assert_non_null(strstr(em_error_msg(err), "line 2"));
        em_error_free(&err);
        const char *dup = "{\"a\":1,\"a\":2}";
        assert_int_equal(em_json_parse(dup, strlen(dup), "dup", &j, &err), -1);
        em_error_free(&err);
        /* Length is honoured: trailing garbage beyond len is ignored. */
        const char *withtail = "[1]garbage";
        assert_int_equal(em_json_parse(withtail, 3, "t", &j, &err), 0);
        assert_int_equal(json_array_size(j), 1);
        json_decref(j);
}

static void test_write_and_load_file(void **state)
{
        char dir[] = "/tmp/em-json-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char *path = em_path_join(dir, "x.json");
        json_t *j = json_pack("{s:s, s:[i,i]}", "k", "v\"\n", "arr", 1, 2);
        em_error_t err = NULL;
        assert_int_equal(em_json_write_file(path, j, &err), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        json_t *back = NULL;
        assert_int_equal(em_json_load_file(path, 1 << 20, &back, &err), 0);
        assert_true(json_equal(j, back));
        json_decref(back);
        /* Size limit. */
        assert_int_equal(em_json_load_file(path, 4, &back, &err), -1);
        assert_int_equal(em_error_status(err), EFBIG);
        em_error_free(&err);
        json_decref(j);
        assert_int_equal(em_rm_rf(dir, &err), 0);
        free(path);
}

static void test_cleanup_json(void **state)
{
        json_t *keep = json_object();
        {
                cleanup_json json_t *ref = json_incref(keep);
                assert_int_equal(keep->refcount, 2);
        }
        assert_int_equal(keep->refcount, 1);
        json_decref(keep);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_ok_and_getters),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_write_and_load_file),
            cmocka_unit_test(test_cleanup_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
