#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/conn.h"
#include "util/cleanup.h"

static void pair(em_conn_t **a, em_conn_t **b)
{
        int sv[2];
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "b", b, &err), 0);
}

struct sender {
        em_conn_t *c;
        const uint8_t *data;
        size_t len;
        int level;
        int ret;
};

static void *send_thread(void *arg)
{
        struct sender *s = arg;
        em_error_t err = NULL;

        s->ret = em_conn_send(s->c, EM_FRAME_PAGES_DATA, EM_FRAME_F_LAST, 7, s->data, s->len,
                              s->level, &err);
        if (s->ret == 0)
                s->ret = em_conn_send_str(s->c, EM_FRAME_DONE, "{}", &err);
        em_error_free(&err);
        return NULL;
}

static void test_compressed_roundtrip_and_counters(void **state)
{
        cleanup_conn em_conn_t *a = NULL;
        cleanup_conn em_conn_t *b = NULL;
        size_t n = 2 << 20;
        cleanup_free uint8_t *data = malloc(n);
        struct em_frame f cleanup_frame = {0};
        struct em_conn_stats sa, sb;
        em_error_t err = NULL;
        pthread_t th;

        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t)((i / 64) % 7);
        pair(&a, &b);
        struct sender s = {a, data, n, 3, -1};
        pthread_create(&th, NULL, send_thread, &s);
        assert_int_equal(em_conn_recv(b, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_PAGES_DATA);
        assert_int_equal(f.hdr.stream, 7);
        assert_true(f.hdr.flags & EM_FRAME_F_LAST);
        assert_false(f.hdr.flags & EM_FRAME_F_ZSTD); /* inflated on receipt */
        assert_int_equal(f.length, n);
        assert_memory_equal(f.payload, data, n);
        assert_int_equal(em_conn_recv(b, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_DONE);
        assert_string_equal((char *)f.payload, "{}");
        pthread_join(th, NULL);
        assert_int_equal(s.ret, 0);

        em_conn_stats(a, &sa);
        em_conn_stats(b, &sb);
        assert_int_equal(sa.frames_out, 2);
        assert_int_equal(sa.raw_out, n + 2);
        assert_true(sa.wire_out < n / 10); /* compressed on the wire */
        assert_int_equal(sb.wire_in, sa.wire_out);
        assert_int_equal(sb.raw_in, sa.raw_out);
        assert_int_equal(sb.frames_in, 2);
        /* Clean end of stream. */
        em_conn_free(&a);
        assert_int_equal(em_conn_recv(b, &f, &err), 0);
}

static void test_incompressible_goes_plain(void **state)
{
        cleanup_conn em_conn_t *a = NULL;
        cleanup_conn em_conn_t *b = NULL;
        uint8_t data[4096];
        struct em_frame f cleanup_frame = {0};
        struct em_conn_stats st;
        em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)rand();
        pair(&a, &b);
        assert_int_equal(em_conn_send(a, EM_FRAME_FILE_DATA, 0, 1, data, sizeof(data), 9, &err), 0);
        assert_int_equal(em_conn_recv(b, &f, &err), 1);
        assert_memory_equal(f.payload, data, sizeof(data));
        em_conn_stats(a, &st);
        assert_int_equal(st.wire_out, sizeof(data) + EM_FRAME_HDR_LEN);
}

static void test_session_binding(void **state)
{
        cleanup_conn em_conn_t *a = NULL;
        cleanup_conn em_conn_t *b = NULL;
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;

        pair(&a, &b);
        em_conn_set_session(b, 0xabc);
        em_conn_set_session(a, 0xdef);
        assert_int_equal(em_conn_send_str(a, EM_FRAME_HELLO, "{}", &err), 0);
        assert_int_equal(em_conn_recv(b, &f, &err), -1);
        assert_int_equal(em_error_status(err), EM_FRAME_E_SESSION);
        assert_non_null(strstr(em_error_msg(err), "from b"));
        em_error_free(&err);
}

static void test_bwmeter(void **state)
{
        struct em_bwmeter m;
        int64_t t = 1000000000;

        em_bwmeter_init(&m, 1000);
        assert_true(em_bwmeter_rate(&m, t) == 0);
        /* 10 ms ticks of 6250 bytes: 625 kB/s (5 Mbit/s). */
        for (int i = 0; i < 300; i++)
                em_bwmeter_add(&m, t + (int64_t)i * 10000000, 6250);
        double r = em_bwmeter_rate(&m, t + 299 * 10000000ll);
        assert_true(r > 600e3 && r < 650e3);
        /* The link speeds up 4x: within one window the estimate follows. */
        int64_t t2 = t + 300 * 10000000ll;
        for (int i = 0; i < 150; i++)
                em_bwmeter_add(&m, t2 + (int64_t)i * 10000000, 25000);
        r = em_bwmeter_rate(&m, t2 + 149 * 10000000ll);
        assert_true(r > 2.4e6 && r < 2.6e6);
        /* Idle for longer than the window: no estimate. */
        assert_true(em_bwmeter_rate(&m, t2 + 5000000000ll) == 0);
}

