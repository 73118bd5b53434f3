#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/report.h"
#include "util/fsutil.h"
#include "util/json.h"

static void test_timeline_spans(void **state)
{
        cleanup_report struct em_report *r = em_report_new("m1", "web", "precopy", "10.0.0.2:7878");

        assert_non_null(r);
        em_report_phase_begin(r, "layers");
        em_report_phase_end(r, "layers", 100, 40);
        usleep(20000);
        em_report_mark(r, "source_stopped");
        usleep(30000);
        em_report_mark(r, "target_running");
        em_report_round(r, 1, 4096, 1000, 1, 0, 5, 0);
        em_report_add_bytes(r, 100, 40);
        em_report_finish(r, true, NULL);

        json_t *j = em_report_json(r);
        long long handoff = em_json_int(j, "handoff_ms", -1);
        long long down = em_json_int(j, "downtime_ms", -1);
        assert_true(handoff >= 50);
        assert_true(down >= 30 && down <= handoff);
        assert_int_equal(em_json_int(j, "bytes_wire", -1), 40);
        json_t *p = json_array_get(json_object_get(j, "phases"), 0);
        assert_string_equal(em_json_str(p, "name"), "layers");
        assert_int_equal(em_json_int(p, "bytes_raw", -1), 100);
        assert_int_equal(json_array_size(json_object_get(j, "rounds")), 1);
}

static void test_failed_has_error_and_no_downtime(void **state)
{
        cleanup_report struct em_report *r = em_report_new("m2", "web", "precopy", "t");
        em_report_mark(r, "source_stopped");
        em_report_finish(r, false, "link dropped");

        json_t *j = em_report_json(r);
        assert_false(json_is_true(json_object_get(j, "ok")));
        assert_string_equal(em_json_str(j, "error"), "link dropped");
        assert_null(json_object_get(j, "downtime_ms"));
}

static void test_save(void **state)
{
        char dir[] = "/tmp/em-report-XXXXXX";
        em_error_t err = NULL;
        cleanup_report struct em_report *r = em_report_new("m3", "web", "precopy", "t");

        assert_non_null(mkdtemp(dir));
        em_report_finish(r, true, NULL);
        assert_int_equal(em_report_save(r, dir, &err), 0);
        char path[256];
        snprintf(path, sizeof(path), "%s/migrations/m3.json", dir);
        json_t *j = NULL;
        assert_int_equal(em_json_load_file(path, 1 << 20, &j, &err), 0);
        assert_string_equal(em_json_str(j, "container"), "web");
        json_decref(j);
        assert_int_equal(em_rm_rf(dir, &err), 0);
}

/* Saves a finished report for target with a measured link rate, ok or not. */
static void save_one(const char *root, const char *id, const char *target, double bps, bool ok)
{
        cleanup_report struct em_report *r = em_report_new(id, "web", "precopy", target);
        em_error_t err = NULL;

        em_report_set(r, "bandwidth_bps", json_real(bps));
        em_report_finish(r, ok, ok ? NULL : "failed");
        assert_int_equal(em_report_save(r, root, &err), 0);
        usleep(20000); /* distinct file times: newest first is by mtime */
}

static void test_peer_bandwidth_from_saved_reports(void **state)
{
        char dir[] = "/tmp/em-report-XXXXXX";
        em_error_t err = NULL;

        (void)state;
        assert_non_null(mkdtemp(dir));
        assert_true(em_report_peer_bandwidth(dir, "b:1", 60000) == 0); /* no reports */
        save_one(dir, "r1", "b:1", 1e6, true);
        save_one(dir, "r2", "c:1", 9e6, true);
        save_one(dir, "r3", "b:1", 2e6, true);
        save_one(dir, "r4", "b:1", 0, true);    /* nothing measured */
        save_one(dir, "r5", "b:1", 7e6, false); /* failed */
        /* The newest successful measurement to that target. */
        assert_true(em_report_peer_bandwidth(dir, "b:1", 60000) == 2e6);
        assert_true(em_report_peer_bandwidth(dir, "c:1", 60000) == 9e6);
        assert_true(em_report_peer_bandwidth(dir, "d:1", 60000) == 0);
        /* Too old to stand in for a measurement. */
        usleep(30000);
        assert_true(em_report_peer_bandwidth(dir, "b:1", 10) == 0);
        assert_int_equal(em_rm_rf(dir, &err), 0);
}

static double real(const json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);

        assert_true(json_is_real(v));
        return json_real_value(v);
}

static void test_rusage_json_adds_children(void **state)
{
        struct rusage self = {.ru_utime = {1, 250000}, .ru_stime = {0, 500000}, .ru_maxrss = 2048};
        struct rusage kids = {.ru_utime = {2, 0}, .ru_stime = {0, 250001}, .ru_maxrss = 65536};
        cleanup_json json_t *j = em_rusage_json(&self, &kids);

        assert_non_null(j);
        assert_true(real(j, "user_s") == 3.25);
        assert_true(real(j, "sys_s") == 0.750001);
        assert_true(real(j, "cpu_s") == 4.000001);
        assert_true(real(j, "children_cpu_s") == 2.250001);
        assert_int_equal(em_json_int(j, "max_rss_kb", -1), 65536);
        assert_int_equal(em_json_int(j, "children_max_rss_kb", -1), 65536);
        /* The parent's own peak wins when it is the larger one. */
        self.ru_maxrss = 100000;
        cleanup_json json_t *k = em_rusage_json(&self, &kids);
        assert_int_equal(em_json_int(k, "max_rss_kb", -1), 100000);
}

static void test_rusage_json_self_only(void **state)
{
        struct rusage self = {.ru_utime = {0, 1}, .ru_stime = {0, 0}, .ru_maxrss = 7};
        cleanup_json json_t *j = em_rusage_json(&self, NULL);

        assert_non_null(j);
        assert_true(real(j, "cpu_s") == 0.000001);
        assert_int_equal(em_json_int(j, "max_rss_kb", -1), 7);
        assert_null(json_object_get(j, "children_cpu_s"));
        assert_null(json_object_get(j, "children_max_rss_kb"));
}

/* A child that burns ~60 ms of CPU and is waited for shows up in _now. */
static void test_rusage_json_now_counts_waited_children(void **state)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                struct timespec t0, t;
                volatile unsigned long x = 0;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
                do {
                        for (int i = 0; i < 100000; i++)
                                x += (unsigned long)i;
                        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
                } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
                         60000000L);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        cleanup_json json_t *j = em_rusage_json_now();
        assert_non_null(j);
        assert_true(real(j, "children_cpu_s") >= 0.05);
        assert_true(real(j, "cpu_s") >= real(j, "children_cpu_s"));
        assert_true(em_json_int(j, "max_rss_kb", 0) > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_timeline_spans),
            cmocka_unit_test(test_failed_has_error_and_no_downtime),
            cmocka_unit_test(test_save),
            cmocka_unit_test(test_peer_bandwidth_from_saved_reports),
            cmocka_unit_test(test_rusage_json_adds_children),
            cmocka_unit_test(test_rusage_json_self_only),
            cmocka_unit_test(test_rusage_json_now_counts_waited_children),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
