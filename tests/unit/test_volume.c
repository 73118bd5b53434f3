/* Volumes: -v and --tmpfs parsing, the checks an incoming spec's mounts go
 * through, the bind allow-list, and volume rm/prune against users. */
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

#include "container/volume.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static void test_from_args(void **state)
{
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *m = NULL;
        const char *vols[] = {"db:/var/lib/db", "/srv/x:/x:ro", NULL};
        const char *tmpfs[] = {"/run/t:size=1M", "/t2", NULL};

        assert_int_equal(em_mounts_from_args(vols, tmpfs, &m, &err), 0);
        assert_int_equal(json_array_size(m), 4);
        assert_string_equal(em_json_str(json_array_get(m, 0), "type"), "volume");
        assert_string_equal(em_json_str(json_array_get(m, 0), "name"), "db");
        assert_true(json_is_false(json_object_get(json_array_get(m, 0), "ro")));
        assert_string_equal(em_json_str(json_array_get(m, 1), "source"), "/srv/x");
        assert_true(json_is_true(json_object_get(json_array_get(m, 1), "ro")));
        assert_int_equal(em_json_int(json_array_get(m, 2), "size", 0), 1 << 20);
        assert_int_equal(em_json_int(json_array_get(m, 3), "size", -1), 0);
        json_decref(m);
        m = NULL;
        assert_int_equal(em_mounts_from_args(NULL, NULL, &m, &err), 0);
        assert_null(m);
}

static void refused(const char *vol, const char *tmpfs, const char *why)
{
        cleanup_error em_error_t err = NULL;
        json_t *m = NULL;
        const char *v[] = {vol, NULL}, *t[] = {tmpfs, NULL};

        assert_int_equal(em_mounts_from_args(v, t, &m, &err), -1);
        assert_null(m);
        if (strstr(em_error_msg(err), why) == NULL)
                fail_msg("'%s' / '%s': %s", vol ? vol : "", tmpfs ? tmpfs : "", em_error_msg(err));
}

static void test_refused_args(void **state)
{
        refused("db", NULL, "SRC:DST");
        refused("db:x", NULL, "absolute path");
        refused("db:/x/../y", NULL, "absolute path");
        refused("db:/x/", NULL, "absolute path");
        refused("db:/x:rx", NULL, "ro or rw");
        refused(".db:/x", NULL, "invalid volume name");
        refused("/a//b:/x", NULL, "absolute normalised");
        refused("db:/sys/x", NULL, "/proc, /sys or /dev");
        refused("db:/x", "/x", "mounted twice");
        refused(NULL, "/t:mode=1", "size=N");
        refused(NULL, "/t:size=lots", "--tmpfs");
}

/* What a peer may send: anything; only what -v could give passes. */
static void test_check_hostile(void **state)
{
        static const char *const bad[] = {
            "{}",
            "[1]",
            "[{\"type\": \"volume\", \"name\": \"a\", \"destination\": \"/a\"}]",
            "[{\"type\": \"volume\", \"name\": \"a\", \"destination\": \"/a\", \"ro\": 1}]",
            "[{\"type\": \"volume\", \"name\": \"../a\", \"destination\": \"/a\", \"ro\": true}]",
            "[{\"type\": \"bind\", \"source\": \"rel\", \"destination\": \"/a\", \"ro\": true}]",
            "[{\"type\": \"proc\", \"source\": \"/p\", \"destination\": \"/a\", \"ro\": true}]",
            "[{\"type\": \"tmpfs\", \"destination\": \"/a\", \"size\": -1}]",
            "[{\"type\": \"tmpfs\", \"destination\": \"/a\", \"size\": 1, \"x\": 1}]",
            "[{\"type\": \"tmpfs\", \"destination\": \"/\", \"size\": 1}]",
            NULL};

        for (const char *const *b = bad; *b; b++) {
                cleanup_error em_error_t err = NULL;
                cleanup_json json_t *j = json_loads(*b, 0, NULL);
                assert_non_null(j);
                if (em_mounts_check(j, &err) == 0)
                        fail_msg("accepted %s", *b);
        }
}

