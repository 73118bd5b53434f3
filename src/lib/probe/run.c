#include "probe/run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/log.h"

double em_probe_run_elapsed(const struct em_probe_run *r)
{
        return em_probe_now_ms() - r->t0;
}

static bool should_stop(const struct em_probe_run *r)
{
        struct stat st;
        if (*r->stop)
                return true;
        if (r->o->duration_s > 0 && em_probe_run_elapsed(r) >= r->o->duration_s * 1000)
                return true;
        return r->o->until_file != NULL && stat(r->o->until_file, &st) == 0;
}

static double deadline(const struct em_probe_run *r)
{
        return em_probe_now_ms() + r->o->timeout_s * 1000;
}

/* Reads one RESP reply into *rep (pointing into r->in); *used to consume. */
static enum em_probe_outcome read_resp(struct em_probe_run *r, struct em_resp_reply *rep,
                                       size_t *used, double dl, em_error_t *err)
{
        for (;;) {
                int p = em_resp_parse(r->in.data, r->in.len, rep, used, err);
                if (p > 0)
                        return EM_PROBE_OK;
                if (p < 0)
                        return EM_PROBE_ERROR;
                enum em_probe_outcome o = em_probe_recv_some(r->fd, &r->in, dl, r->stop, err);
                if (o != EM_PROBE_OK)
                        return o;
        }
}

/* One redis request: send argv, read the reply, judge it. */
static enum em_probe_outcome redis_request(struct em_probe_run *r, size_t argc,
                                           const char *const *argv, const char *expect,
                                           em_error_t *err)
{
        size_t len, used = 0;
        cleanup_free char *cmd = em_resp_command(&len, argc, argv);
        struct em_resp_reply rep;
        double dl = deadline(r);

        if (cmd == NULL) {
                em_error_set(err, ENOMEM, "building command");
                return EM_PROBE_ERROR;
        }
        enum em_probe_outcome o = em_probe_send_all(r->fd, cmd, len, dl, r->stop, err);
        if (o == EM_PROBE_OK)
                o = read_resp(r, &rep, &used, dl, err);
        if (o != EM_PROBE_OK)
                return o;
        if (rep.type == EM_RESP_ERROR) {
                em_error_set(err, 0, "%s: server error %.*s", argv[0], (int)rep.len, rep.str);
                o = EM_PROBE_ERROR;
        } else if (expect == NULL ? !(rep.type == EM_RESP_SIMPLE && rep.len == 2 &&
                                      memcmp(rep.str, "OK", 2) == 0)
                                  : !(rep.type == EM_RESP_BULK && rep.len == strlen(expect) &&
                                      memcmp(rep.str, expect, rep.len) == 0)) {
                em_error_set(err, 0, "%s %s: unexpected reply", argv[0], argv[1]);
                o = EM_PROBE_VERIFY;
        }
        em_probe_buf_consume(&r->in, used);
        return o;
}

/* Records the outcome; returns false when the connection is unusable. */
static bool account(struct em_probe_run *r, double t_send, enum em_probe_outcome o, em_error_t *err)
{
        em_error_t rec_err = NULL;

        if (em_probe_record(&r->stats, t_send, em_probe_run_elapsed(r), o, &rec_err) < 0) {
                em_log_error("%s", em_error_msg(rec_err));
                em_error_free(&rec_err);
                *r->stop = 1;
                return false;
        }
        if (o != EM_PROBE_OK && o != EM_PROBE_STOPPED)
                em_log_warn("at %.0f ms: %s: %s", t_send, em_probe_outcome_name(o),
                            *err ? em_error_msg(*err) : "?");
        /* Only a server error reply (no errno) leaves the connection usable:
         * resets and timeouts lose it, a malformed reply loses sync, and a
         * local I/O error leaves its state unknown. */
        bool usable = o == EM_PROBE_OK || o == EM_PROBE_VERIFY ||
                      (o == EM_PROBE_ERROR && em_error_status(*err) == 0 && r->in.len == 0);
        em_error_free(err);
        return usable && !*r->stop;
}

static bool redis_round(struct em_probe_run *r, uint64_t n)
{
        char key[32];
        cleanup_free char *val = em_probe_redis_value(n, r->o->value_size);
        em_error_t err = NULL;

        if (val == NULL)
                return false;
        snprintf(key, sizeof(key), "k%llu", (unsigned long long)n);
        const char *set[] = {"SET", key, val}, *get[] = {"GET", key};
        double t = em_probe_run_elapsed(r);
        enum em_probe_outcome o = redis_request(r, 3, set, NULL, &err);
        if (o == EM_PROBE_OK)
                r->stats.last_acked = n;
        if (!account(r, t, o, &err))
                return false;
        t = em_probe_run_elapsed(r);
        o = redis_request(r, 2, get, val, &err);
        return account(r, t, o, &err);
}

static enum em_probe_outcome face_request(struct em_probe_run *r, em_error_t *err)
{
        unsigned char hdr[4] = {(unsigned char)(r->image_len >> 24),
                                (unsigned char)(r->image_len >> 16),
                                (unsigned char)(r->image_len >> 8), (unsigned char)r->image_len};
        double dl = deadline(r);
        long long seq;

