#include "transfer/tls_gnutls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "transfer/cert_names.h"
#include "util/cleanup.h"
#include "util/clock.h"

/* Largest TLS record payload: writev coalesces into records of this size. */
#define TLS_RECORD 16384
/* TLS 1.3 only, as edgemigd's OpenSSL server requires. */
#define PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3"

struct em_gtls_ctx {
        gnutls_certificate_credentials_t cred;
        char **allowed; /* NULL-terminated, empty: any */
        char *self_name;
};

/* One connection (the em_conn_t priv). Every GnuTLS call on the session
 * holds lock (never across a poll), so one thread may send while another
 * receives, as em_conn_t allows. */
struct gtls_priv {
        gnutls_session_t s;
        pthread_mutex_t lock;
        const em_gtls_ctx_t *ctx;
        bool confirmed;   /* the server sent a session ticket */
        char reason[512]; /* why our verify function refused the peer */
        char *peer_name;
        /* Data that arrived while waiting for the ticket, not yet read. */
        uint8_t early[TLS_RECORD];
        size_t early_len, early_off;
        uint8_t stage[TLS_RECORD];
};

enum gtls_op { OP_HANDSHAKE, OP_READ, OP_WRITE, OP_BYE };
enum { IO_DONE = 1, IO_WAIT = 0, IO_EOF = 2, IO_ERR = -1 };

static int gtls_error(em_error_t *err, int status, int gerr, const char *what)
{
        return em_error_set(err, status, "%s: %s", what, gnutls_strerror(gerr));
}

static ssize_t gtls_call(struct gtls_priv *p, enum gtls_op op, void *buf, size_t len)
{
        switch (op) {
        case OP_HANDSHAKE:
                return gnutls_handshake(p->s);
        case OP_READ:
                return gnutls_record_recv(p->s, buf, len);
        case OP_WRITE:
                return gnutls_record_send(p->s, buf, len);
        case OP_BYE:
                return gnutls_bye(p->s, GNUTLS_SHUT_WR);
        }
        return GNUTLS_E_INVALID_REQUEST;
}

/* One non-blocking call. IO_WAIT sets *want to the poll events needed (0:
 * call again at once, after a warning alert). */
static int gtls_io(struct gtls_priv *p, enum gtls_op op, void *buf, size_t len, size_t *done,
                   short *want, int *gerr)
{
        ssize_t r;
        int dir;

        pthread_mutex_lock(&p->lock);
        r = gtls_call(p, op, buf, len);
        dir = gnutls_record_get_direction(p->s);
        pthread_mutex_unlock(&p->lock);
        *gerr = r < 0 ? (int)r : 0;
        *want = 0;
        if (r >= 0) {
                *done = (size_t)r;
                return op == OP_READ && r == 0 ? IO_EOF : IO_DONE;
        }
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
                *want = dir ? POLLOUT : POLLIN;
                return IO_WAIT;
        }
        if (!gnutls_error_is_fatal((int)r))
                return IO_WAIT;
        /* A bare FIN ends the stream as on plain TCP (the OpenSSL backend
         * ignores an unexpected EOF too). */
        return op == OP_READ && r == GNUTLS_E_PREMATURE_TERMINATION ? IO_EOF : IO_ERR;
}

static int io_error(em_conn_t *c, int gerr, const char *what, em_error_t *err)
{
        return em_error_set(
            err, gerr == GNUTLS_E_PUSH_ERROR || gerr == GNUTLS_E_PULL_ERROR ? ECONNRESET : EPROTO,
            "TLS %s %s: %s", what, em_conn_peer(c), gnutls_strerror(gerr));
}

static size_t take_early(struct gtls_priv *p, void *buf, size_t len)
{
        size_t n = p->early_len - p->early_off;

        if (n > len)
                n = len;
        memcpy(buf, p->early + p->early_off, n);
        p->early_off += n;
        return n;
}

static int gtls_read(em_conn_t *c, void *buf, size_t len, size_t *got, int timeout_ms,
                     em_error_t *err)
{
        struct gtls_priv *p = em_conn_priv(c);
        size_t off = 0;

        pthread_mutex_lock(&p->lock);
        off = take_early(p, buf, len);
        pthread_mutex_unlock(&p->lock);
        while (off < len) {
                size_t n = 0;
                short want = 0;
                int e, r = gtls_io(p, OP_READ, (uint8_t *)buf + off, len - off, &n, &want, &e);

                if (r == IO_ERR)
                        return io_error(c, e, "reading from", err);
                if (r == IO_EOF)
                        break;
                if (r == IO_DONE)
                        off += n;
                else if (want != 0 && em_fd_wait(em_conn_fd(c), want, timeout_ms, err) < 0)
                        return em_error_wrap(err, "reading from %s", em_conn_peer(c));
        }
        *got = off;
        return 0;
}

