#include "platform/api_http.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "platform/authz.h"
#include "transfer/cert_names.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

struct em_api_http {
        struct em_api *api;
        struct MHD_Daemon *d;
        bool tls;
        struct em_api_http_limits lim;
        pthread_mutex_t lock; /* the two below; libmicrohttpd logs from any thread */
        uint64_t over_limit;  /* connections closed at accept, not yet logged */
        int64_t logged_ms;    /* when they last were */
};

/* A connection over --max-connections(-per-peer) is closed at accept with
 * one libmicrohttpd message each: a flood would flood the log too, so
 * they are counted (add) and logged at most once a second, by the next
 * such message or the next request (add 0), or at the stop (force). */
static void count_over_limit(struct em_api_http *h, unsigned add, bool force)
{
        int64_t now = em_mono_ms();
        uint64_t n = 0;

        pthread_mutex_lock(&h->lock);
        h->over_limit += add;
        if (h->over_limit > 0 && (now - h->logged_ms >= 1000 || force)) {
                n = h->over_limit;
                h->over_limit = 0;
                h->logged_ms = now;
        }
        pthread_mutex_unlock(&h->lock);
        if (n > 0)
                em_log_warn("refused %llu connections over the limit (--max-connections %u, "
                            "--max-connections-per-peer %u)",
                            (unsigned long long)n, h->lim.max_connections, h->lim.per_ip);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        msg[strcspn(msg, "\n")] = '\0';
        if (strstr(msg, "connection limit") != NULL)
                count_over_limit(cls, 1, false);
        else
                em_log_warn("libmicrohttpd: %s", msg);
}

/* With MHD_OPTION_HTTPS_MEM_TRUST libmicrohttpd only asks for a client
 * certificate (GNUTLS_CERT_REQUEST) and never checks it, so every request is
 * checked here: a certificate must be presented and chain to the platform CA
 * (validity included). Returns NULL if so, else why not; *subject gets the
 * presented certificate's DN when there is one (gnutls_free it), *names the
 * identities of an accepted one, read with GnuTLS by the rule edgemigd's
 * --allow-peer check applies on OpenSSL (transfer/cert_names.h). */
static const char *client_refusal(struct MHD_Connection *conn, gnutls_datum_t *subject,
                                  char ***names)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
        unsigned int n = 0, status = 0;
        gnutls_x509_crt_t crt;

        if (s == NULL)
                return "no TLS session";
        const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
        if (peers == NULL || n == 0)
                return "no client certificate";
        if (gnutls_x509_crt_init(&crt) < 0)
                return "out of memory";
        const char *why = NULL;
        if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0)
                why = "client certificate could not be parsed";
        else
                gnutls_x509_crt_get_dn2(crt, subject);
        if (why == NULL && gnutls_certificate_verify_peers2(s, &status) < 0)
                why = "client certificate could not be verified";
        else if (why == NULL && (status & GNUTLS_CERT_EXPIRED))
                why = "client certificate expired";
        else if (why == NULL && (status & GNUTLS_CERT_NOT_ACTIVATED))
                why = "client certificate not yet valid";
        else if (why == NULL && status != 0)
                why = "client certificate not signed by the platform CA";
        if (why == NULL && em_gnutls_crt_names(crt, names, NULL) < 0)
                why = "client certificate could not be parsed";
        gnutls_x509_crt_deinit(crt);
        return why;
}

static void client_addr(struct MHD_Connection *conn, char *buf, size_t size)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        snprintf(buf, size, "?");
        if (ci != NULL && ci->client_addr->sa_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, buf,
                          (socklen_t)size);
}

/* Logs and counts a request refused for want of a valid certificate;
 * otherwise *names gets the certificate's names. */
static bool client_refused(struct em_api *c, struct MHD_Connection *conn, const char *method,
                           const char *url, char ***names)
{
        gnutls_datum_t subject = {NULL, 0};
        const char *why = client_refusal(conn, &subject, names);
        char addr[INET6_ADDRSTRLEN];

        if (why == NULL) {
                gnutls_free(subject.data);
                return false;
        }
        client_addr(conn, addr, sizeof(addr));
        em_log_warn("refused %s %s from %s: %s%s%s", method, url, addr, why,
                    subject.data ? ": " : "", subject.data ? (char *)subject.data : "");
        gnutls_free(subject.data);
        em_api_count_refused(c);
        return true;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct em_api_reply *r)
{
        const char *type;
        unsigned status = r->status;
        char *text = em_api_reply_take(r, &type);

        if (text == NULL)
                return MHD_NO;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
                free(text);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", type);
        enum MHD_Result rc = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return rc;
}

