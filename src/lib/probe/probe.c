/* Client-side measurement: RESP, facedetect frames, deadline I/O and stats. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe/probe.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/json.h"

/* ---- RESP ------------------------------------------------------------- */

/* Finds the CRLF ending the header line that starts at buf: its offset, -1 if
 * not there yet, -2 if a lone CR or LF makes the line malformed. */
static ssize_t find_crlf(const char *buf, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                if (buf[i] == '\r' && i + 1 == len)
                        return -1;
                if (buf[i] == '\r')
                        return buf[i + 1] == '\n' ? (ssize_t)i : -2;
                if (buf[i] == '\n')
                        return -2;
        }
        return -1;
}

/* Strict decimal: optional '-', 1..18 digits, nothing else. */
static int parse_decimal(const char *s, size_t n, long long *out)
{
        size_t i = 0;
        bool neg = false;
        long long v = 0;

        if (n > 0 && s[0] == '-') {
                neg = true;
                i = 1;
        }
        if (i == n || n - i > 18)
                return -1;
        for (; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        *out = neg ? -v : v;
        return 0;
}

static int parse_bulk(const char *buf, size_t len, size_t hdr_end, struct em_resp_reply *r,
                      size_t *used, em_error_t *err)
{
        long long n;

        if (parse_decimal(buf + 1, hdr_end - 1, &n) < 0 || n < -1 || n > EM_RESP_MAX_BULK)
                return em_error_set(err, EPROTO, "bad RESP bulk length '%.*s'", (int)hdr_end - 1,
                                    buf + 1);
        if (n == -1) {
                r->type = EM_RESP_NIL;
                r->str = NULL;
                r->len = 0;
                *used = hdr_end + 2;
                return 1;
        }
        size_t body = hdr_end + 2, total = body + (size_t)n + 2;
        if (len < total)
                return 0;
        if (buf[total - 2] != '\r' || buf[total - 1] != '\n')
                return em_error_set(err, EPROTO, "RESP bulk string of %lld bytes not ended by CRLF",
                                    n);
        r->type = EM_RESP_BULK;
        r->str = buf + body;
        r->len = (size_t)n;
        *used = total;
        return 1;
}

int em_resp_parse(const char *buf, size_t len, struct em_resp_reply *r, size_t *used,
                  em_error_t *err)
{
        if (len == 0)
                return 0;
        ssize_t end = find_crlf(buf, len);
        if (end == -2)
                return em_error_set(err, EPROTO, "RESP line not ended by CRLF");
        if (end < 0)
                return len > 64 * 1024 ? em_error_set(err, EPROTO, "RESP line too long") : 0;
        switch (buf[0]) {
        case '+':
        case '-':
                r->type = buf[0] == '+' ? EM_RESP_SIMPLE : EM_RESP_ERROR;
                r->str = buf + 1;
                r->len = (size_t)end - 1;
                *used = (size_t)end + 2;
                return 1;
        case ':':
                if (parse_decimal(buf + 1, (size_t)end - 1, &r->integer) < 0)
                        return em_error_set(err, EPROTO, "bad RESP integer");
                r->type = EM_RESP_INTEGER;
                r->str = NULL;
                r->len = 0;
                *used = (size_t)end + 2;
                return 1;
        case '$':
                return parse_bulk(buf, len, (size_t)end, r, used, err);
        default:
                return em_error_set(err, EPROTO, "unexpected RESP reply type 0x%02x",
                                    (unsigned char)buf[0]);
        }
}

char *em_resp_command(size_t *len, size_t argc, const char *const *argv)
{
        size_t cap = 32;
        for (size_t i = 0; i < argc; i++)
                cap += strlen(argv[i]) + 32;
        char *out = malloc(cap);
        if (out == NULL)
                return NULL;
        size_t n = (size_t)snprintf(out, cap, "*%zu\r\n", argc);
        for (size_t i = 0; i < argc; i++) {
                size_t l = strlen(argv[i]);
                n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n", l);
                memcpy(out + n, argv[i], l);
                memcpy(out + n + l, "\r\n", 2);
                n += l + 2;
        }
        *len = n;
        return out;
}

char *em_probe_redis_value(uint64_t n, size_t size)
{
        char head[32];
        int hl = snprintf(head, sizeof(head), "v%llu", (unsigned long long)n);
        size_t len = size > (size_t)hl ? size : (size_t)hl;
        char *v = malloc(len + 1);

        if (v == NULL)
                return NULL;
        memcpy(v, head, (size_t)hl);
        memset(v + hl, '.', len - (size_t)hl);
        v[len] = '\0';
        return v;
}

/* ---- facedetect ------------------------------------------------------- */

int em_face_check_reply(const char *body, size_t len, long long expect_faces, long long *seq,
                        em_error_t *err)
{
        cleanup_json json_t *j = NULL;

        if (em_json_parse(body, len, "facedetect reply", &j, err) < 0) {
                /* Not JSON: a protocol error, whatever jansson's status was. */
                cleanup_free char *msg = strdup(em_error_msg(*err));
                em_error_free(err);
                return em_error_set(err, EPROTO, "%s", msg ? msg : "bad facedetect reply");
        }
        if (!json_is_object(j))
                return em_error_set(err, EPROTO, "facedetect reply is not a JSON object");
        const char *e = em_json_str(j, "error");
        if (e != NULL)
                return em_error_set(err, EPROTO, "facedetect error: %s", e);
        json_t *s = json_object_get(j, "seq"), *n = json_object_get(j, "n");
        if (!json_is_integer(s) || !json_is_integer(n) ||
            !json_is_array(json_object_get(j, "faces")))
                return em_error_set(err, EPROTO, "facedetect reply lacks seq, n or faces");
        if (expect_faces >= 0 && json_integer_value(n) != expect_faces)
                return em_error_set(err, 0, "facedetect found %lld faces, expected %lld",
                                    (long long)json_integer_value(n), expect_faces);
        *seq = json_integer_value(s);
        return 0;
}

/* ---- I/O -------------------------------------------------------------- */

const char *em_probe_outcome_name(enum em_probe_outcome o)
{
        static const char *const names[] = {"ok", "error", "verify", "reset", "timeout", "stopped"};
        return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

double em_probe_now_ms(void)
{
        return em_mono_s() * 1e3;
}

static int split_hostport(const char *hostport, char **host, char **port, em_error_t *err)
{
        const char *colon = strrchr(hostport, ':');
        if (colon == NULL || colon == hostport || colon[1] == '\0')
                return em_error_set(err, EINVAL, "'%s' is not HOST:PORT", hostport);
        *host = strndup(hostport, (size_t)(colon - hostport));
        *port = strdup(colon + 1);
        if (*host == NULL || *port == NULL)
                return em_error_set(err, ENOMEM, "splitting %s", hostport);
        return 0;
}

/* Waits for fd to become ready for events; returns poll's revents, 0 on
 * timeout, -1 on error or stop request (*stopped set). */
static int wait_fd(int fd, short events, double deadline_ms, volatile const int *stop,
                   bool *stopped)
{
        *stopped = false;
        for (;;) {
                if (stop != NULL && *stop) {
                        *stopped = true;
                        return -1;
                }
                double left = deadline_ms - em_probe_now_ms();
                if (left <= 0)
                        return 0;
                /* Wake up at least every 100 ms to notice a stop request. */
                struct pollfd p = {.fd = fd, .events = events};
                int r = poll(&p, 1, left > 100 ? 100 : (int)left + 1);
                if (r < 0 && errno != EINTR)
                        return -1;
                if (r > 0)
                        return p.revents;
        }
}

static int connect_addr(const struct addrinfo *ai, int timeout_ms, int *out, em_error_t *err)
{
        cleanup_close int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        bool stopped;
        int one = 1, soerr = 0;
        socklen_t sl = sizeof(soerr);

        if (fd < 0)
                return em_error_set(err, errno, "socket");
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
                return em_error_set(err, errno, "connect");
        int r = wait_fd(fd, POLLOUT, em_probe_now_ms() + timeout_ms, NULL, &stopped);
        if (r == 0)
                return em_error_set(err, ETIMEDOUT, "connect");
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                return em_error_set(err, errno, "connect");
        if (soerr != 0)
                return em_error_set(err, soerr, "connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        *out = steal_fd(&fd);
        return 0;
}

int em_probe_connect(const char *hostport, int timeout_ms, int *fd, em_error_t *err)
{
        cleanup_free char *host = NULL;
        cleanup_free char *port = NULL;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;

        if (split_hostport(hostport, &host, &port, err) < 0)
                return -1;
        int r = getaddrinfo(host, port, &hints, &res);
        if (r != 0)
                return em_error_set(err, 0, "resolving %s: %s", hostport, gai_strerror(r));
        r = connect_addr(res, timeout_ms, fd, err);
        freeaddrinfo(res);
        if (r < 0)
                return em_error_wrap(err, "connecting to %s", hostport);
        return 0;
}

static enum em_probe_outcome io_failure(int e, const char *what, em_error_t *err)
{
        em_error_set(err, e, "%s", what);
        return e == ECONNRESET || e == EPIPE ? EM_PROBE_RESET : EM_PROBE_ERROR;
}

static enum em_probe_outcome wait_outcome(int fd, short ev, double deadline_ms,
                                          volatile const int *stop, const char *what,
                                          em_error_t *err)
{
        bool stopped;
        int r = wait_fd(fd, ev, deadline_ms, stop, &stopped);

        if (stopped)
                return EM_PROBE_STOPPED;
        if (r == 0) {
                em_error_set(err, ETIMEDOUT, "%s", what);
                return EM_PROBE_TIMEOUT;
        }
        if (r < 0)
                return io_failure(errno, what, err);
        return EM_PROBE_OK; /* ready, or POLLERR/POLLHUP: the syscall reports it */
}

enum em_probe_outcome em_probe_send_all(int fd, const void *buf, size_t len, double deadline_ms,
                                        volatile const int *stop, em_error_t *err)
{
        const char *p = buf;

        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        continue;
                }
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return io_failure(errno, "sending", err);
                enum em_probe_outcome o =
                    wait_outcome(fd, POLLOUT, deadline_ms, stop, "sending", err);
                if (o != EM_PROBE_OK)
                        return o;
        }
        return EM_PROBE_OK;
}

void em_probe_buf_release(struct em_probe_buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

void em_probe_buf_consume(struct em_probe_buf *b, size_t n)
{
        if (n >= b->len) {
                b->len = 0;
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
}

static int buf_reserve(struct em_probe_buf *b, size_t extra, em_error_t *err)
{
        if (b->cap - b->len >= extra)
                return 0;
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < extra)
                cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
                return em_error_set(err, ENOMEM, "growing receive buffer");
        b->data = d;
        b->cap = cap;
        return 0;
}

enum em_probe_outcome em_probe_recv_some(int fd, struct em_probe_buf *b, double deadline_ms,
                                         volatile const int *stop, em_error_t *err)
{
        if (buf_reserve(b, 16384, err) < 0)
                return EM_PROBE_ERROR;
        for (;;) {
                ssize_t n = recv(fd, b->data + b->len, b->cap - b->len, 0);
                if (n > 0) {
                        b->len += (size_t)n;
                        return EM_PROBE_OK;
                }
                if (n == 0) {
                        em_error_set(err, 0, "connection closed by the server (EOF)");
                        return EM_PROBE_RESET;
                }
                if (errno != EAGAIN && errno != EINTR)
                        return io_failure(errno, "receiving", err);
                enum em_probe_outcome o =
                    wait_outcome(fd, POLLIN, deadline_ms, stop, "waiting for the reply", err);
                if (o != EM_PROBE_OK)
                        return o;
        }
}

/* ---- statistics ------------------------------------------------------- */

void em_probe_stats_init(struct em_probe_stats *s, double gap_threshold_ms)
{
        memset(s, 0, sizeof(*s));
        s->gap_threshold_ms = gap_threshold_ms;
}

void em_probe_stats_release(struct em_probe_stats *s)
{
        free(s->samples);
        free(s->gaps);
        s->samples = NULL;
        s->gaps = NULL;
        s->n_samples = s->cap_samples = s->n_gaps = s->cap_gaps = 0;
}

/* Grows *arr (elements of size sz) to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz, em_error_t *err)
{
        if (n < *cap)
                return 0;
        size_t nc = *cap ? *cap * 2 : 1024;
        void *p = reallocarray(*arr, nc, sz);
        if (p == NULL)
                return em_error_set(err, ENOMEM, "growing probe statistics");
        *arr = p;
        *cap = nc;
        return 0;
}

static int note_success(struct em_probe_stats *s, double t_reply_ms, em_error_t *err)
{
        if (s->have_ok) {
                double gap = t_reply_ms - s->last_ok_ms;
                if (gap > s->max_gap_ms) {
                        s->max_gap_ms = gap;
                        s->max_gap_start_ms = s->last_ok_ms;
                }
                if (gap > s->gap_threshold_ms) {
                        if (grow((void **)&s->gaps, &s->cap_gaps, s->n_gaps, sizeof(*s->gaps),
                                 err) < 0)
                                return -1;
                        s->gaps[s->n_gaps++] =
                            (struct em_probe_gap){.start_ms = s->last_ok_ms, .len_ms = gap};
                }
        }
        s->have_ok = true;
        s->last_ok_ms = t_reply_ms;
        return 0;
}

int em_probe_record(struct em_probe_stats *s, double t_send_ms, double t_reply_ms,
                    enum em_probe_outcome outcome, em_error_t *err)
{
        if (outcome == EM_PROBE_STOPPED)
                return 0;
        if (grow((void **)&s->samples, &s->cap_samples, s->n_samples, sizeof(*s->samples), err) < 0)
                return -1;
        s->samples[s->n_samples++] = (struct em_probe_sample){
            .t_send_ms = t_send_ms, .latency_ms = t_reply_ms - t_send_ms, .outcome = outcome};
        s->requests++;
        switch (outcome) {
        case EM_PROBE_OK:
                s->ok++;
                return note_success(s, t_reply_ms, err);
        case EM_PROBE_VERIFY:
                s->verify_failures++;
                break;
        case EM_PROBE_RESET:
                s->resets++;
                break;
        case EM_PROBE_TIMEOUT:
                s->timeouts++;
                s->errors++;
                break;
        default:
                s->errors++;
                break;
        }
        return 0;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

double em_probe_latency_pct(const struct em_probe_stats *s, double pct)
{
        if (s->ok == 0)
                return 0;
        cleanup_free double *v = malloc(s->ok * sizeof(*v));
        size_t n = 0;
        if (v == NULL)
                return -1;
        for (size_t i = 0; i < s->n_samples; i++)
                if (s->samples[i].outcome == EM_PROBE_OK)
                        v[n++] = s->samples[i].latency_ms;
        qsort(v, n, sizeof(*v), cmp_double);
        /* Nearest rank. */
        size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return v[rank - 1];
}

static json_t *round_ms(double v)
{
        return json_real((double)(long long)(v * 1000.0 + 0.5) / 1000.0);
}

static json_t *gaps_json(const struct em_probe_stats *s, double start_unix_ms)
{
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < s->n_gaps; i++)
                json_array_append_new(
                    a, json_pack("{s:o, s:o, s:o}", "start_ms", round_ms(s->gaps[i].start_ms),
                                 "start_unix_ms",
                                 json_integer((json_int_t)(start_unix_ms + s->gaps[i].start_ms)),
                                 "len_ms", round_ms(s->gaps[i].len_ms)));
        return a;
}

