/* Control requests (platform/control.h): parsing and validation of what the
 * controller sends, the allow-controller check, refusals answered on the
 * wire, and the put-back of the first frame the daemon dispatches on. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "platform/control.h"
#include "platform/control_client.h"
#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/json.h"

static int parse(const char *s, struct em_control_req *r, em_error_t *err)
{
        return em_control_req_parse(s, strlen(s), r, err);
}

static void test_parse_ok(void **state)
{
        struct em_control_req r;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(
            parse("{\"op\":\"migrate\",\"service\":\"redis\",\"to\":\"10.77.2.2:7878\"}", &r, &err),
            0);
        assert_int_equal(r.op, EM_CONTROL_MIGRATE);
        assert_string_equal(r.service, "redis");
        assert_string_equal(r.to, "10.77.2.2:7878");
        assert_int_equal(r.mode, EM_MIGRATE_PRECOPY);
        assert_int_equal(r.id, 0);

        assert_int_equal(parse("{\"op\":\"migrate\",\"service\":\"a.b-c_1\",\"to\":\"[::1]:1\","
                               "\"mode\":\"hybrid\",\"id\":42}",
                               &r, &err),
                         0);
        assert_int_equal(r.mode, EM_MIGRATE_HYBRID);
        assert_int_equal(r.id, 42);

        assert_int_equal(
            parse("{\"op\":\"prepare\",\"service\":\"web\",\"to\":\"edge3:7878\"}", &r, &err), 0);
        assert_int_equal(r.op, EM_CONTROL_PREPARE);
        assert_int_equal(r.mode, EM_MIGRATE_PREPARE);
}

static void expect_refused(const char *json, const char *words)
{
        struct em_control_req r;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(parse(json, &r, &err), -1);
        if (strstr(em_error_msg(err), words) == NULL)
                fail_msg("'%s' -> '%s' lacks '%s'", json, em_error_msg(err), words);
}

static void test_parse_refuses(void **state)
{
        expect_refused("[1]", "not a JSON object");
        expect_refused("{\"op\":\"migrate\"", "control request");
        expect_refused("{\"op\":\"delete\",\"service\":\"a\",\"to\":\"h:1\"}", "\"op\" must be");
        expect_refused("{\"service\":\"a\",\"to\":\"h:1\"}", "\"op\" must be");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\",\"privileged\":true}",
                       "unknown field \"privileged\"");
        expect_refused("{\"op\":\"migrate\",\"service\":\"../etc\",\"to\":\"h:1\"}",
                       "container name");
        expect_refused("{\"op\":\"migrate\",\"service\":\".hidden\",\"to\":\"h:1\"}",
                       "container name");
        expect_refused("{\"op\":\"migrate\",\"service\":1,\"to\":\"h:1\"}", "container name");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\"}", "\"to\" must be");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"nohostport\"}",
                       "\"to\" must be");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:99999\"}",
                       "\"to\" must be");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h x:1\"}", "\"to\" must be");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\",\"mode\":\"warp\"}",
                       "unknown mode");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\",\"mode\":\"prepare\"}",
                       "\"op\": \"prepare\"");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\",\"mode\":7}",
                       "\"mode\" must be a string");
        expect_refused("{\"op\":\"prepare\",\"service\":\"a\",\"to\":\"h:1\",\"mode\":\"precopy\"}",
                       "migrate only");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\",\"id\":-1}",
                       "\"id\" must be");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\",\"id\":\"7\"}",
                       "\"id\" must be");

        char big[EM_CONTROL_MAX_LEN + 64];
        memset(big, ' ', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "{}", 2);
        expect_refused(big, "at most");
}

static void test_json_round_trip(void **state)
{
        struct em_control_req r = {.op = EM_CONTROL_MIGRATE, .mode = EM_MIGRATE_AUTO, .id = 9};
        struct em_control_req back;
        cleanup_error em_error_t err = NULL;

        snprintf(r.service, sizeof(r.service), "svc");
        snprintf(r.to, sizeof(r.to), "10.0.0.1:7878");
        cleanup_json json_t *j = em_control_req_json(&r);
        assert_non_null(j);
        cleanup_free char *s = json_dumps(j, JSON_COMPACT);
        assert_int_equal(parse(s, &back, &err), 0);
        assert_int_equal(back.op, r.op);
        assert_int_equal(back.mode, r.mode);
        assert_int_equal(back.id, 9);
        assert_string_equal(back.service, "svc");
        assert_string_equal(back.to, r.to);

        r.op = EM_CONTROL_PREPARE;
        r.mode = EM_MIGRATE_PREPARE;
        r.id = 0;
        cleanup_json json_t *p = em_control_req_json(&r);
        assert_null(json_object_get(p, "mode")); /* prepare carries no mode */
        assert_null(json_object_get(p, "id"));
        assert_string_equal(em_json_str(p, "op"), "prepare");
}

