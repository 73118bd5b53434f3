/* Prometheus text for edgemigd and the tiny HTTP/1.1 it is served with. */
#include "platform/metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "migrate/common/report.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/version.h"

static const double buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct hist {
        uint64_t le[N_BUCKETS];
        uint64_t count;
        double sum;
};

struct tally {
        uint64_t ok, failed, raw, wire;
        struct hist handoff, downtime;
};

static void hist_add(struct hist *h, double s)
{
        for (size_t i = 0; i < N_BUCKETS; i++)
                h->le[i] += s <= buckets[i];
        h->count++;
        h->sum += s;
}

/* Non-negative integer fields only: a report is ours, but its numbers are
 * only trusted as far as JSON types go. */
static bool field_ms(const json_t *r, const char *key, double *s)
{
        json_t *v = json_object_get(r, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *s = (double)json_integer_value(v) / 1000;
        return true;
}

static uint64_t field_u64(const json_t *r, const char *key)
{
        json_t *v = json_object_get(r, key);

        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
                                                               : 0;
}

static int tally_one(const json_t *r, void *ud)
{
        struct tally *t = ud;
        double s;

        if (!json_is_true(json_object_get(r, "ok"))) {
                t->failed++;
        } else {
                t->ok++;
                if (field_ms(r, "handoff_ms", &s))
                        hist_add(&t->handoff, s);
                if (field_ms(r, "downtime_ms", &s))
                        hist_add(&t->downtime, s);
        }
        t->raw += field_u64(r, "bytes_raw");
        t->wire += field_u64(r, "bytes_wire");
        return 0;
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist_print(FILE *f, const char *name, const char *help, const struct hist *h)
{
        head(f, name, "histogram", help);
        for (size_t i = 0; i < N_BUCKETS; i++)
                fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i],
                        (unsigned long long)h->le[i]);
        fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
        fprintf(f, "%s_sum %.3f\n%s_count %llu\n", name, h->sum, name,
                (unsigned long long)h->count);
}

static void print_tally(FILE *f, const struct tally *t)
{
        head(f, "edgemig_migrations_total", "counter",
             "migrations this host sent, by result (from the kept reports)");
        fprintf(f, "edgemig_migrations_total{result=\"success\"} %llu\n",
                (unsigned long long)t->ok);
        fprintf(f, "edgemig_migrations_total{result=\"failure\"} %llu\n",
                (unsigned long long)t->failed);
        hist_print(f, "edgemig_migration_handoff_seconds",
                   "request to service running on the target, successful migrations", &t->handoff);
        hist_print(f, "edgemig_migration_downtime_seconds",
                   "source stopped to service running on the target, successful migrations",
                   &t->downtime);
        head(f, "edgemig_migration_bytes_total", "counter",
             "bytes migrations sent: raw (before compression) and wire");
        fprintf(f, "edgemig_migration_bytes_total{encoding=\"raw\"} %llu\n",
                (unsigned long long)t->raw);
        fprintf(f, "edgemig_migration_bytes_total{encoding=\"wire\"} %llu\n",
                (unsigned long long)t->wire);
}

static void print_live(FILE *f, const struct em_metrics_live *live)
{
        head(f, "edgemig_sessions_in_flight", "gauge", "sessions being served for peers now");
        fprintf(f, "edgemig_sessions_in_flight %zu\n", live->sessions_in_flight);
        head(f, "edgemig_start_time_seconds", "gauge", "when edgemigd started (Unix time)");
        fprintf(f, "edgemig_start_time_seconds %lld\n", (long long)live->start_time_s);
        head(f, "edgemig_build_info", "gauge", "edgemigd's version, always 1");
        fprintf(f, "edgemig_build_info{version=\"%s\"} 1\n", EM_VERSION);
}

