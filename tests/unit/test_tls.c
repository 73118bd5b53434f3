#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "transfer/ca.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

/* Made once per run by ca.c: a platform CA with edge1..edge3, and another
 * CA that also issued an "edge1". */
static char tmp[] = "/tmp/em-tls-test-XXXXXX";
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
        /* Trusts both CAs: lets the "other" client accept our server, so
         * only the server's refusal is under test. */
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

static em_tls_ctx_t *ctx(const char *dir, const char *ca, const char *name, bool server,
                         const char *const *allowed)
{
        char cert[600], key[600];
        em_tls_ctx_t *t = NULL;
        em_error_t err = NULL;

        snprintf(cert, sizeof(cert), "%s/%s/%s.crt", tmp, dir, name);
        snprintf(key, sizeof(key), "%s/%s/%s.key", tmp, dir, name);
        struct em_tls_config cfg = {.ca = ca, .cert = cert, .key = key, .allowed_peers = allowed};
        if (em_tls_ctx_new(&cfg, server, &t, &err) < 0)
                fail_msg("ctx %s: %s", name, em_error_msg(err));
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

static void *server_thread(void *arg)
{
        struct server *s = arg;
        em_error_t err = NULL;
        char *name = NULL;
        struct em_frame f cleanup_frame = {0};

        s->ret = em_tls_accept(s->ctx, s->lfd, s->timeout_ms, &s->conn, &name, &err);
        if (s->ret < 0) {
                s->status = em_error_status(err);
                snprintf(s->msg, sizeof(s->msg), "%s", em_error_msg(err));
                em_error_free(&err);
                return NULL;
        }
        snprintf(s->peer_name, sizeof(s->peer_name), "%s", name);
        free(name);
        /* Echo frames until a clean end of stream, then half-close too. */
        while (s->echo && (s->ret = em_conn_recv(s->conn, &f, &err)) > 0) {
                s->ret = em_conn_send(s->conn, f.hdr.type, 0, f.hdr.stream, f.payload, f.length, 1,
                                      &err);
                em_frame_clear(&f);
                if (s->ret < 0)
                        break;
        }
        if (s->echo && s->ret == 0)
                s->ret = em_conn_shutdown_write(s->conn, &err);
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

static void test_mutual_handshake_and_frames(void **state)
{
        static const char *const allow_client[] = {"edge2", NULL};
        static const char *const allow_server[] = {"EDGE1", NULL}; /* names are case-blind */
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, allow_client);
        cleanup_tls_ctx em_tls_ctx_t *cc =
            ctx("pki", P("pki/ca.crt"), "edge2", false, allow_server);
        struct server s = {.ctx = sc, .echo = true};
        cleanup_conn em_conn_t *c = NULL;
        cleanup_free char *name = NULL;
        cleanup_free uint8_t *big = malloc(3 << 20);
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;

        assert_string_equal(em_tls_ctx_name(sc), "edge1");
        assert_false(em_tls_ctx_allows_any(sc));
        for (size_t i = 0; i < (3u << 20); i++)
                big[i] = (uint8_t)(i * 2654435761u >> 13);
        start_server(&s, &th, addr);
        if (em_tls_connect(cc, addr, 5000, &c, &name, &err) < 0)
                fail_msg("connect: %s", em_error_msg(err));
        assert_string_equal(name, "edge1");
        assert_int_equal(em_conn_send_str(c, EM_FRAME_HELLO, "{\"hi\":1}", &err), 0);
        assert_int_equal(em_conn_send(c, EM_FRAME_PAGES_DATA, 0, 3, big, 3u << 20, 0, &err), 0);
        assert_int_equal(em_conn_recv(c, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_HELLO);
        assert_string_equal((char *)f.payload, "{\"hi\":1}");
        em_frame_clear(&f);
        assert_int_equal(em_conn_recv(c, &f, &err), 1);
        assert_int_equal(f.hdr.stream, 3);
        assert_int_equal(f.length, 3u << 20);
        assert_memory_equal(f.payload, big, 3u << 20);
        assert_int_equal(em_conn_shutdown_write(c, &err), 0);
        assert_int_equal(em_conn_recv(c, &f, &err), 0); /* server's close_notify */
        stop_server(&s, th);
        assert_int_equal(s.ret, 0);
        assert_string_equal(s.peer_name, "edge2");
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

/* One thread sends while another receives on the same connection, on both
 * ends at once (OpenSSL needs the backend's lock for this). */
static void test_full_duplex(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, NULL);
        cleanup_tls_ctx em_tls_ctx_t *cc = ctx("pki", P("pki/ca.crt"), "edge2", false, NULL);
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *c = NULL;
        em_error_t err = NULL;
        char addr[64];
        pthread_t th, t1, t2;

        assert_true(em_tls_ctx_allows_any(sc));
        start_server(&s, &th, addr);
        assert_int_equal(em_tls_connect(cc, addr, 5000, &c, NULL, &err), 0);
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

/* Runs a refused handshake; returns the client's error. */
static void expect_refusal(em_tls_ctx_t *sc, em_tls_ctx_t *cc, const char *server_says,
                           const char *client_says)
{
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *c = NULL;
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;
        int64_t t0 = em_mono_ns();

        start_server(&s, &th, addr);
        assert_int_equal(em_tls_connect(cc, addr, 5000, &c, NULL, &err), -1);
        assert_null(c);
        stop_server(&s, th);
        /* A refusal is an alert, not a timeout. */
        assert_true(em_mono_ns() - t0 < 2000000000LL);
        assert_int_equal(s.ret, -1);
        assert_int_equal(s.status, EACCES);
        assert_int_equal(em_error_status(err), EACCES);
        if (strstr(s.msg, server_says) == NULL || strstr(s.msg, "refused 127.0.0.1:") == NULL)
                fail_msg("server said: %s", s.msg);
        if (strstr(em_error_msg(err), client_says) == NULL)
                fail_msg("client said: %s", em_error_msg(err));
        em_error_free(&err);
}

/* The client refuses the server (EACCES naming why); the server sees the
 * client's alert. */
static void expect_client_refuses(em_tls_ctx_t *sc, em_tls_ctx_t *cc, const char *needle)
{
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *c = NULL;
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;

        start_server(&s, &th, addr);
        assert_int_equal(em_tls_connect(cc, addr, 5000, &c, NULL, &err), -1);
        stop_server(&s, th);
        assert_int_equal(em_error_status(err), EACCES);
        if (strstr(em_error_msg(err), needle) == NULL)
                fail_msg("'%s' not in '%s'", needle, em_error_msg(err));
        assert_int_equal(s.status, EACCES);
        em_error_free(&err);
}

static void test_client_from_another_ca_refused(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, NULL);
        cleanup_tls_ctx em_tls_ctx_t *cc = ctx("other", P("both.crt"), "edge1", false, NULL);

        expect_refusal(sc, cc, "unable to get local issuer certificate", "refused by the peer");
}

static void test_server_from_another_ca_refused_by_client(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("other", P("both.crt"), "edge1", true, NULL);
        cleanup_tls_ctx em_tls_ctx_t *cc = ctx("pki", P("pki/ca.crt"), "edge2", false, NULL);

        expect_client_refuses(sc, cc,
                              "peer certificate rejected: unable to get local issuer certificate");
}

static void test_peer_not_in_allow_list_refused(void **state)
{
        static const char *const allow[] = {"edge2", "controller", NULL};
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, allow);
        cleanup_tls_ctx em_tls_ctx_t *cc = ctx("pki", P("pki/ca.crt"), "edge3", false, NULL);

        expect_refusal(sc, cc, "peer 'edge3' is not an allowed peer (allowed: edge2, controller)",
                       "refused by the peer");
}

static void test_client_allow_list_checks_server(void **state)
{
        static const char *const allow[] = {"edge9", NULL};
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, NULL);
        cleanup_tls_ctx em_tls_ctx_t *cc = ctx("pki", P("pki/ca.crt"), "edge2", false, allow);

        expect_client_refuses(sc, cc, "peer 'edge1' is not an allowed peer");
}