/* Issue 17: a bandwidth cap, throttling and progress in the request, and
 * the cancel op, parsed strictly and built back. */
static void test_steering_and_cancel(void **state)
{
        struct em_control_req r, back;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(parse("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\","
                               "\"max_rate_bps\":20000000,\"auto_converge\":true,"
                               "\"progress\":true}",
                               &r, &err),
                         0);
        assert_int_equal(r.max_rate_bps, 20000000);
        assert_true(r.auto_converge && r.progress);
        cleanup_json json_t *j = em_control_req_json(&r);
        cleanup_free char *s = json_dumps(j, JSON_COMPACT);
        assert_int_equal(parse(s, &back, &err), 0);
        assert_int_equal(back.max_rate_bps, 20000000);
        assert_true(back.auto_converge && back.progress);

        assert_int_equal(parse("{\"op\":\"cancel\",\"session\":"
                               "\"0123456789abcdef0123456789abcdef\",\"id\":3}",
                               &r, &err),
                         0);
        assert_int_equal(r.op, EM_CONTROL_CANCEL);
        assert_string_equal(r.session, "0123456789abcdef0123456789abcdef");
        cleanup_json json_t *c = em_control_req_json(&r);
        assert_string_equal(em_json_str(c, "op"), "cancel");
        assert_string_equal(em_json_str(c, "session"), r.session);
        assert_null(json_object_get(c, "service"));

        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\","
                       "\"max_rate_bps\":10}",
                       "8000 to 10^15");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\","
                       "\"max_rate_bps\":\"20M\"}",
                       "8000 to 10^15");
        expect_refused("{\"op\":\"prepare\",\"service\":\"a\",\"to\":\"h:1\","
                       "\"auto_converge\":true}",
                       "migrate only");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\","
                       "\"progress\":1}",
                       "true or false");
        expect_refused("{\"op\":\"cancel\",\"session\":\"../../etc/passwd\"}", "session id");
        expect_refused("{\"op\":\"cancel\"}", "session id");
        expect_refused("{\"op\":\"cancel\",\"session\":\"0123456789abcdef0123456789abcdef\","
                       "\"service\":\"a\"}",
                       "does not apply to cancel");
        expect_refused("{\"op\":\"migrate\",\"service\":\"a\",\"to\":\"h:1\","
                       "\"session\":\"0123456789abcdef0123456789abcdef\"}",
                       "cancel only");
}

static void test_allowed(void **state)
{
        const char *const list[] = {"controller", "ctl-2", NULL};
        const char *const empty[] = {NULL};

        assert_true(em_control_allowed("controller", list));
        assert_true(em_control_allowed("Controller", list)); /* like the TLS allow-list */
        assert_true(em_control_allowed("ctl-2", list));
        assert_false(em_control_allowed("h2", list)); /* a peer edge */
        assert_false(em_control_allowed("controller2", list));
        assert_false(em_control_allowed(NULL, list)); /* plain TCP: no identity */
        assert_false(em_control_allowed("controller", NULL));
        assert_false(em_control_allowed("controller", empty));
}

