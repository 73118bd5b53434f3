#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/relay.h"
#include "util/cleanup.h"

/* Two relays joined by a session (a socketpair as em_conn_t), each with a
 * local socket whose other end (the "helper", CRIU in real life) the test
 * holds. */
struct bed {
        em_conn_t *ca, *cb;
        em_relay_t *ra, *rb;
        int ha, hb; /* helper ends */
};

static void local_pair(int *ours, int *helper)
{
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        *ours = sv[0];
        *helper = sv[1];
}

static void bed_up(struct bed *b, int level)
{
        em_error_t err = NULL;
        int sv[2], la, lb;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", &b->ca, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "b", &b->cb, &err), 0);
        em_conn_set_timeout(b->ca, 5000);
        em_conn_set_timeout(b->cb, 5000);
        local_pair(&la, &b->ha);
        local_pair(&lb, &b->hb);
        assert_int_equal(em_relay_start(b->ca, la, level, &b->ra, &err), 0);
        assert_int_equal(em_relay_start(b->cb, lb, level, &b->rb, &err), 0);
}

static void bed_down(struct bed *b)
{
        em_relay_free(&b->ra);
        em_relay_free(&b->rb);
        em_conn_free(&b->ca);
        em_conn_free(&b->cb);
        if (b->ha >= 0)
                close(b->ha);
        if (b->hb >= 0)
                close(b->hb);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                assert_true(w > 0);
                p += w;
                n -= (size_t)w;
        }
}

static void read_all(int fd, uint8_t *p, size_t n)
{
        while (n > 0) {
                ssize_t r = read(fd, p, n);
                assert_true(r > 0);
                p += r;
                n -= (size_t)r;
        }
}

static void assert_eof(int fd)
{
        uint8_t c;
        struct pollfd p = {.fd = fd, .events = POLLIN};

        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(read(fd, &c, 1), 0);
}

/* Bytes cross both ways unchanged (compressible data goes compressed),
 * a helper's close arrives as end of stream at the other helper, and once
 * both ends closed both relays have finished. */
static void test_both_ways_and_half_close(void **state)
{
        struct bed b = {0};
        em_error_t err = NULL;
        size_t n = 3u << 20;
        cleanup_free uint8_t *big = malloc(n), *got = malloc(n);
        uint8_t req[24] = "page request", ans[24];

        (void)state;
        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)((i / 4096) ^ (i % 7));
        bed_up(&b, 1);
        write_all(b.hb, req, sizeof(req));
        read_all(b.ha, ans, sizeof(ans));
        assert_memory_equal(req, ans, sizeof(req));
        write_all(b.ha, big, n);
        read_all(b.hb, got, n);
        assert_memory_equal(big, got, n);
        assert_int_equal(em_relay_finished(b.ra, &err), 0);
        close(b.hb);
        b.hb = -1;
        assert_eof(b.ha);
        close(b.ha);
        b.ha = -1;
        assert_int_equal(em_relay_wait(b.ra, 5000, &err), 0);
        assert_int_equal(em_relay_wait(b.rb, 5000, &err), 0);
        uint64_t out = 0, in = 0;
        em_relay_bytes(b.ra, &out, &in);
        assert_int_equal(out, n);
        assert_int_equal(in, sizeof(req));
        bed_down(&b);
}

/* Other frames reach the caller in order, between relayed bytes; after the
 * peer's LAST the reader stops and the connection is the caller's again. */
