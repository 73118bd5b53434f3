/* The etcd v3 JSON gateway's encoding and decoding, without etcd: base64
 * keys and values, prefix ranges, txn bodies, decimal-string numbers and
 * the fields proto3 leaves out (a failed txn, an expired lease), errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "platform/etcd.h"
#include "util/json.h"

static json_t *parse(const char *text)
{
        json_t *j = json_loads(text, 0, NULL);
        assert_non_null(j);
        return j;
}

static void test_base64(void **state)
{
        char *s = em_etcd_b64("foo", 3), *back = NULL;
        size_t len = 0;
        em_error_t err = NULL;

        assert_string_equal(s, "Zm9v");
        free(s);
        /* Longer than GnuTLS's 64-column lines: still one string. */
        char big[200];
        memset(big, 'x', sizeof(big));
        s = em_etcd_b64(big, sizeof(big));
        assert_null(strchr(s, '\n'));
        assert_int_equal(em_etcd_unb64(s, &back, &len, &err), 0);
        assert_int_equal(len, sizeof(big));
        assert_memory_equal(back, big, sizeof(big));
        free(back);
        free(s);
        assert_int_equal(em_etcd_unb64("", &back, &len, &err), 0);
        assert_int_equal(len, 0);
        free(back);
        assert_true(em_etcd_unb64("%%%not base64", &back, &len, &err) < 0);
        assert_non_null(strstr(em_error_msg(err), "not base64"));
        em_error_free(&err);
}

static void test_requests(void **state)
{
        cleanup_json json_t *r = em_etcd_range_req("/edgemig/edges/", true);
        cleanup_json json_t *p = em_etcd_put_req("k", "v", 7);
        cleanup_json json_t *p0 = em_etcd_put_req("k", "v", 0);
        char *end = em_etcd_prefix_end("/a/");

        assert_string_equal(end, "/a0"); /* '/' + 1 */
        free(end);
        assert_string_equal(em_json_str(r, "key"), "L2VkZ2VtaWcvZWRnZXMv");
        assert_string_equal(em_json_str(r, "range_end"), "L2VkZ2VtaWcvZWRnZXMw");
        assert_string_equal(em_json_str(p, "value"), "dg==");
        assert_string_equal(em_json_str(p, "lease"), "7"); /* int64 as a string */
        assert_null(json_object_get(p0, "lease"));
}

static void test_txn_request(void **state)
{
        json_t *cmps = json_array(), *ok = json_array(), *fail = json_array();

        json_array_append_new(cmps, em_etcd_cmp_create("L", 0));
        json_array_append_new(cmps, em_etcd_cmp_value("L", "me"));
        json_array_append_new(cmps, em_etcd_cmp_mod("L", 12));
        json_array_append_new(ok, em_etcd_op_put("L", "me", 99));
        json_array_append_new(fail, em_etcd_op_range("L"));
        cleanup_json json_t *t = em_etcd_txn_req(cmps, ok, fail);
        json_t *c0 = json_array_get(json_object_get(t, "compare"), 0);
        json_t *c1 = json_array_get(json_object_get(t, "compare"), 1);
        json_t *c2 = json_array_get(json_object_get(t, "compare"), 2);

        assert_string_equal(em_json_str(c0, "target"), "CREATE");
        assert_string_equal(em_json_str(c0, "result"), "EQUAL");
        assert_string_equal(em_json_str(c0, "create_revision"), "0");
        assert_string_equal(em_json_str(c1, "target"), "VALUE");
        assert_string_equal(em_json_str(c1, "value"), "bWU=");
        assert_string_equal(em_json_str(c2, "mod_revision"), "12");
        json_t *put =
            json_object_get(json_array_get(json_object_get(t, "success"), 0), "request_put");
        assert_string_equal(em_json_str(put, "lease"), "99");
        assert_non_null(
            json_object_get(json_array_get(json_object_get(t, "failure"), 0), "request_range"));
}

