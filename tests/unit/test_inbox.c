#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/inbox.h"

static void frame(struct em_frame *f, uint16_t type)
{
        memset(f, 0, sizeof(*f));
        f->hdr.type = type;
        f->payload = malloc(1);
}

static void *put_two(void *arg)
{
        struct em_frame f;

        frame(&f, EM_FRAME_ROUND_END);
        em_inbox_put(arg, &f);
        frame(&f, EM_FRAME_ABORT);
        em_inbox_put(arg, &f); /* waits until the first was taken */
        em_inbox_end(arg);
        return NULL;
}

/* Frames pass one at a time, in order; then the end. */
static void test_order_and_end(void **state)
{
        em_inbox_t *b = NULL;
        em_error_t err = NULL;
        struct em_frame f = {0};
        pthread_t t;

        (void)state;
        assert_int_equal(em_inbox_new(&b, &err), 0);
        assert_int_equal(em_inbox_take(b, &f, 0, "x", &err), 0); /* nothing yet */
        assert_int_equal(pthread_create(&t, NULL, put_two, b), 0);
        struct pollfd p = {.fd = em_inbox_event_fd(b), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(em_inbox_take(b, &f, 5000, "x", &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_ROUND_END);
        em_frame_clear(&f);
        assert_int_equal(em_inbox_take(b, &f, 5000, "x", &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_ABORT);
        em_frame_clear(&f);
        pthread_join(t, NULL);
        assert_true(em_inbox_ended(b));
        assert_int_equal(em_inbox_take(b, &f, 5000, "x", &err), 0);
        em_inbox_free(&b);
}

/* The reader's failure reaches the caller; a silent reader times out; a
 * put after the cut is dropped rather than blocking. */
static void test_fail_timeout_cut(void **state)
{
        em_inbox_t *b = NULL;
        em_error_t err = NULL, e = NULL;
        struct em_frame f = {0};

        (void)state;
        assert_int_equal(em_inbox_new(&b, &err), 0);
        assert_int_equal(em_inbox_take(b, &f, 50, "x", &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        em_error_set(&e, EPROTO, "bad frame");
        em_inbox_fail(b, &e);
        assert_null(e);
        assert_int_equal(em_inbox_error(b, "x", &err), -1);
        assert_int_equal(em_error_status(err), EPROTO);
        em_error_free(&err);
        assert_int_equal(em_inbox_take(b, &f, 5000, "x", &err), -1);
        em_error_free(&err);
        em_inbox_free(&b);
        assert_int_equal(em_inbox_new(&b, &err), 0);
        frame(&f, EM_FRAME_ROUND_END);
        em_inbox_put(b, &f);
        em_inbox_cut(b);
        frame(&f, EM_FRAME_ABORT);
        em_inbox_put(b, &f); /* returns: dropped */
        assert_null(f.payload);
        em_inbox_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_order_and_end),
            cmocka_unit_test(test_fail_timeout_cut),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
