/* A peer connection: frames over a byte-stream backend behind an ops table
 * (plain fd for TCP and socketpairs today, TLS later), with byte counters and
 * a bandwidth meter. Sending and receiving are each serialized by a lock, so
 * a pipeline may send from several threads. */
#ifndef EDGEMIG_TRANSFER_CONN_H
#define EDGEMIG_TRANSFER_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "transfer/compress.h"
#include "transfer/frame.h"
#include "transfer/ratelimit.h"
#include "util/clock.h"
#include "util/error.h"

typedef struct em_conn em_conn_t;

/* A backend. read fills up to len bytes (*got < len only at end of stream);
 * writev writes everything. Both honour timeout_ms (<= 0: none). */
struct em_conn_ops {
        const char *name;
        int (*read)(em_conn_t *c, void *buf, size_t len, size_t *got, int timeout_ms,
                    em_error_t *err);
        int (*writev)(em_conn_t *c, const struct iovec *iov, int iovcnt, int timeout_ms,
                      em_error_t *err);
        /* Optional: TCP_NODELAY for control frames (cork off), or batching for bulk. */
        int (*set_nodelay)(em_conn_t *c, bool on, em_error_t *err);
        /* Optional: half-close for writing (peer reads end of stream). */
        int (*shutdown_write)(em_conn_t *c, em_error_t *err);
        void (*destroy)(em_conn_t *c); /* frees priv and closes the fd */
        /* Optional: the peer's authenticated identity (NULL: none). */
        const char *(*identity)(const em_conn_t *c);
};

/* Moving-window throughput estimate. */
#define EM_BW_SLOTS 64
struct em_bwmeter {
        int64_t window_ns;
        unsigned head, count;
        struct {
                int64_t t_ns;
                uint64_t bytes;
        } slot[EM_BW_SLOTS];
};
void em_bwmeter_init(struct em_bwmeter *m, int window_ms);
void em_bwmeter_add(struct em_bwmeter *m, int64_t now_ns, uint64_t bytes);
/* Bytes per second over the samples inside the window ending at now_ns; 0
 * until there are two samples spanning some time. */
double em_bwmeter_rate(const struct em_bwmeter *m, int64_t now_ns);
/* The same, 0 unless the window holds at least min_bytes. */
double em_bwmeter_rate_min(const struct em_bwmeter *m, int64_t now_ns, uint64_t min_bytes);

struct em_conn_stats {
        uint64_t frames_out, frames_in;
        uint64_t raw_out, wire_out; /* payload bytes before compression / frame bytes sent */
        uint64_t raw_in, wire_in;
        uint64_t compress_ns; /* wall time spent compressing what was sent */
};

/* Generic constructor for backends: takes ownership of fd and priv. */
em_conn_t *em_conn_new(const struct em_conn_ops *ops, int fd, void *priv, const char *peer);
/* The plain-fd backend (TCP or a socketpair end); takes ownership of fd. */
int em_conn_from_fd(int fd, const char *peer, em_conn_t **out, em_error_t *err);
/* For the TLS backends. em_conn_detach frees a plain connection and returns
 * its socket (a duplicate) and peer address, for a handshake over it.
 * em_conn_wrap_session makes a handshaken session (priv) over *fd a
 * connection; on failure priv is freed with free_priv. Either way *fd is
 * taken, and *peer_name, if asked for, gets the certificate's name. */
int em_conn_detach(em_conn_t **conn, char **peer, em_error_t *err);
int em_conn_wrap_session(const struct em_conn_ops *ops, int *fd, void *priv,
                         void (*free_priv)(void *), const char *cert_name, const char *peer,
                         char **peer_name, em_conn_t **out, em_error_t *err);
void em_conn_free(em_conn_t **c);
#define cleanup_conn __attribute__((cleanup(em_conn_free)))

int em_conn_fd(const em_conn_t *c);
void *em_conn_priv(const em_conn_t *c);
const struct em_conn_ops *em_conn_backend(const em_conn_t *c);
const char *em_conn_peer(const em_conn_t *c);
/* The peer's authenticated identity: the certificate name the TLS backend
 * matched (tls.h); NULL on a plain connection (--insecure, socketpairs).
 * What a peer left on this host (its page cache) is keyed by it. */