/* A handshake's few kilobytes over its round trips make a "rate" of
 * kilobytes per second; with a minimum of bytes it is no estimate. */
static void test_bwmeter_min_bytes(void **state)
{
        struct em_bwmeter m;
        int64_t t = 1000000000;

        (void)state;
        em_bwmeter_init(&m, 2000);
        for (int i = 0; i < 5; i++)
                em_bwmeter_add(&m, t + (int64_t)i * 40000000, 1000);
        assert_true(em_bwmeter_rate(&m, t + 160000000) > 0);
        assert_true(em_bwmeter_rate_min(&m, t + 160000000, 256 << 10) == 0);
        for (int i = 5; i < 40; i++)
                em_bwmeter_add(&m, t + (int64_t)i * 40000000, 100000);
        double r = em_bwmeter_rate_min(&m, t + 39 * 40000000ll, 256 << 10);
        assert_true(r > 2.0e6 && r < 2.6e6);
}

static void *recv_thread(void *arg)
{
        em_conn_t *c = arg;
        struct em_frame f = {0};
        em_error_t err = NULL;
        long got = em_conn_recv(c, &f, &err);

        em_frame_clear(&f);
        em_error_free(&err);
        return (void *)got;
}

/* A reader waiting on a silent peer (a relay's reader thread) must block
 * neither the counters nor the senders of the same connection: a
 * post-copy relay deadlocked when em_conn_stats held the send lock while
 * it waited for the receive lock. */
static void test_stats_while_a_reader_waits(void **state)
{
        em_conn_t *a, *b;
        em_error_t err = NULL;
        struct em_conn_stats st;
        pthread_t t;
        void *got;

        (void)state;
        pair(&a, &b);
        em_conn_set_timeout(a, 10000);
        assert_int_equal(pthread_create(&t, NULL, recv_thread, a), 0);
        usleep(100 * 1000); /* the reader is in its wait now */
        int64_t t0 = em_mono_ms();
        em_conn_stats(a, &st);
        assert_int_equal(em_conn_send_str(a, EM_FRAME_ROUND_END, "{}", &err), 0);
        assert_true(em_mono_ms() - t0 < 5000);
        assert_int_equal(em_conn_send_str(b, EM_FRAME_DONE, "{}", &err), 0);
        assert_int_equal(pthread_join(t, &got), 0);
        assert_int_equal((long)got, 1);
        em_conn_free(&a);
        em_conn_free(&b);
}

/* A payload packed outside the connection travels like one em_conn_send
 * compressed itself; one compression cannot shrink is sent as it is. */
static void test_packed_roundtrip(void **state)
{
        cleanup_conn em_conn_t *a = NULL;
        cleanup_conn em_conn_t *b = NULL;
        cleanup_zstd em_zstd_t *z = em_zstd_new();
        size_t n = 256 << 10;
        cleanup_free uint8_t *data = malloc(n);
        struct em_frame f cleanup_frame = {0};
        struct em_packed p;
        em_error_t err = NULL;

        (void)state;
        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t)((i / 64) % 7);
        pair(&a, &b);
        assert_int_equal(em_conn_pack(z, 3, data, n, &p, &err), 0);
        assert_true(p.zstd && p.buf != NULL && p.len < n / 10 && p.raw_len == n);
        assert_int_equal(em_conn_send_packed(a, EM_FRAME_PAGES_DATA, 0, 5, data, &p, &err), 0);
        em_packed_clear(&p);
        assert_null(p.buf);
        assert_int_equal(em_conn_recv(b, &f, &err), 1);
        assert_int_equal(f.length, n);
        assert_int_equal(f.hdr.stream, 5);
        assert_memory_equal(f.payload, data, n);
        /* Too small to compress, or no level: as it is. */
        assert_int_equal(em_conn_pack(z, 3, data, 100, &p, &err), 0);
        assert_true(!p.zstd && p.buf == NULL && p.len == 100);
        assert_int_equal(em_conn_pack(z, 0, data, n, &p, &err), 0);
        assert_true(!p.zstd && p.buf == NULL && p.len == n);
}

struct blocked_send {
        em_conn_t *c;
        const uint8_t *data;
        size_t len;
        int ret;
};

static void *blocked_send_thread(void *arg)
{
        struct blocked_send *s = arg;
        em_error_t err = NULL;

        s->ret = em_conn_send(s->c, EM_FRAME_PAGES_DATA, 0, 1, s->data, s->len, 0, &err);
        em_error_free(&err);
        return NULL;
}

