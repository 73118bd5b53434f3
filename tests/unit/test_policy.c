#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "migrate/policy.h"
#include "util/json.h"

#define L1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define L2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static json_t *good_spec(void)
{
        return json_pack("{s:s, s:s, s:s, s:[s,s], s:{s:[s], s:[s,s], s:s}, s:[s], s:n, s:i, s:f, "
                         "s:s}",
                         "name", "web", "image", "reg/edgemig/busybox:latest", "image_digest", L1,
                         "diff_ids", L1, L2, "image_config", "Env", "PATH=/bin", "Cmd", "/bin/sh",
                         "/app/counter.sh", "WorkingDir", "/", "env", "A=1", "cmd", "memory", 0,
                         "cpus", 0.5, "ip", "10.88.0.10");
}

static json_t *layers(void)
{
        return json_pack("[s,s]", L1, L2);
}

static void expect(json_t *spec, int rc)
{
        json_t *ids = layers();
        em_error_t err = NULL;

        assert_int_equal(em_policy_check_spec(spec, "web", ids, &err), rc);
        if (rc < 0)
                assert_non_null(err);
        em_error_free(&err);
        json_decref(ids);
        json_decref(spec);
}

static void test_good_spec_passes(void **state)
{
        expect(good_spec(), 0);
}

static void test_ip_injection_refused(void **state)
{
        const char *bad[] = {"10.0.0.1 dev lo",
                             "10.0.0.1\nroute flush",
                             "127.0.0.1",
                             "0.0.0.0",
                             "169.254.1.1",
                             "224.0.0.1",
                             "::1",
                             "10.0.0.1/8"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *s = good_spec();
                json_object_set_new(s, "ip", json_string(bad[i]));
                expect(s, -1);
        }
}

static void test_unknown_field_refused(void **state)
{
        json_t *s = good_spec();
        json_object_set_new(s, "privileged", json_true());
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "mounts", json_pack("[{s:s}]", "source", "/"));
        expect(s, -1);
}

static void test_name_and_layers_must_match(void **state)
{
        json_t *s = good_spec();
        json_object_set_new(s, "name", json_string("other"));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "diff_ids", json_pack("[s]", L1));
        expect(s, -1);
}

static void test_bad_strings_refused(void **state)
{
        json_t *s = good_spec();
        json_object_set_new(s, "env", json_pack("[s]", "NOEQUALS"));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "cmd", json_pack("[i]", 5));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(json_object_get(s, "image_config"), "WorkingDir",
                            json_string("relative"));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "memory", json_integer(-1));
        expect(s, -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good_spec_passes),
            cmocka_unit_test(test_ip_injection_refused),
            cmocka_unit_test(test_unknown_field_refused),
            cmocka_unit_test(test_name_and_layers_must_match),
            cmocka_unit_test(test_bad_strings_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
