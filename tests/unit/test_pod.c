#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/pod.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

struct fixture {
        char dir[64];
        struct em_state *st;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char db[128];
        em_error_t err = NULL;

        strcpy(f->dir, "/tmp/test_pod.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(db, sizeof(db), "%s/state.db", f->dir);
        assert_int_equal(em_state_open_path(db, &f->st, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        em_state_close(&f->st);
        em_rm_rf(f->dir, &err);
        free(f);
        return 0;
}

/* Inserts a container with spec text; running ones get pid. */
static void add(struct em_state *st, const char *name, const char *ip, const char *spec, int pid)
{
        struct em_container_rec r = {.name = (char *)name,
                                     .image = "busybox",
                                     .ip = ip ? strdup(ip) : NULL,
                                     .spec = (char *)spec,
                                     .no_ip = ip == NULL};
        em_error_t err = NULL;

        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        if (ip == NULL)
                assert_null(r.ip);
        free(r.ip);
        if (pid > 0)
                assert_int_equal(em_state_container_transition(st, name, EM_CSTATE_ANY,
                                                               EM_CSTATE_RUNNING, pid, NULL, &err),
                                 0);
}

/* A pod "web" (infra = this process, so its namespaces exist) with members
 * db (running) and side (created), and a container of another pod. */
static void add_pod(struct em_state *st)
{
        struct em_idpool pool = {.first = 1u << 20, .slots = 4, .size = 65536};
        struct em_idrange got;
        em_error_t err = NULL;

        add(st, "web", "10.66.0.2", "{\"name\":\"web\",\"pod_infra\":true}", getpid());
        assert_int_equal(em_state_idrange_allocate(st, "web", &pool, NULL, &got, &err), 0);
        add(st, "side", NULL, "{\"name\":\"side\",\"pod\":\"web\"}", 0);
        add(st, "db", NULL, "{\"name\":\"db\",\"pod\":\"web\"}", getpid());
        add(st, "other", "10.66.0.3", "{\"name\":\"other\",\"pod\":\"elsewhere\"}", 0);
}

static json_t *parse(const char *text)
{
        json_t *j = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_json_parse(text, strlen(text), "spec", &j, &err), 0);
        return j;
}

static void test_spec_roles(void **state)
{
        cleanup_json json_t *infra = parse("{\"name\":\"web\",\"pod_infra\":true}");
        cleanup_json json_t *member = parse("{\"name\":\"db\",\"pod\":\"web\"}");
        cleanup_json json_t *alone = parse("{\"name\":\"solo\"}");
        em_error_t err = NULL;
        (void)state;

        assert_true(em_pod_spec_is_infra(infra));
        assert_false(em_pod_spec_is_infra(member));
        assert_string_equal(em_pod_of_spec(infra), "web");
        assert_string_equal(em_pod_of_spec(member), "web");
        assert_null(em_pod_of_spec(alone));
        assert_int_equal(em_pod_refuse_alone(alone, "migrating", &err), 0);
        assert_int_equal(em_pod_refuse_alone(member, "migrating", &err), -1);
        assert_int_equal(em_error_status(err), ENOTSUP);
        assert_non_null(strstr(em_error_msg(err), "migrating db: it belongs to pod web"));
        /* It names what does work: the whole pod's checkpoint. */
        assert_non_null(strstr(em_error_msg(err), "`edgemig pod checkpoint web --to DIR`"));
        em_error_free(&err);
        assert_int_equal(em_pod_refuse_alone(infra, "checkpointing", &err), -1);
        em_error_free(&err);
}

/* The record form of the role test: its stored spec, parsed; a spec that
 * does not parse is an error, not "no". */
static void test_rec_is_infra(void **state)
{
        struct em_container_rec infra = {.name = "web", .spec = "{\"pod_infra\":true}"};
        struct em_container_rec member = {.name = "db", .spec = "{\"pod\":\"web\"}"};
        struct em_container_rec broken = {.name = "x", .spec = "{"};
        em_error_t err = NULL;
        (void)state;

        assert_int_equal(em_pod_rec_is_infra(&infra, &err), 1);
        assert_int_equal(em_pod_rec_is_infra(&member, &err), 0);
        assert_int_equal(em_pod_rec_is_infra(&broken, &err), -1);
        assert_non_null(err);
        em_error_free(&err);
}

static void test_members_and_state(void **state)
{
        struct fixture *f = *state;
        cleanup_strv char **all = NULL, **running = NULL;
        em_error_t err = NULL;

        add_pod(f->st);
        assert_int_equal(em_pod_members(f->st, "web", false, &all, &err), 0);
        assert_string_equal(all[0], "db");
        assert_string_equal(all[1], "side");
        assert_null(all[2]);
        assert_int_equal(em_pod_members(f->st, "web", true, &running, &err), 0);
        assert_string_equal(running[0], "db");
        assert_null(running[1]);
        /* Members have no address of their own. */
        cleanup_container_rec struct em_container_rec *db = NULL;
        assert_int_equal(em_state_container_get(f->st, "db", &db, &err), 0);
        assert_null(db->ip);
}

static void test_infra_stop_refused_with_running_members(void **state)
{
        struct fixture *f = *state;
        cleanup_container_rec struct em_container_rec *web = NULL, *db = NULL;
        em_error_t err = NULL;

        add_pod(f->st);
        assert_int_equal(em_state_container_get(f->st, "web", &web, &err), 0);
        assert_int_equal(em_pod_check_infra_idle(f->st, web, &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        assert_non_null(strstr(em_error_msg(err), "pod web still runs db in its namespaces"));
        em_error_free(&err);
        /* A member is not an infra: stopping it is always fine. */
        assert_int_equal(em_state_container_get(f->st, "db", &db, &err), 0);
        assert_int_equal(em_pod_check_infra_idle(f->st, db, &err), 0);
        assert_int_equal(em_state_container_transition(f->st, "db", EM_CSTATE_ANY,
                                                       EM_CSTATE_STOPPED, 0, NULL, &err),
                         0);
        assert_int_equal(em_pod_check_infra_idle(f->st, web, &err), 0);
}

/* A member whose init died but is not reaped yet (a zombie: a slow
 * reaper, such as a PID 1 that is no real init, leaves it so for long)
 * runs no more: the pod's running members leave it out and its infra may
 * stop. kill(pid, 0) still succeeds on a zombie. */
static void test_member_zombie(void **state)
{
        struct fixture *f = *state;
        cleanup_container_rec struct em_container_rec *web = NULL;
        cleanup_strv char **running = NULL;
        em_error_t err = NULL;

        add_pod(f->st);
        pid_t dead = fork();
        if (dead == 0)
                _exit(0);
        assert_true(dead > 0);
        assert_int_equal(waitid(P_PID, dead, NULL, WEXITED | WNOWAIT), 0);
        assert_int_equal(em_state_container_transition(f->st, "db", EM_CSTATE_ANY,
                                                       EM_CSTATE_RUNNING, dead, NULL, &err),
                         0);
        assert_int_equal(em_pod_members(f->st, "web", true, &running, &err), 0);
        assert_int_equal(em_state_container_get(f->st, "web", &web, &err), 0);
        int idle = em_pod_check_infra_idle(f->st, web, &err);
        waitpid(dead, NULL, 0);
        assert_null(running[0]);
        assert_int_equal(idle, 0);
}

static void test_member_join(void **state)
{
        struct fixture *f = *state;
        cleanup_json json_t *member = parse("{\"name\":\"db\",\"pod\":\"web\"}");
        cleanup_json json_t *alone = parse("{\"name\":\"solo\",\"ip\":\"10.66.0.9\"}");
        int pid = -1;
        em_error_t err = NULL;

        add_pod(f->st);
        assert_int_equal(em_pod_member_join(f->st, alone, &pid, &err), 0);
        assert_int_equal(pid, 0);
        assert_string_equal(em_json_str(alone, "ip"), "10.66.0.9");
        assert_int_equal(em_pod_member_join(f->st, member, &pid, &err), 0);
        assert_int_equal(pid, getpid());
        assert_string_equal(em_json_str(member, "ip"), "10.66.0.2");
        json_t *u = json_object_get(member, "userns");
        assert_int_equal(em_json_int(u, "size", 0), 65536);
        assert_true(em_json_int(u, "base", 0) >= 1 << 20);
}

static void test_join_needs_a_running_pod(void **state)
{
        struct fixture *f = *state;
        cleanup_json json_t *member = parse("{\"name\":\"x\",\"pod\":\"web\"}");
        cleanup_json json_t *bad = parse("{\"name\":\"x\",\"pod\":\"other\"}");
        cleanup_json json_t *none = parse("{\"name\":\"x\",\"pod\":\"nope\"}");
        int pid;
        em_error_t err = NULL;

        add_pod(f->st);
        assert_int_equal(em_pod_member_join(f->st, none, &pid, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_non_null(strstr(em_error_msg(err), "no pod 'nope'"));
        em_error_free(&err);
        assert_int_equal(em_pod_member_join(f->st, bad, &pid, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
        assert_int_equal(em_state_container_transition(f->st, "web", EM_CSTATE_ANY,
                                                       EM_CSTATE_STOPPED, 0, NULL, &err),
                         0);
        assert_int_equal(em_pod_check_running(f->st, "web", &err), -1);
        assert_int_equal(em_error_status(err), ESRCH);
        assert_non_null(strstr(em_error_msg(err), "`edgemig start web`"));
        em_error_free(&err);
        assert_int_equal(em_pod_member_join(f->st, member, &pid, &err), -1);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_spec_roles),
            cmocka_unit_test(test_rec_is_infra),
            cmocka_unit_test_setup_teardown(test_members_and_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_infra_stop_refused_with_running_members, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_member_zombie, setup, teardown),
            cmocka_unit_test_setup_teardown(test_member_join, setup, teardown),
            cmocka_unit_test_setup_teardown(test_join_needs_a_running_pod, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
