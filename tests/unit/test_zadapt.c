#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/zadapt.h"
#include "util/cleanup.h"

#define MIB (1u << 20)

/* Before any compression is timed, the policy's level stands. */
static void test_starts_at_cap(void **state)
{
        struct em_zadapt a = {0};

        (void)state;
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.0, true), 9);
        assert_int_equal(em_zadapt_next(&a, 0, MIB, 0.0, true), 0);
        assert_int_equal(em_zadapt_next(&a, 3, MIB, 5.0, true), 3);
}

/* The redis case: 1 MiB takes 50 ms at level 9 but the socket holds 5 ms
 * of output, so the link would idle: step down, one rung per frame, to 1. */
static void test_steps_down_while_the_queue_runs_dry(void **state)
{
        struct em_zadapt a = {0};

        (void)state;
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.005, true), 9);
        em_zadapt_record(&a, MIB, 0.05);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.005, true), 3);
        em_zadapt_record(&a, MIB, 0.02);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.005, true), 1);
        em_zadapt_record(&a, MIB, 0.015);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.0, true), 1);
        assert_int_equal(a.down, 2);
}

/* The queue is dry but no frame waits: the producer is the bottleneck, and
 * a lower level would cost bytes and win nothing. */
static void test_holds_when_the_producer_is_the_bottleneck(void **state)
{
        struct em_zadapt a = {.level = 9};

        (void)state;
        em_zadapt_record(&a, MIB, 0.05);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.0, false), 9);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.0, true), 3);
        assert_int_equal(a.down, 1);
}

/* A short idle (under half a compression) costs less than the bytes of a
 * lower rung: the level holds. */
static void test_a_short_idle_keeps_the_level(void **state)
{
        struct em_zadapt a = {.level = 9};

        (void)state;
        em_zadapt_record(&a, MIB, 0.04);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.03, true), 9);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.021, true), 9);
        assert_int_equal(a.down, 0);
}

/* A queue up to two compressions deep holds the level; a deeper one (the
 * link is the bottleneck) climbs back, never above the policy's level. */
static void test_climbs_back_to_cap_when_the_link_is_the_bottleneck(void **state)
{
        struct em_zadapt a = {.level = 1};

        (void)state;
        em_zadapt_record(&a, MIB, 0.01);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.015, true), 1);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.5, true), 3);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 0.5, true), 9);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, 5.0, true), 9);
        assert_int_equal(em_zadapt_next(&a, 6, MIB, 5.0, true), 6);
        assert_int_equal(a.down, 0);
}

/* No estimate of the drain (no TCP socket, no rate yet): the cap. */
static void test_unknown_drain_keeps_the_cap(void **state)
{
        struct em_zadapt a = {.level = 1};

        (void)state;
        em_zadapt_record(&a, MIB, 0.05);
        assert_int_equal(em_zadapt_next(&a, 9, MIB, -1, true), 9);
}

/* No send rate yet: no estimate, whatever the socket holds. */
static void test_drain_unknown_before_anything_is_sent(void **state)
{
        int sv[2];
        em_conn_t *c = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", &c, &err), 0);
        assert_true(em_zadapt_drain_s(c, 0) < 0);
        em_conn_free(&c);
        close(sv[1]);
}

/* The link's rate is the send rate once that has enough bytes behind it;
 * before (a round's start after a handshake of a few kilobytes: a "link" of
 * kilobytes per second, for which the rule would pick level 19) and after
 * a silence longer than the meter's window, unknown. */
static void test_link_rate_needs_enough_bytes(void **state)
{
        int sv[2];
        em_conn_t *a = NULL, *b = NULL;
        em_error_t err = NULL;
        size_t n = 128 << 10;
        cleanup_free uint8_t *buf = calloc(1, n);

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", &a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "b", &b, &err), 0);
        for (int i = 0; i < 6; i++) {
                struct em_frame f = {0};
                assert_int_equal(
                    em_conn_send(a, EM_FRAME_PAGES_DATA, 0, 0, buf, i ? n : 100, 0, &err), 0);
                assert_int_equal(em_conn_recv(b, &f, &err), 1);
                em_frame_clear(&f);
                usleep(10 * 1000);
                if (i == 1) /* a header and 100 bytes, then 128 KiB: not enough */
                        assert_true(em_zadapt_link_rate(a) == 0);
        }
        assert_true(em_zadapt_link_rate(a) > 0);
        em_conn_free(&a);
        em_conn_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_starts_at_cap),
            cmocka_unit_test(test_steps_down_while_the_queue_runs_dry),
            cmocka_unit_test(test_holds_when_the_producer_is_the_bottleneck),
            cmocka_unit_test(test_a_short_idle_keeps_the_level),
            cmocka_unit_test(test_climbs_back_to_cap_when_the_link_is_the_bottleneck),
            cmocka_unit_test(test_unknown_drain_keeps_the_cap),
            cmocka_unit_test(test_drain_unknown_before_anything_is_sent),
            cmocka_unit_test(test_link_rate_needs_enough_bytes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
