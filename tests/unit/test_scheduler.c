#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "platform/scheduler.h"

/* Three edges on a line, 100 apart: e1 (0,0), e2 (100,0), e3 (200,0). */
static struct em_sched_edge edges[3] = {
    {"e1", 0, 0, 4, 1, 100, 0},
    {"e2", 100, 0, 4, 0, 100, 0},
    {"e3", 200, 0, 4, 0, 100, 0},
};

static void reset_edges(void)
{
        for (int i = 0; i < 3; i++) {
                edges[i].capacity = 4;
                edges[i].load = 0;
                edges[i].bandwidth_mbps = 100;
                edges[i].rtt_ms = 0;
        }
}

static struct em_sched_decision report(const struct em_sched_params *p, struct em_sched_user *u,
                                       double x, int64_t t)
{
        struct em_sched_decision d = {0};
        em_error_t err = NULL;

        assert_int_equal(em_sched_decide(p, edges, 3, u, x, 0, t, &d, &err), 0);
        assert_null(err);
        if (d.action == EM_SCHED_MIGRATE) /* the controller's part: it moved */
                strcpy(u->serving, edges[d.target].name);
        return d;
}

static void test_nearest_without_hysteresis(void **state)
{
        struct em_sched_params p = {.margin = 0, .dwell_ms = 0, .approach_reports = 0};
        struct em_sched_user u = {.serving = "e1"};

        reset_edges();
        assert_int_equal(report(&p, &u, 10, 0).action, EM_SCHED_STAY);
        struct em_sched_decision d = report(&p, &u, 160, 1);
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_string_equal(edges[d.target].name, "e3");
        assert_string_equal(u.serving, "e3");
        d = report(&p, &u, 90, 2);
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_string_equal(edges[d.target].name, "e2");
}

static void test_full_edge_is_skipped(void **state)
{
        struct em_sched_params p = {.margin = 0, .dwell_ms = 0, .approach_reports = 0};
        struct em_sched_user u = {.serving = "e1"};

        reset_edges();
        edges[1].load = edges[1].capacity; /* e2 full: next nearest with room is e3 */
        struct em_sched_decision d = report(&p, &u, 110, 0);
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_string_equal(edges[d.target].name, "e3");
        /* The serving edge keeps its own user even when it is full. */
        edges[2].load = edges[2].capacity;
        edges[1].load = edges[1].capacity;
        assert_int_equal(report(&p, &u, 110, 1).action, EM_SCHED_STAY);
        reset_edges();
}

static void test_margin_and_dwell(void **state)
{
        struct em_sched_params p = {.margin = 20, .dwell_ms = 1000, .approach_reports = 0};
        struct em_sched_user u = {.serving = "e1"};

        reset_edges();
        /* 55: e2 is closer, but by 10 < margin. */
        assert_int_equal(report(&p, &u, 55, 0).action, EM_SCHED_STAY);
        /* 70: closer by 40; the dwell starts now. */
        assert_int_equal(report(&p, &u, 70, 100).action, EM_SCHED_STAY);
        assert_int_equal(report(&p, &u, 75, 900).action, EM_SCHED_STAY);
        struct em_sched_decision d = report(&p, &u, 75, 1100);
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_string_equal(u.serving, "e2");
        assert_string_equal(u.candidate, "");
}

/* A user walking back and forth across the e1/e2 border (x = 50), even far
 * enough to beat the margin at each swing, but never for the dwell time:
 * no migration at all. Without hysteresis the same trace ping-pongs. */
static int oscillate(const struct em_sched_params *p)
{
        struct em_sched_user u = {.serving = "e1"};
        int migrations = 0;

        reset_edges();
        for (int i = 0; i < 200; i++) {
                double x = (i / 3) % 2 == 0 ? 35 : 65; /* 3 reports per side */
                if (report(p, &u, x, (int64_t)i * 250).action == EM_SCHED_MIGRATE)
                        migrations++;
        }
        return migrations;
}

static void test_no_ping_pong_on_border(void **state)
{
        struct em_sched_params with = {.margin = 20, .dwell_ms = 1000, .approach_reports = 3};
        struct em_sched_params without = {.margin = 0, .dwell_ms = 0, .approach_reports = 3};

        assert_int_equal(oscillate(&with), 0);
        assert_true(oscillate(&without) > 50);
}

