/* The controller's API called directly, without a socket: registration,
 * heartbeats, services, position reports driving the scheduler and its
 * workers, listings, metrics, hostile bodies and authorization. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "platform/api.h"
#include "platform/authz.h"
#include "platform/ctlstore_sqlite.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

struct fixture {
        char dir[64];
        char cmd[96];
        struct em_api_opts o;
        struct em_api *api;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;
        FILE *s;

        snprintf(f->dir, sizeof(f->dir), "/tmp/em-api-test-XXXXXX");
        if (f == NULL || mkdtemp(f->dir) == NULL)
                return -1;
        /* The migrate command records its arguments: SOURCE SERVICE TARGET_ADDR. */
        snprintf(f->cmd, sizeof(f->cmd), "%s/migrate.sh", f->dir);
        s = fopen(f->cmd, "w");
        if (s == NULL)
                return -1;
        fprintf(s, "#!/bin/sh\necho \"$@\" >> %s/calls\n", f->dir);
        fclose(s);
        chmod(f->cmd, 0755);
        em_log_setup(EM_LOG_ERROR, false, 2, "unit");
        em_api_opts_init(&f->o);
        f->o.migrate_cmd = f->cmd;
        f->o.prepare_cmd = f->cmd;
        f->o.params.dwell_ms = 0;
        f->o.params.dwell_per_handoff = 0;
        if (em_api_open(f->dir, &f->o, &f->api, &err) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        em_api_close(f->api);
        em_rm_rf(f->dir, NULL);
        free(f);
        return 0;
}

/* Sends a request and returns the status; *out gets the JSON reply. */
static unsigned call(struct em_api *api, const char *method, const char *url, const char *body,
                     json_t **out)
{
        struct em_api_request rq = {method, url, NULL, body ? body : "", body ? strlen(body) : 0,
                                    false};
        struct em_api_reply r = {0};

        em_api_handle(api, &rq, &r);
        unsigned status = r.status;
        if (out != NULL)
                *out = json_incref(r.json);
        em_api_reply_clear(&r);
        return status;
}

static void test_register_and_list(void **state)
{
        struct fixture *f = *state;
        json_t *rows = NULL;

        assert_int_equal(call(f->api, "POST", "/edges",
                              "{\"name\":\"e1\",\"addr\":\"10.0.0.1:7878\",\"x\":0,\"y\":0,"
                              "\"capacity\":4}",
                              NULL),
                         201);
        assert_int_equal(call(f->api, "POST", "/edges/e1/heartbeat",
                              "{\"load\":1,\"containers\":[\"web\"],\"cpu\":0.5,"
                              "\"peers\":{\"10.0.0.2:7878\":{\"mbps\":80}}}",
                              NULL),
                         200);
        assert_int_equal(call(f->api, "POST", "/edges/e9/heartbeat", "{}", NULL), 404);
        assert_int_equal(call(f->api, "GET", "/edges", NULL, &rows), 200);
        assert_int_equal(json_array_size(rows), 1);
        json_t *e = json_array_get(rows, 0);
        assert_string_equal(em_json_str(e, "name"), "e1");
        assert_int_equal(em_json_int(e, "load", -1), 1);
        /* Kept as text in SQLite, returned as JSON. */
        assert_true(json_is_array(json_object_get(e, "container_names")));
        assert_true(json_is_object(json_object_get(e, "peers")));
        json_decref(rows);
        assert_int_equal(call(f->api, "GET", "/healthz", NULL, NULL), 200);
        assert_int_equal(call(f->api, "GET", "/nothing", NULL, NULL), 404);
        assert_int_equal(call(f->api, "DELETE", "/edges", NULL, NULL), 405);
}

static void test_hostile_bodies(void **state)
{
        struct fixture *f = *state;
        struct em_api_request big = {"POST", "/edges", NULL, "", 0, true};
        struct em_api_reply r = {0};

        assert_int_equal(call(f->api, "POST", "/edges", "not json", NULL), 400);
        assert_int_equal(call(f->api, "POST", "/edges", "[1,2]", NULL), 400);
        assert_int_equal(call(f->api, "POST", "/edges",
                              "{\"name\":\"../etc\",\"addr\":\"a:1\",\"x\":0,\"y\":0,"
                              "\"capacity\":1}",
                              NULL),
                         400);
        assert_int_equal(call(f->api, "POST", "/edges",
                              "{\"name\":\"e1\",\"addr\":\"a:1\",\"x\":\"0\",\"y\":0,"
                              "\"capacity\":1}",
                              NULL),
                         400);
        assert_int_equal(call(f->api, "POST", "/services",
                              "{\"name\":\"web\",\"user\":\"u1\",\"edge\":\"nowhere\"}", NULL),
                         404);
        assert_int_equal(
            call(f->api, "POST", "/edges/e1/heartbeat", "{\"containers\":[\"a b\"]}", NULL), 400);
        assert_int_equal(call(f->api, "POST", "/users/u1/position", "{\"x\":1}", NULL), 400);
        em_api_handle(f->api, &big, &r);
        assert_int_equal(r.status, 413);
        em_api_reply_clear(&r);
}