/* on_connection's flag: this connection got as far as a request. */
static void mark_served(struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        bool *served = ci ? ci->socket_context : NULL;

        if (served != NULL)
                *served = true;
}

struct request {
        struct em_api_request rq;
        char *body;
        char **names;    /* the client certificate's names (TLS only) */
        bool needs_body; /* authorization waits for the body (POST /edges) */
};

/* The first call for a request: authentication and, unless the body
 * decides, authorization; then the per-request state. */
static enum MHD_Result request_begin(struct em_api_http *h, struct MHD_Connection *conn,
                                     const char *url, const char *method, void **con_cls)
{
        cleanup_strv char **names = NULL;
        struct em_api_reply r = {0};
        char addr[INET6_ADDRSTRLEN];
        struct request *rq;

        mark_served(conn);
        if (h->tls && client_refused(h->api, conn, method, url, &names)) {
                r.status = 403;
                r.json = json_pack("{s:s}", "error",
                                   "a client certificate of the platform CA is required");
                return send_reply(conn, &r);
        }
        struct em_api_request head = {method, url, (const char *const *)names, NULL, 0, false};
        client_addr(conn, addr, sizeof(addr));
        int authz = em_api_authorize(h->api, &head, addr, &r);
        if (authz < 0)
                return send_reply(conn, &r);
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL)
                return MHD_NO;
        rq->rq = head;
        rq->names = steal_pointer(&names);
        rq->rq.names = (const char *const *)rq->names;
        rq->needs_body = authz == EM_AUTHZ_NEEDS_BODY;
        *con_cls = rq;
        return MHD_YES;
}

/* The body arrives in pieces; past EM_API_BODY_MAX it is dropped. */
static enum MHD_Result request_body(struct request *rq, const char *data, size_t *size)
{
        if (rq->rq.len + *size > EM_API_BODY_MAX) {
                rq->rq.too_big = true;
        } else {
                char *nb = realloc(rq->body, rq->rq.len + *size + 1);
                if (nb == NULL)
                        return MHD_NO;
                memcpy(nb + rq->rq.len, data, *size);
                rq->body = nb;
                rq->rq.len += *size;
                rq->body[rq->rq.len] = '\0';
        }
        *size = 0;
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
        struct em_api_http *h = cls;
        struct request *rq = *con_cls;
        struct em_api_reply r = {0};
        char addr[INET6_ADDRSTRLEN];

