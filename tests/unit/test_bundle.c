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
#include "container/container.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "support/fixture.h"
#include "util/json.h"

static char *rootfs;

static int setup(void **state)
{
        (void)state;
        rootfs = em_test_tmpdir("bundle");
        em_test_put(rootfs, "etc/passwd",
                    "root:x:0:0:root:/root:/bin/sh\n"
                    "redis:x:101:103::/var/lib/redis:/usr/sbin/nologin\n");
        em_test_put(rootfs, "etc/group", "root:x:0:\nredis:x:103:\nwheel:x:10:\n");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(rootfs);
        return 0;
}

static json_t *spec_with(const char *image_config, const char *extra)
{
        char buf[2048];
        json_t *j = NULL;
        em_error_t err = NULL;

        snprintf(buf, sizeof(buf),
                 "{\"name\":\"web\",\"image\":\"busybox\",\"diff_ids\":[],\"ip\":\"10.66.0.2\","
                 "\"image_config\":%s%s}",
                 image_config, extra);
        assert_int_equal(em_json_parse(buf, strlen(buf), "spec", &j, &err), 0);
        return j;
}

static json_t *build(json_t *spec)
{
        struct em_bundle_params bp = {.rootfs = rootfs,
                                      .netns = "/var/lib/edgemig/netns/web",
                                      .cgroup = "/edgemig-0123456789-web",
                                      .hostname = "web"};
        json_t *cfg = NULL;
        em_error_t err = NULL;

        int rc = em_bundle_config(spec, &bp, &cfg, &err);
        if (rc < 0)
                fail_msg("%s", em_error_msg(err));
        return cfg;
}

/* With a user namespace: mappings, runc-made netns wired by the hook,
 * the profile's capabilities, seccomp and limits. */
static void test_user_namespace_profile(void **state)
{
        struct em_security_profile prof = {.caps = em_caps_default() & ~(1ull << 13),
                                           .seccomp = true,
                                           .no_new_privs = true,
                                           .ids = {1u << 30, 65536},
                                           .pids_limit = 77,
                                           .nofile = 2048};
        json_t *hook = json_pack("{s:s, s:[s]}", "path", "/usr/bin/edgemig", "args", "edgemig");
        struct em_bundle_params bp = {.rootfs = rootfs,
                                      .netns = "/var/lib/edgemig/netns/web",
                                      .netns_hook = hook,
                                      .profile = &prof,
                                      .cgroup = "/edgemig-0123456789-web",
                                      .hostname = "web"};
        json_t *spec = spec_with("{\"Cmd\":[\"/bin/sh\"]}", ""), *cfg = NULL;
        em_error_t err = NULL;
        (void)state;

        assert_int_equal(em_bundle_config(spec, &bp, &cfg, &err), 0);
        json_t *lnx = json_object_get(cfg, "linux"), *ns = json_object_get(lnx, "namespaces");
        bool user = false, net_path = false;
        size_t i;
        json_t *v;
        json_array_foreach(ns, i, v)
        {
                user |= strcmp(json_string_value(json_object_get(v, "type")), "user") == 0;
                net_path |= json_object_get(v, "path") != NULL;
        }
        assert_true(user);
        assert_false(net_path);
        json_t *m = json_array_get(json_object_get(lnx, "uidMappings"), 0);
        assert_int_equal(json_integer_value(json_object_get(m, "hostID")), 1 << 30);
        assert_int_equal(json_integer_value(json_object_get(m, "size")), 65536);
        assert_non_null(json_object_get(lnx, "gidMappings"));
        assert_true(json_equal(
            json_array_get(json_object_get(json_object_get(cfg, "hooks"), "prestart"), 0), hook));
        assert_string_equal(em_json_str(json_object_get(lnx, "seccomp"), "defaultAction"),
                            "SCMP_ACT_ERRNO");
        assert_int_equal(
            em_json_int(json_object_get(json_object_get(lnx, "resources"), "pids"), "limit", 0),
            77);
        json_t *proc = json_object_get(cfg, "process");
        json_t *caps = json_object_get(proc, "capabilities");
        assert_null(json_object_get(caps, "ambient"));
        assert_int_equal(json_array_size(json_object_get(caps, "bounding")), 13);
        assert_int_equal(
            em_json_int(json_array_get(json_object_get(proc, "rlimits"), 0), "hard", 0), 2048);
        /* No hook, no user namespace. */
        json_decref(cfg);
        bp.netns_hook = NULL;
        assert_int_equal(em_bundle_config(spec, &bp, &cfg, &err), -1);
        em_error_free(&err);
        json_decref(spec);
        json_decref(hook);
}

