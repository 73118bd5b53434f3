/* The GnuTLS client (transfer/tls_gnutls.c, edgemig-controller's) against
 * the OpenSSL server (transfer/tls.c, edgemigd's) in one process over
 * loopback: the interop the controller's control requests depend on, with
 * the same certificates, names and refusals as test_tls.c. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/ca.h"
#include "transfer/tls.h"
#include "transfer/tls_gnutls.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"

/* Made once per run by ca.c: a platform CA with edge1..edge3, and another
 * CA that also issued an "edge1". */
static char tmp[] = "/tmp/em-gtls-test-XXXXXX";
static char path_buf[16][512];
static int path_n;

static const char *P(const char *rel)
{
        char *b = path_buf[path_n++ % 16];
        snprintf(b, 512, "%s/%s", tmp, rel);
        return b;
}

static int setup_pki(void **state)
{
        em_error_t err = NULL;
        cleanup_free char *both = NULL;
        cleanup_free char *a = NULL;
        cleanup_free char *b = NULL;
        size_t al, bl;

        if (mkdtemp(tmp) == NULL)
                return -1;
        if (em_ca_init(P("pki"), 30, &err) < 0 ||
            em_ca_issue(P("pki"), "edge1", P("pki"), 1, NULL, &err) < 0 ||
            em_ca_issue(P("pki"), "edge2", P("pki"), 1, NULL, &err) < 0 ||
            em_ca_issue(P("pki"), "edge3", P("pki"), 1, NULL, &err) < 0 ||
            em_ca_init(P("other"), 30, &err) < 0 ||
            em_ca_issue(P("other"), "edge1", P("other"), 1, NULL, &err) < 0) {
                fprintf(stderr, "pki: %s\n", em_error_msg(err));
                return -1;
        }
        /* Trusts both CAs, so that only the other side's refusal is tested. */
        if (em_read_file(P("pki/ca.crt"), 1 << 20, &a, &al, &err) < 0 ||
            em_read_file(P("other/ca.crt"), 1 << 20, &b, &bl, &err) < 0 ||
            asprintf(&both, "%s%s", a, b) < 0 ||
            em_write_file_atomic(P("both.crt"), both, strlen(both), 0644, &err) < 0)
                return -1;
        return 0;
}

static int teardown_pki(void **state)
{
        em_error_t err = NULL;

        em_rm_rf(tmp, &err);
        em_error_free(&err);
        return 0;
}

static struct em_tls_config config(const char *dir, const char *ca, const char *name,
                                   const char *const *allowed, char cert[600], char key[600])
{
        snprintf(cert, 600, "%s/%s/%s.crt", tmp, dir, name);
        snprintf(key, 600, "%s/%s/%s.key", tmp, dir, name);
        return (struct em_tls_config){.ca = ca, .cert = cert, .key = key, .allowed_peers = allowed};
}

static em_tls_ctx_t *server_ctx(const char *dir, const char *ca, const char *name,
                                const char *const *allowed)
{
        char cert[600], key[600];
        struct em_tls_config cfg = config(dir, ca, name, allowed, cert, key);
        em_tls_ctx_t *t = NULL;
        em_error_t err = NULL;

        if (em_tls_ctx_new(&cfg, true, &t, &err) < 0)
                fail_msg("server ctx %s: %s", name, em_error_msg(err));
        return t;
}

static em_gtls_ctx_t *client_ctx(const char *dir, const char *ca, const char *name,
                                 const char *const *allowed)
{
        char cert[600], key[600];
        struct em_tls_config cfg = config(dir, ca, name, allowed, cert, key);
        em_gtls_ctx_t *t = NULL;
        em_error_t err = NULL;

        if (em_gtls_client_new(&cfg, &t, &err) < 0)
                fail_msg("client ctx %s: %s", name, em_error_msg(err));
        return t;
}

struct server {
        em_tls_ctx_t *ctx;
        int lfd, timeout_ms;
        bool echo;
        int ret, status;
        char msg[1024], peer_name[64];
        em_conn_t *conn;
};