        if (rq == NULL) {
                count_over_limit(h, 0, false);
                return request_begin(h, conn, url, method, con_cls);
        }
        if (*upload_size > 0)
                return request_body(rq, upload_data, upload_size);
        rq->rq.body = rq->body ? rq->body : "";
        if (rq->needs_body) { /* POST /edges: the name is in the body */
                client_addr(conn, addr, sizeof(addr));
                if (em_api_authorize(h->api, &rq->rq, addr, &r) < 0)
                        return send_reply(conn, &r);
        }
        em_api_handle(h->api, &rq->rq, &r);
        return send_reply(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;

        if (rq != NULL) {
                free(rq->body);
                em_strv_free(rq->names);
                free(rq);
        }
        *con_cls = NULL;
}

static int parse_listen(const char *s, struct sockaddr_in *sa, em_error_t *err)
{
        cleanup_free char *host = strdup(s);
        char *colon = host ? strrchr(host, ':') : NULL;

        if (colon == NULL)
                return em_error_set(err, EINVAL, "--listen takes ADDR:PORT, not '%s'", s);
        *colon = '\0';
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        long port = strtol(colon + 1, NULL, 10);
        if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                return em_error_set(err, EINVAL, "--listen takes IPv4ADDR:PORT, not '%s'", s);
        sa->sin_port = htons((uint16_t)port);
        return 0;
}

struct tls_files {
        char *cert, *key, *ca;
};

static void tls_files_free(struct tls_files *t)
{
        free(t->cert);
        if (t->key != NULL)
                explicit_bzero(t->key, strlen(t->key));
        free(t->key);
        free(t->ca);
}

static int tls_load(const struct em_api_http_tls *o, struct tls_files *t, em_error_t *err)
{
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
                return em_error_set(err, ENOTSUP, "libmicrohttpd was built without TLS");
        if (em_read_file(o->cert, 1 << 20, &t->cert, NULL, err) < 0 ||
            em_read_file(o->key, 1 << 20, &t->key, NULL, err) < 0 ||
            em_read_file(o->ca, 1 << 20, &t->ca, NULL, err) < 0)
                return -1;
        return 0;
}

/* A refusal at the handshake: logged and counted as one per request is
 * (client_refused), with the reason read from what the client presented. */
static void handshake_refused(struct em_api_http *h, struct MHD_Connection *conn)
{
        cleanup_strv char **names = NULL;
        gnutls_datum_t subject = {NULL, 0};
        const char *why = client_refusal(conn, &subject, &names);
        char addr[INET6_ADDRSTRLEN];

        /* GnuTLS keeps no certificate that failed its verification. */
        if (why == NULL || strcmp(why, "no client certificate") == 0)
                why = "no valid client certificate of the platform CA";
        client_addr(conn, addr, sizeof(addr));
        em_log_warn("refused connection from %s at the TLS handshake: %s%s%s", addr, why,
                    subject.data ? ": " : "", subject.data ? (char *)subject.data : "");
        em_api_count_refused(h->api);
        gnutls_free(subject.data);
}

/* libmicrohttpd only requests a client certificate and never checks it;
 * here, before the handshake, each TLS session is told to require one and
 * to verify it against the platform CA, so a client without a certificate
 * of the CA never gets to send a request. The checks per request
 * (client_refused) stay, for the names. The socket context is a flag set
 * when the connection gets to a request (mark_served): one that closes
 * without is logged and counted as refused at the handshake. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
        struct em_api_http *h = cls;
        bool *served = *socket_context;

        if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (served != NULL && !*served && s != NULL)
                        handshake_refused(h, conn);
                free(served);
                *socket_context = NULL;
                return;
        }
        if (s == NULL)
                return;
        *socket_context = calloc(1, sizeof(bool));
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(s, NULL, 0);
}

/* The limits go in through MHD_OPTION_ARRAY so that the plain and the TLS
 * daemon share them; without them libmicrohttpd keeps as many connections
 * as select() can watch, each with its TLS session and memory pool, and a
 * flood from one address starves every real client. */
static struct MHD_Daemon *start_daemon(struct em_api_http *h, struct sockaddr_in *sa,
                                       const struct tls_files *t,
                                       const struct em_api_http_limits *l)
{
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        struct MHD_OptionItem lim[] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h},
            {MHD_OPTION_CONNECTION_LIMIT, l->max_connections, NULL},
            {MHD_OPTION_PER_IP_CONNECTION_LIMIT, l->per_ip, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, l->timeout_s, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)l->conn_memory, NULL},
            {MHD_OPTION_THREAD_POOL_SIZE, l->threads, NULL},
            {MHD_OPTION_END, 0, NULL},
        };

        if (!h->tls)
                return MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, lim,
                                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)sa,
                                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                        MHD_OPTION_END);
        return MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, h,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)sa,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_ARRAY,
                                lim, MHD_OPTION_HTTPS_MEM_CERT, t->cert, MHD_OPTION_HTTPS_MEM_KEY,
                                t->key, MHD_OPTION_HTTPS_MEM_TRUST, t->ca, MHD_OPTION_END);
}

int em_api_http_start(struct em_api *api, const char *listen, const struct em_api_http_tls *tls,
                      const struct em_api_http_limits *lim, struct em_api_http **out,
                      em_error_t *err)
{
        static const struct em_api_http_limits defaults = EM_API_HTTP_LIMITS_INIT;
        __attribute__((cleanup(tls_files_free))) struct tls_files t = {0};
        cleanup_free struct em_api_http *h = calloc(1, sizeof(*h));
        struct sockaddr_in sa;

        if (h == NULL)
                return em_error_set(err, ENOMEM, "starting the API");
        if (parse_listen(listen, &sa, err) < 0)
                return -1;
        h->api = api;
        h->tls = tls != NULL;
        if (h->tls && tls_load(tls, &t, err) < 0)
                return -1;
        h->lim = lim ? *lim : defaults;
        h->logged_ms = em_mono_ms() - 1000;
        pthread_mutex_init(&h->lock, NULL);
        h->d = start_daemon(h, &sa, &t, &h->lim);
        if (h->d == NULL) {
                pthread_mutex_destroy(&h->lock);
                return em_error_set(err, EADDRINUSE, "cannot listen on %s%s", listen,
                                    h->tls ? " (or the certificate/key is unusable)" : "");
        }
        *out = steal_pointer(&h);
        return 0;
}

void em_api_http_stop(struct em_api_http *h)
{
        if (h == NULL)
                return;
        MHD_stop_daemon(h->d);
        count_over_limit(h, 0, true);
        pthread_mutex_destroy(&h->lock);
        free(h);
}
