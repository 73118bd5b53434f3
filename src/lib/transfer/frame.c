#include "transfer/frame.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "util/cleanup.h"

static const char *const type_names[EM_FRAME_TYPE_MAX + 1] = {
#define EM_FRAME_NAME(name, val) [val] = #name,
    EM_FRAME_TYPES(EM_FRAME_NAME)
#undef EM_FRAME_NAME
};

const char *em_frame_type_name(uint16_t type)
{
        return type <= EM_FRAME_TYPE_MAX ? type_names[type] : NULL;
}

bool em_frame_type_valid(uint16_t type)
{
        return em_frame_type_name(type) != NULL;
}

int em_frame_type_from_name(const char *name)
{
        for (int t = 1; t <= EM_FRAME_TYPE_MAX; t++)
                if (type_names[t] != NULL && strcasecmp(type_names[t], name) == 0)
                        return t;
        return -1;
}

static void put16(uint8_t *p, uint16_t v)
{
        p[0] = v & 0xff;
        p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static void put64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p)
{
        return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

void em_frame_hdr_pack(const struct em_frame_hdr *h, uint8_t out[EM_FRAME_HDR_LEN])
{
        put32(out, EM_FRAME_MAGIC);
        put16(out + 4, h->type);
        put16(out + 6, h->flags);
        put64(out + 8, h->session);
        put64(out + 16, h->seq);
        put32(out + 24, h->stream);
        put32(out + 28, h->length);
        put32(out + 32, h->raw_len);
        put32(out + 36, 0);
        put64(out + 40, h->checksum);
}

int em_frame_hdr_parse(const uint8_t in[EM_FRAME_HDR_LEN], struct em_frame_hdr *h, em_error_t *err)
{
        uint32_t magic = get32(in);

        if (magic != EM_FRAME_MAGIC)
                return em_error_set_code(
                    err, EM_FRAME_E_MAGIC,
                    "bad frame magic 0x%08x (not an edgemig stream, or out of sync)", magic);
        h->type = get16(in + 4);
        h->flags = get16(in + 6);
        h->session = get64(in + 8);
        h->seq = get64(in + 16);
        h->stream = get32(in + 24);
        h->length = get32(in + 28);
        h->raw_len = get32(in + 32);
        h->checksum = get64(in + 40);
        if (!em_frame_type_valid(h->type))
                return em_error_set_code(err, EM_FRAME_E_TYPE, "unknown frame type %u", h->type);
        if ((h->flags & ~EM_FRAME_F_KNOWN) != 0 || get32(in + 36) != 0)
                return em_error_set_code(err, EM_FRAME_E_TYPE,
                                         "unknown frame flags 0x%04x in %s frame", h->flags,
                                         em_frame_type_name(h->type));
        if (h->length > EM_FRAME_MAX_PAYLOAD || h->raw_len > EM_FRAME_MAX_RAW)
                return em_error_set_code(
                    err, EM_FRAME_E_LENGTH,
                    "%s frame length %u (raw %u) exceeds the limit of %u bytes",
                    em_frame_type_name(h->type), h->length, h->raw_len, EM_FRAME_MAX_PAYLOAD);
        if (!(h->flags & EM_FRAME_F_ZSTD) && h->raw_len != h->length)
                return em_error_set_code(err, EM_FRAME_E_LENGTH,
                                         "uncompressed %s frame with raw length %u != length %u",
                                         em_frame_type_name(h->type), h->raw_len, h->length);
        return 0;
}

uint64_t em_frame_checksum(const uint8_t hdr[EM_FRAME_HDR_LEN], const void *payload, size_t len)
{
        XXH3_state_t st;

        XXH3_64bits_reset(&st);
        XXH3_64bits_update(&st, hdr, 40);
        if (len > 0)
                XXH3_64bits_update(&st, payload, len);
        return XXH3_64bits_digest(&st);
}

uint64_t em_frame_session_tag(const uint8_t id[16])
{
        uint64_t tag = get64(id);

        return tag != 0 ? tag : 1;
}

void em_frame_clear(struct em_frame *f)
{
        free(f->payload);
        memset(f, 0, sizeof(*f));
}

static int check_order(struct em_frame_reader *r, const struct em_frame_hdr *h, em_error_t *err)
{
        if (r->session == 0 && h->session != 0)
                r->session = h->session;
        if (h->session != r->session)
                return em_error_set_code(err, EM_FRAME_E_SESSION,
                                         "%s frame for session %016llx on a connection of session "
                                         "%016llx (replayed or misrouted)",
                                         em_frame_type_name(h->type),
                                         (unsigned long long)h->session,
                                         (unsigned long long)r->session);
        if (h->seq != r->seq + 1)
                return em_error_set_code(err, EM_FRAME_E_ORDER,
                                         "%s frame out of order: sequence %llu, expected %llu "
                                         "(reordered, lost or replayed)",
                                         em_frame_type_name(h->type), (unsigned long long)h->seq,
                                         (unsigned long long)r->seq + 1);
        r->seq = h->seq;
        return 0;
}

static int read_exact(em_frame_read_fn rd, void *ctx, void *buf, size_t len, const char *what,
                      em_error_t *err)
{
        size_t got = 0;

        if (rd(ctx, buf, len, &got, err) < 0)
                return -1;
        if (got < len)
                return em_error_set_code(err, EM_FRAME_E_TRUNC,
                                         "truncated frame: %s has %zu of %zu bytes", what, got,
                                         len);
        return 0;
}

int em_frame_recv(struct em_frame_reader *r, em_frame_read_fn rd, void *ctx, struct em_frame *out,
                  em_error_t *err)
{
        uint8_t raw[EM_FRAME_HDR_LEN];
        cleanup_free uint8_t *payload = NULL;
        struct em_frame_hdr h;
        size_t got = 0;

        if (rd(ctx, raw, 1, &got, err) < 0)
                return -1;
        if (got == 0)
                return 0;
        if (read_exact(rd, ctx, raw + 1, sizeof(raw) - 1, "header", err) < 0)
                return -1;
        if (em_frame_hdr_parse(raw, &h, err) < 0)
                return -1;
        /* Bounded by EM_FRAME_MAX_PAYLOAD, checked above. */
        payload = malloc((size_t)h.length + 1);
        if (payload == NULL)
                return em_error_set(err, ENOMEM, "allocating a %u-byte frame", h.length);
        if (read_exact(rd, ctx, payload, h.length, "payload", err) < 0)
                return -1;
        payload[h.length] = 0;
        if (em_frame_checksum(raw, payload, h.length) != h.checksum)
                return em_error_set_code(err, EM_FRAME_E_CHECKSUM,
                                         "checksum mismatch in %s frame %llu (%u bytes): corrupted",
                                         em_frame_type_name(h.type), (unsigned long long)h.seq,
                                         h.length);
        if (check_order(r, &h, err) < 0)
                return -1;
        em_frame_clear(out);
        out->hdr = h;
        out->length = h.length;
        out->payload = steal_pointer(&payload);
        return 1;
}

int em_frame_send(struct em_frame_writer *w, em_frame_writev_fn wr, void *ctx, uint16_t type,
                  uint16_t flags, uint32_t stream, const void *payload, uint32_t len,
                  uint32_t raw_len, em_error_t *err)
{
        struct em_frame_hdr h = {.type = type,
                                 .flags = flags,
                                 .session = w->session,
                                 .seq = w->seq + 1,
                                 .stream = stream,
                                 .length = len,
                                 .raw_len = raw_len};
        uint8_t raw[EM_FRAME_HDR_LEN];
        struct iovec iov[2];

        if (!em_frame_type_valid(type) || (flags & ~EM_FRAME_F_KNOWN) != 0)
                return em_error_set(err, EINVAL, "sending frame type %u flags 0x%x", type, flags);
        if (len > EM_FRAME_MAX_PAYLOAD || raw_len > EM_FRAME_MAX_RAW ||
            (!(flags & EM_FRAME_F_ZSTD) && raw_len != len))
                return em_error_set(err, EMSGSIZE, "sending %s frame of %u bytes (raw %u)",
                                    em_frame_type_name(type), len, raw_len);
        em_frame_hdr_pack(&h, raw);
        h.checksum = em_frame_checksum(raw, payload, len);
        put64(raw + 40, h.checksum);
        iov[0] = (struct iovec){.iov_base = raw, .iov_len = sizeof(raw)};
        iov[1] = (struct iovec){.iov_base = (void *)payload, .iov_len = len};
        if (wr(ctx, iov, len > 0 ? 2 : 1, err) < 0)
                return em_error_wrap(err, "sending %s frame", em_frame_type_name(type));
        w->seq++;
        return 0;
}

struct membuf {
        const uint8_t *buf;
        size_t len, pos;
        uint8_t *out;
        size_t out_len;
};

static int mem_read(void *ctx, void *buf, size_t len, size_t *got, em_error_t *err)
{
        struct membuf *m = ctx;
        size_t n = m->len - m->pos < len ? m->len - m->pos : len;

        memcpy(buf, m->buf + m->pos, n);
        m->pos += n;
        *got = n;
        return 0;
}

static int mem_writev(void *ctx, const struct iovec *iov, int iovcnt, em_error_t *err)
{
        struct membuf *m = ctx;
        size_t total = 0;
        uint8_t *p;

        for (int i = 0; i < iovcnt; i++)
                total += iov[i].iov_len;
        p = realloc(m->out, m->out_len + total);
        if (p == NULL)
                return em_error_set(err, ENOMEM, "growing a frame buffer");
        m->out = p;
        for (int i = 0; i < iovcnt; i++) {
                if (iov[i].iov_len > 0)
                        memcpy(p + m->out_len, iov[i].iov_base, iov[i].iov_len);
                m->out_len += iov[i].iov_len;
        }
        return 0;
}

int em_frame_decode(struct em_frame_reader *r, const uint8_t *buf, size_t len, struct em_frame *out,
                    size_t *consumed, em_error_t *err)
{
        struct membuf m = {.buf = buf, .len = len};
        int ret = em_frame_recv(r, mem_read, &m, out, err);

        *consumed = m.pos;
        if (ret == 0)
                return em_error_set_code(err, EM_FRAME_E_TRUNC, "truncated frame: empty buffer");
        return ret < 0 ? -1 : 0;
}

int em_frame_encode(struct em_frame_writer *w, uint16_t type, uint16_t flags, uint32_t stream,
                    const void *payload, uint32_t len, uint32_t raw_len, uint8_t **buf,
                    size_t *buf_len, em_error_t *err)
{
        struct membuf m = {.out = *buf, .out_len = *buf_len};
        int ret = em_frame_send(w, mem_writev, &m, type, flags, stream, payload, len, raw_len, err);

        *buf = m.out;
        *buf_len = m.out_len;
        return ret;
}

int em_fd_wait(int fd, short events, int timeout_ms, em_error_t *err)
{
        struct pollfd p = {.fd = fd, .events = events};
        int n;

        do
                n = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return em_error_set(err, errno, "poll");
        if (n == 0)
                return em_error_set(err, ETIMEDOUT, "peer stalled for %d ms", timeout_ms);
        return 0;
}

int em_fd_read_full(int fd, void *buf, size_t len, size_t *got, int timeout_ms, em_error_t *err)
{
        size_t done = 0;

        while (done < len) {
                ssize_t n;

                /* Blocking fds too: poll first so a silent peer cannot hang us. */
                if (timeout_ms > 0 && em_fd_wait(fd, POLLIN, timeout_ms, err) < 0)
                        return em_error_wrap(err, "reading");
                n = read(fd, (uint8_t *)buf + done, len - done);
                if (n > 0) {
                        done += (size_t)n;
                } else if (n == 0) {
                        break;
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        if (em_fd_wait(fd, POLLIN, timeout_ms, err) < 0)
                                return em_error_wrap(err, "reading");
                } else if (errno != EINTR) {
                        return em_error_set(err, errno, "reading");
                }
        }
        *got = done;
        return 0;
}

int em_fd_writev_full(int fd, const struct iovec *iov_in, int iovcnt, int timeout_ms,
                      em_error_t *err)
{
        struct iovec iov[8];
        int i = 0;

        if (iovcnt > 8)
                return em_error_set(err, EINVAL, "writev of %d buffers", iovcnt);
        memcpy(iov, iov_in, sizeof(*iov) * (size_t)iovcnt);
        while (i < iovcnt) {
                ssize_t n;

                if (timeout_ms > 0 && em_fd_wait(fd, POLLOUT, timeout_ms, err) < 0)
                        return em_error_wrap(err, "writing");
                n = writev(fd, iov + i, iovcnt - i);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK) {
                                if (em_fd_wait(fd, POLLOUT, timeout_ms, err) < 0)
                                        return em_error_wrap(err, "writing");
                        } else if (errno != EINTR) {
                                return em_error_set(err, errno, "writing");
                        }
                        continue;
                }
                while (i < iovcnt && (size_t)n >= iov[i].iov_len)
                        n -= (ssize_t)iov[i++].iov_len;
                if (i < iovcnt) {
                        iov[i].iov_base = (uint8_t *)iov[i].iov_base + n;
                        iov[i].iov_len -= (size_t)n;
                }
        }
        return 0;
}

struct fdctx {
        int fd, timeout_ms;
};

static int fd_read_cb(void *ctx, void *buf, size_t len, size_t *got, em_error_t *err)
{
        struct fdctx *c = ctx;
        return em_fd_read_full(c->fd, buf, len, got, c->timeout_ms, err);
}

static int fd_writev_cb(void *ctx, const struct iovec *iov, int iovcnt, em_error_t *err)
{
        struct fdctx *c = ctx;
        return em_fd_writev_full(c->fd, iov, iovcnt, c->timeout_ms, err);
}

int em_frame_read_fd(struct em_frame_reader *r, int fd, int timeout_ms, struct em_frame *out,
                     em_error_t *err)
{
        struct fdctx c = {fd, timeout_ms};
        return em_frame_recv(r, fd_read_cb, &c, out, err);
}

int em_frame_write_fd(struct em_frame_writer *w, int fd, int timeout_ms, uint16_t type,
                      uint16_t flags, uint32_t stream, const void *payload, uint32_t len,
                      em_error_t *err)
{
        struct fdctx c = {fd, timeout_ms};
        return em_frame_send(w, fd_writev_cb, &c, type, flags, stream, payload, len, len, err);
}