/* A user walks from e1 towards e2: the scheduler migrates the service, the
 * worker runs the command, and the history and the service follow. */
static void test_position_migrates(void **state)
{
        struct fixture *f = *state;
        json_t *rows = NULL, *reply = NULL;
        char path[128];

        call(f->api, "POST", "/edges",
             "{\"name\":\"e1\",\"addr\":\"10.0.0.1:7878\",\"x\":0,\"y\":0,\"capacity\":4}", NULL);
        call(f->api, "POST", "/edges",
             "{\"name\":\"e2\",\"addr\":\"10.0.0.2:7878\",\"x\":100,\"y\":0,\"capacity\":4}", NULL);
        assert_int_equal(call(f->api, "POST", "/services",
                              "{\"name\":\"web\",\"user\":\"u1\",\"edge\":\"e1\"}", NULL),
                         201);
        assert_int_equal(call(f->api, "POST", "/users/u1/position", "{\"x\":1,\"y\":0}", &reply),
                         200);
        assert_string_equal(em_json_str(reply, "action"), "stay");
        json_decref(reply);
        assert_int_equal(call(f->api, "POST", "/users/u1/position", "{\"x\":99,\"y\":0}", &reply),
                         200);
        assert_string_equal(em_json_str(reply, "action"), "migrate");
        assert_string_equal(em_json_str(reply, "target"), "e2");
        json_decref(reply);
        for (int i = 0; i < 500; i++) {
                call(f->api, "GET", "/migrations", NULL, &rows);
                const char *st =
                    em_json_str(json_array_get(rows, json_array_size(rows) - 1), "status");
                if (st && strcmp(st, "running") != 0)
                        break;
                json_decref(rows);
                rows = NULL;
                usleep(10000);
        }
        assert_non_null(rows);
        json_t *m = json_array_get(rows, json_array_size(rows) - 1);
        assert_string_equal(em_json_str(m, "kind"), "migrate");
        assert_string_equal(em_json_str(m, "status"), "done");
        json_decref(rows);
        call(f->api, "GET", "/services", NULL, &rows);
        assert_string_equal(em_json_str(json_array_get(rows, 0), "edge"), "e2");
        json_decref(rows);
        snprintf(path, sizeof(path), "%s/calls", f->dir);
        char *calls = NULL;
        assert_int_equal(em_read_file(path, 4096, &calls, NULL, NULL), 0);
        assert_non_null(strstr(calls, "e1 web 10.0.0.2:7878"));
        free(calls);
}

/* Whether GET /edges shows the edge at index i alive. */
static bool edge_alive(struct em_api *api, size_t i)
{
        json_t *rows = NULL;

        assert_int_equal(call(api, "GET", "/edges", NULL, &rows), 200);
        json_t *a = json_object_get(json_array_get(rows, i), "alive");
        assert_true(json_is_boolean(a));
        bool alive = json_is_true(a);
        json_decref(rows);
        return alive;
}

/* The SQLite store, as the etcd store's leases: an edge last seen (its
 * registration and last heartbeat, written here through a second
 * connection to the same database) longer ago than the edge TTL is dead,
 * is shown so and is never chosen as a target, until it heartbeats. */
static void test_dead_edge_not_chosen(void **state)
{
        struct fixture *f = *state;
        struct em_ctlstore *s = NULL;
        json_t *reply = NULL;
        em_error_t err = NULL;
        int64_t old = em_now_ms() - (f->o.etcd.edge_ttl_s + 1) * 1000LL;

        assert_int_equal(em_ctlstore_sqlite_open(f->dir, f->o.etcd.edge_ttl_s, &s, &err), 0);
        call(f->api, "POST", "/edges",
             "{\"name\":\"e1\",\"addr\":\"10.0.0.1:7878\",\"x\":0,\"y\":0,\"capacity\":4}", NULL);
        json_t *e2 = json_pack("{s:s, s:s, s:i, s:i, s:i}", "name", "e2", "addr", "10.0.0.2:7878",
                               "x", 100, "y", 0, "capacity", 4);
        assert_int_equal(s->ops->edge_register(s, e2, old, &err), 0);
        json_t *hb = json_object();
        assert_int_equal(s->ops->edge_heartbeat(s, "e2", hb, old, &err), 1);
        json_decref(hb);
        json_decref(e2);
        s->ops->close(s);
        assert_int_equal(call(f->api, "POST", "/services",
                              "{\"name\":\"web\",\"user\":\"u1\",\"edge\":\"e1\"}", NULL),
                         201);
        assert_true(edge_alive(f->api, 0));
        assert_false(edge_alive(f->api, 1));
        assert_int_equal(call(f->api, "POST", "/users/u1/position", "{\"x\":99,\"y\":0}", &reply),
                         200);
        assert_string_equal(em_json_str(reply, "action"), "stay");
        json_decref(reply);
        /* A heartbeat brings it back. */
        assert_int_equal(call(f->api, "POST", "/edges/e2/heartbeat", "{}", NULL), 200);
        assert_true(edge_alive(f->api, 1));
        assert_int_equal(call(f->api, "POST", "/users/u1/position", "{\"x\":99,\"y\":0}", &reply),
                         200);
        assert_string_equal(em_json_str(reply, "action"), "migrate");
        assert_string_equal(em_json_str(reply, "target"), "e2");
        json_decref(reply);
}