static void test_control_frames(void **state)
{
        struct bed b = {0};
        em_error_t err = NULL;
        struct em_frame f = {0};
        uint8_t x[3] = {1, 2, 3}, y[3];

        (void)state;
        bed_up(&b, 0);
        assert_int_equal(em_relay_poll(b.ra, &f, &err), 0);
        assert_int_equal(em_conn_send_str(b.cb, EM_FRAME_ROUND_END, "{\"n\":1}", &err), 0);
        write_all(b.hb, x, 3);
        assert_int_equal(em_conn_send_str(b.cb, EM_FRAME_ROUND_END, "{\"n\":2}", &err), 0);
        assert_int_equal(em_relay_recv(b.ra, &f, 5000, &err), 1);
        assert_string_equal((char *)f.payload, "{\"n\":1}");
        em_frame_clear(&f);
        read_all(b.ha, y, 3);
        assert_memory_equal(x, y, 3);
        assert_int_equal(em_relay_recv(b.ra, &f, 5000, &err), 1);
        assert_string_equal((char *)f.payload, "{\"n\":2}");
        em_frame_clear(&f);
        close(b.hb);
        b.hb = -1;
        assert_eof(b.ha);
        assert_int_equal(em_relay_recv(b.ra, &f, 5000, &err), 0);
        /* a frame after the LAST is read directly */
        assert_int_equal(em_conn_send_str(b.cb, EM_FRAME_DONE, "{}", &err), 0);
        assert_int_equal(em_conn_recv(b.ca, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_DONE);
        em_frame_clear(&f);
        bed_down(&b);
}

/* A hostile peer's relay frame on another stream, or a connection that
 * breaks, fail the relay with an error the caller sees. */
static void test_peer_errors(void **state)
{
        struct bed b = {0};
        em_error_t err = NULL;
        struct em_frame f = {0};

        (void)state;
        bed_up(&b, 0);
        em_relay_free(&b.rb); /* the test speaks for side b itself */
        assert_int_equal(em_conn_send(b.cb, EM_FRAME_LAZY_PAGES, 0, 7, "x", 1, 0, &err), 0);
        assert_int_equal(em_relay_recv(b.ra, &f, 5000, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "stream 7"));
        assert_int_equal(em_relay_finished(b.ra, &err), -1);
        em_error_free(&err);
        bed_down(&b);

        bed_up(&b, 0);
        em_relay_free(&b.rb);
        em_conn_free(&b.cb);
        assert_int_equal(em_relay_recv(b.ra, &f, 5000, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "peer closed"));
        em_error_free(&err);
        bed_down(&b);
}

/* Nothing from the peer: recv times out; freeing an unfinished relay cuts
 * it (both threads return) and the connection can still send. */
static void test_timeout_and_cut(void **state)
{
        struct bed b = {0};
        em_error_t err = NULL;
        struct em_frame f = {0};

        (void)state;
        bed_up(&b, 0);
        assert_int_equal(em_relay_recv(b.ra, &f, 100, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        em_relay_free(&b.ra);
        assert_int_equal(em_conn_send_str(b.ca, EM_FRAME_ABORT, "{}", &err), 0);
        assert_int_equal(em_relay_recv(b.rb, &f, 5000, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_ABORT);
        em_frame_clear(&f);
        bed_down(&b);
}

static int listen_loopback(int port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0) {
                if (s >= 0)
                        close(s);
                return -1;
        }
        return s;
}

/* A server inside the namespace (what CRIU's page server is): says "ns". */
static pid_t serve_in(int nsfd, int port, int ready)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                int l = setns(nsfd, CLONE_NEWNET) == 0 ? listen_loopback(port) : -1;
                if (l < 0 || write(ready, "r", 1) != 1)
                        _exit(1);
                int c = accept(l, NULL, NULL);
                _exit(c >= 0 && write(c, "ns", 2) == 2 ? 0 : 1);
        }
        return pid;
}

/* The private namespace: its loopback is up and reachable from a socket
 * made inside it, while the same port on this process's own 127.0.0.1 is
 * another socket altogether. */
static void test_private_netns(void **state)
{
        em_error_t err = NULL;
        int nsfd = -1, port = 0, fd = -1, p[2], status;
        char buf[3] = {0};

        (void)state;
        if (em_relay_netns_new(&nsfd, &port, &err) < 0) {
                int e = em_error_status(err);
                em_error_free(&err);
                if (e == EPERM)
                        skip();
                fail_msg("netns: %d", e);
        }
        assert_true(port > 0);
        /* nothing listens there yet: refused, after the retries */
        assert_int_equal(em_relay_netns_connect(nsfd, port, 50, &fd, &err), -1);
        assert_int_equal(em_error_status(err), ECONNREFUSED);
        em_error_free(&err);
        int host = listen_loopback(port); /* a decoy outside: must not be reached */
        assert_int_equal(pipe(p), 0);
        pid_t pid = serve_in(nsfd, port, p[1]);
        assert_int_equal(read(p[0], buf, 1), 1);
        assert_int_equal(em_relay_netns_connect(nsfd, port, 2000, &fd, &err), 0);
        assert_int_equal(read(fd, buf, 2), 2);
        assert_string_equal(buf, "ns");
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(fd);
        close(p[0]);
        close(p[1]);
        if (host >= 0)
                close(host);
        close(nsfd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_both_ways_and_half_close),
            cmocka_unit_test(test_control_frames),
            cmocka_unit_test(test_peer_errors),
            cmocka_unit_test(test_timeout_and_cut),
            cmocka_unit_test(test_private_netns),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