/* A client with no certificate at all: plain OpenSSL, since our contexts
 * always carry one. */
static void test_client_without_cert_refused(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, NULL);
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *tcp = NULL;
        em_error_t err = NULL;
        char addr[64], b;
        pthread_t th;
        SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
        SSL *ssl;

        SSL_CTX_load_verify_locations(cx, P("pki/ca.crt"), NULL);
        start_server(&s, &th, addr);
        assert_int_equal(em_tcp_connect(addr, 2000, &tcp, &err), 0);
        int fd = em_conn_fd(tcp);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        ssl = SSL_new(cx);
        SSL_set_fd(ssl, fd);
        assert_int_equal(SSL_connect(ssl), 1); /* TLS 1.3: the client finishes first */
        assert_true(SSL_read(ssl, &b, 1) <= 0);
        assert_int_equal(ERR_GET_REASON(ERR_peek_error()), SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED);
        ERR_clear_error();
        SSL_free(ssl);
        SSL_CTX_free(cx);
        stop_server(&s, th);
        assert_int_equal(s.status, EACCES);
        assert_non_null(strstr(s.msg, "peer sent no certificate"));
}

/* Plain frames at a TLS server: a prompt, clear error on both sides. */
static void test_plain_bytes_refused(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, NULL);
        struct server s = {.ctx = sc};
        cleanup_conn em_conn_t *c = NULL;
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;
        int64_t t0 = em_mono_ns();

        start_server(&s, &th, addr);
        assert_int_equal(em_tcp_connect(addr, 2000, &c, &err), 0);
        em_conn_set_timeout(c, 3000);
        assert_int_equal(em_conn_send_str(c, EM_FRAME_HELLO, "{\"plain\":true}", &err), 0);
        stop_server(&s, th);
        assert_int_equal(s.status, EPROTO);
        if (strstr(s.msg, "does the peer speak TLS?") == NULL)
                fail_msg("server said: %s", s.msg);
        assert_int_equal(em_conn_recv(c, &f, &err) == 1, false); /* an alert, not a frame */
        em_error_free(&err);
        assert_true(em_mono_ns() - t0 < 2000000000LL);
}

