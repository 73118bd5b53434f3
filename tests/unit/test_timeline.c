#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/report.h"
#include "migrate/common/timeline.h"
#include "util/cleanup.h"
#include "util/json.h"

/* The printed table of a report built as the source builds it. */
static char *print(struct em_report *r)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        em_timeline_print(f, em_report_json(r));
        fclose(f);
        return buf;
}

static struct em_report *migrated(const json_t *timing)
{
        struct em_report *r = em_report_new("m1", "web", "precopy", "10.0.0.2:7878");

        em_report_phase_begin(r, "precopy");
        em_report_round(r, 1, 8192, 5000, 2, 0, 12, 0);
        em_report_round_set(r, "left_bytes", json_integer(4096));
        em_report_phase_end(r, "precopy", 8192, 5000);
        em_report_set(r, "stop_reason", json_string("fits-downtime-target"));
        em_report_phase_begin(r, "final");
        em_report_mark(r, "source_stopped");
        em_report_phase_end(r, "final", 100, 60);
        usleep(30000);
        em_report_mark(r, "target_running");
        em_report_target_phases(r, timing);
        em_report_add_bytes(r, 8292, 5060);
        em_report_finish(r, true, NULL);
        return r;
}

static void test_target_phases_in_the_table(void **state)
{
        cleanup_json json_t *timing =
            json_pack("{s:i, s:i, s:i}", "verify_ms", 2, "restore_ms", 20, "route_ms", 5);
        cleanup_report struct em_report *r = migrated(timing);
        cleanup_free char *out = print(r);
        json_t *phases = json_object_get(em_report_json(r), "phases");

        assert_int_equal(json_array_size(phases), 5);
        json_t *restore = json_array_get(phases, 3);
        assert_string_equal(em_json_str(restore, "name"), "restore");
        assert_string_equal(em_json_str(restore, "side"), "target");
        assert_int_equal(em_json_int(restore, "duration_ms", -1), 20);
        /* The route step ends when RESTORE_OK arrived. */
        json_t *route = json_array_get(phases, 4);
        assert_int_equal(
            em_json_int(route, "end_ms", -1),
            em_json_int(json_object_get(em_report_json(r), "marks"), "target_running", -2));
        assert_non_null(strstr(out, "  restore    target "));
        assert_non_null(strstr(out, "  precopy    source "));
        assert_non_null(strstr(out, "round 1: 8192 dirty bytes, 5000 on the wire, 12 ms; 4096 "
                                    "bytes left"));
        assert_non_null(strstr(out, "pre-copy stopped: fits-downtime-target\n"));
        assert_non_null(strstr(out, "handoff time "));
}

/* The target's pre-warm ran before FINAL: its own phase, in time order
 * before the final step, outside the target's downtime steps. */
static void test_prewarm_phase(void **state)
{
        cleanup_json json_t *timing =
            json_pack("{s:i, s:i, s:i, s:i, s:i}", "verify_ms", 2, "restore_ms", 20, "route_ms", 5,
                      "prewarm_ms", 1, "prewarm_lead_ms", 1);
        cleanup_json json_t *huge = json_pack("{s:i, s:I, s:i}", "restore_ms", 20, "prewarm_ms",
                                              (json_int_t)1 << 62, "prewarm_lead_ms", 1);
        cleanup_report struct em_report *r = migrated(timing);
        cleanup_report struct em_report *h = migrated(huge);
        cleanup_free char *out = print(r);
        json_t *phases = json_object_get(em_report_json(r), "phases");
        size_t i, at = 99, verify = 0;
        json_t *p;

        assert_int_equal(json_array_size(phases), 6);
        json_array_foreach(phases, i, p)
        {
                if (strcmp(em_json_str(p, "name"), "prewarm") == 0)
                        at = i;
                if (strcmp(em_json_str(p, "name"), "verify") == 0)
                        verify = i;
        }
        assert_true(at < verify);
        assert_string_equal(em_json_str(json_array_get(phases, at), "side"), "target");
        assert_int_equal(
            em_json_int(json_object_get(em_report_json(r), "target_timing"), "prewarm_ms", -1), 1);
        assert_non_null(strstr(out, "  prewarm    target "));
        /* Before the request: dropped, the other steps kept. */
        assert_int_equal(json_array_size(json_object_get(em_report_json(h), "phases")), 3);
}

/* A hostile target's timing: unknown keys dropped, and any value that is
 * not a non-negative integer within the time since the final step began
 * drops the whole report, never a phase before the request. */
static void test_hostile_timing_is_bounded(void **state)
{
        cleanup_json json_t *huge = json_pack("{s:I}", "restore_ms", (json_int_t)1 << 60);
        cleanup_json json_t *neg = json_pack("{s:i}", "route_ms", -5);
        cleanup_json json_t *str = json_pack("{s:s}", "verify_ms", "soon");
        cleanup_json json_t *extra = json_pack("{s:i, s:s}", "restore_ms", 1, "evil", "x");
        const json_t *bad[] = {huge, neg, str};

        for (size_t i = 0; i < 3; i++) {
                cleanup_report struct em_report *r = migrated(bad[i]);
                json_t *j = em_report_json(r);
                assert_int_equal(json_array_size(json_object_get(j, "phases")), 2);
                assert_true(json_is_true(json_object_get(j, "target_timing_invalid")));
                assert_null(json_object_get(j, "target_timing"));
        }
        cleanup_report struct em_report *r = migrated(extra);
        json_t *kept = json_object_get(em_report_json(r), "target_timing");
        assert_int_equal(json_object_size(kept), 1);
        assert_int_equal(json_array_size(json_object_get(em_report_json(r), "phases")), 3);
        cleanup_json json_t *arr = json_array();
        cleanup_report struct em_report *notobj = migrated(arr);
        assert_true(json_is_true(json_object_get(em_report_json(notobj), "target_timing_invalid")));
        /* A target that reports nothing: no target phases, nothing invalid. */
        cleanup_report struct em_report *none = migrated(NULL);
        assert_null(json_object_get(em_report_json(none), "target_timing_invalid"));
        assert_int_equal(json_array_size(json_object_get(em_report_json(none), "phases")), 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_target_phases_in_the_table),
            cmocka_unit_test(test_hostile_timing_is_bounded),
            cmocka_unit_test(test_prewarm_phase),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
