/* Supplementary groups of an image's user from a fixture /etc/passwd and
 * /etc/group, and their place in config.json. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/bundle.h"
#include "container/usergroups.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "support/fixture.h"
#include "util/json.h"

static char *rootfs;

static int setup(void **state)
{
        (void)state;
        rootfs = em_test_tmpdir("usergroups");
        em_test_put(rootfs, "etc/passwd",
                    "root:x:0:0:root:/root:/bin/sh\n"
                    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                    "redis:x:101:103::/var/lib/redis:/usr/sbin/nologin\n"
                    "broken\n");
        /* ssl-cert and video list redis; redisx is another user; redis's own
         * group lists redis too (the primary gid is not repeated); a line
         * with a non-numeric gid is ignored; adm is listed twice. */
        em_test_put(rootfs, "etc/group",
                    "root:x:0:\n"
                    "adm:x:4:redis\n"
                    "www-data:x:33:\n"
                    "video:x:44:www-data,redis\n"
                    "ssl-cert:x:108:redis\n"
                    "other:x:109:redisx,xredis\n"
                    "redis:x:103:redis\n"
                    "bad:x:abc:redis\n"
                    "adm2:x:4:redis\n"
                    "short:x\n");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(rootfs);
        return 0;
}

static size_t lookup(const char *user, gid_t primary, gid_t *gids)
{
        cleanup_error em_error_t err = NULL;
        size_t n = 99;

        if (em_usergroups_lookup(rootfs, user, primary, gids, &n, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        return n;
}

static void test_member_groups_by_name(void **state)
{
        gid_t g[EM_USERGROUPS_MAX];

        assert_int_equal(lookup("redis", 103, g), 3);
        assert_int_equal(g[0], 4);
        assert_int_equal(g[1], 44);
        assert_int_equal(g[2], 108);
        assert_int_equal(lookup("www-data", 33, g), 1);
        assert_int_equal(g[0], 44);
}

/* A numeric uid is named by its passwd entry, as runc does. */
static void test_numeric_uid(void **state)
{
        gid_t g[EM_USERGROUPS_MAX];

        assert_int_equal(lookup("101", 103, g), 3);
        assert_int_equal(g[2], 108);
        /* With primary gid 0 (bundle.c's rule for a bare uid), redis's own
         * group is a supplementary one. */
        assert_int_equal(lookup("101", 0, g), 4);
        assert_int_equal(g[3], 103);
        assert_int_equal(lookup("4242", 0, g), 0);
        assert_int_equal(lookup("", 0, g), 0);
        assert_int_equal(lookup(NULL, 0, g), 0);
}

/* user:group names the group: no supplementary groups (runc's rule). */
static void test_explicit_group(void **state)
{
        gid_t g[EM_USERGROUPS_MAX];

        assert_int_equal(lookup("redis:redis", 103, g), 0);
        assert_int_equal(lookup("101:0", 0, g), 0);
}

static void test_missing_files(void **state)
{
        gid_t g[EM_USERGROUPS_MAX];
        char p[128];

        snprintf(p, sizeof(p), "%s/etc/group", rootfs);
        assert_int_equal(unlink(p), 0);
        assert_int_equal(lookup("redis", 103, g), 0);
        snprintf(p, sizeof(p), "%s/etc/passwd", rootfs);
        assert_int_equal(unlink(p), 0);
        assert_int_equal(lookup("101", 0, g), 0);
}

/* /etc/group as a symlink to an absolute path resolves inside the rootfs,
 * never to the host's file of that name. */
static void test_symlink_stays_in_rootfs(void **state)
{
        gid_t g[EM_USERGROUPS_MAX];
        char p[128], host[128];

        snprintf(host, sizeof(host), "%s.host-group", rootfs);
        FILE *f = fopen(host, "w");
        assert_non_null(f);
        fputs("evil:x:0:redis\n", f);
        fclose(f);
        snprintf(p, sizeof(p), "%s/etc/group", rootfs);
        assert_int_equal(unlink(p), 0);
        assert_int_equal(symlink(host, p), 0);
        assert_int_equal(lookup("redis", 103, g), 0);
        em_test_put(rootfs, "g2", "ssl-cert:x:108:redis\n");
        assert_int_equal(unlink(p), 0);
        assert_int_equal(symlink("/g2", p), 0);
        assert_int_equal(lookup("redis", 103, g), 1);
        assert_int_equal(g[0], 108);
        unlink(host);
}

static void test_too_many_groups(void **state)
{
        size_t cap = (EM_USERGROUPS_MAX + 2) * 32;
        cleanup_free char *text = calloc(1, cap);
        cleanup_error em_error_t err = NULL;
        gid_t g[EM_USERGROUPS_MAX];
        size_t n, o = 0;

        for (int i = 0; i <= EM_USERGROUPS_MAX; i++)
                o += (size_t)snprintf(text + o, cap - o, "g%d:x:%d:redis\n", i, 1000 + i);
        em_test_put(rootfs, "etc/group", text);
        assert_int_equal(em_usergroups_lookup(rootfs, "redis", 103, g, &n, &err), -1);
        assert_int_equal(em_error_status(err), E2BIG);
}

/* Through em_bundle_config: process.user.additionalGids, absent for a user
 * without supplementary groups. */
static void test_config_json(void **state)
{
        struct em_bundle_params bp = {
            .rootfs = rootfs, .netns = "/n", .cgroup = "/c", .hostname = "h"};
        const char *text = "{\"name\":\"w\",\"image\":\"i\",\"diff_ids\":[],\"ip\":\"10.89.0.2\","
                           "\"image_config\":{\"Cmd\":[\"x\"],\"User\":\"redis\"}}";
        cleanup_json json_t *spec = NULL, *cfg = NULL, *cfg2 = NULL;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_json_parse(text, strlen(text), "spec", &spec, &err), 0);
        assert_int_equal(em_bundle_config(spec, &bp, &cfg, &err), 0);
        json_t *u = json_object_get(json_object_get(cfg, "process"), "user");
        assert_int_equal(json_integer_value(json_object_get(u, "uid")), 101);
        assert_int_equal(json_integer_value(json_object_get(u, "gid")), 103);
        json_t *a = json_object_get(u, "additionalGids");
        assert_int_equal(json_array_size(a), 3);
        assert_int_equal(json_integer_value(json_array_get(a, 2)), 108);
        json_object_set_new(json_object_get(spec, "image_config"), "User", json_string("root"));
        assert_int_equal(em_bundle_config(spec, &bp, &cfg2, &err), 0);
        u = json_object_get(json_object_get(cfg2, "process"), "user");
        assert_null(json_object_get(u, "additionalGids"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_member_groups_by_name, setup, teardown),
            cmocka_unit_test_setup_teardown(test_numeric_uid, setup, teardown),
            cmocka_unit_test_setup_teardown(test_explicit_group, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
            cmocka_unit_test_setup_teardown(test_symlink_stays_in_rootfs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_too_many_groups, setup, teardown),
            cmocka_unit_test_setup_teardown(test_config_json, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
