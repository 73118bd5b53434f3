#include "transfer/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "transfer/ca.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

/* Largest TLS record payload: writev coalesces into records of this size. */
#define TLS_RECORD 16384

struct em_tls_ctx {
        SSL_CTX *ssl_ctx;
        bool server;
        char **allowed; /* NULL-terminated, empty: any */
        char *self_name;
};

/* One connection's state (the em_conn_t priv). OpenSSL forbids concurrent
 * calls on one SSL, while em_conn_t lets one thread send while another
 * receives: every SSL call holds lock, never across a poll. */
struct tls_priv {
        SSL *ssl;
        pthread_mutex_t lock;
        bool confirmed;   /* client: the server sent a session ticket */
        char reason[512]; /* why our verify callback refused the peer */
        char *peer_name;
        uint8_t stage[TLS_RECORD];
};

enum tls_op { OP_CONNECT, OP_ACCEPT, OP_READ, OP_PEEK, OP_WRITE, OP_SHUTDOWN };
enum { IO_DONE = 1, IO_WAIT = 0, IO_EOF = 2, IO_ERR = -1 };

/* One non-blocking SSL call. IO_WAIT sets *want to the poll events needed. */
static int tls_io(struct tls_priv *p, enum tls_op op, void *buf, size_t len, size_t *done,
                  short *want, int *ssl_err)
{
        int r = 0, e;

        pthread_mutex_lock(&p->lock);
        ERR_clear_error();
        errno = 0;
        switch (op) {
        case OP_CONNECT:
                r = SSL_connect(p->ssl);
                break;
        case OP_ACCEPT:
                r = SSL_accept(p->ssl);
                break;
        case OP_READ:
                r = SSL_read_ex(p->ssl, buf, len, done);
                break;
        case OP_PEEK:
                r = SSL_peek_ex(p->ssl, buf, len, done);
                break;
        case OP_WRITE:
                r = SSL_write_ex(p->ssl, buf, len, done);
                break;
        case OP_SHUTDOWN:
                r = SSL_shutdown(p->ssl) >= 0;
                break;
        }
        e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(p->ssl, r);
        pthread_mutex_unlock(&p->lock);
        *ssl_err = e;
        switch (e) {
        case SSL_ERROR_NONE:
                return IO_DONE;
        case SSL_ERROR_WANT_READ:
                *want = POLLIN;
                return IO_WAIT;
        case SSL_ERROR_WANT_WRITE:
                *want = POLLOUT;
                return IO_WAIT;
        case SSL_ERROR_ZERO_RETURN:
                return IO_EOF;
        default:
                return IO_ERR;
        }
}

/* Error of a failed data-phase call (the queue is thread-local: still ours). */
static int io_error(em_conn_t *c, int ssl_err, const char *what, em_error_t *err)
{
        if (ssl_err == SSL_ERROR_SYSCALL && errno != 0)
                return em_error_set(err, errno, "TLS %s %s", what, em_conn_peer(c));
        return em_ssl_error(err, ssl_err == SSL_ERROR_SYSCALL ? ECONNRESET : EPROTO, "TLS %s %s",
                            what, em_conn_peer(c));
}

static int tls_read(em_conn_t *c, void *buf, size_t len, size_t *got, int timeout_ms,
                    em_error_t *err)
{
        struct tls_priv *p = em_conn_priv(c);
        size_t off = 0;

        while (off < len) {
                size_t n = 0;
                short want = 0;
                int e, r = tls_io(p, OP_READ, (uint8_t *)buf + off, len - off, &n, &want, &e);

                if (r == IO_ERR)
                        return io_error(c, e, "reading from", err);
                if (r == IO_EOF) /* close_notify, or a bare FIN like plain TCP */
                        break;
                off += n;
                if (r == IO_WAIT && em_fd_wait(em_conn_fd(c), want, timeout_ms, err) < 0)
                        return em_error_wrap(err, "reading from %s", em_conn_peer(c));
        }
        *got = off;
        return 0;
}

struct record_ctx {
        em_conn_t *c;
        int timeout_ms;
};