static void test_silent_client_times_out(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *sc = ctx("pki", P("pki/ca.crt"), "edge1", true, NULL);
        struct server s = {.ctx = sc, .timeout_ms = 300};
        cleanup_conn em_conn_t *c = NULL;
        em_error_t err = NULL;
        char addr[64];
        pthread_t th;

        start_server(&s, &th, addr);
        assert_int_equal(em_tcp_connect(addr, 2000, &c, &err), 0);
        stop_server(&s, th);
        assert_int_equal(s.status, ETIMEDOUT);
        assert_non_null(strstr(s.msg, "TLS handshake timed out"));
}

/* A TLS client at a plain server does not hang either. */
static void test_tls_client_to_plain_server(void **state)
{
        cleanup_tls_ctx em_tls_ctx_t *cc = ctx("pki", P("pki/ca.crt"), "edge2", false, NULL);
        cleanup_conn em_conn_t *c = NULL;
        cleanup_conn em_conn_t *srv = NULL;
        cleanup_close int lfd = -1;
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;
        char addr[64];
        int port;

        assert_int_equal(em_tcp_listen("127.0.0.1:0", 4, &lfd, &err), 0);
        assert_int_equal(em_tcp_local_port(lfd, &port, &err), 0);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        /* The backlog holds the connection; the plain server never answers. */
        assert_int_equal(em_tls_connect(cc, addr, 300, &c, NULL, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        assert_int_equal(em_tcp_accept(lfd, 1000, &srv, &err), 0);
        em_conn_set_timeout(srv, 1000);
        assert_int_equal(em_conn_recv(srv, &f, &err), -1); /* a ClientHello is no frame */
        assert_int_equal(em_error_status(err), EM_FRAME_E_MAGIC);
        em_error_free(&err);
}

static void test_ctx_rejects_bad_files(void **state)
{
        em_tls_ctx_t *t = NULL;
        em_error_t err = NULL;
        struct em_tls_config cfg = {
            .ca = P("pki/ca.crt"), .cert = P("other/edge1.crt"), .key = P("other/edge1.key")};

        assert_int_equal(em_tls_ctx_new(&cfg, true, &t, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "does not verify against CA"));
        em_error_free(&err);
        cfg = (struct em_tls_config){
            .ca = P("pki/ca.crt"), .cert = P("pki/edge1.crt"), .key = P("pki/edge2.key")};
        assert_int_equal(em_tls_ctx_new(&cfg, true, &t, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "edge2.key"));
        assert_non_null(strstr(em_error_msg(err), "key values mismatch")); /* OpenSSL's words */
        em_error_free(&err);
        cfg.key = P("pki/missing.key");
        assert_int_equal(em_tls_ctx_new(&cfg, true, &t, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "missing.key"));
        em_error_free(&err);
        assert_null(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_mutual_handshake_and_frames),
            cmocka_unit_test(test_full_duplex),
            cmocka_unit_test(test_client_from_another_ca_refused),
            cmocka_unit_test(test_server_from_another_ca_refused_by_client),
            cmocka_unit_test(test_peer_not_in_allow_list_refused),
            cmocka_unit_test(test_client_allow_list_checks_server),
            cmocka_unit_test(test_client_without_cert_refused),
            cmocka_unit_test(test_plain_bytes_refused),
            cmocka_unit_test(test_silent_client_times_out),
            cmocka_unit_test(test_tls_client_to_plain_server),
            cmocka_unit_test(test_ctx_rejects_bad_files),
        };
        return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
