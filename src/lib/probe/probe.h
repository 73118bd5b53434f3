/* Client-side measurement: the wire formats the probe speaks (a strict,
 * minimal RESP subset for redis; length-prefixed frames for facedetect),
 * blocking I/O with deadlines on one TCP connection, and the statistics
 * (latency samples, interruption gaps) a migration test reads afterwards. */
#ifndef EDGEMIG_PROBE_PROBE_H
#define EDGEMIG_PROBE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "util/error.h"

/* ---- RESP (redis) ---------------------------------------------------- */

enum em_resp_type {
        EM_RESP_SIMPLE,  /* +OK */
        EM_RESP_ERROR,   /* -ERR ... */
        EM_RESP_INTEGER, /* :42 */
        EM_RESP_BULK,    /* $3 foo */
        EM_RESP_NIL,     /* $-1 */
};

struct em_resp_reply {
        enum em_resp_type type;
        const char *str; /* points into the parsed buffer; not NUL-terminated */
        size_t len;
        long long integer;
};

/* Largest bulk reply accepted; anything bigger is a protocol error. */
#define EM_RESP_MAX_BULK (64u << 20)

/* Parses one reply at the start of buf. Returns 1 with *r and *used set when a
 * complete reply is there, 0 when more bytes are needed, -1 when the bytes are
 * not a reply this client accepts (arrays, bad lengths, missing CRLF). */
int em_resp_parse(const char *buf, size_t len, struct em_resp_reply *r, size_t *used,
                  em_error_t *err);

/* A command as a RESP array of bulk strings; returns a malloc'd buffer. */
char *em_resp_command(size_t *len, size_t argc, const char *const *argv);

/* The value the probe writes under k<n>: "v<n>", padded with '.' to size bytes
 * when size is larger. Returns a malloc'd string. */
char *em_probe_redis_value(uint64_t n, size_t size);

/* ---- facedetect ------------------------------------------------------ */

#define EM_FACE_MAX_REPLY (1u << 20)

/* Checks one JSON reply body: no "error", integer "seq" and "n". expect_faces
 * < 0 accepts any count. On success *seq holds the reply's sequence number. */
int em_face_check_reply(const char *body, size_t len, long long expect_faces, long long *seq,
                        em_error_t *err);

/* ---- I/O on one connection ------------------------------------------- */

/* How one request ended. */
enum em_probe_outcome {
        EM_PROBE_OK,
        EM_PROBE_ERROR,   /* error reply, malformed reply, local I/O error */
        EM_PROBE_VERIFY,  /* well-formed reply with the wrong content */
        EM_PROBE_RESET,   /* ECONNRESET, EPIPE or EOF: the connection is gone */
        EM_PROBE_TIMEOUT, /* no reply within the timeout */
        EM_PROBE_STOPPED, /* interrupted by a stop request, not counted */
};

const char *em_probe_outcome_name(enum em_probe_outcome o);

/* Connects to "HOST:PORT" (IPv4 or name) within timeout_ms, TCP_NODELAY set. */
int em_probe_connect(const char *hostport, int timeout_ms, int *fd, em_error_t *err);

/* Monotonic milliseconds. */
double em_probe_now_ms(void);

/* Sends all of buf before the absolute deadline (em_probe_now_ms scale). */
enum em_probe_outcome em_probe_send_all(int fd, const void *buf, size_t len, double deadline_ms,
                                        volatile const int *stop, em_error_t *err);

/* Receive buffer with the bytes read so far. */
struct em_probe_buf {
        char *data;
        size_t len, cap;
};

void em_probe_buf_release(struct em_probe_buf *b);
/* Drops the first n bytes (a consumed reply). */
void em_probe_buf_consume(struct em_probe_buf *b, size_t n);
/* Reads more bytes (at least one) before the deadline. */
enum em_probe_outcome em_probe_recv_some(int fd, struct em_probe_buf *b, double deadline_ms,
                                         volatile const int *stop, em_error_t *err);

/* ---- statistics ------------------------------------------------------ */

struct em_probe_sample {
        double t_send_ms; /* since the probe's start */
        double latency_ms;
        enum em_probe_outcome outcome;
};

struct em_probe_gap {
        double start_ms; /* the previous successful reply */
        double len_ms;
};

struct em_probe_stats {
        double gap_threshold_ms; /* gaps longer than this are listed */
        uint64_t requests, ok, errors, resets, verify_failures, timeouts;
        uint64_t last_acked; /* redis: highest n whose SET k<n> was acknowledged */
        bool have_ok;
        double last_ok_ms, max_gap_ms, max_gap_start_ms;
        struct em_probe_sample *samples;
        size_t n_samples, cap_samples;
        struct em_probe_gap *gaps;
        size_t n_gaps, cap_gaps;
};

void em_probe_stats_init(struct em_probe_stats *s, double gap_threshold_ms);
void em_probe_stats_release(struct em_probe_stats *s);

/* Records one request; t_* are ms since the probe's start. EM_PROBE_STOPPED
 * is ignored. The interruption gap runs between successive successful replies. */
int em_probe_record(struct em_probe_stats *s, double t_send_ms, double t_reply_ms,
                    enum em_probe_outcome outcome, em_error_t *err);

/* Latency percentile (0..100) over successful requests; 0 if there are none. */
double em_probe_latency_pct(const struct em_probe_stats *s, double pct);

/* Summary object: counts, max_gap_ms, gaps[], latency percentiles, last_acked.
 * start_unix_ms anchors the relative times to the wall clock. */
json_t *em_probe_stats_json(const struct em_probe_stats *s, double start_unix_ms,
                            double duration_ms);

/* CSV with a header: t_send_ms,latency_ms,ok (ok is 1 or 0). */
int em_probe_write_csv(const struct em_probe_stats *s, FILE *f, em_error_t *err);

/* For stack-allocated structs: `cleanup_probe_stats struct em_probe_stats s;`. */
#define cleanup_probe_stats __attribute__((cleanup(em_probe_stats_release)))
#define cleanup_probe_buf   __attribute__((cleanup(em_probe_buf_release)))

#endif