static void echo_frames(struct server *s, em_error_t *err)
{
        struct em_frame f cleanup_frame = {0};

        while ((s->ret = em_conn_recv(s->conn, &f, err)) > 0) {
                s->ret =
                    em_conn_send(s->conn, f.hdr.type, 0, f.hdr.stream, f.payload, f.length, 1, err);
                em_frame_clear(&f);
                if (s->ret < 0)
                        return;
        }
        if (s->ret == 0)
                s->ret = em_conn_shutdown_write(s->conn, err);
}

static void *server_thread(void *arg)
{
        struct server *s = arg;
        em_error_t err = NULL;
        char *name = NULL;

        s->ret = em_tls_accept(s->ctx, s->lfd, s->timeout_ms, &s->conn, &name, &err);
        if (s->ret < 0) {
                s->status = em_error_status(err);
                snprintf(s->msg, sizeof(s->msg), "%s", em_error_msg(err));
                em_error_free(&err);
                return NULL;
        }
        snprintf(s->peer_name, sizeof(s->peer_name), "%s", name);
        free(name);
        if (s->echo)
                echo_frames(s, &err);
        if (s->ret < 0)
                snprintf(s->msg, sizeof(s->msg), "%s", em_error_msg(err));
        em_error_free(&err);
        return NULL;
}

static void start_server(struct server *s, pthread_t *th, char addr[64])
{
        em_error_t err = NULL;
        int port = 0;

        assert_int_equal(em_tcp_listen("127.0.0.1:0", 4, &s->lfd, &err), 0);
        assert_int_equal(em_tcp_local_port(s->lfd, &port, &err), 0);
        snprintf(addr, 64, "127.0.0.1:%d", port);
        if (s->timeout_ms == 0)
                s->timeout_ms = 5000;
        assert_int_equal(pthread_create(th, NULL, server_thread, s), 0);
}

static void stop_server(struct server *s, pthread_t th)
{
        pthread_join(th, NULL);
        em_conn_free(&s->conn);
        close(s->lfd);
}