static void pair(em_conn_t **a, em_conn_t **b)
{
        int sv[2];
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "controller-side", a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "edge-side", b, &err), 0);
}

/* The edge answers a refused request on the wire before it returns. */
static void refused_as(const char *peer, const char *const *allow, const char *words)
{
        cleanup_conn em_conn_t *ctl = NULL, *edge = NULL;
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0};
        cleanup_json json_t *reply = NULL;
        struct em_config cfg = {0};
        struct em_control_server s = {.allow_controllers = allow};
        const char *req = "{\"op\":\"migrate\",\"service\":\"redis\",\"to\":\"10.77.3.2:7878\"}";

        pair(&ctl, &edge);
        assert_int_equal(em_conn_send_str(ctl, EM_FRAME_CONTROL, req, &err), 0);
        assert_int_equal(em_conn_recv(edge, &f, &err), 1);
        assert_int_equal(em_control_serve(&cfg, edge, peer, &f, &s, &err), -1);
        assert_int_equal(em_error_status(err), EACCES);
        assert_non_null(strstr(em_error_msg(err), words));
        em_error_free(&err);
        assert_int_equal(em_proto_recv_json(ctl, EM_FRAME_CONTROL_REPLY, &reply, &err), 0);
        assert_true(json_is_false(json_object_get(reply, "ok")));
        assert_non_null(strstr(em_json_str(reply, "error"), words));
        assert_null(json_object_get(reply, "report"));
}

static void test_serve_refuses(void **state)
{
        const char *const list[] = {"controller", NULL};

        refused_as("h2", list, "'h2' is not a controller of this edge");
        refused_as(NULL, list, "need mutual TLS");
        refused_as("controller", NULL, "--allow-controller NAME");
}

/* Op cancel from an allowed controller runs `migrate --cancel` on this
 * edge's root: a session that does not run here is answered so. */