struct record_ctx {
        em_conn_t *c;
        int timeout_ms;
};

/* gnutls_record_send may take less than a record; a retry after
 * GNUTLS_E_AGAIN passes the same data, as GnuTLS requires. */
static int write_record(void *arg, size_t len, em_error_t *err)
{
        struct record_ctx *rc = arg;
        struct gtls_priv *p = em_conn_priv(rc->c);
        size_t off = 0;

        while (off < len) {
                size_t n = 0;
                short want = 0;
                int e, r = gtls_io(p, OP_WRITE, p->stage + off, len - off, &n, &want, &e);

                if (r == IO_ERR)
                        return io_error(rc->c, e, "writing to", err);
                if (r == IO_DONE)
                        off += n;
                else if (want != 0 && em_fd_wait(em_conn_fd(rc->c), want, rc->timeout_ms, err) < 0)
                        return em_error_wrap(err, "writing to %s", em_conn_peer(rc->c));
        }
        return 0;
}

static int gtls_writev(em_conn_t *c, const struct iovec *iov, int iovcnt, int timeout_ms,
                       em_error_t *err)
{
        struct gtls_priv *p = em_conn_priv(c);
        struct record_ctx rc = {c, timeout_ms};

        return em_iov_records(iov, iovcnt, p->stage, TLS_RECORD, write_record, &rc, err);
}

/* close_notify, then a TCP half-close; TLS 1.3 still lets us read. */
static int gtls_shutdown_write(em_conn_t *c, em_error_t *err)
{
        struct gtls_priv *p = em_conn_priv(c);

        for (;;) {
                size_t n = 0;
                short want = 0;
                int e, r = gtls_io(p, OP_BYE, NULL, 0, &n, &want, &e);

                if (r == IO_DONE)
                        break;
                if (r == IO_ERR)
                        return io_error(c, e, "shutting down", err);
                if (want != 0 && em_fd_wait(em_conn_fd(c), want, 30000, err) < 0)
                        return em_error_wrap(err, "shutting down %s", em_conn_peer(c));
        }
        if (shutdown(em_conn_fd(c), SHUT_WR) < 0 && errno != ENOTCONN)
                return em_error_set(err, errno, "shutting down %s", em_conn_peer(c));
        return 0;
}

static void priv_free(struct gtls_priv *p)
{
        if (p == NULL)
                return;
        if (p->s != NULL)
                gnutls_deinit(p->s);
        pthread_mutex_destroy(&p->lock);
        free(p->peer_name);
        free(p);
}

static void priv_free_any(void *p)
{
        priv_free(p);
}

static void gtls_destroy(em_conn_t *c)
{
        struct gtls_priv *p = em_conn_priv(c);

        /* Best effort, non-blocking: the peer then sees a clean end. */
        if (p != NULL && p->confirmed)
                gnutls_bye(p->s, GNUTLS_SHUT_WR);
        priv_free(p);
        if (em_conn_fd(c) >= 0)
                close(em_conn_fd(c));
}

static const char *gtls_identity(const em_conn_t *c)
{
        const struct gtls_priv *p = em_conn_priv(c);

        return p->peer_name;
}

static const struct em_conn_ops gtls_ops = {
    .name = "tls-gnutls",
    .read = gtls_read,
    .writev = gtls_writev,
    .set_nodelay = em_conn_tcp_nodelay,
    .shutdown_write = gtls_shutdown_write,
    .destroy = gtls_destroy,
    .identity = gtls_identity,
};

bool em_gtls_conn(const em_conn_t *c)
{
        return c != NULL && em_conn_backend(c) == &gtls_ops;
}

/* The server's own certificate, chain already verified: identity. */
static int check_identity(struct gtls_priv *p, gnutls_x509_crt_t crt)
{
        const em_gtls_ctx_t *t = p->ctx;
        cleanup_strv char **names = NULL;

        if (gnutls_x509_crt_get_ca_status(crt, NULL) > 0)
                return snprintf(p->reason, sizeof(p->reason), "peer presented a CA certificate"),
                       -1;
        if (em_gnutls_crt_names(crt, &names, NULL) < 0 || names[0] == NULL)
                return snprintf(p->reason, sizeof(p->reason), "peer certificate names no identity"),
                       -1;
        const char *match = em_tls_name_admit(names, t->allowed, p->reason, sizeof(p->reason));
        if (match == NULL)
                return -1;
        free(p->peer_name);
        p->peer_name = strdup(match);
        return p->peer_name != NULL ? 0 : -1;
}