/* The edges' heartbeats carry RTTs to attachment points; a report naming
 * the user's attachment point is scheduled by them (e3, though e2 is
 * nearer on the map), one without it by x,y. Hostile RTTs are refused. */
static void test_position_by_rtt(void **state)
{
        struct fixture *f = *state;
        json_t *reply = NULL;
        static const char *const hb[] = {
            "{\"containers\":1,\"rtts\":{\"cell-7\":40}}",
            "{\"containers\":0,\"rtts\":{\"cell-7\":25}}",
            "{\"containers\":0,\"rtts\":{\"cell-7\":6.5}}",
        };

        for (int i = 0; i < 3; i++) {
                char body[160], url[64];
                snprintf(body, sizeof(body),
                         "{\"name\":\"e%d\",\"addr\":\"10.0.0.%d:7878\",\"x\":%d,\"y\":0,"
                         "\"capacity\":4}",
                         i + 1, i + 1, i * 100);
                assert_int_equal(call(f->api, "POST", "/edges", body, NULL), 201);
                snprintf(url, sizeof(url), "/edges/e%d/heartbeat", i + 1);
                assert_int_equal(call(f->api, "POST", url, hb[i], NULL), 200);
        }
        assert_int_equal(
            call(f->api, "POST", "/edges/e1/heartbeat", "{\"rtts\":{\"cell-7\":-1}}", NULL), 400);
        assert_int_equal(call(f->api, "POST", "/edges/e1/heartbeat", "{\"rtts\":[40]}", NULL), 400);
        assert_int_equal(call(f->api, "POST", "/services",
                              "{\"name\":\"web\",\"user\":\"u1\",\"edge\":\"e1\"}", NULL),
                         201);
        assert_int_equal(call(f->api, "POST", "/users/u1/position",
                              "{\"x\":90,\"y\":0,\"attach\":\"cell-7\"}", &reply),
                         200);
        assert_string_equal(em_json_str(reply, "action"), "migrate");
        assert_string_equal(em_json_str(reply, "target"), "e3");
        assert_string_equal(em_json_str(reply, "nearest_by"), "rtt");
        json_decref(reply);
        assert_int_equal(call(f->api, "POST", "/users/u2/position",
                              "{\"x\":90,\"y\":0,\"attach\":\"../x\"}", NULL),
                         400);
        assert_int_equal(call(f->api, "POST", "/users/u2/position", "{\"x\":90,\"y\":0}", &reply),
                         200);
        assert_string_equal(em_json_str(reply, "nearest_by"), "distance");
        json_decref(reply);
        call(f->api, "GET", "/edges", NULL, &reply);
        assert_true(json_number_value(json_object_get(
                        json_object_get(json_array_get(reply, 2), "rtts"), "cell-7")) == 6.5);
        json_decref(reply);
}

/* POST /migrations/ID/cancel: only a running migration can be cancelled;
 * an unknown or malformed id is 404, a finished one 409 with the reason. */
static void test_cancel_refusals(void **state)
{
        struct fixture *f = *state;
        json_t *reply = NULL;

        test_position_migrates(state); /* migration 1, done */
        assert_int_equal(call(f->api, "POST", "/migrations/1/cancel", "{}", &reply), 409);
        assert_non_null(strstr(em_json_str(reply, "error"), "not running (done)"));
        json_decref(reply);
        assert_int_equal(call(f->api, "POST", "/migrations/99/cancel", "{}", NULL), 404);
        assert_int_equal(call(f->api, "POST", "/migrations/x1/cancel", "{}", NULL), 404);
        assert_int_equal(call(f->api, "POST", "/migrations/-1/cancel", "{}", NULL), 404);
        call(f->api, "GET", "/migrations", NULL, &reply);
        assert_string_equal(em_json_str(json_array_get(reply, 0), "status"), "done");
        json_decref(reply);
}