json_t *em_probe_stats_json(const struct em_probe_stats *s, double start_unix_ms,
                            double duration_ms)
{
        json_t *lat = json_pack("{s:o, s:o, s:o}", "p50_ms", round_ms(em_probe_latency_pct(s, 50)),
                                "p99_ms", round_ms(em_probe_latency_pct(s, 99)), "max_ms",
                                round_ms(em_probe_latency_pct(s, 100)));
        /* Time since the last success at the end: an outage still in progress. */
        double open = s->have_ok ? duration_ms - s->last_ok_ms : duration_ms;

        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                         "s:o}",
                         "requests", (json_int_t)s->requests, "ok", (json_int_t)s->ok, "errors",
                         (json_int_t)s->errors, "resets", (json_int_t)s->resets, "verify_failures",
                         (json_int_t)s->verify_failures, "timeouts", (json_int_t)s->timeouts,
                         "last_acked", (json_int_t)s->last_acked, "max_gap_ms",
                         round_ms(s->max_gap_ms), "max_gap_start_ms", round_ms(s->max_gap_start_ms),
                         "gap_threshold_ms", round_ms(s->gap_threshold_ms), "gaps",
                         gaps_json(s, start_unix_ms), "open_gap_ms", round_ms(open < 0 ? 0 : open),
                         "latency", lat, "start_unix_ms", json_integer((json_int_t)start_unix_ms),
                         "duration_ms", round_ms(duration_ms));
}

int em_probe_write_csv(const struct em_probe_stats *s, FILE *f, em_error_t *err)
{
        fputs("t_send_ms,latency_ms,ok\n", f);
        for (size_t i = 0; i < s->n_samples; i++)
                fprintf(f, "%.3f,%.3f,%d\n", s->samples[i].t_send_ms, s->samples[i].latency_ms,
                        s->samples[i].outcome == EM_PROBE_OK);
        if (fflush(f) != 0 || ferror(f))
                return em_error_set(err, errno, "writing CSV");
        return 0;
}