/* GnuTLS's sentence(s) for a verification status, without its trailing
 * blank. */
static void status_text(unsigned status, char *buf, size_t size)
{
        gnutls_datum_t text = {NULL, 0};
        size_t n;

        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        snprintf(buf, size, "%s", text.data ? (char *)text.data : "invalid certificate");
        gnutls_free(text.data);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == ' ')
                buf[--n] = '\0';
}

/* The chain against the CA, validity and the server purpose (as OpenSSL's
 * client checks them), into p->reason when it fails. */
static int check_chain(struct gtls_priv *p)
{
        gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                         .data = (void *)GNUTLS_KP_TLS_WWW_SERVER};
        unsigned status = 0;

        if (gnutls_certificate_verify_peers(p->s, &purpose, 1, &status) < 0)
                status = GNUTLS_CERT_INVALID;
        if (status == 0)
                return 0;
        status_text(status, p->reason, sizeof(p->reason));
        return -1;
}

/* Called by GnuTLS once the server's certificate arrived; a refusal ends
 * the handshake (and we send an alert, handshake_error). */
static int verify_cb(gnutls_session_t s)
{
        struct gtls_priv *p = gnutls_session_get_ptr(s);
        unsigned n = 0;
        const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
        gnutls_x509_crt_t crt;
        int rc;

        if (check_chain(p) < 0)
                return GNUTLS_E_CERTIFICATE_ERROR;
        if (peers == NULL || n == 0 || gnutls_x509_crt_init(&crt) < 0)
                return GNUTLS_E_CERTIFICATE_ERROR;
        rc = gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0
                 ? -1
                 : check_identity(p, crt);
        gnutls_x509_crt_deinit(crt);
        return rc < 0 ? GNUTLS_E_CERTIFICATE_ERROR : 0;
}

/* TLS 1.3 tickets come after the server has checked our certificate, so
 * the first one means "accepted". */
static int ticket_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                       const gnutls_datum_t *msg)
{
        struct gtls_priv *p = gnutls_session_get_ptr(s);

        if (incoming)
                p->confirmed = true;
        return 0;
}

static bool is_refusal_alert(gnutls_alert_description_t a)
{
        switch (a) {
        case GNUTLS_A_BAD_CERTIFICATE:
        case GNUTLS_A_CERTIFICATE_UNKNOWN:
        case GNUTLS_A_CERTIFICATE_EXPIRED:
        case GNUTLS_A_CERTIFICATE_REVOKED:
        case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
        case GNUTLS_A_HANDSHAKE_FAILURE:
        case GNUTLS_A_UNKNOWN_CA:
        case GNUTLS_A_ACCESS_DENIED:
        case GNUTLS_A_DECRYPT_ERROR:
        case GNUTLS_A_CERTIFICATE_REQUIRED:
                return true;
        default:
                return false;
        }
}

/* Turns a failed handshake into one clear sentence; tells the server why
 * with an alert where GnuTLS has one for the error. */
static int handshake_error(struct gtls_priv *p, int gerr, em_error_t *err)
{
        bool peer_gone = gerr == GNUTLS_E_FATAL_ALERT_RECEIVED || gerr == GNUTLS_E_PULL_ERROR ||
                         gerr == GNUTLS_E_PUSH_ERROR || gerr == GNUTLS_E_PREMATURE_TERMINATION;

        if (!peer_gone) {
                pthread_mutex_lock(&p->lock);
                gnutls_alert_send_appropriate(p->s, gerr);
                pthread_mutex_unlock(&p->lock);
        }
        if (p->reason[0] != '\0')
                return em_error_set(err, EACCES, "peer certificate rejected: %s", p->reason);
        if (gerr == GNUTLS_E_FATAL_ALERT_RECEIVED && is_refusal_alert(gnutls_alert_get(p->s)))
                return em_error_set(err, EACCES, "refused by the peer (our certificate): %s",
                                    gnutls_alert_get_name(gnutls_alert_get(p->s)));
        if (peer_gone)
                return gtls_error(err, ECONNRESET, gerr,
                                  "peer closed the connection in the TLS handshake");
        return gtls_error(err, EPROTO, gerr, "TLS handshake failed (does the peer speak TLS?)");
}

