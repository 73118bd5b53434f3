/* container/paths: a container's names are per root and name, and a pod
 * member restored into its pod keeps runc's state in its own directory
 * (checkpoint/pod_member.h), which every runc call must then use. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "container/container.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fsutil.h"

static void test_runc_root(void **state)
{
        (void)state;
        char dir[] = "/tmp/test_paths.XXXXXX", want[256];
        struct em_config cfg = {0};
        struct em_container_paths p;
        em_error_t err = NULL;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(em_config_init(&cfg, dir, &err), 0);
        assert_int_equal(em_container_paths_init(&cfg, "db", &p, &err), 0);
        snprintf(want, sizeof(want), "%s/runc", dir);
        assert_string_equal(p.runc_root, want);
        /* A restored member: <dir>/containers/db/runc exists. */
        snprintf(want, sizeof(want), "%s/containers/db/" EM_POD_MEMBER_RUNC_DIR, dir);
        assert_int_equal(em_mkdir_p(want, 0700, &err), 0);
        em_container_paths_free(&p);
        assert_int_equal(em_container_paths_init(&cfg, "db", &p, &err), 0);
        assert_string_equal(p.runc_root, want);
        em_container_paths_free(&p);
        /* Another container keeps the root's. */
        assert_int_equal(em_container_paths_init(&cfg, "side", &p, &err), 0);
        snprintf(want, sizeof(want), "%s/runc", dir);
        assert_string_equal(p.runc_root, want);
        em_container_paths_free(&p);
        em_rm_rf(dir, &err);
        em_config_free(&cfg);
}

static void test_names(void **state)
{
        (void)state;
        struct em_config cfg = {.root = "/r"};
        struct em_container_paths a, b;
        em_error_t err = NULL;

        assert_int_equal(em_container_paths_init(&cfg, "../x", &a, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
        assert_int_equal(em_container_paths_init(&cfg, "web", &a, &err), 0);
        assert_int_equal(em_container_paths_init(&cfg, "web2", &b, &err), 0);
        assert_string_equal(a.dir, "/r/containers/web");
        assert_string_not_equal(a.cgroup, b.cgroup);
        assert_string_not_equal(a.host_veth, b.host_veth);
        assert_true(strlen(a.host_veth) <= 15);
        em_container_paths_free(&a);
        em_container_paths_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_runc_root),
            cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