/* As etcd 3.4.23's gateway answers (recorded from one). */
static void test_parse_range(void **state)
{
        cleanup_json json_t *r =
            parse("{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":"
                  "\"2\",\"mod_revision\":\"3\",\"version\":\"1\",\"value\":\"YmFy\",\"lease\":"
                  "\"4111120492088835593\"}],\"count\":\"1\"}");
        cleanup_json json_t *empty = parse("{\"header\":{\"revision\":\"4\"}}");
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;
        em_error_t err = NULL;

        assert_int_equal(em_etcd_parse_kvs(r, &kvs, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(kvs[0].key, "foo");
        assert_string_equal(kvs[0].value, "bar");
        assert_int_equal(kvs[0].create_revision, 2);
        assert_int_equal(kvs[0].mod_revision, 3);
        assert_int_equal(kvs[0].lease, 4111120492088835593LL);
        em_etcd_kvs_free(kvs, n);
        assert_int_equal(em_etcd_header_revision(r), 2);
        assert_int_equal(em_etcd_parse_kvs(empty, &kvs, &n, &err), 0);
        assert_int_equal(n, 0);
}

static void test_parse_txn(void **state)
{
        cleanup_json json_t *won =
            parse("{\"header\":{\"revision\":\"3\"},\"succeeded\":true,\"responses\":[{"
                  "\"response_put\":{\"header\":{\"revision\":\"3\"}}}]}");
        /* A failed txn has no "succeeded" (proto3 default). */
        cleanup_json json_t *lost = parse(
            "{\"header\":{\"revision\":\"3\"},\"responses\":[{\"response_range\":{\"header\":{"
            "\"revision\":\"3\"},\"kvs\":[{\"key\":\"bGVhZGVy\",\"create_revision\":\"3\","
            "\"mod_revision\":\"3\",\"version\":\"1\",\"value\":\"YQ==\",\"lease\":\"5\"}],"
            "\"count\":\"1\"}}]}");
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;
        bool ok = false;
        em_error_t err = NULL;

        assert_int_equal(em_etcd_parse_txn(won, &ok, &kvs, &n, &err), 0);
        assert_true(ok);
        assert_int_equal(n, 0);
        assert_int_equal(em_etcd_parse_txn(lost, &ok, &kvs, &n, &err), 0);
        assert_false(ok);
        assert_int_equal(n, 1);
        assert_string_equal(kvs[0].key, "leader");
        assert_string_equal(kvs[0].value, "a");
        assert_int_equal(kvs[0].lease, 5);
        em_etcd_kvs_free(kvs, n);
}

static void test_parse_leases_and_errors(void **state)
{
        cleanup_json json_t *g = parse("{\"header\":{},\"ID\":\"4111\",\"TTL\":\"2\"}");
        cleanup_json json_t *ka =
            parse("{\"result\":{\"header\":{},\"ID\":\"4111\",\"TTL\":\"2\"}}");
        cleanup_json json_t *gone = parse("{\"result\":{\"header\":{},\"ID\":\"4111\"}}");
        cleanup_json json_t *e = parse("{\"error\":\"etcdserver: requested lease not found\","
                                       "\"message\":\"etcdserver: requested lease not found\","
                                       "\"code\":5}");
        cleanup_json json_t *bad = parse("[1]");
        int64_t id = 0, ttl = 0;
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;
        em_error_t err = NULL;

        assert_int_equal(em_etcd_parse_grant(g, &id, &ttl, &err), 0);
        assert_int_equal(id, 4111);
        assert_int_equal(ttl, 2);
        assert_int_equal(em_etcd_parse_keepalive(ka, &ttl, &err), 0);
        assert_int_equal(ttl, 2);
        assert_int_equal(em_etcd_parse_keepalive(gone, &ttl, &err), 0);
        assert_int_equal(ttl, 0);
        assert_true(em_etcd_parse_grant(gone, &id, &ttl, &err) < 0);
        em_error_free(&err);
        assert_true(em_etcd_parse_kvs(e, &kvs, &n, &err) < 0);
        assert_non_null(strstr(em_error_msg(err), "lease not found"));
        em_error_free(&err);
        assert_true(em_etcd_parse_kvs(bad, &kvs, &n, &err) < 0);
        em_error_free(&err);
        /* Hostile: a key that is not base64. */
        cleanup_json json_t *h = parse("{\"kvs\":[{\"key\":\"!!\"}]}");
        assert_true(em_etcd_parse_kvs(h, &kvs, &n, &err) < 0);
        assert_null(kvs);
        em_error_free(&err);
}

static void test_open_checks(void **state)
{
        struct em_etcd *e = NULL;
        em_error_t err = NULL;
        const struct em_etcd_opts ok = {"http://127.0.0.1:2379,http://127.0.0.1:2380/", NULL, NULL,
                                        NULL, 0};
        const struct em_etcd_opts tls_no_ca = {"https://h:2379", NULL, NULL, NULL, 0};
        const struct em_etcd_opts bad = {"h:2379", NULL, NULL, NULL, 0};

        assert_int_equal(em_etcd_open(&ok, &e, &err), 0);
        assert_int_equal(e->n, 2);
        assert_string_equal(e->urls[1], "http://127.0.0.1:2380");
        em_etcd_close(e);
        assert_true(em_etcd_open(&tls_no_ca, &e, &err) < 0);
        assert_non_null(strstr(em_error_msg(err), "--etcd-ca"));
        em_error_free(&err);
        assert_true(em_etcd_open(&bad, &e, &err) < 0);
        assert_non_null(strstr(em_error_msg(err), "http(s)://"));
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_base64),      cmocka_unit_test(test_requests),
            cmocka_unit_test(test_txn_request), cmocka_unit_test(test_parse_range),
            cmocka_unit_test(test_parse_txn),   cmocka_unit_test(test_parse_leases_and_errors),
            cmocka_unit_test(test_open_checks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