static int remaining_ms(int64_t deadline)
{
        int64_t left;

        if (deadline == 0)
                return -1;
        left = (deadline - em_mono_ns()) / 1000000;
        return left > 0 ? (int)left : 0;
}

/* After the handshake: reads until the server's ticket (or data, kept for
 * the first read) shows that it took our certificate. */
static int await_ticket(struct gtls_priv *p, size_t *n, short *want, int *gerr)
{
        int r = gtls_io(p, OP_READ, p->early, sizeof(p->early), n, want, gerr);

        if (r == IO_DONE) {
                p->early_len = *n;
                p->confirmed = true;
        }
        return r == IO_EOF ? IO_ERR : r;
}

static int handshake(struct gtls_priv *p, int fd, int timeout_ms, em_error_t *err)
{
        int64_t deadline = timeout_ms > 0 ? em_mono_ns() + (int64_t)timeout_ms * 1000000 : 0;
        bool done = false;

        while (!p->confirmed) {
                size_t n = 0;
                short want = 0;
                int e = 0, ms,
                    r = done ? await_ticket(p, &n, &want, &e)
                             : gtls_io(p, OP_HANDSHAKE, NULL, 0, &n, &want, &e);

                if (r == IO_DONE) {
                        done = true;
                        continue;
                }
                if (r == IO_ERR)
                        return handshake_error(p, e ? e : GNUTLS_E_PREMATURE_TERMINATION, err);
                if (p->confirmed) /* the ticket came in a read that wants more */
                        break;
                ms = remaining_ms(deadline);
                if (ms == 0 || (want != 0 && em_fd_wait(fd, want, ms, err) < 0))
                        return em_error_set(err, ETIMEDOUT, "TLS handshake timed out after %d ms",
                                            timeout_ms);
        }
        return 0;
}