static void test_prepare_when_heading_to_edge(void **state)
{
        struct em_sched_params p = {.margin = 20, .dwell_ms = 1000, .approach_reports = 3};
        struct em_sched_user u = {.serving = "e1"};
        struct em_sched_decision d;

        reset_edges();
        /* Standing still, then jitter: no prepare. */
        for (int i = 0; i < 5; i++)
                assert_int_equal(report(&p, &u, i % 2 ? 5 : 0, i * 100).action, EM_SCHED_STAY);
        /* Walking towards e2 (each step shrinks the distance): third step prepares. */
        assert_int_equal(report(&p, &u, 10, 600).action, EM_SCHED_STAY);
        assert_int_equal(report(&p, &u, 20, 700).action, EM_SCHED_STAY);
        d = report(&p, &u, 30, 800);
        assert_int_equal(d.action, EM_SCHED_PREPARE);
        assert_string_equal(edges[d.target].name, "e2");
        /* Not repeated while still heading there. */
        assert_int_equal(report(&p, &u, 40, 900).action, EM_SCHED_STAY);
        /* The radius keeps far edges out. */
        struct em_sched_params near = p;
        struct em_sched_user v = {.serving = "e1"};
        near.prepare_radius = 50;
        for (int i = 0; i < 4; i++) {
                em_error_t err = NULL;
                assert_int_equal(em_sched_decide(&near, edges, 3, &v, i * 5, 0, i, &d, &err), 0);
                assert_int_equal(d.action, EM_SCHED_STAY);
        }
}

static void test_handoff_estimate(void **state)
{
        struct em_sched_edge a = {"a", 0, 0, 4, 0, 100, 0}, b = {"b", 1, 0, 4, 0, 1000, 0};

        /* 10 MB over the slower side (100 Mbit/s): 800 ms. */
        assert_float_equal(em_sched_handoff_ms(&a, &b, 10e6), 800, 1e-6);
        b.bandwidth_mbps = 0; /* unknown on one side: the other one alone */
        assert_float_equal(em_sched_handoff_ms(&a, &b, 10e6), 800, 1e-6);
        a.bandwidth_mbps = 0;
        assert_float_equal(em_sched_handoff_ms(&a, &b, 10e6), 0, 0);
        a.bandwidth_mbps = 100;
        assert_float_equal(em_sched_handoff_ms(&a, &b, 0), 0, 0);
}

/* The same walk migrates after the base dwell on a fast link and waits
 * longer (up to dwell_max_ms) when the expected handoff is long. */
static int64_t migrate_time(double bw_mbps, double bytes)
{
        struct em_sched_params p = {.margin = 20,
                                    .dwell_ms = 1000,
                                    .approach_reports = 0,
                                    .dwell_per_handoff = 2,
                                    .dwell_max_ms = 10000};
        struct em_sched_user u = {.serving = "e1", .handoff_bytes = bytes};

        reset_edges();
        for (int i = 0; i < 3; i++)
                edges[i].bandwidth_mbps = bw_mbps;
        for (int64_t t = 0; t <= 20000; t += 100) {
                struct em_sched_decision d = report(&p, &u, 80, t);
                if (d.action == EM_SCHED_MIGRATE) {
                        assert_string_equal(edges[d.target].name, "e2");
                        return t;
                }
        }
        return -1;
}

static void test_dwell_follows_handoff(void **state)
{
        assert_int_equal(migrate_time(100, 0), 1000);     /* unknown bytes: fixed dwell */
        assert_int_equal(migrate_time(1000, 25e6), 1400); /* 200 ms handoff: +400 ms */
        assert_int_equal(migrate_time(100, 25e6), 5000);  /* 2000 ms handoff: +4000 ms */
        assert_int_equal(migrate_time(10, 25e6), 10000);  /* 20 s handoff: capped */
}

/* Walking towards e2 from e1: reports until the prepare decision. */
static int reports_to_prepare(double bw_mbps, double radius)
{
        struct em_sched_params p = {.margin = 20,
                                    .dwell_ms = 1000,
                                    .approach_reports = 3,
                                    .prepare_radius = radius,
                                    .prepare_lead_ms = 1000};
        struct em_sched_user u = {.serving = "e1", .handoff_bytes = 25e6};

        reset_edges();
        for (int i = 0; i < 3; i++)
                edges[i].bandwidth_mbps = bw_mbps;
        report(&p, &u, 0, 0);
        for (int i = 1; i <= 6; i++) {
                struct em_sched_decision d = report(&p, &u, i * 5, i * 100);
                if (d.action == EM_SCHED_PREPARE) {
                        assert_string_equal(edges[d.target].name, "e2");
                        assert_true(d.handoff_ms > 0);
                        return i;
                }
        }
        return -1;
}