static void *rate_thread(void *arg)
{
        static double r;

        r = em_conn_send_rate(arg);
        return &r;
}

/* The pipeline asks for the send rate before each chunk it queues; while a
 * send waited for a full link that read waited too, so the page reader
 * stalled behind the socket once per frame. */
static void test_rate_while_a_send_waits(void **state)
{
        em_conn_t *a, *b;
        size_t n = 4 << 20;
        cleanup_free uint8_t *data = calloc(1, n);
        struct blocked_send s = {NULL, data, n, -1};
        struct em_frame f = {0};
        struct timespec until;
        em_error_t err = NULL;
        pthread_t ts, tr;
        int queued = 0;
        void *r = NULL;

        (void)state;
        pair(&a, &b);
        s.c = a;
        em_conn_set_timeout(a, 20000);
        assert_int_equal(pthread_create(&ts, NULL, blocked_send_thread, &s), 0);
        /* Until the send is in its write (the peer reads nothing yet). */
        for (int i = 0; i < 1000 && queued == 0; i++) {
                usleep(10 * 1000);
                assert_int_equal(ioctl(em_conn_fd(a), SIOCOUTQ, &queued), 0);
        }
        assert_true(queued > 0);
        assert_int_equal(pthread_create(&tr, NULL, rate_thread, a), 0);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        assert_int_equal(pthread_timedjoin_np(tr, &r, &until), 0);
        assert_non_null(r);
        assert_int_equal(em_conn_recv(b, &f, &err), 1);
        assert_int_equal(f.length, n);
        em_frame_clear(&f);
        assert_int_equal(pthread_join(ts, NULL), 0);
        assert_int_equal(s.ret, 0);
        em_conn_free(&a);
        em_conn_free(&b);
}

static void test_hostport(void **state)
{
        cleanup_free char *h = NULL;
        cleanup_free char *p = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_hostport_parse("10.0.0.1:7070", &h, &p, &err), 0);
        assert_string_equal(h, "10.0.0.1");
        assert_string_equal(p, "7070");
        free(h);
        free(p);
        assert_int_equal(em_hostport_parse("[::1]:80", &h, &p, &err), 0);
        assert_string_equal(h, "::1");
        const char *bad[] = {"nohost", ":80", "a:", "a:99999", "a:8x", "[::1]80"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *h2 = NULL, *p2 = NULL;
                assert_int_equal(em_hostport_parse(bad[i], &h2, &p2, &err), -1);
                em_error_free(&err);
        }
}

static void test_tcp(void **state)
{
        cleanup_close int lfd = -1;
        cleanup_conn em_conn_t *cli = NULL;
        cleanup_conn em_conn_t *srv = NULL;
        struct em_frame f cleanup_frame = {0};
        char addr[64];
        int port = 0;
        em_error_t err = NULL;

        assert_int_equal(em_tcp_listen("127.0.0.1:0", 4, &lfd, &err), 0);
        assert_int_equal(em_tcp_local_port(lfd, &port, &err), 0);
        assert_true(port > 0);
        /* Nobody connects: accept times out. */
        assert_int_equal(em_tcp_accept(lfd, 50, &srv, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        assert_int_equal(em_tcp_connect(addr, 2000, &cli, &err), 0);
        assert_int_equal(em_tcp_accept(lfd, 2000, &srv, &err), 0);
        assert_non_null(strstr(em_conn_peer(srv), "127.0.0.1:"));
        assert_int_equal(em_conn_set_nodelay(cli, true, &err), 0);
        assert_int_equal(em_conn_send_str(cli, EM_FRAME_HELLO, "{\"v\":1}", &err), 0);
        assert_int_equal(em_conn_recv(srv, &f, &err), 1);
        assert_string_equal((char *)f.payload, "{\"v\":1}");
        /* The peer says nothing: the receive times out instead of hanging. */
        em_conn_set_timeout(srv, 100);
        assert_int_equal(em_conn_recv(srv, &f, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        /* Connection refused on a closed port. */
        close(steal_fd(&lfd));
        em_conn_free(&cli);
        assert_int_equal(em_tcp_connect(addr, 2000, &cli, &err), -1);
        assert_int_equal(em_error_status(err), ECONNREFUSED);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_compressed_roundtrip_and_counters),
            cmocka_unit_test(test_incompressible_goes_plain),
            cmocka_unit_test(test_session_binding),
            cmocka_unit_test(test_bwmeter),
            cmocka_unit_test(test_stats_while_a_reader_waits),
            cmocka_unit_test(test_packed_roundtrip),
            cmocka_unit_test(test_bwmeter_min_bytes),
            cmocka_unit_test(test_rate_while_a_send_waits),
            cmocka_unit_test(test_hostport),
            cmocka_unit_test(test_tcp),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