static void test_metrics(void **state)
{
        struct fixture *f = *state;
        struct em_api_request rq = {"GET", "/metrics", NULL, "", 0, false};
        struct em_api_reply r = {0};
        const char *type;

        call(f->api, "POST", "/edges",
             "{\"name\":\"e1\",\"addr\":\"10.0.0.1:7878\",\"x\":0,\"y\":0,\"capacity\":3}", NULL);
        em_api_handle(f->api, &rq, &r);
        assert_int_equal(r.status, 200);
        char *text = em_api_reply_take(&r, &type);
        assert_non_null(text);
        assert_string_equal(type, "text/plain; version=0.0.4");
        assert_non_null(strstr(text, "edgemig_edge_capacity{edge=\"e1\"} 3\n"));
        assert_non_null(strstr(text, "edgemig_controller_refused_total 0\n"));
        assert_non_null(strstr(text, "edgemig_edge_bandwidth_bytes_per_second{edge=\"e1\"} 0\n"));
        assert_null(strstr(text, "_mbps"));
        assert_null(strstr(text, "_seconds_sum{kind"));
        free(text);
}

/* Each metric family is one group, its TYPE line right before its samples,
 * as the text format wants (the actions' and their seconds' were mixed). */
static void test_metrics_families(void **state)
{
        struct fixture *f = *state;
        struct em_api_request rq = {"GET", "/metrics", NULL, "", 0, false};
        struct em_api_reply r = {0};
        char cur[128] = "";
        const char *type;

        test_position_migrates(state);
        em_api_handle(f->api, &rq, &r);
        char *text = em_api_reply_take(&r, &type);
        assert_non_null(strstr(text, "edgemig_controller_action_seconds{kind=\"migrate\""));
        for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        snprintf(cur, sizeof(cur), "%.*s", (int)strcspn(line + 7, " "), line + 7);
                        continue;
                }
                size_t len = strcspn(line, "{ ");
                if (line[0] != '#' && (strlen(cur) != len || strncmp(cur, line, len) != 0))
                        fail_msg("'%s' is not in the group of its TYPE (now %s)", line, cur);
        }
        free(text);
}

/* With TLS, an edge acts only for itself and only --admin names may
 * register services. */
static void test_authorization(void **state)
{
        struct fixture *f = *state;
        const char *const admins[] = {"admin", NULL};
        const char *const edge[] = {"e1", NULL}, *const admin[] = {"admin", NULL};
        struct em_api_reply r = {0};
        struct em_api *api = NULL;
        em_error_t err = NULL;

        f->o.tls = true;
        f->o.admins = admins;
        em_api_close(f->api);
        f->api = NULL;
        assert_int_equal(em_api_open(f->dir, &f->o, &api, &err), 0);
        f->api = api;
        struct em_api_request rq = {"POST", "/services", edge, NULL, 0, false};
        assert_int_equal(em_api_authorize(api, &rq, "10.0.0.9", &r), -1);
        assert_int_equal(r.status, 403);
        em_api_reply_clear(&r);
        rq.names = admin;
        assert_int_equal(em_api_authorize(api, &rq, "10.0.0.9", &r), EM_AUTHZ_ALLOW);
        /* POST /edges by an edge: decided by the body's name. */
        struct em_api_request reg = {"POST", "/edges", edge, NULL, 0, false};
        assert_int_equal(em_api_authorize(api, &reg, "10.0.0.9", &r), EM_AUTHZ_NEEDS_BODY);
        reg.body = "{\"name\":\"e2\"}";
        reg.len = strlen(reg.body);
        assert_int_equal(em_api_authorize(api, &reg, "10.0.0.9", &r), -1);
        em_api_reply_clear(&r);
        reg.body = "{\"name\":\"e1\"}";
        reg.len = strlen(reg.body);
        assert_int_equal(em_api_authorize(api, &reg, "10.0.0.9", &r), EM_AUTHZ_ALLOW);
        em_api_count_refused(api);
        struct em_api_request m = {"GET", "/metrics", edge, "", 0, false};
        em_api_handle(api, &m, &r);
        assert_non_null(strstr(r.text, "edgemig_controller_refused_total 3\n"));
        em_api_reply_clear(&r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_register_and_list, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hostile_bodies, setup, teardown),
            cmocka_unit_test_setup_teardown(test_position_migrates, setup, teardown),
            cmocka_unit_test_setup_teardown(test_position_by_rtt, setup, teardown),
            cmocka_unit_test_setup_teardown(test_dead_edge_not_chosen, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_refusals, setup, teardown),
            cmocka_unit_test_setup_teardown(test_metrics_families, setup, teardown),
            cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
            cmocka_unit_test_setup_teardown(test_authorization, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