static void test_prepare_lead_follows_handoff(void **state)
{
        assert_int_equal(reports_to_prepare(1000, 0), 3); /* 200 ms: the fixed 3 reports */
        assert_int_equal(reports_to_prepare(100, 0), 1);  /* 2 s: 3 - 2 = 1 report */
        assert_int_equal(reports_to_prepare(50, 0), 1);   /* 4 s: never below 1 */
        /* Radius 50 (e2 is 95..70 away): only a long handoff widens it enough. */
        assert_int_equal(reports_to_prepare(1000, 50), -1);
        assert_int_equal(reports_to_prepare(100, 50), 1);
}

/* User at x=140 served by e1: e2 (40 away) and e3 (60 away) are both
 * within the margin (30) of the nearest; the less loaded one wins, an edge
 * at capacity never does. */
static void test_less_loaded_within_margin(void **state)
{
        struct em_sched_params p = {.margin = 30, .dwell_ms = 0, .approach_reports = 0};
        struct em_sched_user u = {.serving = "e1"};
        struct em_sched_decision d;

        reset_edges();
        edges[1].load = 3;
        d = report(&p, &u, 140, 0);
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_string_equal(edges[d.target].name, "e3");
        /* Same load: the nearer one. */
        struct em_sched_user v = {.serving = "e1"};
        edges[1].load = 0;
        d = report(&p, &v, 140, 0);
        assert_string_equal(edges[d.target].name, "e2");
        /* e3 at capacity: e2, although loaded. */
        struct em_sched_user w = {.serving = "e1"};
        edges[1].load = 3;
        edges[2].capacity = 2;
        edges[2].load = 2;
        d = report(&p, &w, 140, 0);
        assert_string_equal(edges[d.target].name, "e2");
        /* Beyond the margin of the nearest, load does not matter. */
        struct em_sched_user z = {.serving = "e1"};
        reset_edges();
        edges[1].load = 3;
        d = report(&p, &z, 120, 0); /* e2 20 away, e3 80 away */
        assert_string_equal(edges[d.target].name, "e2");
        reset_edges();
}

/* Measured RTTs to the user's attachment point beat geometry: e3 is
 * farther on the map but nearer on the network; with its own margin. */
static void test_nearest_by_rtt(void **state)
{
        struct em_sched_params p = {.margin = 0, .dwell_ms = 0, .rtt_margin_ms = 5};
        struct em_sched_user u = {.serving = "e1"};

        reset_edges();
        edges[0].rtt_ms = 30;
        edges[1].rtt_ms = 20;
        edges[2].rtt_ms = 8;
        struct em_sched_decision d = report(&p, &u, 90, 0); /* e2 is the nearest by x,y */
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_true(d.by_rtt);
        assert_string_equal(edges[d.target].name, "e3");
        /* Lower by less than the RTT margin: no move. */
        edges[1].rtt_ms = 4;
        d = report(&p, &u, 90, 1);
        assert_int_equal(d.action, EM_SCHED_STAY);
        assert_true(d.by_rtt);
        /* An edge without a measurement: back to geometry for all. */
        edges[0].rtt_ms = 0;
        d = report(&p, &u, 90, 2);
        assert_false(d.by_rtt);
        assert_int_equal(d.action, EM_SCHED_MIGRATE);
        assert_string_equal(edges[d.target].name, "e2");
        reset_edges();
}

static void test_invalid_input(void **state)
{
        struct em_sched_params p;
        struct em_sched_user u = {.serving = "e1"};
        struct em_sched_decision d;
        em_error_t err = NULL;

        em_sched_params_default(&p);
        assert_int_equal(em_sched_decide(&p, edges, 3, &u, NAN, 0, 0, &d, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
        /* Unknown serving edge: nothing to move from. */
        strcpy(u.serving, "gone");
        assert_int_equal(em_sched_decide(&p, edges, 3, &u, 200, 0, 0, &d, &err), 0);
        assert_int_equal(d.action, EM_SCHED_STAY);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nearest_without_hysteresis),
            cmocka_unit_test(test_full_edge_is_skipped),
            cmocka_unit_test(test_margin_and_dwell),
            cmocka_unit_test(test_no_ping_pong_on_border),
            cmocka_unit_test(test_prepare_when_heading_to_edge),
            cmocka_unit_test(test_handoff_estimate),
            cmocka_unit_test(test_dwell_follows_handoff),
            cmocka_unit_test(test_prepare_lead_follows_handoff),
            cmocka_unit_test(test_less_loaded_within_margin),
            cmocka_unit_test(test_nearest_by_rtt),
            cmocka_unit_test(test_invalid_input),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