static void check_frames(em_conn_t *c, const uint8_t *big, size_t len)
{
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;

        assert_int_equal(em_conn_send_str(c, EM_FRAME_HELLO, "{\"hi\":1}", &err), 0);
        assert_int_equal(em_conn_send(c, EM_FRAME_PAGES_DATA, 0, 3, big, len, 0, &err), 0);
        assert_int_equal(em_conn_recv(c, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_HELLO);
        assert_string_equal((char *)f.payload, "{\"hi\":1}");
        em_frame_clear(&f);
        assert_int_equal(em_conn_recv(c, &f, &err), 1);
        assert_int_equal(f.hdr.stream, 3);
        assert_int_equal(f.length, len);
        assert_memory_equal(f.payload, big, len);
        assert_int_equal(em_conn_shutdown_write(c, &err), 0);
        assert_int_equal(em_conn_recv(c, &f, &err), 0); /* the server's close_notify */
}

static void test_mutual_handshake_and_frames(void **state)
{
        static const char *const allow_client[] = {"edge2", NULL};
        static const char *const allow_server[] = {"EDGE1", NULL}; /* names are case-blind */
        cleanup_tls_ctx em_tls_ctx_t *sc =
            server_ctx("pki", P("pki/ca.crt"), "edge1", allow_client);
        cleanup_gtls_ctx em_gtls_ctx_t *cc =
            client_ctx("pki", P("pki/ca.crt"), "edge2", allow_server);
        struct server s = {.ctx = sc, .echo = true};
        cleanup_conn em_conn_t *c = NULL;
        cleanup_free char *name = NULL;
        cleanup_free uint8_t *big = malloc(3 << 20);
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;

        assert_string_equal(em_gtls_ctx_name(cc), "edge2");
        for (size_t i = 0; i < (3u << 20); i++)
                big[i] = (uint8_t)(i * 2654435761u >> 13);
        start_server(&s, &th, addr);
        if (em_gtls_connect(cc, addr, 5000, &c, &name, &err) < 0)
                fail_msg("connect: %s", em_error_msg(err));
        assert_true(em_gtls_conn(c));
        assert_false(em_tls_conn(c));
        assert_string_equal(name, "edge1");
        assert_string_equal(em_conn_identity(c), "edge1");
        check_frames(c, big, 3u << 20);
        stop_server(&s, th);
        if (s.ret != 0)
                fail_msg("server: %s", s.msg);
        assert_string_equal(s.peer_name, "edge2");
}

/* The server speaks first right after the handshake: what arrives while
 * the client waits for the ticket is kept for its first read. */
static void *greet_thread(void *arg)
{
        struct server *s = arg;
        em_error_t err = NULL;

        s->ret = em_tls_accept(s->ctx, s->lfd, s->timeout_ms, &s->conn, NULL, &err);
        if (s->ret == 0)
                s->ret = em_conn_send_str(s->conn, EM_FRAME_HELLO, "{\"first\":true}", &err);
        em_error_free(&err);
        return NULL;
}

static void test_server_speaks_first(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = server_ctx("pki", P("pki/ca.crt"), "edge1", NULL);
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("pki", P("pki/ca.crt"), "edge2", NULL);
        struct server s = {.ctx = sc, .timeout_ms = 5000};
        cleanup_conn em_conn_t *c = NULL;
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;
        char addr[64];
        int port = 0;
        pthread_t th;

        assert_int_equal(em_tcp_listen("127.0.0.1:0", 4, &s.lfd, &err), 0);
        assert_int_equal(em_tcp_local_port(s.lfd, &port, &err), 0);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        assert_int_equal(pthread_create(&th, NULL, greet_thread, &s), 0);
        if (em_gtls_connect(cc, addr, 5000, &c, NULL, &err) < 0)
                fail_msg("connect: %s", em_error_msg(err));
        assert_int_equal(em_conn_recv(c, &f, &err), 1);
        assert_string_equal((char *)f.payload, "{\"first\":true}");
        stop_server(&s, th);
        assert_int_equal(s.ret, 0);
}

struct pump {
        em_conn_t *c;
        int n, ret;
};

static void *send_many(void *arg)
{
        struct pump *p = arg;
        uint8_t buf[40000];
        em_error_t err = NULL;

        for (int i = 0; i < p->n && p->ret == 0; i++) {
                memset(buf, i, sizeof(buf));
                p->ret = em_conn_send(p->c, EM_FRAME_FILE_DATA, 0, (uint32_t)i, buf, sizeof(buf), 0,
                                      &err);
        }
        em_error_free(&err);
        return NULL;
}

static void recv_many(em_conn_t *c, int n)
{
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;

        for (int i = 0; i < n; i++) {
                if (em_conn_recv(c, &f, &err) != 1)
                        fail_msg("frame %d: %s", i, em_error_msg(err));
                assert_int_equal(f.hdr.stream, i);
                assert_int_equal(f.payload[f.length - 1], (uint8_t)i);
                em_frame_clear(&f);
        }
}

/* One thread sends while another receives, on both ends at once. */
static void test_full_duplex(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = server_ctx("pki", P("pki/ca.crt"), "edge1", NULL);
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("pki", P("pki/ca.crt"), "edge2", NULL);
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *c = NULL;
        em_error_t err = NULL;
        char addr[64];
        pthread_t th, t1, t2;

        start_server(&s, &th, addr);
        assert_int_equal(em_gtls_connect(cc, addr, 5000, &c, NULL, &err), 0);
        pthread_join(th, NULL);
        assert_int_equal(s.ret, 0);
        struct pump a = {c, 300, 0}, b = {s.conn, 300, 0};
        pthread_create(&t1, NULL, send_many, &a);
        pthread_create(&t2, NULL, send_many, &b);
        recv_many(s.conn, 300);
        recv_many(c, 300);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        assert_int_equal(a.ret, 0);
        assert_int_equal(b.ret, 0);
        em_conn_free(&s.conn);
        close(s.lfd);
}

/* Runs a refused handshake: both sides report EACCES, promptly. */
static void expect_refused(em_tls_ctx_t *sc, em_gtls_ctx_t *cc, const char *server_says,
                           const char *client_says)
{
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *c = NULL;
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;
        int64_t t0 = em_mono_ns();

        start_server(&s, &th, addr);
        assert_int_equal(em_gtls_connect(cc, addr, 5000, &c, NULL, &err), -1);
        assert_null(c);
        stop_server(&s, th);
        assert_true(em_mono_ns() - t0 < 2000000000LL); /* an alert, not a timeout */
        assert_int_equal(s.ret, -1);
        if (s.status != EACCES || strstr(s.msg, server_says) == NULL)
                fail_msg("server said (%d): %s", s.status, s.msg);
        if (em_error_status(err) != EACCES || strstr(em_error_msg(err), client_says) == NULL)
                fail_msg("client said (%d): %s", em_error_status(err), em_error_msg(err));
        em_error_free(&err);
}

static void test_client_from_another_ca_refused(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = server_ctx("pki", P("pki/ca.crt"), "edge1", NULL);
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("other", P("both.crt"), "edge1", NULL);

        expect_refused(sc, cc, "unable to get local issuer certificate", "refused by the peer");
}

static void test_server_from_another_ca_refused_by_client(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = server_ctx("other", P("both.crt"), "edge1", NULL);
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("pki", P("pki/ca.crt"), "edge2", NULL);

        expect_refused(sc, cc, "",
                       "peer certificate rejected: The certificate is NOT trusted. "
                       "The certificate issuer is unknown.");
}

static void test_peer_not_in_allow_list_refused(void **state)
{
        static const char *const allow[] = {"edge2", "controller", NULL};
        cleanup_tls_ctx em_tls_ctx_t *sc = server_ctx("pki", P("pki/ca.crt"), "edge1", allow);
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("pki", P("pki/ca.crt"), "edge3", NULL);

        expect_refused(sc, cc, "peer 'edge3' is not an allowed peer (allowed: edge2, controller)",
                       "refused by the peer");
}

/* The controller names the edge it means: another edge's certificate, valid
 * as it is, is refused before a request is sent. */
static void test_client_allow_list_checks_server(void **state)
{
        static const char *const allow[] = {"edge9", NULL};
        cleanup_tls_ctx em_tls_ctx_t *sc = server_ctx("pki", P("pki/ca.crt"), "edge1", NULL);
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("pki", P("pki/ca.crt"), "edge2", allow);

        expect_refused(sc, cc, "", "peer 'edge1' is not an allowed peer (allowed: edge9)");
}

/* A GnuTLS client at a plain server does not hang. */
static void test_client_to_plain_server(void **state)
{
        cleanup_gtls_ctx em_gtls_ctx_t *cc = client_ctx("pki", P("pki/ca.crt"), "edge2", NULL);
        cleanup_conn em_conn_t *c = NULL;
        cleanup_close int lfd = -1;
        em_error_t err = NULL;
        char addr[64];
        int port;

        assert_int_equal(em_tcp_listen("127.0.0.1:0", 4, &lfd, &err), 0);
        assert_int_equal(em_tcp_local_port(lfd, &port, &err), 0);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        assert_int_equal(em_gtls_connect(cc, addr, 300, &c, NULL, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        assert_non_null(strstr(em_error_msg(err), "TLS handshake timed out"));
        em_error_free(&err);
}

static void expect_bad_files(const char *cert, const char *key, const char *needle)
{
        struct em_tls_config cfg = {.ca = P("pki/ca.crt"), .cert = cert, .key = key};
        em_gtls_ctx_t *t = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_gtls_client_new(&cfg, &t, &err), -1);
        assert_null(t);
        if (strstr(em_error_msg(err), needle) == NULL)
                fail_msg("'%s' not in '%s'", needle, em_error_msg(err));
        em_error_free(&err);
}

static void test_ctx_rejects_bad_files(void **state)
{
        expect_bad_files(P("other/edge1.crt"), P("other/edge1.key"), "does not verify against CA");
        expect_bad_files(P("pki/edge1.crt"), P("pki/edge2.key"),
                         "edge2.key does not match certificate");
        expect_bad_files(P("pki/edge1.crt"), P("pki/missing.key"), "missing.key");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_mutual_handshake_and_frames),
            cmocka_unit_test(test_server_speaks_first),
            cmocka_unit_test(test_full_duplex),
            cmocka_unit_test(test_client_from_another_ca_refused),
            cmocka_unit_test(test_server_from_another_ca_refused_by_client),
            cmocka_unit_test(test_peer_not_in_allow_list_refused),
            cmocka_unit_test(test_client_allow_list_checks_server),
            cmocka_unit_test(test_client_to_plain_server),
            cmocka_unit_test(test_ctx_rejects_bad_files),
        };
        return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