static void test_serve_cancel_unknown(void **state)
{
        cleanup_conn em_conn_t *ctl = NULL, *edge = NULL;
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0};
        cleanup_json json_t *reply = NULL;
        char root[] = "/tmp/em-control-XXXXXX";
        struct em_config cfg = {.root = mkdtemp(root)};
        const char *const list[] = {"controller", NULL};
        struct em_control_server s = {.allow_controllers = list};

        assert_non_null(cfg.root);
        pair(&ctl, &edge);
        assert_int_equal(em_conn_send_str(ctl, EM_FRAME_CONTROL,
                                          "{\"op\":\"cancel\",\"session\":"
                                          "\"0123456789abcdef0123456789abcdef\"}",
                                          &err),
                         0);
        assert_int_equal(em_conn_recv(edge, &f, &err), 1);
        assert_int_equal(em_control_serve(&cfg, edge, "controller", &f, &s, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        assert_int_equal(em_proto_recv_json(ctl, EM_FRAME_CONTROL_REPLY, &reply, &err), 0);
        assert_true(json_is_false(json_object_get(reply, "ok")));
        assert_non_null(strstr(em_json_str(reply, "error"), "no migration with session"));
        rmdir(root);
}

static void count_progress(void *ud, const json_t *p)
{
        int *n = ud;
        if (em_json_str(p, "phase") != NULL)
                (*n)++;
}

/* The controller's side of a request with "progress": true: progress
 * replies go to the callback, the reply without "progress" ends it. */
static void test_exchange_progress(void **state)
{
        cleanup_conn em_conn_t *ctl = NULL, *edge = NULL;
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0};
        cleanup_json json_t *reply = NULL;
        struct em_control_req req = {.op = EM_CONTROL_MIGRATE, .progress = true};
        int n = 0;

        snprintf(req.service, sizeof(req.service), "web");
        snprintf(req.to, sizeof(req.to), "10.0.0.2:7878");
        pair(&ctl, &edge);
        /* The edge's answers are queued before the request is even read. */
        assert_int_equal(em_conn_send_str(edge, EM_FRAME_CONTROL_REPLY,
                                          "{\"progress\":{\"phase\":\"precopy\"}}", &err),
                         0);
        assert_int_equal(
            em_conn_send_str(edge, EM_FRAME_CONTROL_REPLY, "{\"progress\":\"junk\"}", &err), 0);
        assert_int_equal(em_conn_send_str(edge, EM_FRAME_CONTROL_REPLY,
                                          "{\"progress\":{\"phase\":\"final\"}}", &err),
                         0);
        assert_int_equal(em_conn_send_str(edge, EM_FRAME_CONTROL_REPLY, "{\"ok\":true}", &err), 0);
        assert_int_equal(
            em_control_exchange_progress(ctl, &req, 5000, count_progress, &n, &reply, &err), 0);
        assert_int_equal(n, 2);
        assert_true(json_is_true(json_object_get(reply, "ok")));
        assert_int_equal(em_conn_recv(edge, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_CONTROL);
        assert_non_null(strstr((const char *)f.payload, "\"progress\":true"));
}

static void test_serve_bad_request(void **state)
{
        cleanup_conn em_conn_t *ctl = NULL, *edge = NULL;
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0};
        cleanup_json json_t *reply = NULL;
        struct em_config cfg = {0};
        const char *const list[] = {"controller", NULL};
        struct em_control_server s = {.allow_controllers = list};

        pair(&ctl, &edge);
        assert_int_equal(em_conn_send_str(ctl, EM_FRAME_CONTROL,
                                          "{\"op\":\"migrate\",\"service\":\"x\",\"to\":\"bad\"}",
                                          &err),
                         0);
        assert_int_equal(em_conn_recv(edge, &f, &err), 1);
        assert_int_equal(em_control_serve(&cfg, edge, "controller", &f, &s, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_proto_recv_json(ctl, EM_FRAME_CONTROL_REPLY, &reply, &err), 0);
        assert_true(json_is_false(json_object_get(reply, "ok")));
        assert_non_null(strstr(em_json_str(reply, "error"), "ADDR:PORT"));
}

/* The daemon reads the first frame to dispatch, then hands HELLO on. */
static void test_unrecv(void **state)
{
        cleanup_conn em_conn_t *a = NULL, *b = NULL;
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0}, g = {0}, h = {0};

        pair(&a, &b);
        assert_int_equal(em_conn_send_str(a, EM_FRAME_HELLO, "{\"first\":1}", &err), 0);
        assert_int_equal(em_conn_send_str(a, EM_FRAME_LAYERS_HAVE, "{\"second\":2}", &err), 0);
        assert_int_equal(em_conn_recv(b, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_HELLO);
        assert_int_equal(em_conn_unrecv(b, &f, &err), 0);
        assert_null(f.payload); /* taken over */
        struct em_frame other = {0};
        assert_int_equal(em_conn_unrecv(b, &other, &err), -1); /* one at most */
        assert_int_equal(em_error_status(err), EBUSY);
        em_error_free(&err);
        assert_int_equal(em_conn_recv(b, &g, &err), 1);
        assert_int_equal(g.hdr.type, EM_FRAME_HELLO);
        assert_string_equal((const char *)g.payload, "{\"first\":1}");
        assert_int_equal(em_conn_recv(b, &h, &err), 1); /* then the stream goes on in order */
        assert_int_equal(h.hdr.type, EM_FRAME_LAYERS_HAVE);
        assert_string_equal((const char *)h.payload, "{\"second\":2}");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_ok),
            cmocka_unit_test(test_parse_refuses),
            cmocka_unit_test(test_json_round_trip),
            cmocka_unit_test(test_allowed),
            cmocka_unit_test(test_serve_refuses),
            cmocka_unit_test(test_serve_bad_request),
            cmocka_unit_test(test_unrecv),
            cmocka_unit_test(test_steering_and_cancel),
            cmocka_unit_test(test_serve_cancel_unknown),
            cmocka_unit_test(test_exchange_progress),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
