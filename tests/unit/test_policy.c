#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "migrate/target/policy.h"
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
                         "cpus", 0.5, "ip", "10.66.0.10");
}

static json_t *layers(void)
{
        return json_pack("[s,s]", L1, L2);
}

static void expect(json_t *spec, int rc)
{
        json_t *ids = layers();
        em_error_t err = NULL;

        assert_int_equal(em_policy_check_spec(NULL, spec, "web", ids, &err), rc);
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

/* Service IPs only inside the configured CIDRs: the default range, or the
 * ranges given instead of it. */
static void test_service_cidr(void **state)
{
        struct em_policy p;
        json_t *ids = layers(), *s = good_spec();
        em_error_t err = NULL;
        char out[20];

        em_policy_init(&p);
        json_object_set_new(s, "ip", json_string("8.8.8.8"));
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), -1);
        assert_non_null(
            strstr(em_error_msg(err), "outside this host's service CIDRs (10.66.0.0/16)"));
        assert_non_null(strstr(em_error_msg(err), "--service-cidr"));
        em_error_free(&err);
        assert_int_equal(em_policy_add_cidr(&p, "8.8.8.0/24", &err), 0);
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), 0);
        json_object_set_new(s, "ip", json_string("10.66.0.10")); /* the default was replaced */
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_policy_add_cidr(&p, "10.66.0.0/16", &err), 0);
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), 0);
        em_cidr_format(&p.cidrs[1], out);
        assert_string_equal(out, "10.66.0.0/16");
        const char *bad[] = {"10.66.0.1/16", "10.66.0.0", "10.66.0.0/33",
                             "10.66.0.0/",   "x/8",       "10.66.0.0/8 "};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(em_policy_add_cidr(&p, bad[i], &err), -1);
                em_error_free(&err);
        }
        struct em_cidr all;
        assert_int_equal(em_cidr_parse("0.0.0.0/0", &all, &err), 0);
        assert_int_equal(all.mask, 0);
        json_decref(s);
        json_decref(ids);
}

/* Memory and cpus have upper bounds (by default this host's). */
static void test_resource_bounds(void **state)
{
        struct em_policy p;
        json_t *ids = layers(), *s = good_spec();
        em_error_t err = NULL;

        em_policy_init(&p);
        assert_true(p.max_memory > 0 && p.max_cpus >= 1);
        p.max_memory = 1 << 30;
        p.max_cpus = 2;
        json_object_set_new(s, "memory", json_integer(1 << 30));
        json_object_set_new(s, "cpus", json_real(2));
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), 0);
        json_object_set_new(s, "memory", json_integer((1 << 30) + 1));
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "--max-memory"));
        em_error_free(&err);
        json_object_set_new(s, "memory", json_integer(0)); /* no limit: allowed */
        json_object_set_new(s, "cpus", json_real(2.5));
        assert_int_equal(em_policy_check_spec(&p, s, "web", ids, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "--max-cpus"));
        em_error_free(&err);
        json_decref(s);
        json_decref(ids);
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

/* Volumes and tmpfs pass the shape check; a host path outside the
 * target's allow-list is refused later, by em_mounts_admit on the plan. */
static void test_mounts(void **state)
{
        json_t *s = good_spec();
        json_object_set_new(s, "mounts",
                            json_pack("[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:I}]", "type", "volume",
                                      "name", "db", "destination", "/var/lib/db", "ro", 0, "type",
                                      "tmpfs", "destination", "/run/x", "size", (json_int_t)4096));
        expect(s, 0);
        s = good_spec();
        json_object_set_new(s, "mounts",
                            json_pack("[{s:s, s:s, s:s, s:b}]", "type", "volume", "name", "../etc",
                                      "destination", "/x", "ro", 0));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "mounts",
                            json_pack("[{s:s, s:s, s:s, s:b}]", "type", "bind", "source",
                                      "/etc/../root", "destination", "/x", "ro", 0));
        expect(s, -1);
}

/* A restart policy travels with the container: one of the three names. */
static void test_restart_policy(void **state)
{
        const char *good[] = {"no", "on-failure", "always"};
        for (size_t i = 0; i < 3; i++) {
                json_t *s = good_spec();
                json_object_set_new(s, "restart", json_string(good[i]));
                expect(s, 0);
        }
        json_t *s = good_spec();
        json_object_set_new(s, "restart", json_string("unless-stopped; rm -rf /"));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "restart", json_integer(1));
        expect(s, -1);
}

static void test_userns_and_security_shape(void **state)
{
        json_t *s = good_spec();
        json_object_set_new(s, "userns", json_pack("{s:i, s:i}", "base", 1 << 30, "size", 65536));
        json_object_set_new(s, "security",
                            json_pack("{s:[s], s:s, s:i}", "cap_add", "NET_ADMIN", "seccomp",
                                      "unconfined", "pids_limit", 10));
        expect(s, 0); /* the target's own policy decides at prepare */
        s = good_spec();
        json_object_set_new(s, "userns", json_pack("{s:s, s:i}", "base", "0", "size", 65536));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "userns",
                            json_pack("{s:i, s:i, s:b}", "base", 0, "size", 65536, "host", 1));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "security", json_pack("{s:b}", "privileged", 1));
        expect(s, -1);
        s = good_spec();
        json_object_set_new(s, "security", json_pack("{s:[s]}", "cap_add", "CAP_EVERYTHING"));
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
            cmocka_unit_test(test_service_cidr),
            cmocka_unit_test(test_resource_bounds),
            cmocka_unit_test(test_unknown_field_refused),
            cmocka_unit_test(test_mounts),
            cmocka_unit_test(test_restart_policy),
            cmocka_unit_test(test_userns_and_security_shape),
            cmocka_unit_test(test_name_and_layers_must_match),
            cmocka_unit_test(test_bad_strings_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
