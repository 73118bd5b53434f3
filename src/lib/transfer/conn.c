#include "transfer/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/cleanup.h"

#define COMPRESS_MIN 512

struct em_conn {
        const struct em_conn_ops *ops;
        int fd;
        void *priv;
        char *peer;
        int timeout_ms;
        pthread_mutex_t send_lock, recv_lock;
        /* Only the counters: a reader waiting for data holds recv_lock for as
         * long as the peer is silent, and a sender blocked on a full link
         * holds send_lock, so em_conn_stats must take neither. */
        pthread_mutex_t st_lock;
        struct em_frame_writer w;
        struct em_frame_reader r;
        struct em_conn_stats st;
        struct em_bwmeter bw;   /* under st_lock: a rate read never waits for the link */
        struct em_ratelimit rl; /* --max-rate, under send_lock */
        em_zstd_t *send_z, *recv_z;
        struct em_frame pending; /* em_conn_unrecv */
        bool has_pending;
};

void em_bwmeter_init(struct em_bwmeter *m, int window_ms)
{
        memset(m, 0, sizeof(*m));
        m->window_ns = (int64_t)(window_ms > 0 ? window_ms : 2000) * 1000000;
}

void em_bwmeter_add(struct em_bwmeter *m, int64_t now_ns, uint64_t bytes)
{
        unsigned last = (m->head + EM_BW_SLOTS - 1) % EM_BW_SLOTS;
        unsigned prev = (m->head + EM_BW_SLOTS - 2) % EM_BW_SLOTS;

        /* Grow the newest slot until it spans 1/32 of the window, so the ring
         * (64 slots) always covers the whole window. */
        if (m->count > 2 && now_ns - m->slot[prev].t_ns < m->window_ns / 32) {
                m->slot[last].bytes += bytes;
                m->slot[last].t_ns = now_ns;
                return;
        }
        m->slot[m->head].t_ns = now_ns;
        m->slot[m->head].bytes = bytes;
        m->head = (m->head + 1) % EM_BW_SLOTS;
        if (m->count < EM_BW_SLOTS)
                m->count++;
}

double em_bwmeter_rate(const struct em_bwmeter *m, int64_t now_ns)
{
        return em_bwmeter_rate_min(m, now_ns, 0);
}

double em_bwmeter_rate_min(const struct em_bwmeter *m, int64_t now_ns, uint64_t min_bytes)
{
        uint64_t bytes = 0;
        int64_t oldest = 0;
        unsigned n = 0;

        /* Walk newest to oldest; the oldest sample inside the window marks the
         * start, so its own bytes (sent before that instant) do not count. */
        for (unsigned i = 0; i < m->count; i++) {
                unsigned idx = (m->head + EM_BW_SLOTS - 1 - i) % EM_BW_SLOTS;
                if (now_ns - m->slot[idx].t_ns > m->window_ns)
                        break;
                if (n > 0)
                        bytes += m->slot[(idx + 1) % EM_BW_SLOTS].bytes;
                oldest = m->slot[idx].t_ns;
                n++;
        }
        if (n < 2 || now_ns <= oldest || bytes < min_bytes)
                return 0;
        return (double)bytes * 1e9 / (double)(now_ns - oldest);
}

static int fd_read(em_conn_t *c, void *buf, size_t len, size_t *got, int timeout_ms,
                   em_error_t *err)
{
        return em_fd_read_full(c->fd, buf, len, got, timeout_ms, err);
}

static int fd_writev(em_conn_t *c, const struct iovec *iov, int iovcnt, int timeout_ms,
                     em_error_t *err)
{
        return em_fd_writev_full(c->fd, iov, iovcnt, timeout_ms, err);
}

int em_conn_tcp_nodelay(em_conn_t *c, bool on, em_error_t *err)
{
        int v = on ? 1 : 0;

        if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) < 0 && errno != ENOTSUP &&
            errno != EOPNOTSUPP)
                return em_error_set(err, errno, "setting TCP_NODELAY on %s", c->peer);
        return 0;
}

int em_iov_records(const struct iovec *iov, int iovcnt, uint8_t *stage, size_t size,
                   em_record_flush_fn flush, void *arg, em_error_t *err)
{
        size_t fill = 0;

        for (int i = 0; i < iovcnt; i++) {
                const uint8_t *src = iov[i].iov_base;
                size_t left = iov[i].iov_len;
                while (left > 0) {
                        size_t k = left < size - fill ? left : size - fill;
                        memcpy(stage + fill, src, k);
                        fill += k;
                        src += k;
                        left -= k;
                        if (fill == size) {
                                if (flush(arg, fill, err) < 0)
                                        return -1;
                                fill = 0;
                        }
                }
        }
        return fill > 0 ? flush(arg, fill, err) : 0;
}