int em_metrics_render(const char *root, const struct em_metrics_live *live, char **out,
                      em_error_t *err)
{
        struct tally t = {0};
        char *buf = NULL;
        size_t len = 0;

        if (em_report_foreach_recent(root, EM_METRICS_MAX_REPORTS, tally_one, &t, err) < 0)
                return em_error_wrap(err, "reading migration reports");
        FILE *f = open_memstream(&buf, &len);
        if (f == NULL)
                return em_error_set(err, errno, "open_memstream");
        print_tally(f, &t);
        print_live(f, live);
        if (fclose(f) != 0) {
                free(buf);
                return em_error_set(err, ENOMEM, "metrics text");
        }
        *out = buf;
        return 0;
}

char *em_metrics_label(const char *v)
{
        char *o = malloc(strlen(v) * 2 + 1), *p = o;

        if (o == NULL)
                return NULL;
        for (; *v != '\0'; v++) {
                if (*v == '\\' || *v == '"' || *v == '\n')
                        *p++ = '\\';
                *p++ = *v == '\n' ? 'n' : *v;
        }
        *p = '\0';
        return o;
}

/* One byte at a time up to the blank line: nothing past the head is read. */
static int read_head(em_conn_t *c, char *buf, size_t max, int timeout_ms, em_error_t *err)
{
        const struct em_conn_ops *ops = em_conn_backend(c);
        int64_t deadline = em_mono_ms() + timeout_ms;
        size_t n = 0, got;

        while (n < 2 || (memcmp(buf + n - 2, "\n\n", 2) != 0 &&
                         (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0))) {
                int64_t left = deadline - em_mono_ms();
                if (n == max)
                        return em_error_set(err, EMSGSIZE, "request head over %zu bytes", max);
                if (left <= 0)
                        return em_error_set(err, ETIMEDOUT, "reading the request");
                if (ops->read(c, buf + n, 1, &got, (int)left, err) < 0)
                        return -1;
                if (got == 0)
                        return em_error_set(err, ECONNRESET, "closed before the request's end");
                n++;
        }
        buf[n] = '\0';
        return 0;
}

/* "METHOD /path[?query] HTTP/1.x": 200, 400, 404 or 405. */
static int route(const char *req, bool *head_only)
{
        size_t ml = strcspn(req, " "), pl;
        const char *path = req + ml + 1, *ver;

        if (req[ml] != ' ' || (pl = strcspn(path, " ?\r\n")) == 0 || path[0] != '/')
                return 400;
        ver = path + strcspn(path, " \r\n");
        if (*ver != ' ' || strncmp(ver + 1, "HTTP/1.", 7) != 0)
                return 400;
        *head_only = ml == 4 && strncmp(req, "HEAD", 4) == 0;
        if (!*head_only && !(ml == 3 && strncmp(req, "GET", 3) == 0))
                return 405;
        return pl == 8 && strncmp(path, "/metrics", 8) == 0 ? 200 : 404;
}

static int respond(em_conn_t *c, int status, const char *body, bool head_only, int timeout_ms,
                   em_error_t *err)
{
        static const char *const reason[] = {
            [0] = "OK", [1] = "Bad Request", [2] = "Not Found", [3] = "Method Not Allowed"};
        int k = status == 200 ? 0 : status == 400 ? 1 : status == 404 ? 2 : 3;
        const char *text = status == 200 ? body : reason[k];
        char hdr[256];
        int hl = snprintf(hdr, sizeof(hdr),
                          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                          "Connection: close\r\n\r\n",
                          status, reason[k],
                          status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
                          strlen(text), status == 405 ? "Allow: GET, HEAD\r\n" : "");
        struct iovec iov[2] = {{hdr, (size_t)hl}, {(void *)text, strlen(text)}};

        return em_conn_backend(c)->writev(c, iov, head_only ? 1 : 2, timeout_ms, err);
}

int em_metrics_answer(em_conn_t *conn, const char *body, int timeout_ms, em_error_t *err)
{
        char buf[EM_METRICS_MAX_REQUEST + 1];
        bool head_only = false;

        if (read_head(conn, buf, EM_METRICS_MAX_REQUEST, timeout_ms, err) < 0)
                return -1;
        int status = route(buf, &head_only);
        return respond(conn, status, body, head_only, timeout_ms, err);
}
