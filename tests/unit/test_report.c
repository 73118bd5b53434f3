#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/report.h"
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

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_timeline_spans),
            cmocka_unit_test(test_failed_has_error_and_no_downtime),
            cmocka_unit_test(test_save),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