static int write_record(void *arg, size_t len, em_error_t *err)
{
        struct record_ctx *r = arg;
        struct tls_priv *p = em_conn_priv(r->c);

        for (;;) {
                size_t n = 0;
                short want = 0;
                int e, st = tls_io(p, OP_WRITE, p->stage, len, &n, &want, &e);

                if (st == IO_DONE)
                        return 0;
                if (st != IO_WAIT)
                        return io_error(r->c, e, "writing to", err);
                /* A retry must pass the same buffer and length (it does). */
                if (em_fd_wait(em_conn_fd(r->c), want, r->timeout_ms, err) < 0)
                        return em_error_wrap(err, "writing to %s", em_conn_peer(r->c));
        }
}

static int tls_writev(em_conn_t *c, const struct iovec *iov, int iovcnt, int timeout_ms,
                      em_error_t *err)
{
        struct tls_priv *p = em_conn_priv(c);
        struct record_ctx r = {c, timeout_ms};

        return em_iov_records(iov, iovcnt, p->stage, TLS_RECORD, write_record, &r, err);
}

/* close_notify, then a TCP half-close; TLS 1.3 still lets us read. */
static int tls_shutdown_write(em_conn_t *c, em_error_t *err)
{
        struct tls_priv *p = em_conn_priv(c);

        for (;;) {
                size_t n = 0;
                short want = 0;
                int e, r = tls_io(p, OP_SHUTDOWN, NULL, 0, &n, &want, &e);

                if (r == IO_DONE || r == IO_EOF)
                        break;
                if (r == IO_ERR)
                        return io_error(c, e, "shutting down", err);
                if (em_fd_wait(em_conn_fd(c), want, 30000, err) < 0)
                        return em_error_wrap(err, "shutting down %s", em_conn_peer(c));
        }
        if (shutdown(em_conn_fd(c), SHUT_WR) < 0 && errno != ENOTCONN)
                return em_error_set(err, errno, "shutting down %s", em_conn_peer(c));
        return 0;
}

static void priv_free(struct tls_priv *p)
{
        if (p == NULL)
                return;
        SSL_free(p->ssl);
        pthread_mutex_destroy(&p->lock);
        free(p->peer_name);
        free(p);
}

static void priv_free_any(void *p)
{
        priv_free(p);
}

static void tls_destroy(em_conn_t *c)
{
        struct tls_priv *p = em_conn_priv(c);

        /* Best effort, non-blocking: the peer then sees a clean end. */
        if (p != NULL && SSL_is_init_finished(p->ssl) &&
            !(SSL_get_shutdown(p->ssl) & SSL_SENT_SHUTDOWN)) {
                SSL_shutdown(p->ssl);
                ERR_clear_error();
        }
        priv_free(p);
        if (em_conn_fd(c) >= 0)
                close(em_conn_fd(c));
}

static const char *tls_identity(const em_conn_t *c)
{
        const struct tls_priv *p = em_conn_priv(c);

        return p->peer_name;
}

static const struct em_conn_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .set_nodelay = em_conn_tcp_nodelay,
    .shutdown_write = tls_shutdown_write,
    .destroy = tls_destroy,
    .identity = tls_identity,
};

bool em_tls_conn(const em_conn_t *c)
{
        return c != NULL && em_conn_backend(c) == &tls_ops;
}

/* Depth 0 (the peer's own certificate), chain already verified: identity. */
static int check_identity(const em_tls_ctx_t *t, struct tls_priv *p, X509 *cert)
{
        cleanup_strv char **names = NULL;

        if (X509_check_ca(cert) > 0) {
                snprintf(p->reason, sizeof(p->reason), "peer presented a CA certificate");
                return 0;
        }
        if (em_x509_names(cert, &names, NULL) < 0 || names[0] == NULL) {
                snprintf(p->reason, sizeof(p->reason), "peer certificate names no identity");
                return 0;
        }
        const char *match = em_tls_name_admit(names, t->allowed, p->reason, sizeof(p->reason));
        if (match == NULL)
                return 0;
        free(p->peer_name);
        p->peer_name = strdup(match);
        return p->peer_name != NULL;
}