static int fd_shutdown_write(em_conn_t *c, em_error_t *err)
{
        if (shutdown(c->fd, SHUT_WR) < 0)
                return em_error_set(err, errno, "shutting down %s", c->peer);
        return 0;
}

static void fd_destroy(em_conn_t *c)
{
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

static const struct em_conn_ops fd_ops = {
    .name = "fd",
    .read = fd_read,
    .writev = fd_writev,
    .set_nodelay = em_conn_tcp_nodelay,
    .shutdown_write = fd_shutdown_write,
    .destroy = fd_destroy,
};

em_conn_t *em_conn_new(const struct em_conn_ops *ops, int fd, void *priv, const char *peer)
{
        em_conn_t *c = calloc(1, sizeof(*c));

        if (c == NULL)
                return NULL;
        c->ops = ops;
        c->fd = fd;
        c->priv = priv;
        c->timeout_ms = 30000;
        c->peer = strdup(peer ? peer : "peer");
        c->send_z = em_zstd_new();
        c->recv_z = em_zstd_new();
        pthread_mutex_init(&c->send_lock, NULL);
        pthread_mutex_init(&c->recv_lock, NULL);
        pthread_mutex_init(&c->st_lock, NULL);
        em_bwmeter_init(&c->bw, 2000);
        if (c->peer == NULL || c->send_z == NULL || c->recv_z == NULL) {
                c->priv = NULL; /* the caller still owns fd and priv on failure */
                c->fd = -1;
                em_conn_free(&c);
        }
        return c;
}

int em_conn_detach(em_conn_t **conn, char **peer, em_error_t *err)
{
        int fd = fcntl(em_conn_fd(*conn), F_DUPFD_CLOEXEC, 3);
        int e = errno;

        *peer = strdup(em_conn_peer(*conn));
        em_conn_free(conn);
        if (fd < 0) {
                free(steal_pointer(peer));
                return em_error_set(err, e, "taking over the connection");
        }
        if (*peer == NULL) {
                close(fd);
                return em_error_set(err, ENOMEM, "allocating");
        }
        return fd;
}

int em_conn_wrap_session(const struct em_conn_ops *ops, int *fd, void *priv,
                         void (*free_priv)(void *), const char *cert_name, const char *peer,
                         char **peer_name, em_conn_t **out, em_error_t *err)
{
        cleanup_close int sock = steal_fd(fd);
        em_conn_t *c;

        if (peer_name != NULL && (*peer_name = strdup(cert_name ? cert_name : "?")) == NULL) {
                free_priv(priv);
                return em_error_set(err, ENOMEM, "allocating");
        }
        c = em_conn_new(ops, sock, priv, peer);
        if (c == NULL) {
                free_priv(priv);
                if (peer_name != NULL)
                        free(steal_pointer(peer_name));
                return em_error_set(err, ENOMEM, "creating a connection");
        }
        steal_fd(&sock);
        *out = c;
        return 0;
}

int em_conn_from_fd(int fd, const char *peer, em_conn_t **out, em_error_t *err)
{
        em_conn_t *c = em_conn_new(&fd_ops, fd, NULL, peer);

        if (c == NULL) {
                close(fd);
                return em_error_set(err, ENOMEM, "creating a connection");
        }
        *out = c;
        return 0;
}

void em_conn_free(em_conn_t **cp)
{
        em_conn_t *c = *cp;

        if (c == NULL)
                return;
        if (c->ops != NULL && c->ops->destroy != NULL)
                c->ops->destroy(c);
        else if (c->fd >= 0)
                close(c->fd);
        em_zstd_free(&c->send_z);
        em_zstd_free(&c->recv_z);
        em_frame_clear(&c->pending);
        pthread_mutex_destroy(&c->send_lock);
        pthread_mutex_destroy(&c->recv_lock);
        pthread_mutex_destroy(&c->st_lock);
        free(c->peer);
        free(c);
        *cp = NULL;
}

int em_conn_fd(const em_conn_t *c)
{
        return c->fd;
}

const struct em_conn_ops *em_conn_backend(const em_conn_t *c)
{
        return c->ops;
}

void *em_conn_priv(const em_conn_t *c)
{
        return c->priv;
}

const char *em_conn_peer(const em_conn_t *c)
{
        return c->peer;
}

const char *em_conn_identity(const em_conn_t *c)
{
        return c->ops->identity ? c->ops->identity(c) : NULL;
}

void em_conn_set_timeout(em_conn_t *c, int timeout_ms)
{
        c->timeout_ms = timeout_ms;
}

int em_conn_set_nodelay(em_conn_t *c, bool on, em_error_t *err)
{
        return c->ops->set_nodelay ? c->ops->set_nodelay(c, on, err) : 0;
}

int em_conn_shutdown_write(em_conn_t *c, em_error_t *err)
{
        return c->ops->shutdown_write ? c->ops->shutdown_write(c, err) : 0;
}

void em_conn_set_session(em_conn_t *c, uint64_t tag)
{
        pthread_mutex_lock(&c->send_lock);
        c->w.session = tag;
        pthread_mutex_unlock(&c->send_lock);
        pthread_mutex_lock(&c->recv_lock);
        c->r.session = tag;
        pthread_mutex_unlock(&c->recv_lock);
}

static int conn_writev_cb(void *ctx, const struct iovec *iov, int iovcnt, em_error_t *err)
{
        em_conn_t *c = ctx;
        size_t n = 0;

        for (int i = 0; i < iovcnt; i++)
                n += iov[i].iov_len;
        em_sleep_ns(em_ratelimit_take(&c->rl, em_mono_ns(), n));
        if (c->ops->writev(c, iov, iovcnt, c->timeout_ms, err) < 0)
                return -1;
        pthread_mutex_lock(&c->st_lock);
        c->st.wire_out += n;
        em_bwmeter_add(&c->bw, em_mono_ns(), n);
        pthread_mutex_unlock(&c->st_lock);
        return 0;
}

static int conn_read_cb(void *ctx, void *buf, size_t len, size_t *got, em_error_t *err)
{
        em_conn_t *c = ctx;

        if (c->ops->read(c, buf, len, got, c->timeout_ms, err) < 0)
                return -1;
        pthread_mutex_lock(&c->st_lock);
        c->st.wire_in += *got;
        pthread_mutex_unlock(&c->st_lock);
        return 0;
}

int em_conn_pack(em_zstd_t *z, int level, const void *payload, size_t len, struct em_packed *out,
                 em_error_t *err)
{
        int64_t t0;

        *out = (struct em_packed){NULL, len, len, false, 0};
        if (level <= 0 || len < COMPRESS_MIN || len > EM_FRAME_MAX_RAW)
                return 0; /* the size check is the send's, with the frame's name */
        t0 = em_mono_ns();
        if (em_zstd_compress(z, level, payload, len, &out->buf, &out->len, err) < 0)
                return -1;
        out->compress_ns = (uint64_t)(em_mono_ns() - t0);
        out->zstd = out->len < len;
        if (!out->zstd) {
                free(steal_pointer(&out->buf));
                out->len = len;
        }
        return 0;
}

void em_packed_clear(struct em_packed *p)
{
        free(steal_pointer(&p->buf));
}

static int send_packed_locked(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream,
                              const void *payload, const struct em_packed *p, em_error_t *err)
{
        const void *wire = p->zstd ? p->buf : payload;

        if (p->raw_len > EM_FRAME_MAX_RAW)
                return em_error_set(err, EMSGSIZE, "%s payload of %zu bytes is above the limit",
                                    em_frame_type_name(type), p->raw_len);
        if (p->zstd)
                flags |= EM_FRAME_F_ZSTD;
        if (em_frame_send(&c->w, conn_writev_cb, c, type, flags, stream, wire, (uint32_t)p->len,
                          (uint32_t)p->raw_len, err) < 0)
                return -1;
        pthread_mutex_lock(&c->st_lock);
        c->st.frames_out++;
        c->st.raw_out += p->raw_len;
        c->st.compress_ns += p->compress_ns;
        pthread_mutex_unlock(&c->st_lock);
        return 0;
}

static int send_locked(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream,
                       const void *payload, size_t len, int level, em_error_t *err)
{
        struct em_packed p;
        int rc;

        if (em_conn_pack(c->send_z, level, payload, len, &p, err) < 0)
                return -1;
        rc = send_packed_locked(c, type, flags, stream, payload, &p, err);
        em_packed_clear(&p);
        return rc;
}

int em_conn_send(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream, const void *payload,
                 size_t len, int level, em_error_t *err)
{
        int ret;

        pthread_mutex_lock(&c->send_lock);
        ret = send_locked(c, type, flags & ~EM_FRAME_F_ZSTD, stream, payload, len, level, err);
        pthread_mutex_unlock(&c->send_lock);
        if (ret < 0)
                return em_error_wrap(err, "to %s", c->peer);
        return 0;
}

int em_conn_send_packed(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream,
                        const void *payload, const struct em_packed *p, em_error_t *err)
{
        int ret;

        pthread_mutex_lock(&c->send_lock);
        ret = send_packed_locked(c, type, flags & ~EM_FRAME_F_ZSTD, stream, payload, p, err);
        pthread_mutex_unlock(&c->send_lock);
        if (ret < 0)
                return em_error_wrap(err, "to %s", c->peer);
        return 0;
}

int em_conn_send_str(em_conn_t *c, uint16_t type, const char *s, em_error_t *err)
{
        return em_conn_send(c, type, 0, 0, s, strlen(s), 0, err);
}

static int inflate_frame(em_conn_t *c, struct em_frame *f, em_error_t *err)
{
        cleanup_free uint8_t *raw = malloc((size_t)f->hdr.raw_len + 1);

        if (raw == NULL)
                return em_error_set(err, ENOMEM, "allocating %u bytes", f->hdr.raw_len);
        if (em_zstd_decompress(c->recv_z, f->payload, f->length, raw, f->hdr.raw_len, err) < 0)
                return em_error_wrap(err, "%s frame %llu", em_frame_type_name(f->hdr.type),
                                     (unsigned long long)f->hdr.seq);
        raw[f->hdr.raw_len] = 0;
        free(f->payload);
        f->payload = steal_pointer(&raw);
        f->length = f->hdr.raw_len;
        f->hdr.flags &= ~EM_FRAME_F_ZSTD;
        return 0;
}

int em_conn_recv(em_conn_t *c, struct em_frame *f, em_error_t *err)
{
        int ret;

        pthread_mutex_lock(&c->recv_lock);
        if (c->has_pending) {
                *f = c->pending;
                memset(&c->pending, 0, sizeof(c->pending));
                c->has_pending = false;
                pthread_mutex_unlock(&c->recv_lock);
                return 1;
        }
        ret = em_frame_recv(&c->r, conn_read_cb, c, f, err);
        if (ret > 0 && (f->hdr.flags & EM_FRAME_F_ZSTD) && inflate_frame(c, f, err) < 0)
                ret = -1;
        if (ret > 0) {
                pthread_mutex_lock(&c->st_lock);
                c->st.frames_in++;
                c->st.raw_in += f->length;
                pthread_mutex_unlock(&c->st_lock);
        }
        pthread_mutex_unlock(&c->recv_lock);
        if (ret < 0)
                return em_error_wrap(err, "from %s", c->peer);
        return ret;
}

int em_conn_unrecv(em_conn_t *c, struct em_frame *f, em_error_t *err)
{
        pthread_mutex_lock(&c->recv_lock);
        bool busy = c->has_pending;
        if (!busy) {
                c->pending = *f;
                c->has_pending = true;
                memset(f, 0, sizeof(*f));
        }
        pthread_mutex_unlock(&c->recv_lock);
        if (busy)
                return em_error_set(err, EBUSY, "a frame is already put back on %s", c->peer);
        return 0;
}

void em_conn_stats(em_conn_t *c, struct em_conn_stats *out)
{
        pthread_mutex_lock(&c->st_lock);
        *out = c->st;
        pthread_mutex_unlock(&c->st_lock);
}

void em_conn_set_max_rate(em_conn_t *c, uint64_t bits_per_s)
{
        pthread_mutex_lock(&c->send_lock);
        em_ratelimit_init(&c->rl, bits_per_s, em_mono_ns());
        pthread_mutex_unlock(&c->send_lock);
}

double em_conn_send_rate(em_conn_t *c)
{
        return em_conn_send_rate_min(c, 0);
}

double em_conn_send_rate_min(em_conn_t *c, uint64_t min_bytes)
{
        double r;

        pthread_mutex_lock(&c->st_lock);
        r = em_bwmeter_rate_min(&c->bw, em_mono_ns(), min_bytes);
        pthread_mutex_unlock(&c->st_lock);
        return r;
}

int em_hostport_parse(const char *s, char **host, char **port, em_error_t *err)
{
        const char *colon, *h = s;
        size_t hlen;

        if (s[0] == '[') {
                const char *close_br = strchr(s, ']');
                if (close_br == NULL || close_br[1] != ':')
                        return em_error_set(err, EINVAL, "bad address '%s' (want [V6]:PORT)", s);
                h = s + 1;
                hlen = (size_t)(close_br - h);
                colon = close_br + 1;
        } else {
                colon = strrchr(s, ':');
                if (colon == NULL)
                        return em_error_set(err, EINVAL, "bad address '%s' (want ADDR:PORT)", s);
                hlen = (size_t)(colon - s);
        }
        if (hlen == 0 || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
            strlen(colon + 1) > 5 || atoi(colon + 1) > 65535)
                return em_error_set(err, EINVAL, "bad address '%s' (want ADDR:PORT)", s);
        *host = strndup(h, hlen);
        *port = strdup(colon + 1);
        if (*host == NULL || *port == NULL) {
                free(*host);
                free(*port);
                return em_error_set(err, ENOMEM, "parsing address");
        }
        return 0;
}

static int resolve(const char *hostport, bool passive, struct addrinfo **res, em_error_t *err)
{
        cleanup_free char *host = NULL;
        cleanup_free char *port = NULL;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
        int rc;

        if (em_hostport_parse(hostport, &host, &port, err) < 0)
                return -1;
        rc = getaddrinfo(host, port, &hints, res);
        if (rc != 0)
                return em_error_set(err, EHOSTUNREACH, "resolving %s: %s", hostport,
                                    gai_strerror(rc));
        return 0;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms, int *fd_out, em_error_t *err)
{
        cleanup_close int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        struct pollfd p;
        int soerr = 0, n;
        socklen_t sl = sizeof(soerr);

        if (fd < 0)
                return em_error_set(err, errno, "socket");
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
                return em_error_set(err, errno, "connect");
        p = (struct pollfd){.fd = fd, .events = POLLOUT};
        do
                n = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
        while (n < 0 && errno == EINTR);
        if (n == 0)
                return em_error_set(err, ETIMEDOUT, "connect");
        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                return em_error_set(err, errno, "connect");
        if (soerr != 0)
                return em_error_set(err, soerr, "connect");
        *fd_out = steal_fd(&fd);
        return 0;
}

int em_tcp_connect(const char *hostport, int timeout_ms, em_conn_t **out, em_error_t *err)
{
        struct addrinfo *res = NULL;
        int fd = -1, v = 1;

        if (resolve(hostport, false, &res, err) < 0)
                return -1;
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
                em_error_free(err);
                if (connect_one(ai, timeout_ms, &fd, err) == 0)
                        break;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return em_error_wrap(err, "connecting to %s", hostport);
        em_error_free(err);
        /* Control frames are small and latency bound. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
        return em_conn_from_fd(fd, hostport, out, err);
}

int em_tcp_listen(const char *hostport, int backlog, int *fd_out, em_error_t *err)
{
        struct addrinfo *res = NULL;
        cleanup_close int fd = -1;
        int v = 1;

        if (resolve(hostport, true, &res, err) < 0)
                return -1;
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v)) < 0 ||
            bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
                int e = errno;
                freeaddrinfo(res);
                return em_error_set(err, e, "listening on %s", hostport);
        }
        freeaddrinfo(res);
        *fd_out = steal_fd(&fd);
        return 0;
}

int em_tcp_local_port(int fd, int *port, em_error_t *err)
{
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
                return em_error_set(err, errno, "getsockname");
        if (ss.ss_family == AF_INET6)
                *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        else
                *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        return 0;
}

int em_tcp_accept(int listen_fd, int timeout_ms, em_conn_t **out, em_error_t *err)
{
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?", peer[NI_MAXHOST + NI_MAXSERV + 4];
        struct pollfd p = {.fd = listen_fd, .events = POLLIN};
        int fd, n, v = 1;

        do
                n = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
        while (n < 0 && errno == EINTR);
        if (n == 0)
                return em_error_set(err, ETIMEDOUT, "waiting for a connection");
        if (n < 0)
                return em_error_set(err, errno, "waiting for a connection");
        do
                fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0)
                return em_error_set(err, errno, "accepting a connection");
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(peer, sizeof(peer), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
        return em_conn_from_fd(fd, peer, out, err);
}
