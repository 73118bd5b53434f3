#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "probe/probe.h"
#include "util/cleanup.h"

static int parse(const char *s, struct em_resp_reply *r, size_t *used)
{
        em_error_t err = NULL;
        int rc = em_resp_parse(s, strlen(s), r, used, &err);
        if (rc < 0)
                assert_non_null(err);
        else
                assert_null(err);
        em_error_free(&err);
        return rc;
}

static void test_resp_complete_replies(void **state)
{
        struct em_resp_reply r;
        size_t used;

        assert_int_equal(parse("+OK\r\n", &r, &used), 1);
        assert_int_equal(r.type, EM_RESP_SIMPLE);
        assert_int_equal(r.len, 2);
        assert_memory_equal(r.str, "OK", 2);
        assert_int_equal(used, 5);

        assert_int_equal(parse("-ERR wrong type\r\n+OK\r\n", &r, &used), 1);
        assert_int_equal(r.type, EM_RESP_ERROR);
        assert_int_equal(used, 17);

        assert_int_equal(parse(":-42\r\n", &r, &used), 1);
        assert_int_equal(r.type, EM_RESP_INTEGER);
        assert_int_equal(r.integer, -42);

        assert_int_equal(parse("$3\r\nv17\r\n", &r, &used), 1);
        assert_int_equal(r.type, EM_RESP_BULK);
        assert_int_equal(r.len, 3);
        assert_memory_equal(r.str, "v17", 3);
        assert_int_equal(used, 9);

        /* A bulk string may contain CR and LF. */
        assert_int_equal(parse("$4\r\na\r\nb\r\n", &r, &used), 1);
        assert_int_equal(r.len, 4);

        assert_int_equal(parse("$-1\r\n", &r, &used), 1);
        assert_int_equal(r.type, EM_RESP_NIL);
        assert_int_equal(used, 5);
}

static void test_resp_needs_more(void **state)
{
        struct em_resp_reply r;
        size_t used;
        const char *full = "$5\r\nhello\r\n";

        /* Every strict prefix is incomplete, never an error. */
        for (size_t n = 0; n < strlen(full); n++) {
                em_error_t err = NULL;
                assert_int_equal(em_resp_parse(full, n, &r, &used, &err), 0);
                assert_null(err);
        }
        assert_int_equal(parse("+O", &r, &used), 0);
        assert_int_equal(parse("+OK\r", &r, &used), 0);
}

static void test_resp_rejects_malformed(void **state)
{
        struct em_resp_reply r;
        size_t used;

        assert_int_equal(parse("*1\r\n$1\r\na\r\n", &r, &used), -1); /* arrays: not ours */
        assert_int_equal(parse("OK\r\n", &r, &used), -1);
        assert_int_equal(parse("+OK\n", &r, &used), -1);          /* bare LF */
        assert_int_equal(parse("$3\r\nabcd\r\n", &r, &used), -1); /* length lies */
        assert_int_equal(parse("$x\r\n", &r, &used), -1);
        assert_int_equal(parse("$-2\r\n", &r, &used), -1);
        assert_int_equal(parse("$\r\n", &r, &used), -1);
        assert_int_equal(parse("$99999999999\r\n", &r, &used), -1); /* over the cap */
        assert_int_equal(parse(":12a\r\n", &r, &used), -1);
        assert_int_equal(parse(":\r\n", &r, &used), -1);
}

static void test_resp_command(void **state)
{
        const char *argv[] = {"SET", "k1", "v1"};
        size_t len;
        cleanup_free char *c = em_resp_command(&len, 3, argv);
        const char *want = "*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n";

        assert_non_null(c);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(c, want, len);
}

static void test_redis_value(void **state)
{
        cleanup_free char *a = em_probe_redis_value(17, 0);
        cleanup_free char *b = em_probe_redis_value(17, 8);
        cleanup_free char *c = em_probe_redis_value(123456, 3);

        assert_string_equal(a, "v17");
        assert_string_equal(b, "v17.....");
        assert_string_equal(c, "v123456");
}