static void test_bind_allowed(void **state)
{
        char dir[] = "/tmp/test_volume.XXXXXX";
        cleanup_error em_error_t err = NULL;

        assert_non_null(mkdtemp(dir));
        cleanup_free char *sub = em_path_join(dir, "sub");
        cleanup_free char *link = em_path_join(dir, "link");
        assert_int_equal(mkdir(sub, 0755), 0);
        assert_int_equal(symlink("/etc", link), 0);
        char *const prefixes[] = {sub, NULL};
        assert_int_equal(em_bind_allowed(prefixes, sub, &err), 0);
        assert_int_equal(em_bind_allowed(prefixes, "/etc", &err), -1);
        assert_non_null(strstr(em_error_msg(err), "\"bind_prefixes\" of <root>/volumes.json"));
        em_error_free(&err);
        char *const wide[] = {dir, NULL};
        assert_int_equal(em_bind_allowed(wide, link, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_bind_allowed(NULL, sub, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_rm_rf(dir, &err), 0);
}

/* A root with one container mounting volume "used"; "free" is unused. */
static void test_rm_prune(void **state)
{
        char dir[] = "/tmp/test_volume.XXXXXX";
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *v = NULL, *gone = NULL;

        assert_non_null(mkdtemp(dir));
        struct em_config cfg = {.root = dir};
        cleanup_free char *c = em_path_join(dir, "containers/web");
        cleanup_free char *spec = em_path_join(c, "spec.json");
        cleanup_free char *used = em_volume_path(&cfg, "used");
        cleanup_free char *unused = em_volume_path(&cfg, "free");
        assert_int_equal(em_mkdir_p(c, 0700, &err), 0);
        assert_int_equal(em_mkdir_p(used, 0700, &err), 0);
        assert_int_equal(em_mkdir_p(unused, 0700, &err), 0);
        cleanup_json json_t *s =
            json_pack("{s:s, s:[{s:s, s:s, s:s, s:b}]}", "name", "web", "mounts", "type", "volume",
                      "name", "used", "destination", "/d", "ro", 0);
        assert_int_equal(em_json_write_file(spec, s, &err), 0);
        assert_int_equal(em_volume_inspect(&cfg, "used", &v, &err), 0);
        assert_string_equal(json_string_value(json_array_get(json_object_get(v, "used_by"), 0)),
                            "web");
        assert_int_equal(em_volume_rm(&cfg, "used", &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        em_error_free(&err);
        /* only web mounts it: it may move with web, not once db shares it */
        assert_int_equal(em_volumes_movable(&cfg, s, "web", &err), 0);
        cleanup_free char *c2 = em_path_join(dir, "containers/db");
        cleanup_free char *spec2 = em_path_join(c2, "spec.json");
        assert_int_equal(em_mkdir_p(c2, 0700, &err), 0);
        assert_int_equal(em_json_write_file(spec2, s, &err), 0);
        assert_int_equal(em_volumes_movable(&cfg, s, "web", &err), -1);
        assert_non_null(strstr(em_error_msg(err), "also mounted by container db"));
        em_error_free(&err);
        /* a pod moves web and db together: the volume goes with both */
        char *pod[] = {"db", "web", "pod", NULL};
        assert_int_equal(em_volumes_movable_among(&cfg, s, pod, &err), 0);
        char *not_db[] = {"web", "pod", NULL};
        assert_int_equal(em_volumes_movable_among(&cfg, s, not_db, &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        em_error_free(&err);
        assert_int_equal(em_rm_rf(c2, &err), 0);
        assert_int_equal(em_volume_prune(&cfg, &gone, &err), 0);
        assert_int_equal(json_array_size(gone), 1);
        assert_string_equal(json_string_value(json_array_get(gone, 0)), "free");
        assert_true(em_path_exists(used));
        assert_false(em_path_exists(unused));
        assert_int_equal(em_volume_rm(&cfg, "gone", &err), -1);
        em_error_free(&err);
        assert_int_equal(em_rm_rf(dir, &err), 0);
}

/* An incoming spec: its bind sources against this host's bind_prefixes,
 * its named volumes must not exist here yet. */
static void test_admit(void **state)
{
        char dir[] = "/tmp/test_volume.XXXXXX";
        cleanup_error em_error_t err = NULL;
        cleanup_strv char **binds = NULL, **tmpfs = NULL;

        assert_non_null(mkdtemp(dir));
        struct em_config cfg = {.root = dir};
        cleanup_json json_t *spec =
            json_pack("{s:[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:s, s:b}, {s:s, s:s, s:I}]}", "mounts",
                      "type", "volume", "name", "db", "destination", "/db", "ro", 0, "type", "bind",
                      "source", dir, "destination", "/in", "ro", 1, "type", "tmpfs", "destination",
                      "/t", "size", (json_int_t)0);
        assert_int_equal(em_mounts_admit(&cfg, spec, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        assert_non_null(strstr(em_error_msg(err), "bind_prefixes"));
        em_error_free(&err);
        cleanup_free char *conf = em_path_join(dir, EM_VOLUMES_CONF);
        cleanup_json json_t *allow = json_pack("{s:[s]}", EM_VOLUMES_KNOB, dir);
        assert_int_equal(em_json_write_file(conf, allow, &err), 0);
        assert_int_equal(em_mounts_admit(&cfg, spec, &err), 0);
        cleanup_free char *db = em_volume_path(&cfg, "db");
        assert_int_equal(em_mkdir_p(db, 0700, &err), 0);
        assert_int_equal(em_mounts_admit(&cfg, spec, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        em_error_free(&err);
        assert_int_equal(em_mounts_points(spec, &binds, &tmpfs, &err), 0);
        assert_string_equal(binds[0], "/db");
        assert_string_equal(binds[1], "/in");
        assert_null(binds[2]);
        assert_string_equal(tmpfs[0], "/t");
        assert_null(tmpfs[1]);
        assert_int_equal(em_rm_rf(dir, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_from_args),     cmocka_unit_test(test_refused_args),
            cmocka_unit_test(test_check_hostile), cmocka_unit_test(test_bind_allowed),
            cmocka_unit_test(test_rm_prune),      cmocka_unit_test(test_admit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