/* A pod member joins its infra's user, network, IPC and UTS namespaces by
 * path, keeps its own pid and mount namespaces and the pod's mappings, and
 * gets no network hook (the infra's namespace is wired already). */
static void test_pod_member_joins(void **state)
{
        struct em_security_profile prof = {
            .caps = em_caps_default(), .seccomp = true, .ids = {1u << 30, 65536}};
        json_t *hook = json_pack("{s:s}", "path", "/usr/bin/edgemig");
        struct em_bundle_params bp = {.rootfs = rootfs,
                                      .netns = "/var/lib/edgemig/netns/db",
                                      .netns_hook = hook,
                                      .profile = &prof,
                                      .cgroup = "/edgemig-0123456789-db",
                                      .hostname = "web",
                                      .join_pid = 4321};
        json_t *spec = spec_with("{\"Cmd\":[\"/bin/sh\"]}", ""), *cfg = NULL;
        em_error_t err = NULL;
        const char *want[][2] = {{"pid", NULL},
                                 {"mount", NULL},
                                 {"ipc", "/proc/4321/ns/ipc"},
                                 {"uts", "/proc/4321/ns/uts"},
                                 {"network", "/proc/4321/ns/net"},
                                 {"user", "/proc/4321/ns/user"}};
        (void)state;

        if (em_bundle_config(spec, &bp, &cfg, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        json_t *lnx = json_object_get(cfg, "linux"), *ns = json_object_get(lnx, "namespaces");
        assert_int_equal(json_array_size(ns), 6);
        for (size_t i = 0; i < 6; i++) {
                json_t *v = json_array_get(ns, i);
                assert_string_equal(em_json_str(v, "type"), want[i][0]);
                if (want[i][1] == NULL)
                        assert_null(json_object_get(v, "path"));
                else
                        assert_string_equal(em_json_str(v, "path"), want[i][1]);
        }
        json_t *m = json_array_get(json_object_get(lnx, "uidMappings"), 0);
        assert_int_equal(json_integer_value(json_object_get(m, "hostID")), 1 << 30);
        assert_null(json_object_get(cfg, "hooks"));
        assert_string_equal(em_json_str(cfg, "hostname"), "web");
        json_decref(cfg);
        /* Without a user namespace there is nothing to join. */
        prof.ids = (struct em_idrange){0, 0};
        assert_int_equal(em_bundle_config(spec, &bp, &cfg, &err), -1);
        em_error_free(&err);
        json_decref(spec);
        json_decref(hook);
}

static const char *arr_str(json_t *a, size_t i)
{
        return json_string_value(json_array_get(a, i));
}

static void test_args_env_cwd(void **state)
{
        cleanup_json json_t *spec =
            spec_with("{\"Entrypoint\":[\"/entry\"],\"Cmd\":[\"serve\",\"--port\",\"80\"],"
                      "\"Env\":[\"PATH=/bin\",\"MODE=image\",\"KEEP=1\"],\"WorkingDir\":\"/srv\"}",
                      ",\"env\":[\"MODE=user\"],\"cmd\":null");
        cleanup_json json_t *cfg = build(spec);
        json_t *proc = json_object_get(cfg, "process");
        json_t *args = json_object_get(proc, "args");
        json_t *env = json_object_get(proc, "env");

        assert_int_equal(json_array_size(args), 4);
        assert_string_equal(arr_str(args, 0), "/entry");
        assert_string_equal(arr_str(args, 3), "80");
        assert_string_equal(em_json_str(proc, "cwd"), "/srv");
        /* The user's MODE wins, the image's other variables stay, once each. */
        int mode = 0, path = 0, keep = 0;
        for (size_t i = 0; i < json_array_size(env); i++) {
                const char *e = arr_str(env, i);
                mode += strncmp(e, "MODE=", 5) == 0;
                path += strncmp(e, "PATH=", 5) == 0;
                keep += strcmp(e, "KEEP=1") == 0;
                if (strncmp(e, "MODE=", 5) == 0)
                        assert_string_equal(e, "MODE=user");
        }
        assert_int_equal(mode, 1);
        assert_int_equal(path, 1);
        assert_int_equal(keep, 1);
        assert_false(json_is_true(json_object_get(proc, "terminal")));
}

static void test_cmd_override_keeps_entrypoint(void **state)
{
        cleanup_json json_t *spec =
            spec_with("{\"Entrypoint\":[\"/entry\"],\"Cmd\":[\"a\"]}", ",\"cmd\":[\"b\",\"c\"]");
        cleanup_json json_t *cfg = build(spec);
        json_t *args = json_object_get(json_object_get(cfg, "process"), "args");

        assert_int_equal(json_array_size(args), 3);
        assert_string_equal(arr_str(args, 0), "/entry");
        assert_string_equal(arr_str(args, 1), "b");
        /* No PATH in the image: a default one is supplied; cwd defaults to /. */
        assert_string_equal(em_json_str(json_object_get(cfg, "process"), "cwd"), "/");
}

static void test_no_command_fails(void **state)
{
        cleanup_json json_t *spec = spec_with("{}", "");
        struct em_bundle_params bp = {
            .rootfs = rootfs, .netns = "/n", .cgroup = "/c", .hostname = "h"};
        json_t *cfg = NULL;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_bundle_config(spec, &bp, &cfg, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        assert_null(cfg);
}

static void test_namespaces_mounts_resources(void **state)
{
        cleanup_json json_t *spec =
            spec_with("{\"Cmd\":[\"x\"]}", ",\"memory\":268435456,\"cpus\":1.5");
        cleanup_json json_t *cfg = build(spec);
        json_t *linux_ = json_object_get(cfg, "linux");
        json_t *ns = json_object_get(linux_, "namespaces"), *v, *m;
        size_t i;
        int net = 0, pid = 0, user = 0;

        json_array_foreach(ns, i, v)
        {
                const char *t = em_json_str(v, "type");
                if (strcmp(t, "network") == 0) {
                        net++;
                        assert_string_equal(em_json_str(v, "path"), "/var/lib/edgemig/netns/web");
                }
                pid += strcmp(t, "pid") == 0;
                user += strcmp(t, "user") == 0;
        }
        assert_int_equal(net, 1);
        assert_int_equal(pid, 1);
        assert_int_equal(user, 0);
        assert_string_equal(em_json_str(linux_, "cgroupsPath"), "/edgemig-0123456789-web");
        json_t *res = json_object_get(linux_, "resources");
        assert_int_equal(em_json_int(json_object_get(res, "memory"), "limit", 0), 268435456);
        assert_int_equal(em_json_int(json_object_get(res, "cpu"), "quota", 0), 150000);
        assert_int_equal(em_json_int(json_object_get(res, "cpu"), "period", 0), 100000);
        /* No host mounts: nothing is bind-mounted in. */
        json_array_foreach(json_object_get(cfg, "mounts"), i, m)
        {
                assert_string_not_equal(em_json_str(m, "type"), "bind");
                json_t *o;
                size_t k;
                json_array_foreach(json_object_get(m, "options"), k, o)
                    assert_false(strstr(json_string_value(o), "bind"));
        }
        assert_string_equal(em_json_str(json_object_get(cfg, "root"), "path"), rootfs);
        assert_string_equal(em_json_str(cfg, "hostname"), "web");
}

static void test_no_limits_without_options(void **state)
{
        cleanup_json json_t *spec = spec_with("{\"Cmd\":[\"x\"]}", "");
        cleanup_json json_t *cfg = build(spec);
        json_t *res = json_object_get(json_object_get(cfg, "linux"), "resources");

        assert_null(json_object_get(res, "memory"));
        assert_null(json_object_get(res, "cpu"));
}

/* runc hands org.criu.config to CRIU for every dump and restore. */
static void test_criu_config_annotation(void **state)
{
        cleanup_json json_t *spec = spec_with("{\"Cmd\":[\"x\"]}", "");
        struct em_bundle_params bp = {.rootfs = rootfs,
                                      .netns = "/n",
                                      .cgroup = "/c",
                                      .hostname = "web",
                                      .criu_config = "/b/criu.conf"};
        cleanup_json json_t *cfg = NULL, *plain = build(spec);
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_bundle_config(spec, &bp, &cfg, &err), 0);
        assert_string_equal(em_json_str(json_object_get(cfg, "annotations"), "org.criu.config"),
                            "/b/criu.conf");
        assert_null(json_object_get(plain, "annotations"));
}

static void check_user(const char *user, int uid, int gid)
{
        uid_t u;
        gid_t g;
        cleanup_error em_error_t err = NULL;

        if (em_bundle_resolve_user(rootfs, user, &u, &g, &err) < 0)
                fail_msg("%s: %s", user, em_error_msg(err));
        assert_int_equal(u, uid);
        assert_int_equal(g, gid);
}

static void test_users(void **state)
{
        check_user("", 0, 0);
        check_user("redis", 101, 103);
        check_user("redis:wheel", 101, 10);
        check_user("1000", 1000, 0);
        check_user("1000:1001", 1000, 1001);
        check_user("redis:7", 101, 7);

        cleanup_error em_error_t err = NULL;
        uid_t u;
        gid_t g;
        assert_int_equal(em_bundle_resolve_user(rootfs, "nobody-here", &u, &g, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
}

static void test_user_lookup_stays_in_rootfs(void **state)
{
        char link[128];
        cleanup_error em_error_t err = NULL;
        uid_t u;
        gid_t g;

        /* A hostile image whose /etc/group points at the host's. */
        snprintf(link, sizeof(link), "%s/etc/group", rootfs);
        unlink(link);
        assert_int_equal(symlink("/etc/group", link), 0);
        /* Resolved inside the rootfs: /etc/group -> <rootfs>/etc/group (a loop
         * onto itself) rather than the host's file, so "root" is not found. */
        assert_int_equal(em_bundle_resolve_user(rootfs, "redis:root", &u, &g, &err), -1);
}

static void test_names(void **state)
{
        assert_true(em_container_name_valid("web-1.a_b"));
        assert_false(em_container_name_valid(""));
        assert_false(em_container_name_valid("-x"));
        assert_false(em_container_name_valid("a/b"));
        assert_false(em_container_name_valid(".."));
        char long_name[80];
        memset(long_name, 'a', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        assert_false(em_container_name_valid(long_name));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_user_namespace_profile),
            cmocka_unit_test(test_pod_member_joins),
            cmocka_unit_test(test_args_env_cwd),
            cmocka_unit_test(test_cmd_override_keeps_entrypoint),
            cmocka_unit_test(test_no_command_fails),
            cmocka_unit_test(test_namespaces_mounts_resources),
            cmocka_unit_test(test_no_limits_without_options),
            cmocka_unit_test(test_criu_config_annotation),
            cmocka_unit_test(test_users),
            cmocka_unit_test(test_user_lookup_stays_in_rootfs),
            cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