const char *em_conn_identity(const em_conn_t *c);
/* Per-wait timeout for reads and writes (default 30 s; <= 0: none). */
void em_conn_set_timeout(em_conn_t *c, int timeout_ms);
int em_conn_set_nodelay(em_conn_t *c, bool on, em_error_t *err);
int em_conn_shutdown_write(em_conn_t *c, em_error_t *err);
/* Binds both directions to a session (after HELLO): frames of any other
 * session are rejected from then on. */
void em_conn_set_session(em_conn_t *c, uint64_t session_tag);

/* Sends one frame. level > 0 compresses payloads of >= 512 bytes with zstd at
 * that level and falls back to plain if that does not save anything. */
int em_conn_send(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream, const void *payload,
                 size_t len, int level, em_error_t *err);
/* A payload compressed ahead of its send, so that a pipeline compresses the
 * next frame while the link carries this one (sendq.h). zstd false: the
 * payload goes as it is (too small, no level, or compression saved nothing)
 * and buf is NULL. */
struct em_packed {
        uint8_t *buf;
        size_t len, raw_len; /* wire payload bytes / bytes it decodes to */
        bool zstd;
        uint64_t compress_ns; /* wall time the compression took */
};
/* Compresses payload with z (not the connection's own context: the caller's
 * thread, outside the connection's locks) as em_conn_send would at level. */
int em_conn_pack(em_zstd_t *z, int level, const void *payload, size_t len, struct em_packed *out,
                 em_error_t *err);
void em_packed_clear(struct em_packed *p);
/* Sends one frame packed by em_conn_pack from the same payload. */
int em_conn_send_packed(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream,
                        const void *payload, const struct em_packed *p, em_error_t *err);
/* Convenience for JSON control frames (compact, never compressed). */
int em_conn_send_str(em_conn_t *c, uint16_t type, const char *s, em_error_t *err);
/* Receives one frame and decompresses it. Returns 1, or 0 at a clean end of
 * stream (between frames), -1 on any error. */
int em_conn_recv(em_conn_t *c, struct em_frame *f, em_error_t *err);
/* Puts a received frame back (its payload is taken over, *f is cleared): the
 * next em_conn_recv returns it again. One frame at most; for a dispatcher
 * that reads the first frame of a connection and hands the connection on. */
int em_conn_unrecv(em_conn_t *c, struct em_frame *f, em_error_t *err);

void em_conn_stats(em_conn_t *c, struct em_conn_stats *out);
/* Caps what c sends at bits_per_s on the wire (0: no cap), e.g. for
 * `edgemig migrate --max-rate`; frames wait before they are written. */
void em_conn_set_max_rate(em_conn_t *c, uint64_t bits_per_s);
/* Outgoing wire throughput (bytes/s) over the meter's window (default 2 s).
 * Never waits for a send in progress. */
double em_conn_send_rate(em_conn_t *c);
/* The same, 0 unless the window holds at least min_bytes (a handshake's
 * few kilobytes say nothing about the link). */
double em_conn_send_rate_min(em_conn_t *c, uint64_t min_bytes);

/* Backend helpers. TCP_NODELAY on the connection's socket (ENOTSUP, as on
 * a socketpair, is no error): a set_nodelay for any socket backend. */
int em_conn_tcp_nodelay(em_conn_t *c, bool on, em_error_t *err);
/* Copies the iovecs into stage in chunks of size bytes and hands each full
 * chunk, and the rest, to flush (a TLS backend's writev: a 48-byte frame
 * header must not become a record, and a TCP segment, of its own). */
typedef int (*em_record_flush_fn)(void *arg, size_t len, em_error_t *err);
int em_iov_records(const struct iovec *iov, int iovcnt, uint8_t *stage, size_t size,
                   em_record_flush_fn flush, void *arg, em_error_t *err);

/* TCP helpers. "ADDR:PORT", "[v6]:PORT" or "HOST:PORT". */
int em_hostport_parse(const char *s, char **host, char **port, em_error_t *err);
int em_tcp_connect(const char *hostport, int timeout_ms, em_conn_t **out, em_error_t *err);
/* Listens with SO_REUSEADDR; port "0" picks a free port (see em_tcp_local_port). */
int em_tcp_listen(const char *hostport, int backlog, int *fd_out, em_error_t *err);
int em_tcp_local_port(int fd, int *port, em_error_t *err);
/* Waits up to timeout_ms (<= 0: forever) for a connection. */
int em_tcp_accept(int listen_fd, int timeout_ms, em_conn_t **out, em_error_t *err);

#endif