static void test_face_reply(void **state)
{
        em_error_t err = NULL;
        long long seq = 0;
        const char *good = "{\"faces\": [[1, 2, 3, 4]], \"n\": 1, \"seq\": 7}";

        assert_int_equal(em_face_check_reply(good, strlen(good), -1, &seq, &err), 0);
        assert_int_equal(seq, 7);
        assert_int_equal(em_face_check_reply(good, strlen(good), 1, &seq, &err), 0);
        assert_int_equal(em_face_check_reply(good, strlen(good), 2, &seq, &err), -1);
        assert_int_equal(em_error_status(err), 0); /* wrong content, not a protocol error */
        em_error_free(&err);

        const char *bad = "{\"error\": \"cannot decode image\", \"seq\": 8}";
        assert_int_equal(em_face_check_reply(bad, strlen(bad), -1, &seq, &err), -1);
        assert_int_equal(em_error_status(err), EPROTO);
        em_error_free(&err);
        assert_int_equal(em_face_check_reply("{\"n\": 1", 7, -1, &seq, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_face_check_reply("{\"n\": 1, \"seq\": 2}", 18, -1, &seq, &err), -1);
        em_error_free(&err);
}

static void record(struct em_probe_stats *s, double t_send, double t_reply, enum em_probe_outcome o)
{
        em_error_t err = NULL;
        assert_int_equal(em_probe_record(s, t_send, t_reply, o, &err), 0);
}

static void test_stats_gaps(void **state)
{
        cleanup_probe_stats struct em_probe_stats s;

        em_probe_stats_init(&s, 100);
        record(&s, 0, 1, EM_PROBE_OK);
        record(&s, 10, 11, EM_PROBE_OK);
        /* An outage: one failed request, then a late success. */
        record(&s, 20, 25, EM_PROBE_ERROR);
        record(&s, 30, 1530, EM_PROBE_OK); /* 1519 ms after the last success */
        record(&s, 1540, 1541, EM_PROBE_VERIFY);
        record(&s, 1550, 1551, EM_PROBE_OK);
        record(&s, 1700, 1800, EM_PROBE_OK);      /* 249 ms: listed too */
        record(&s, 1900, 1900, EM_PROBE_STOPPED); /* ignored */

        assert_int_equal(s.requests, 7);
        assert_int_equal(s.ok, 5);
        assert_int_equal(s.errors, 1);
        assert_int_equal(s.verify_failures, 1);
        assert_int_equal(s.resets, 0);
        assert_float_equal(s.max_gap_ms, 1519, 1e-9);
        assert_float_equal(s.max_gap_start_ms, 11, 1e-9);
        assert_int_equal(s.n_gaps, 2);
        assert_float_equal(s.gaps[0].start_ms, 11, 1e-9);
        assert_float_equal(s.gaps[0].len_ms, 1519, 1e-9);
        assert_float_equal(s.gaps[1].start_ms, 1551, 1e-9);
        assert_float_equal(s.gaps[1].len_ms, 249, 1e-9);
}

static void test_stats_percentiles_and_json(void **state)
{
        cleanup_probe_stats struct em_probe_stats s;

        em_probe_stats_init(&s, 100);
        for (int i = 1; i <= 100; i++)
                record(&s, i * 10, i * 10 + i, EM_PROBE_OK); /* latency i ms */
        record(&s, 2000, 2000, EM_PROBE_RESET);
        assert_float_equal(em_probe_latency_pct(&s, 50), 50, 1e-9);
        assert_float_equal(em_probe_latency_pct(&s, 99), 99, 1e-9);
        assert_float_equal(em_probe_latency_pct(&s, 100), 100, 1e-9);
        s.last_acked = 42;

        json_t *j = em_probe_stats_json(&s, 1000000, 2500);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "requests")), 101);
        assert_int_equal(json_integer_value(json_object_get(j, "resets")), 1);
        assert_int_equal(json_integer_value(json_object_get(j, "last_acked")), 42);
        assert_float_equal(json_real_value(json_object_get(j, "open_gap_ms")), 2500 - 1100, 1e-6);
        assert_int_equal(json_array_size(json_object_get(j, "gaps")), 0);
        json_decref(j);
}

static void test_stats_empty(void **state)
{
        cleanup_probe_stats struct em_probe_stats s;

        em_probe_stats_init(&s, 100);
        assert_float_equal(em_probe_latency_pct(&s, 50), 0, 1e-9);
        record(&s, 0, 5, EM_PROBE_TIMEOUT);
        assert_int_equal(s.timeouts, 1);
        assert_int_equal(s.errors, 1);
        assert_float_equal(s.max_gap_ms, 0, 1e-9);
        json_t *j = em_probe_stats_json(&s, 0, 300);
        assert_float_equal(json_real_value(json_object_get(j, "open_gap_ms")), 300, 1e-6);
        json_decref(j);
}

static void test_csv(void **state)
{
        cleanup_probe_stats struct em_probe_stats s;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        em_error_t err = NULL;

        em_probe_stats_init(&s, 100);
        record(&s, 0, 1.5, EM_PROBE_OK);
        record(&s, 10, 12, EM_PROBE_VERIFY);
        assert_int_equal(em_probe_write_csv(&s, f, &err), 0);
        fclose(f);
        assert_string_equal(buf, "t_send_ms,latency_ms,ok\n0.000,1.500,1\n10.000,2.000,0\n");
        free(buf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_resp_complete_replies),
            cmocka_unit_test(test_resp_needs_more),
            cmocka_unit_test(test_resp_rejects_malformed),
            cmocka_unit_test(test_resp_command),
            cmocka_unit_test(test_redis_value),
            cmocka_unit_test(test_face_reply),
            cmocka_unit_test(test_stats_gaps),
            cmocka_unit_test(test_stats_percentiles_and_json),
            cmocka_unit_test(test_stats_empty),
            cmocka_unit_test(test_csv),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