static int verify_cb(int ok, X509_STORE_CTX *xs)
{
        SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
        struct tls_priv *p = SSL_get_app_data(ssl);
        const em_tls_ctx_t *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
        X509 *cert = X509_STORE_CTX_get_current_cert(xs);
        int depth = X509_STORE_CTX_get_error_depth(xs);

        if (!ok) {
                cleanup_free char *subj = cert ? em_x509_subject(cert) : NULL;
                if (p->reason[0] == '\0')
                        snprintf(p->reason, sizeof(p->reason), "%s (certificate %s)",
                                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)),
                                 subj ? subj : "?");
                return 0;
        }
        if (depth > 0)
                return 1;
        if (!check_identity(t, p, cert)) {
                /* "certificate rejected" makes OpenSSL send a bad_certificate alert. */
                X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
                return 0;
        }
        return 1;
}

/* Client: TLS 1.3 tickets come after the server has checked our
 * certificate, so the first one means "accepted". */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
        struct tls_priv *p = SSL_get_app_data(ssl);

        p->confirmed = true;
        return 0; /* not kept: every connection authenticates in full */
}

static void ssl_ctx_freep(SSL_CTX **s)
{
        SSL_CTX_free(*s);
        *s = NULL;
}

/* Fails early on a certificate the CA did not sign: the peer would refuse
 * it anyway, with a far less helpful message on the other host. */
static int check_own_cert(SSL_CTX *s, const struct em_tls_config *cfg, em_error_t *err)
{
        X509_STORE_CTX *xs = X509_STORE_CTX_new();
        X509 *own = SSL_CTX_get0_certificate(s);
        int ok;

        if (xs == NULL || X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(s), own, NULL) != 1) {
                X509_STORE_CTX_free(xs);
                return em_ssl_error(err, ENOMEM, "checking %s", cfg->cert);
        }
        ok = X509_verify_cert(xs);
        if (ok != 1) {
                int e = X509_STORE_CTX_get_error(xs);
                X509_STORE_CTX_free(xs);
                ERR_clear_error();
                return em_error_set(err, EINVAL, "%s does not verify against CA %s: %s", cfg->cert,
                                    cfg->ca, X509_verify_cert_error_string(e));
        }
        X509_STORE_CTX_free(xs);
        return 0;
}

static int load_files(SSL_CTX *s, const struct em_tls_config *cfg, em_error_t *err)
{
        if (cfg->ca == NULL || cfg->cert == NULL || cfg->key == NULL)
                return em_error_set(err, EINVAL, "TLS needs a CA, a certificate and a key");
        ERR_clear_error();
        if (SSL_CTX_load_verify_locations(s, cfg->ca, NULL) != 1)
                return em_ssl_error(err, EINVAL, "loading CA %s", cfg->ca);
        if (SSL_CTX_use_certificate_chain_file(s, cfg->cert) != 1)
                return em_ssl_error(err, EINVAL, "loading certificate %s", cfg->cert);
        if (SSL_CTX_use_PrivateKey_file(s, cfg->key, SSL_FILETYPE_PEM) != 1)
                return em_ssl_error(err, EINVAL, "loading key %s", cfg->key);
        if (SSL_CTX_check_private_key(s) != 1)
                return em_ssl_error(err, EINVAL, "key %s does not match certificate %s", cfg->key,
                                    cfg->cert);
        return check_own_cert(s, cfg, err);
}

static int setup_ssl_ctx(SSL_CTX *s, em_tls_ctx_t *t, em_error_t *err)
{
        static const unsigned char sid_ctx[] = "edgemig";

        if (SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) != 1)
                return em_ssl_error(err, EINVAL, "requiring TLS 1.3");
        SSL_CTX_set_options(s, SSL_OP_IGNORE_UNEXPECTED_EOF);
        /* Send the leaf only: the peer must already trust our CA itself. */
        SSL_CTX_set_mode(s, SSL_MODE_NO_AUTO_CHAIN);
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
        SSL_CTX_set_verify_depth(s, 4);
        SSL_CTX_set_app_data(s, t);
        if (t->server) {
                SSL_CTX_set_num_tickets(s, 1);
                SSL_CTX_set_session_id_context(s, sid_ctx, sizeof(sid_ctx) - 1);
        } else {
                SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT |
                                                      SSL_SESS_CACHE_NO_INTERNAL_STORE);
                SSL_CTX_sess_set_new_cb(s, new_session_cb);
        }
        return 0;
}

