/* checkpoint/pod_member: what a member's restore refuses before runc runs
 * (no root needed), and that a refusal leaves the member's row
 * "checkpointed" (created from the spec if it was missing, without an
 * address: the pod's infra holds it). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/pod_member.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fsutil.h"
#include "util/json.h"

struct fixture {
        char dir[64];
        struct em_config cfg;
        struct em_state *st;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;

        strcpy(f->dir, "/tmp/test_pod_member.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(em_config_init(&f->cfg, f->dir, &err), 0);
        assert_int_equal(em_state_open(f->cfg.root, &f->st, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        em_state_close(&f->st);
        em_rm_rf(f->dir, &err);
        em_config_free(&f->cfg);
        free(f);
        return 0;
}

static json_t *spec(const char *text)
{
        json_error_t je;
        json_t *j = json_loads(text, 0, &je);

        assert_non_null(j);
        return j;
}

static void restore_fails(struct fixture *f, const char *name, const char *text, int status,
                          const char *what)
{
        cleanup_json json_t *s = spec(text);
        em_error_t err = NULL;

        assert_int_equal(em_pod_member_restore(&f->cfg, name, s, "/nonexistent", NULL, NULL, &err),
                         -1);
        assert_int_equal(em_error_status(err), status);
        assert_non_null(strstr(em_error_msg(err), what));
        em_error_free(&err);
}

static enum em_cstate state_of(struct fixture *f, const char *name, bool *has_ip)
{
        cleanup_container_rec struct em_container_rec *r = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_state_container_get(f->st, name, &r, &err), 0);
        *has_ip = r->ip != NULL;
        return r->state;
}

static void test_not_a_member(void **state)
{
        restore_fails(*state, "db", "{\"name\": \"db\", \"image\": \"redis\"}", EINVAL,
                      "db is not a pod member");
        restore_fails(*state, "web2",
                      "{\"name\": \"web2\", \"image\": \"busybox\", \"pod_infra\": true}", EINVAL,
                      "is not a pod member");
}

static void test_no_such_pod(void **state)
{
        struct fixture *f = *state;
        bool has_ip = true;

        restore_fails(f, "db", "{\"name\": \"db\", \"image\": \"redis\", \"pod\": \"web\"}", ENOENT,
                      "no pod 'web'");
        assert_int_equal(state_of(f, "db", &has_ip), EM_CSTATE_CHECKPOINTED);
        assert_false(has_ip);
}

static void test_spec_needs_image(void **state)
{
        restore_fails(*state, "db", "{\"name\": \"db\", \"pod\": \"web\"}", EINVAL,
                      "names no image");
}

static void test_running_member_refused(void **state)
{
        struct fixture *f = *state;
        struct em_container_rec r = {
            .name = "db", .image = "redis", .spec = "{\"pod\": \"web\"}", .no_ip = true};
        em_error_t err = NULL;
        bool has_ip;

        assert_int_equal(em_state_container_insert(f->st, &r, NULL, &err), 0);
        assert_int_equal(em_state_container_transition(f->st, "db", EM_CSTATE_ANY,
                                                       EM_CSTATE_RUNNING, getpid(), NULL, &err),
                         0);
        restore_fails(f, "db", "{\"name\": \"db\", \"image\": \"redis\", \"pod\": \"web\"}", EBUSY,
                      "is running here");
        assert_int_equal(state_of(f, "db", &has_ip), EM_CSTATE_RUNNING);
}

/* The pod exists but its infra container is stopped. */
static void test_pod_not_running(void **state)
{
        struct fixture *f = *state;
        struct em_container_rec r = {.name = "web",
                                     .image = "busybox",
                                     .ip = strdup("10.66.1.2"),
                                     .spec = "{\"name\": \"web\", \"pod_infra\": true}"};
        em_error_t err = NULL;

        assert_int_equal(em_state_container_insert(f->st, &r, NULL, &err), 0);
        free(r.ip);
        restore_fails(f, "db", "{\"name\": \"db\", \"image\": \"redis\", \"pod\": \"web\"}", ESRCH,
                      "pod web is not running");
}

/* A member that was never restored here has no cgroup to resume. */
static void test_resume_needs_cgroup(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        assert_int_equal(em_pod_member_resume(&f->cfg, "db", &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_non_null(strstr(em_error_msg(err), "resuming pod member db"));
        em_error_free(&err);
        assert_int_equal(em_pod_member_resume(&f->cfg, "../db", &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_not_a_member, setup, teardown),
            cmocka_unit_test_setup_teardown(test_no_such_pod, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spec_needs_image, setup, teardown),
            cmocka_unit_test_setup_teardown(test_running_member_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pod_not_running, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resume_needs_cgroup, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