static int session_new(em_gtls_ctx_t *t, struct gtls_priv *p, int fd, em_error_t *err)
{
        int r = gnutls_init(&p->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);

        if (r < 0)
                return gtls_error(err, ENOMEM, r, "creating a TLS session");
        if ((r = gnutls_priority_set_direct(p->s, PRIORITIES, NULL)) < 0 ||
            (r = gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0)
                return gtls_error(err, EINVAL, r, "setting up a TLS session");
        gnutls_session_set_ptr(p->s, p);
        gnutls_transport_set_int(p->s, fd);
        gnutls_handshake_set_timeout(p->s, 0); /* handshake() keeps the deadline */
        gnutls_handshake_set_hook_function(p->s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
                                           GNUTLS_HOOK_POST, ticket_hook);
        return 0;
}

static struct gtls_priv *priv_new(em_gtls_ctx_t *t)
{
        struct gtls_priv *p = calloc(1, sizeof(*p));

        if (p == NULL)
                return NULL;
        pthread_mutex_init(&p->lock, NULL);
        p->ctx = t;
        return p;
}

/* Builds a TLS connection over fd (consumed). */
static int gtls_new(em_gtls_ctx_t *t, int fd_in, const char *peer, int timeout_ms, em_conn_t **out,
                    char **peer_name, em_error_t *err)
{
        cleanup_close int fd = fd_in;
        struct gtls_priv *p = priv_new(t);

        if (p == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (session_new(t, p, fd, err) < 0 || handshake(p, fd, timeout_ms, err) < 0)
                return priv_free(p), -1;
        return em_conn_wrap_session(&gtls_ops, &fd, p, priv_free_any, p->peer_name, peer, peer_name,
                                    out, err);
}

int em_gtls_upgrade(em_gtls_ctx_t *t, em_conn_t **conn, int timeout_ms, char **peer_name,
                    em_error_t *err)
{
        cleanup_free char *peer = NULL;
        int fd = em_conn_detach(conn, &peer, err);

        if (fd < 0)
                return -1;
        if (gtls_new(t, fd, peer, timeout_ms, conn, peer_name, err) < 0)
                return em_error_wrap(err, "TLS with %s", peer);
        return 0;
}

int em_gtls_connect(em_gtls_ctx_t *t, const char *hostport, int timeout_ms, em_conn_t **out,
                    char **peer_name, em_error_t *err)
{
        em_conn_t *plain = NULL;

        if (em_tcp_connect(hostport, timeout_ms, &plain, err) < 0)
                return -1;
        if (em_gtls_upgrade(t, &plain, timeout_ms, peer_name, err) < 0)
                return -1;
        *out = plain;
        return 0;
}

/* The leaf of cfg->cert, imported once more to check it against the CA
 * and to read this side's name. */
static int own_cert(const struct em_tls_config *cfg, gnutls_x509_crt_t *crt, em_error_t *err)
{
        gnutls_datum_t pem = {NULL, 0};
        int r = gnutls_load_file(cfg->cert, &pem);

        if (r < 0)
                return gtls_error(err, EINVAL, r, "loading certificate");
        if ((r = gnutls_x509_crt_init(crt)) >= 0 &&
            (r = gnutls_x509_crt_import(*crt, &pem, GNUTLS_X509_FMT_PEM)) < 0)
                gnutls_x509_crt_deinit(*crt);
        gnutls_free(pem.data);
        return r < 0 ? gtls_error(err, EINVAL, r, "reading certificate") : 0;
}

/* Fails early on a certificate the CA did not sign: the peer would refuse
 * it anyway, with a far less helpful message on the other host. */
static int check_own_cert(em_gtls_ctx_t *t, const struct em_tls_config *cfg, em_error_t *err)
{
        gnutls_x509_trust_list_t tl = NULL;
        gnutls_x509_crt_t crt = NULL;
        cleanup_strv char **names = NULL;
        unsigned status = 0;
        char why[256];
        int rc = 0;

        if (own_cert(cfg, &crt, err) < 0)
                return em_error_wrap(err, "%s", cfg->cert);
        gnutls_certificate_get_trust_list(t->cred, &tl);
        if (gnutls_x509_trust_list_verify_crt2(tl, &crt, 1, NULL, 0, 0, &status, NULL) < 0)
                status = GNUTLS_CERT_INVALID;
        if (status != 0) {
                status_text(status, why, sizeof(why));
                rc = em_error_set(err, EINVAL, "%s does not verify against CA %s: %s", cfg->cert,
                                  cfg->ca, why);
        } else if (em_gnutls_crt_names(crt, &names, err) == 0) {
                t->self_name = strdup(names[0] ? names[0] : "?");
                rc = t->self_name ? 0 : em_error_set(err, ENOMEM, "allocating");
        } else
                rc = -1;
        gnutls_x509_crt_deinit(crt);
        return rc;
}

static int load_files(em_gtls_ctx_t *t, const struct em_tls_config *cfg, em_error_t *err)
{
        int r;

        if (cfg->ca == NULL || cfg->cert == NULL || cfg->key == NULL)
                return em_error_set(err, EINVAL, "TLS needs a CA, a certificate and a key");
        if ((r = gnutls_certificate_allocate_credentials(&t->cred)) < 0)
                return gtls_error(err, ENOMEM, r, "creating TLS credentials");
        r = gnutls_certificate_set_x509_trust_file(t->cred, cfg->ca, GNUTLS_X509_FMT_PEM);
        if (r <= 0)
                return em_error_set(err, EINVAL, "loading CA %s: %s", cfg->ca,
                                    r == 0 ? "no certificate in it" : gnutls_strerror(r));
        r = gnutls_certificate_set_x509_key_file2(t->cred, cfg->cert, cfg->key, GNUTLS_X509_FMT_PEM,
                                                  NULL, 0);
        if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
                return em_error_set(err, EINVAL, "key %s does not match certificate %s", cfg->key,
                                    cfg->cert);
        if (r < 0)
                return em_error_set(err, EINVAL, "loading certificate %s and key %s: %s", cfg->cert,
                                    cfg->key, gnutls_strerror(r));
        gnutls_certificate_set_verify_function(t->cred, verify_cb);
        return check_own_cert(t, cfg, err);
}

int em_gtls_client_new(const struct em_tls_config *cfg, em_gtls_ctx_t **out, em_error_t *err)
{
        cleanup_gtls_ctx em_gtls_ctx_t *t = calloc(1, sizeof(*t));

        if (t == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        if (em_tls_names_copy(cfg->allowed_peers, &t->allowed, err) < 0 ||
            load_files(t, cfg, err) < 0)
                return -1;
        *out = steal_pointer(&t);
        return 0;
}

void em_gtls_ctx_free(em_gtls_ctx_t **tp)
{
        em_gtls_ctx_t *t = *tp;

        if (t == NULL)
                return;
        if (t->cred != NULL)
                gnutls_certificate_free_credentials(t->cred);
        em_strv_free(t->allowed);
        free(t->self_name);
        free(t);
        *tp = NULL;
}

const char *em_gtls_ctx_name(const em_gtls_ctx_t *t)
{
        return t->self_name;
}