int em_tls_ctx_new(const struct em_tls_config *cfg, bool server, em_tls_ctx_t **out,
                   em_error_t *err)
{
        __attribute__((cleanup(em_tls_ctx_free))) em_tls_ctx_t *t = calloc(1, sizeof(*t));
        __attribute__((cleanup(ssl_ctx_freep))) SSL_CTX *s = NULL;
        cleanup_strv char **names = NULL;

        if (t == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        t->server = server;
        s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (s == NULL)
                return em_ssl_error(err, ENOMEM, "creating a TLS context");
        if (em_tls_names_copy(cfg->allowed_peers, &t->allowed, err) < 0 ||
            setup_ssl_ctx(s, t, err) < 0 || load_files(s, cfg, err) < 0)
                return -1;
        if (em_x509_names(SSL_CTX_get0_certificate(s), &names, err) < 0)
                return -1;
        t->self_name = strdup(names[0] ? names[0] : "?");
        if (t->self_name == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        t->ssl_ctx = steal_pointer(&s);
        *out = steal_pointer(&t);
        return 0;
}

void em_tls_ctx_free(em_tls_ctx_t **tp)
{
        em_tls_ctx_t *t = *tp;

        if (t == NULL)
                return;
        SSL_CTX_free(t->ssl_ctx);
        em_strv_free(t->allowed);
        free(t->self_name);
        free(t);
        *tp = NULL;
}

const char *em_tls_ctx_name(const em_tls_ctx_t *t)
{
        return t->self_name;
}

bool em_tls_ctx_allows_any(const em_tls_ctx_t *t)
{
        return t->allowed[0] == NULL;
}

static bool is_refusal_alert(int reason)
{
        switch (reason) {
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
                return true;
        default:
                return false;
        }
}

/* Turns a failed handshake into one clear sentence. */
static int handshake_error(struct tls_priv *p, int ssl_err, em_error_t *err)
{
        int reason = ERR_GET_REASON(ERR_peek_error());

        if (p->reason[0] != '\0')
                return em_ssl_error(err, EACCES, "peer certificate rejected: %s", p->reason);
        if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
                return em_ssl_error(err, EACCES, "peer sent no certificate");
        if (is_refusal_alert(reason))
                return em_ssl_error(err, EACCES, "refused by the peer (our certificate)");
        if (ssl_err == SSL_ERROR_SYSCALL && errno != 0)
                return em_error_set(err, errno, "TLS handshake");
        if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN)
                return em_ssl_error(err, ECONNRESET,
                                    "peer closed the connection in the TLS "
                                    "handshake");
        return em_ssl_error(err, EPROTO, "TLS handshake failed (does the peer speak TLS?)");
}

static int remaining_ms(int64_t deadline, em_error_t *err)
{
        int64_t left;

        if (deadline == 0)
                return -1;
        left = (deadline - em_mono_ns()) / 1000000;
        if (left <= 0)
                return em_error_set(err, ETIMEDOUT, "TLS handshake timed out"), 0;
        return (int)left;
}

/* Runs the handshake, then (client) waits until the server accepted us. */
static int handshake(struct tls_priv *p, int fd, bool server, int timeout_ms, em_error_t *err)
{
        int64_t deadline = timeout_ms > 0 ? em_mono_ns() + (int64_t)timeout_ms * 1000000 : 0;
        enum tls_op op = server ? OP_ACCEPT : OP_CONNECT;
        uint8_t b;

        for (;;) {
                size_t n = 0;
                short want = 0;
                int e, ms, r = tls_io(p, op, &b, sizeof(b), &n, &want, &e);

                if (op == OP_PEEK && (p->confirmed || r == IO_DONE))
                        return 0; /* a ticket, or data: the server took us */
                if (r == IO_DONE && op == OP_ACCEPT)
                        return 0;
                if (r == IO_DONE) {
                        op = OP_PEEK;
                        continue;
                }
                if (r != IO_WAIT)
                        return handshake_error(p, e, err);
                ms = remaining_ms(deadline, err);
                if (ms == 0 || em_fd_wait(fd, want, ms, err) < 0)
                        return em_error_set(err, ETIMEDOUT, "TLS handshake timed out after %d ms",
                                            timeout_ms);
        }
}

/* Builds a TLS connection over fd (consumed). */
static int tls_new(em_tls_ctx_t *t, int fd_in, const char *peer, int timeout_ms, em_conn_t **out,
                   char **peer_name, em_error_t *err)
{
        cleanup_close int fd = fd_in;
        struct tls_priv *p = calloc(1, sizeof(*p));

        if (p == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        pthread_mutex_init(&p->lock, NULL);
        p->ssl = SSL_new(t->ssl_ctx);
        if (p->ssl == NULL || SSL_set_fd(p->ssl, fd) != 1) {
                priv_free(p);
                return em_ssl_error(err, ENOMEM, "creating a TLS session");
        }
        SSL_set_app_data(p->ssl, p);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (handshake(p, fd, t->server, timeout_ms, err) < 0) {
                priv_free(p);
                return -1;
        }
        return em_conn_wrap_session(&tls_ops, &fd, p, priv_free_any, p->peer_name, peer, peer_name,
                                    out, err);
}

int em_tls_upgrade(em_tls_ctx_t *t, em_conn_t **conn, int timeout_ms, char **peer_name,
                   em_error_t *err)
{
        cleanup_free char *peer = NULL;
        int fd = em_conn_detach(conn, &peer, err);

        if (fd < 0)
                return -1;
        if (tls_new(t, fd, peer, timeout_ms, conn, peer_name, err) < 0)
                return em_error_wrap(err, "%s %s", t->server ? "refused" : "TLS with", peer);
        return 0;
}

int em_tls_connect(em_tls_ctx_t *t, const char *hostport, int timeout_ms, em_conn_t **out,
                   char **peer_name, em_error_t *err)
{
        em_conn_t *plain = NULL;

        if (t->server)
                return em_error_set(err, EINVAL, "a server TLS context cannot connect");
        if (em_tcp_connect(hostport, timeout_ms, &plain, err) < 0)
                return -1;
        if (em_tls_upgrade(t, &plain, timeout_ms, peer_name, err) < 0)
                return -1;
        *out = plain;
        return 0;
}

int em_tls_accept(em_tls_ctx_t *t, int listen_fd, int timeout_ms, em_conn_t **out, char **peer_name,
                  em_error_t *err)
{
        em_conn_t *plain = NULL;

        if (!t->server)
                return em_error_set(err, EINVAL, "a client TLS context cannot accept");
        if (em_tcp_accept(listen_fd, timeout_ms, &plain, err) < 0)
                return -1;
        if (em_tls_upgrade(t, &plain, timeout_ms, peer_name, err) < 0)
                return -1;
        *out = plain;
        return 0;
}

int em_tls_default_paths(const char *root, const char *name, char **ca, char **cert, char **key,
                         em_error_t *err)
{
        char host[256] = "";

        if (name == NULL) {
                if (gethostname(host, sizeof(host) - 1) < 0)
                        return em_error_set(err, errno, "gethostname");
                host[strcspn(host, ".")] = '\0';
                name = host;
        }
        *ca = *cert = *key = NULL;
        if (asprintf(ca, "%s/pki/%s", root, EM_CA_CERT) < 0 ||
            asprintf(cert, "%s/pki/%s.crt", root, name) < 0 ||
            asprintf(key, "%s/pki/%s.key", root, name) < 0) {
                free(*ca);
                free(*cert);
                *ca = *cert = *key = NULL;
                return em_error_set(err, ENOMEM, "allocating");
        }
        return em_path_exists(*ca) && em_path_exists(*cert) && em_path_exists(*key);
}
