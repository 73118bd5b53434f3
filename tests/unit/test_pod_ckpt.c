/* checkpoint/pod_ckpt: what a whole-pod checkpoint or restore refuses
 * before anything runs (no root needed: every case stops before runc). A
 * restore's pod.json may come from anywhere: its names become paths. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/pod_ckpt.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fsutil.h"

struct fixture {
        char dir[64];
        struct em_config cfg;
        char *ck;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;

        strcpy(f->dir, "/tmp/test_pod_ckpt.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(em_config_init(&f->cfg, f->dir, &err), 0);
        f->ck = em_path_join(f->dir, "ck");
        assert_int_equal(em_mkdir_p(f->ck, 0700, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        em_rm_rf(f->dir, &err);
        em_config_free(&f->cfg);
        free(f->ck);
        free(f);
        return 0;
}

static void manifest(const struct fixture *f, const char *text)
{
        cleanup_free char *path = em_path_join(f->ck, "pod.json");
        em_error_t err = NULL;

        assert_int_equal(em_write_file_atomic(path, text, strlen(text), 0644, &err), 0);
}

/* The restore refuses with status, and its message contains what. */
static void refused(struct fixture *f, int status, const char *what)
{
        em_error_t err = NULL;

        assert_int_equal(em_pod_restore(&f->cfg, f->ck, &err), -1);
        assert_int_equal(em_error_status(err), status);
        assert_non_null(strstr(em_error_msg(err), what));
        em_error_free(&err);
}

static void test_restore_needs_manifest(void **state)
{
        refused(*state, ENOENT, "is not a pod's checkpoint");
}

static void test_restore_refuses_bad_manifests(void **state)
{
        struct fixture *f = *state;

        manifest(f, "{\"format\": 2, \"pod\": \"web\", \"members\": []}");
        refused(f, EPROTO, "unsupported pod checkpoint format");
        manifest(f, "{\"format\": 1, \"pod\": \"../web\", \"members\": []}");
        refused(f, EINVAL, "no valid pod name");
        manifest(f, "{\"format\": 1, \"pod\": \"web\", \"members\": \"db\"}");
        refused(f, EINVAL, "no valid pod name or member list");
        manifest(f, "{\"format\": 1, \"pod\": \"web\", \"members\": [\"db\", \"../../etc\"]}");
        refused(f, EINVAL, "invalid member name");
        manifest(f, "{\"format\": 1, \"pod\": \"web\", \"members\": [\"web\"]}");
        refused(f, EINVAL, "invalid member name");
        manifest(f, "{\"format\": 1, \"pod\": \"web\", \"members\": [7]}");
        refused(f, EINVAL, "invalid member name");
}

/* A manifest whose infra checkpoint is missing: nothing is created. */
static void test_restore_missing_container(void **state)
{
        struct fixture *f = *state;
        cleanup_state struct em_state *st = NULL;
        struct em_container_rec **recs = NULL;
        em_error_t err = NULL;
        size_t n = 9;

        manifest(f, "{\"format\": 1, \"pod\": \"web\", \"members\": [\"db\"]}");
        refused(f, ENOENT, "restoring pod web");
        assert_int_equal(em_state_open(f->cfg.root, &st, &err), 0);
        assert_int_equal(em_state_container_list(st, &recs, &n, &err), 0);
        assert_int_equal(n, 0);
        em_container_rec_list_free(&recs, n);
}

static void test_checkpoint_needs_pod(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        assert_int_equal(em_pod_checkpoint(&f->cfg, "web", f->ck, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_non_null(strstr(em_error_msg(err), "no pod 'web'"));
        em_error_free(&err);
}

/* A container that is not a pod's infra, or a pod that is not running. */
static void test_checkpoint_needs_running_pod(void **state)
{
        struct fixture *f = *state;
        cleanup_state struct em_state *st = NULL;
        em_error_t err = NULL;
        struct em_container_rec r = {.name = "web",
                                     .image = "busybox",
                                     .ip = strdup("10.66.1.2"),
                                     .spec = "{\"name\": \"web\", \"pod_infra\": true}"};
        struct em_container_rec c = {
            .name = "plain", .image = "busybox", .ip = strdup("10.66.1.3"), .spec = "{}"};

        assert_int_equal(em_state_open(f->cfg.root, &st, &err), 0);
        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        assert_int_equal(em_state_container_insert(st, &c, NULL, &err), 0);
        free(r.ip);
        free(c.ip);
        assert_int_equal(em_pod_checkpoint(&f->cfg, "web", f->ck, &err), -1);
        assert_int_equal(em_error_status(err), ESRCH);
        assert_non_null(strstr(em_error_msg(err), "pod web is not running"));
        em_error_free(&err);
        assert_int_equal(em_pod_checkpoint(&f->cfg, "plain", f->ck, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "is a container, not a pod"));
        em_error_free(&err);
}

static void test_checkpoint_refuses_used_dir(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        manifest(f, "{}");
        assert_int_equal(em_pod_checkpoint(&f->cfg, "web", f->ck, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_restore_needs_manifest, setup, teardown),
            cmocka_unit_test_setup_teardown(test_restore_refuses_bad_manifests, setup, teardown),
            cmocka_unit_test_setup_teardown(test_restore_missing_container, setup, teardown),
            cmocka_unit_test_setup_teardown(test_checkpoint_needs_pod, setup, teardown),
            cmocka_unit_test_setup_teardown(test_checkpoint_needs_running_pod, setup, teardown),
            cmocka_unit_test_setup_teardown(test_checkpoint_refuses_used_dir, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
