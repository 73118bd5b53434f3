#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/security.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define CAP_SYS_ADMIN 21
#define CAP_NET_ADMIN 12
#define CAP_CHOWN     0

static json_t *spec_of(const char *text)
{
        json_t *j = NULL;
        em_error_t err = NULL;
        assert_int_equal(em_json_parse(text, strlen(text), "spec", &j, &err), 0);
        return j;
}

static void test_cap_names(void **state)
{
        (void)state;
        assert_int_equal(em_cap_parse("CAP_SYS_ADMIN"), CAP_SYS_ADMIN);
        assert_int_equal(em_cap_parse("net_admin"), CAP_NET_ADMIN);
        assert_int_equal(em_cap_parse("CAP_NOPE"), -1);
        assert_string_equal(em_cap_name(40), "CAP_CHECKPOINT_RESTORE");
        assert_null(em_cap_name(41));
        /* Docker's default set: 14 capabilities, never SYS_ADMIN. */
        assert_int_equal(__builtin_popcountll(em_caps_default()), 14);
        assert_false(em_caps_default() & (1ull << CAP_SYS_ADMIN));
}

static void test_default_profile(void **state)
{
        struct em_security_policy pol;
        struct em_security_profile p;
        em_error_t err = NULL;
        (void)state;

        em_security_policy_default(&pol);
        cleanup_json json_t *spec = spec_of("{\"userns\":{\"base\":1073741824,\"size\":65536}}");
        assert_int_equal(em_security_profile_resolve(&pol, spec, &p, &err), 0);
        assert_true(p.seccomp);
        assert_true(p.no_new_privs);
        assert_int_equal(p.caps, em_caps_default());
        assert_int_equal(p.ids.base, 1u << 30);
        assert_int_equal(p.ids.size, 65536);
        assert_int_equal(p.pids_limit, EM_PIDS_LIMIT_DEFAULT);
        assert_int_equal(p.nofile, EM_NOFILE_DEFAULT);
        /* Without a range the profile cannot be resolved. */
        cleanup_json json_t *bare = spec_of("{}");
        assert_int_equal(em_security_profile_resolve(&pol, bare, &p, &err), -1);
        em_error_free(&err);
        /* A range that is not a slot of this host's pool is refused. */
        cleanup_json json_t *off = spec_of("{\"userns\":{\"base\":0,\"size\":4294967295}}");
        assert_int_equal(em_security_profile_resolve(&pol, off, &p, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        em_error_free(&err);
        /* With userns off (measurement), no range is needed or used. */
        pol.userns = false;
        assert_int_equal(em_security_profile_resolve(&pol, off, &p, &err), 0);
        assert_int_equal(p.ids.size, 0);
}

static void test_loosening_needs_policy(void **state)
{
        struct em_security_policy pol;
        struct em_security_profile p;
        em_error_t err = NULL;
        (void)state;

        em_security_policy_default(&pol);
        pol.userns = false;
        cleanup_json json_t *add = spec_of("{\"security\":{\"cap_add\":[\"NET_ADMIN\"]}}");
        assert_int_equal(em_security_profile_resolve(&pol, add, &p, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        assert_non_null(strstr(em_error_msg(err), "allow_cap_add"));
        em_error_free(&err);
        pol.cap_add_allowed = 1ull << CAP_NET_ADMIN;
        assert_int_equal(em_security_profile_resolve(&pol, add, &p, &err), 0);
        assert_true(p.caps & (1ull << CAP_NET_ADMIN));

        cleanup_json json_t *unc = spec_of("{\"security\":{\"seccomp\":\"unconfined\"}}");
        assert_int_equal(em_security_profile_resolve(&pol, unc, &p, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "allow_seccomp_unconfined"));
        em_error_free(&err);
        pol.seccomp_unconfined_allowed = true;
        assert_int_equal(em_security_profile_resolve(&pol, unc, &p, &err), 0);
        assert_false(p.seccomp);

        /* Dropping is always allowed; limits within the maxima. */
        cleanup_json json_t *drop =
            spec_of("{\"security\":{\"cap_drop\":[\"ALL\"],\"pids_limit\":50,\"nofile\":4096}}");
        assert_int_equal(em_security_profile_resolve(&pol, drop, &p, &err), 0);
        assert_int_equal(p.caps, 0);
        assert_int_equal(p.pids_limit, 50);
        assert_int_equal(p.nofile, 4096);
        cleanup_json json_t *big = spec_of("{\"security\":{\"pids_limit\":1000000}}");
        assert_int_equal(em_security_profile_resolve(&pol, big, &p, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        em_error_free(&err);
}

static void test_incoming_profile(void **state)
{
        char dir[] = "/tmp/test_security.XXXXXX";
        struct em_config cfg = {0};
        struct em_security_profile p;
        em_error_t err = NULL;
        (void)state;

        assert_non_null(mkdtemp(dir));
        cfg.root = dir;
        /* The source's range is taken as it is (the restore moves it). */
        cleanup_json json_t *src = spec_of("{\"userns\":{\"base\":100000,\"size\":65536}}");
        assert_int_equal(em_security_profile_incoming(&cfg, src, &p, &err), 0);
        assert_int_equal(p.ids.base, 100000);
        assert_true(p.seccomp);
        /* ... but not one of another size, or none. */
        cleanup_json json_t *wide = spec_of("{\"userns\":{\"base\":0,\"size\":4294967295}}");
        assert_int_equal(em_security_profile_incoming(&cfg, wide, &p, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        em_error_free(&err);
        cleanup_json json_t *none = spec_of("{}");
        assert_int_equal(em_security_profile_incoming(&cfg, none, &p, &err), -1);
        em_error_free(&err);
        /* The target's policy, not the source's, judges the options. */
        cleanup_json json_t *add = spec_of("{\"userns\":{\"base\":100000,\"size\":65536},"
                                           "\"security\":{\"cap_add\":[\"SYS_ADMIN\"]}}");
        assert_int_equal(em_security_profile_incoming(&cfg, add, &p, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        em_error_free(&err);
        em_rm_rf(dir, &err);
}

static void test_opts_shape(void **state)
{
        em_error_t err = NULL;
        (void)state;
        const char *bad[] = {"{\"cap_add\":\"SYS_ADMIN\"}",
                             "{\"cap_add\":[\"CAP_BOGUS\"]}",
                             "{\"seccomp\":\"off\"}",
                             "{\"pids_limit\":0}",
                             "{\"nofile\":-5}",
                             "{\"privileged\":true}"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cleanup_json json_t *o = spec_of(bad[i]);
                assert_int_equal(em_security_opts_check(o, &err), -1);
                em_error_free(&err);
        }
        assert_int_equal(em_security_opts_check(NULL, &err), 0);
}

static void test_policy_file(void **state)
{
        char dir[] = "/tmp/test_security.XXXXXX";
        struct em_config cfg = {0};
        struct em_security_policy pol;
        em_error_t err = NULL;
        (void)state;

        assert_non_null(mkdtemp(dir));
        cfg.root = dir;
        assert_int_equal(em_security_policy_load(&cfg, &pol, &err), 0);
        assert_true(pol.userns);
        assert_int_equal(pol.pool.first, EM_ID_FIRST_DEFAULT);
        cleanup_free char *path = em_path_join(dir, EM_SECURITY_POLICY_FILE);
        FILE *f = fopen(path, "w");
        fputs("{\"userns\": false, \"id_first\": 200000, \"id_slots\": 10,"
              " \"allow_cap_add\": [\"CAP_NET_ADMIN\"], \"nofile_max\": 2048}",
              f);
        fclose(f);
        assert_int_equal(em_security_policy_load(&cfg, &pol, &err), 0);
        assert_false(pol.userns);
        assert_int_equal(pol.pool.first, 200000);
        assert_int_equal(pol.pool.slots, 10);
        assert_int_equal(pol.cap_add_allowed, 1ull << CAP_NET_ADMIN);
        assert_int_equal(pol.nofile_max, 2048);
        f = fopen(path, "w");
        fputs("{\"id_first\": 4294000000}", f);
        fclose(f);
        assert_int_equal(em_security_policy_load(&cfg, &pol, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "security.json"));
        em_error_free(&err);
        em_rm_rf(dir, &err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cap_names),
            cmocka_unit_test(test_default_profile),
            cmocka_unit_test(test_loosening_needs_policy),
            cmocka_unit_test(test_opts_shape),
            cmocka_unit_test(test_incoming_profile),
            cmocka_unit_test(test_policy_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
