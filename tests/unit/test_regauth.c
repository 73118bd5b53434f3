#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/regauth.h"

/* base64("alice:s3cret:with:colons") */
#define ALICE "YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"

static int parse(const char *json, const char *host, struct em_reg_cred *c, em_error_t *err)
{
        return em_regauth_parse(json, strlen(json), host, c, err);
}

static void test_podman_and_docker_keys(void **state)
{
        struct em_reg_cred c = {0};
        em_error_t err = NULL;
        const char *podman = "{\"auths\":{\"reg.example:5443\":{\"auth\":\"" ALICE "\"}}}";
        const char *docker = "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"" ALICE
                             "\"},\"http://other:5000/some/path\":{\"auth\":\"YjpjCg==\"}}}";

        (void)state;
        assert_int_equal(parse(podman, "reg.example:5443", &c, &err), 1);
        assert_string_equal(c.user, "alice");
        assert_string_equal(c.pass, "s3cret:with:colons");
        em_reg_cred_clear(&c);
        assert_null(c.user);
        /* Another port is another registry. */
        assert_int_equal(parse(podman, "reg.example", &c, &err), 0);
        assert_int_equal(parse(podman, "reg.example:5", &c, &err), 0);
        assert_int_equal(parse(docker, "docker.io", &c, &err), 1);
        assert_string_equal(c.user, "alice");
        em_reg_cred_clear(&c);
        /* "b:c\n": a newline in a password would be a header injection. */
        assert_int_equal(parse(docker, "other:5000", &c, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "USER:PASSWORD"));
        em_error_free(&err);
        assert_int_equal(parse("{}", "x", &c, &err), 0);
        assert_int_equal(parse("{\"credHelpers\":{}}", "x", &c, &err), 0);
}

static void test_hostile(void **state)
{
        static const char *const bad[] = {
            "{\"auths\":[]}",
            "{\"auths\":{\"h\":\"YTpi\"}}",
            "{\"auths\":{\"h\":{\"auth\":7}}}",
            "{\"auths\":{\"h\":{\"identitytoken\":\"x\"}}}",
            "{\"auths\":{\"h\":{\"auth\":\"\"}}}",
            "{\"auths\":{\"h\":{\"auth\":\"!!!!\"}}}",
            "{\"auths\":{\"h\":{\"auth\":\"YTpi=\"}}}",    /* bad length */
            "{\"auths\":{\"h\":{\"auth\":\"YWJj\"}}}",     /* "abc": no colon */
            "{\"auths\":{\"h\":{\"auth\":\"OmI=\"}}}",     /* ":b": no user */
            "{\"auths\":{\"h\":{\"auth\":\"YQBiOmM=\"}}}", /* "a\0b:c" */
            "{\"auths\":{\"h\":{\"auth\":\"YTpiDWM=\"}}}", /* "a:b\rc" */
            "[1,2]trailing",
            "{\"auths\":{\"h\":{\"auth\":\"YTpi\"}",
        };
        struct em_reg_cred c = {0};

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                em_error_t err = NULL;
                int rc = parse(bad[i], "h", &c, &err);
                if (rc != -1)
                        fail_msg("accepted %s (%d)", bad[i], rc);
                assert_null(c.user);
                em_error_free(&err);
        }
        /* Not a JSON object at the top: no auths, anonymous. */
        assert_int_equal(parse("[1,2]", "h", &c, NULL), 0);
}

static void test_find_file(void **state)
{
        char path[] = "/tmp/test_regauth.XXXXXX";
        int fd = mkstemp(path);
        struct em_reg_cred c = {0};
        em_error_t err = NULL;
        const char *j = "{\"auths\":{\"127.0.0.1:5443\":{\"auth\":\"" ALICE "\"}}}";

        (void)state;
        assert_true(fd >= 0);
        assert_int_equal(write(fd, j, strlen(j)), (ssize_t)strlen(j));
        close(fd);
        assert_int_equal(em_regauth_find(path, "127.0.0.1:5443", &c, &err), 1);
        assert_string_equal(c.user, "alice");
        em_reg_cred_clear(&c);
        unlink(path);
        assert_int_equal(em_regauth_find(path, "h", &c, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_podman_and_docker_keys),
            cmocka_unit_test(test_hostile),
            cmocka_unit_test(test_find_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
