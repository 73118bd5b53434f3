/* migrate/target/pod_target: what the target accepts as a pod's plan
 * (em_pod_plan_check): each spec held to the incoming-spec policy, the
 * pod's own fields as each role wants them, and a hostile peer's plans
 * refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migrate/target/pod_target.h"
#include "migrate/target/policy.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define L1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static json_t *spec(const char *name, const char *pod, bool infra)
{
        json_t *s = json_pack("{s:s, s:s, s:s, s:[s], s:{s:[s], s:[s]}, s:n, s:i, s:f}", "name",
                              name, "image", "reg/edgemig/busybox:latest", "image_digest", L1,
                              "diff_ids", L1, "image_config", "Env", "PATH=/bin", "Cmd", "/bin/sh",
                              "cmd", "memory", 0, "cpus", 0.5);

        json_object_set_new(s, "ip", infra ? json_string("10.66.0.10") : json_null());
        if (infra)
                json_object_set_new(s, "pod_infra", json_true());
        else
                json_object_set_new(s, "pod", json_string(pod));
        return s;
}

static json_t *image(void)
{
        return json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "name", "busybox", "manifest_digest", L1,
                         "blobs", "digest", L1, "diff_id", L1);
}

/* A plan of pod web with members db and side. */
static json_t *plan(void)
{
        return json_pack("{s:o, s:o, s:{s:[{s:o, s:o}, {s:o, s:o}]}}", "spec",
                         spec("web", NULL, true), "image", image(), "pod", "members", "spec",
                         spec("db", "web", false), "image", image(), "spec",
                         spec("side", "web", false), "image", image());
}

static json_t *member(json_t *p, size_t i)
{
        return json_object_get(
            json_array_get(json_object_get(json_object_get(p, "pod"), "members"), i), "spec");
}

static void refused(json_t *p, const char *why)
{
        cleanup_strv char **names = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_pod_plan_check(NULL, "web", p, &names, &err), -1);
        assert_null(names);
        assert_non_null(err);
        if (strstr(em_error_msg(err), why) == NULL)
                fail_msg("expected '%s' in '%s'", why, em_error_msg(err));
        em_error_free(&err);
        json_decref(p);
}

static void good_plan(void **state)
{
        cleanup_strv char **names = NULL;
        json_t *p = plan();
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_pod_plan_check(NULL, "web", p, &names, &err), 0);
        assert_string_equal(names[0], "db");
        assert_string_equal(names[1], "side");
        assert_string_equal(names[2], "web");
        assert_null(names[3]);
        /* The member's own spec is left as it came (no address of its own). */
        assert_true(json_is_null(json_object_get(member(p, 0), "ip")));
        /* Members with a named volume, a bind mount and a tmpfs move too. */
        json_object_set_new(
            member(p, 0), "mounts",
            json_pack("[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:s, s:b}, {s:s, s:s, s:i}]", "type",
                      "volume", "name", "data", "destination", "/data", "ro", 0, "type", "bind",
                      "source", "/srv/x", "destination", "/in", "ro", 1, "type", "tmpfs",
                      "destination", "/t", "size", 0));
        em_strv_free(steal_pointer(&names));
        assert_int_equal(em_pod_plan_check(NULL, "web", p, &names, &err), 0);
        json_decref(p);
}

static void roles(void **state)
{
        json_t *p;

        (void)state;
        p = plan();
        json_object_set_new(member(p, 0), "pod", json_string("other"));
        refused(p, "db is not a member of pod web");
        p = plan();
        json_object_del(member(p, 1), "pod");
        refused(p, "side is not a member of pod web");
        p = plan();
        json_object_set_new(member(p, 0), "pod_infra", json_true());
        refused(p, "db is not a member");
        p = plan();
        json_object_del(json_object_get(p, "spec"), "pod_infra");
        refused(p, "web is not the infra container of pod web");
        p = plan();
        json_object_set_new(json_object_get(p, "spec"), "name", json_string("web2"));
        refused(p, "web2 is not the infra container");
        p = plan();
        json_object_set_new(member(p, 1), "name", json_string("web"));
        refused(p, "web is not a member");
}

static void hostile(void **state)
{
        json_t *p, *members;

        (void)state;
        p = plan();
        json_object_set_new(member(p, 1), "name", json_string("db"));
        refused(p, "a member twice");
        p = plan();
        json_object_set_new(member(p, 0), "name", json_string("../etc"));
        refused(p, "malformed pod plan");
        p = plan();
        json_object_set_new(json_object_get(p, "pod"), "members", json_array());
        refused(p, "1 to 64 members");
        p = plan();
        json_object_del(p, "pod");
        refused(p, "1 to 64 members");
        p = plan();
        members = json_object_get(json_object_get(p, "pod"), "members");
        for (int i = 0; i < EM_POD_MAX_MEMBERS; i++)
                json_array_append(members, json_array_get(members, 0));
        refused(p, "1 to 64 members");
        p = plan();
        json_array_append_new(json_object_get(json_object_get(p, "pod"), "members"),
                              json_string("x"));
        refused(p, "malformed pod plan");
        p = plan();
        json_object_del(
            json_object_get(
                json_array_get(json_object_get(json_object_get(p, "pod"), "members"), 0), "image"),
            "blobs");
        refused(p, "malformed pod plan");
}

/* Each spec meets the policy: a member may not take what a container may not. */
static void policy(void **state)
{
        json_t *p;

        (void)state;
        p = plan();
        json_object_set_new(member(p, 0), "privileged", json_true());
        refused(p, "spec field 'privileged' is not allowed");
        p = plan();
        json_object_set_new(member(p, 1), "ip", json_string("1.2.3.4/8"));
        refused(p, "plain IPv4");
        /* Mounts are held to their shape (the host's allow-list and
         * volumes are the session's em_mounts_admit). */
        p = plan();
        json_object_set_new(
            member(p, 0), "mounts",
            json_pack("[{s:s, s:s, s:s}]", "type", "volume", "name", "data", "target", "/data"));
        refused(p, "spec mounts");
        p = plan();
        json_object_set_new(json_object_get(p, "spec"), "ip", json_string("8.8.8.8"));
        refused(p, "8.8.8.8");
}

/* The pre-check and the plan name the first container already here,
 * whether a record of the state database or a container directory. */
static void names_free(void **state)
{
        char root[] = "/tmp/test_pod_target.XXXXXX";
        char *names[] = {"db", "side", "web", NULL};
        struct em_config cfg;
        struct em_state *st = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_non_null(mkdtemp(root));
        assert_int_equal(em_config_init(&cfg, root, &err), 0);
        assert_int_equal(em_pod_names_free(&cfg, names, 3, &err), 0);
        assert_int_equal(em_state_open(root, &st, &err), 0);
        struct em_container_rec r = {
            .name = "side", .image = "i", .ip = "10.66.0.9", .state = EM_CSTATE_RUNNING};
        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        em_state_close(&st);
        assert_int_equal(em_pod_names_free(&cfg, names, 1, &err), 0);
        assert_int_equal(em_pod_names_free(&cfg, names, 3, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_non_null(strstr(em_error_msg(err), "a container named side already exists"));
        em_error_free(&err);
        em_config_free(&cfg);
        assert_int_equal(em_rm_rf(root, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(good_plan), cmocka_unit_test(roles),      cmocka_unit_test(hostile),
            cmocka_unit_test(policy),    cmocka_unit_test(names_free),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
