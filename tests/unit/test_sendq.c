#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/sendq.h"

#define N 200

static void pair(em_conn_t **a, em_conn_t **b)
{
        int sv[2];
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "b", b, &err), 0);
}

static void *receive_all(void *arg)
{
        em_conn_t *b = arg;
        long ok = 1;

        for (int i = 0; i < N; i++) {
                struct em_frame f = {0};
                em_error_t err = NULL;
                if (em_conn_recv(b, &f, &err) != 1 || f.length != 4096 ||
                    f.payload[0] != (uint8_t)i || f.hdr.stream != (uint32_t)i % 3)
                        ok = 0;
                em_frame_clear(&f);
                em_error_free(&err);
        }
        return (void *)ok;
}

static void test_order_and_content(void **state)
{
        em_conn_t *a, *b;
        em_sendq_t *q = NULL;
        em_error_t err = NULL;
        pthread_t rt;
        uint8_t buf[4096];
        void *ok;

        pair(&a, &b);
        pthread_create(&rt, NULL, receive_all, b);
        assert_int_equal(em_sendq_start(a, 4, &q, &err), 0);
        for (int i = 0; i < N; i++) {
                memset(buf, i, sizeof(buf));
                assert_int_equal(em_sendq_push(q, EM_FRAME_PAGES_DATA, 0, (uint32_t)i % 3, buf,
                                               sizeof(buf), i % 2 ? 3 : 0, &err),
                                 0);
        }
        struct em_sendq_stats st;
        assert_int_equal(em_sendq_finish(&q, &st, &err), 0);
        assert_null(q);
        /* Half went plain; the other half at 3, or 1 where the adaptive
         * level stepped down. */
        assert_int_equal(st.packed, N);
        assert_int_equal(st.written, N);
        assert_int_equal(st.raw_at[0], N / 2 * sizeof(buf));
        assert_int_equal(st.raw_at[1] + st.raw_at[2], N / 2 * sizeof(buf));
        pthread_join(rt, &ok);
        assert_true(ok == (void *)1);
        em_conn_free(&a);
        em_conn_free(&b);
}

static void test_sender_error_surfaces(void **state)
{
        em_conn_t *a, *b;
        em_sendq_t *q = NULL;
        em_error_t err = NULL;
        static uint8_t big[1 << 20];
        int rc = 0;

        pair(&a, &b);
        em_conn_free(&b); /* the peer is gone: writes fail with EPIPE */
        assert_int_equal(em_sendq_start(a, 2, &q, &err), 0);
        for (int i = 0; i < 16 && rc == 0; i++)
                rc = em_sendq_push(q, EM_FRAME_PAGES_DATA, 0, 0, big, sizeof(big), 0, &err);
        em_error_free(&err);
        assert_int_equal(em_sendq_finish(&q, NULL, &err), -1);
        assert_non_null(err);
        em_error_free(&err);
        em_conn_free(&a);
}

static void *drain_all(void *arg)
{
        em_conn_t *b = arg;
        long n = 0;

        for (;;) {
                struct em_frame f = {0};
                em_error_t err = NULL;
                int rc = em_conn_recv(b, &f, &err);
                em_frame_clear(&f);
                em_error_free(&err);
                if (rc != 1)
                        break;
                n++;
        }
        return (void *)n;
}

/* While the writer waits for the link (the peer reads nothing yet, a frame
 * is bigger than the socket's buffer), the frames behind it are compressed:
 * the next write can start as soon as the socket has room. With one thread
 * doing both, none was, and the link idled for each compression. */
static void test_packs_while_the_writer_waits(void **state)
{
        em_conn_t *a, *b;
        em_sendq_t *q = NULL;
        em_error_t err = NULL;
        struct em_sendq_stats st = {0};
        size_t n = 1 << 20;
        uint8_t *buf = malloc(n);
        pthread_t rt;
        void *got;

        (void)state;
        for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)(random() >> 7); /* incompressible: each frame stays 1 MiB */
        pair(&a, &b);
        assert_int_equal(em_sendq_start(a, 4, &q, &err), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(em_sendq_push(q, EM_FRAME_PAGES_DATA, 0, 0, buf, n, 1, &err), 0);
        for (int i = 0; i < 1000 && st.packed < 3; i++) {
                usleep(10 * 1000);
                em_sendq_stats(q, &st);
        }
        assert_int_equal(st.packed, 3);
        assert_int_equal(st.written, 0);
        assert_int_equal(pthread_create(&rt, NULL, drain_all, b), 0);
        assert_int_equal(em_sendq_finish(&q, NULL, &err), 0);
        em_conn_free(&a);
        assert_int_equal(pthread_join(rt, &got), 0);
        assert_int_equal((long)got, 3);
        em_conn_free(&b);
        free(buf);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_order_and_content),
            cmocka_unit_test(test_sender_error_surfaces),
            cmocka_unit_test(test_packs_while_the_writer_waits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