        enum em_probe_outcome o = em_probe_send_all(r->fd, hdr, 4, dl, r->stop, err);
        if (o == EM_PROBE_OK)
                o = em_probe_send_all(r->fd, r->image, r->image_len, dl, r->stop, err);
        while (o == EM_PROBE_OK && r->in.len < 4)
                o = em_probe_recv_some(r->fd, &r->in, dl, r->stop, err);
        if (o != EM_PROBE_OK)
                return o;
        const unsigned char *p = (const unsigned char *)r->in.data;
        size_t blen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (blen > EM_FACE_MAX_REPLY) {
                em_error_set(err, EPROTO, "facedetect reply of %zu bytes", blen);
                return EM_PROBE_ERROR;
        }
        while (o == EM_PROBE_OK && r->in.len < 4 + blen)
                o = em_probe_recv_some(r->fd, &r->in, dl, r->stop, err);
        if (o != EM_PROBE_OK)
                return o;
        int c = em_face_check_reply(r->in.data + 4, blen, r->o->expect_faces, &seq, err);
        em_probe_buf_consume(&r->in, 4 + blen);
        if (c < 0)
                return em_error_status(*err) == EPROTO ? EM_PROBE_ERROR : EM_PROBE_VERIFY;
        if (r->face_seq > 0 && seq != r->face_seq + 1) {
                em_error_set(err, 0, "facedetect seq %lld after %lld", seq, r->face_seq);
                o = EM_PROBE_VERIFY;
        }
        r->face_seq = seq;
        return o;
}

static bool face_round(struct em_probe_run *r)
{
        em_error_t err = NULL;
        double t = em_probe_run_elapsed(r);
        enum em_probe_outcome o = face_request(r, &err);
        return account(r, t, o, &err);
}

/* Sleeps until `until` (relative ms) unless asked to stop. */
static void pace(const struct em_probe_run *r, double until)
{
        while (!should_stop(r)) {
                double left = until - em_probe_run_elapsed(r);
                if (left <= 0)
                        return;
                if (left > 50)
                        left = 50;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(left * 1e6)};
                nanosleep(&ts, NULL);
        }
}

void em_probe_run_loop(struct em_probe_run *r)
{
        for (uint64_t n = 1; !should_stop(r); n++) {
                double start = em_probe_run_elapsed(r);
                bool alive = r->o->mode == EM_PROBE_REDIS ? redis_round(r, n) : face_round(r);
                if (!alive)
                        return;
                pace(r, start + r->o->interval_ms);
        }
}

static int verify_batch(struct em_probe_run *r, uint64_t from, uint64_t to,
                        struct em_probe_verify *v, em_error_t *err)
{
        for (uint64_t n = from; n <= to; n++) {
                char key[32];
                size_t len;
                snprintf(key, sizeof(key), "k%llu", (unsigned long long)n);
                const char *get[] = {"GET", key};
                cleanup_free char *cmd = em_resp_command(&len, 2, get);
                if (cmd == NULL ||
                    em_probe_send_all(r->fd, cmd, len, deadline(r), r->stop, err) != EM_PROBE_OK)
                        return em_error_wrap(err, "sending GET %s", key);
        }
        for (uint64_t n = from; n <= to; n++) {
                struct em_resp_reply rep;
                size_t used;
                cleanup_free char *val = em_probe_redis_value(n, r->o->value_size);
                if (val == NULL || read_resp(r, &rep, &used, deadline(r), err) != EM_PROBE_OK)
                        return em_error_wrap(err, "reading GET k%llu", (unsigned long long)n);
                bool good = rep.type == EM_RESP_BULK && rep.len == strlen(val) &&
                            memcmp(rep.str, val, rep.len) == 0;
                v->checked++;
                if (!good) {
                        if (rep.type == EM_RESP_NIL)
                                v->missing++;
                        else
                                v->wrong++;
                        if (v->first_bad == 0)
                                v->first_bad = (long long)n;
                }
                em_probe_buf_consume(&r->in, used);
        }
        return 0;
}

int em_probe_run_verify(struct em_probe_run *r, long long last, struct em_probe_verify *v,
                        em_error_t *err)
{
        *v = (struct em_probe_verify){0};
        for (uint64_t n = 1; n <= (uint64_t)last; n += 256) {
                uint64_t to = n + 255 > (uint64_t)last ? (uint64_t)last : n + 255;
                if (verify_batch(r, n, to, v, err) < 0)
                        return -1;
        }
        return 0;
}

void em_probe_run_print(const struct em_probe_run *r, FILE *f)
{
        const struct em_probe_stats *s = &r->stats;
        fprintf(f,
                "requests %llu  ok %llu  errors %llu  resets %llu  verify_failures %llu  "
                "timeouts %llu\n",
                (unsigned long long)s->requests, (unsigned long long)s->ok,
                (unsigned long long)s->errors, (unsigned long long)s->resets,
                (unsigned long long)s->verify_failures, (unsigned long long)s->timeouts);
        fprintf(
            f, "interruption (max gap) %.1f ms at %.1f ms; latency p50 %.2f p99 %.2f max %.2f ms\n",
            s->max_gap_ms, s->max_gap_start_ms, em_probe_latency_pct(s, 50),
            em_probe_latency_pct(s, 99), em_probe_latency_pct(s, 100));
        if (r->o->mode == EM_PROBE_REDIS)
                fprintf(f, "last acknowledged key: k%llu\n", (unsigned long long)s->last_acked);
        for (size_t i = 0; i < s->n_gaps; i++)
                fprintf(f, "gap %.1f ms starting at %.1f ms\n", s->gaps[i].len_ms,
                        s->gaps[i].start_ms);
}

void em_probe_verify_print(const struct em_probe_verify *v, bool json, FILE *f)
{
        if (json)
                fprintf(f,
                        "{\"checked\": %lld, \"missing\": %lld, \"wrong\": %lld, \"first_bad\": "
                        "%lld}\n",
                        v->checked, v->missing, v->wrong, v->first_bad);
        else
                fprintf(f, "checked %lld keys: %lld missing, %lld wrong%s\n", v->checked,
                        v->missing, v->wrong, v->first_bad ? " (see first_bad)" : "");
        if (v->first_bad != 0 && !json)
                fprintf(f, "first bad key: k%lld\n", v->first_bad);
}
