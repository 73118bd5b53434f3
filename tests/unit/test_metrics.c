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

#include "migrate/common/report.h"
#include "platform/metrics.h"
#include "util/fsutil.h"

static char root[] = "/tmp/test_metrics.XXXXXX";

static void save_report(const char *id, bool ok, uint64_t raw, uint64_t wire)
{
        struct em_report *r = em_report_new(id, "web", "precopy", "t:1");

        em_report_mark(r, "source_stopped");
        em_report_mark(r, "target_running");
        em_report_add_bytes(r, raw, wire);
        em_report_finish(r, ok, ok ? NULL : "it broke");
        assert_int_equal(em_report_save(r, root, NULL), 0);
        em_report_free(&r);
}

static void write_file(const char *name, const char *text)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/migrations/%s", root, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_render(void **state)
{
        struct em_metrics_live live = {3, 1700000000};
        char *text = NULL;

        (void)state;
        assert_non_null(mkdtemp(root));
        assert_int_equal(em_metrics_render(root, &live, &text, NULL), 0); /* no reports yet */
        assert_non_null(strstr(text, "edgemig_migrations_total{result=\"success\"} 0\n"));
        free(text);
        save_report("a1", true, 1000, 400);
        save_report("a2", true, 2000, 600);
        save_report("a3", false, 50, 50);
        /* Hostile or damaged reports: wrong types count for nothing. */
        write_file("h1.json", "{\"ok\":true,\"handoff_ms\":\"9\",\"downtime_ms\":-5,"
                              "\"bytes_raw\":-1,\"bytes_wire\":1e300}");
        write_file("h2.json", "not json");
        assert_int_equal(em_metrics_render(root, &live, &text, NULL), 0);
        assert_non_null(strstr(text, "edgemig_migrations_total{result=\"success\"} 3\n"));
        assert_non_null(strstr(text, "edgemig_migrations_total{result=\"failure\"} 1\n"));
        assert_non_null(strstr(text, "edgemig_migration_handoff_seconds_count 2\n"));
        assert_non_null(strstr(text, "edgemig_migration_handoff_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert_non_null(strstr(text, "edgemig_migration_downtime_seconds_count 2\n"));
        assert_non_null(strstr(text, "edgemig_migration_bytes_total{encoding=\"raw\"} 3050\n"));
        assert_non_null(strstr(text, "edgemig_migration_bytes_total{encoding=\"wire\"} 1050\n"));
        assert_non_null(strstr(text, "edgemig_sessions_in_flight 3\n"));
        assert_non_null(strstr(text, "edgemig_build_info{version=\""));
        assert_non_null(strstr(text, "# TYPE edgemig_migration_handoff_seconds histogram\n"));
        free(text);
        em_rm_rf(root, NULL);
}

/* Sends req on one end of a socketpair, answers on the other; returns the
 * reply (static buffer). */
static const char *exchange(const char *req, size_t len, int *rc)
{
        static char out[8192];
        int sv[2];
        em_conn_t *c = NULL;
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "test", &c, NULL), 0);
        if (len > 0)
                assert_int_equal(write(sv[0], req, len), (ssize_t)len);
        shutdown(sv[0], SHUT_WR);
        *rc = em_metrics_answer(c, "a 1\n", 500, &err);
        em_error_free(&err);
        em_conn_free(&c);
        ssize_t n = read(sv[0], out, sizeof(out) - 1);
        out[n > 0 ? n : 0] = '\0';
        close(sv[0]);
        return out;
}

static void test_http(void **state)
{
        static const struct {
                const char *req, *status;
        } cases[] = {
            {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
            {"GET /metrics?x=1 HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
            {"GET /metrics HTTP/1.1\n\n", "HTTP/1.1 200 OK\r\n"},
            {"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404"},
            {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404"},
            {"POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405"},
            {"GET /metrics\r\n\r\n", "HTTP/1.1 400"},
            {"GET metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
            {"\r\n\r\n", "HTTP/1.1 400"},
            {"GET  HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
            {"GET /metrics SPDY/3\r\n\r\n", "HTTP/1.1 400"},
        };
        int rc;

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *out = exchange(cases[i].req, strlen(cases[i].req), &rc);
                if (strncmp(out, cases[i].status, strlen(cases[i].status)) != 0)
                        fail_msg("'%s' answered '%.40s'", cases[i].req, out);
                assert_int_equal(rc, 0);
        }
        const char *out = exchange("GET /metrics HTTP/1.1\r\n\r\n", 25, &rc);
        assert_non_null(strstr(out, "Content-Length: 4\r\n"));
        assert_non_null(strstr(out, "\r\n\r\na 1\n"));
        out = exchange("HEAD /metrics HTTP/1.1\r\n\r\n", 26, &rc);
        assert_non_null(strstr(out, "HTTP/1.1 200"));
        assert_null(strstr(out, "a 1"));
        /* No blank line before the end, or an endless head: no answer. */
        assert_string_equal(exchange("GET /metrics HTTP/1.1\r\n", 23, &rc), "");
        assert_int_equal(rc, -1);
        assert_string_equal(exchange("", 0, &rc), "");
        assert_int_equal(rc, -1);
        static char big[EM_METRICS_MAX_REQUEST + 100];
        memset(big, 'a', sizeof(big));
        assert_string_equal(exchange(big, sizeof(big), &rc), "");
        assert_int_equal(rc, -1);
}

static void test_label(void **state)
{
        char *l = em_metrics_label("a\"b\\c\nd");

        (void)state;
        assert_string_equal(l, "a\\\"b\\\\c\\nd");
        free(l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_render),
            cmocka_unit_test(test_http),
            cmocka_unit_test(test_label),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
