/* edgemigd's Prometheus /metrics (text format 0.0.4), served on its own
 * --metrics-listen port behind the same mutual TLS as migrations: the
 * daemon's OpenSSL connection carries one HTTP/1.1 GET and its answer, so no
 * second TLS library (libmicrohttpd is GnuTLS) enters edgemigd.
 *
 * Migration counts, bytes and the handoff/downtime histograms are computed
 * from the reports kept under <root>/migrations (the newest
 * EM_METRICS_MAX_REPORTS), so they cover the migrations this host sent,
 * from the CLI and for the controller, across daemon restarts; a report
 * pruned away leaves the counts (a restart of a counter for Prometheus). */
#ifndef EDGEMIG_PLATFORM_METRICS_H
#define EDGEMIG_PLATFORM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "transfer/conn.h"
#include "util/error.h"

#define EM_METRICS_MAX_REPORTS 10000
#define EM_METRICS_MAX_REQUEST 8192

/* What only the running daemon knows. */
struct em_metrics_live {
        size_t sessions_in_flight; /* session children serving peers now */
        int64_t start_time_s;      /* the daemon's start, Unix seconds */
};

/* The exposition text (malloc'd). */
int em_metrics_render(const char *root, const struct em_metrics_live *live, char **out,
                      em_error_t *err);

/* Reads one HTTP request from conn (at most EM_METRICS_MAX_REQUEST bytes of
 * head, timeout_ms in all) and answers it: 200 with body for GET /metrics
 * (HEAD: no body), 404 for other paths, 405 for other methods, 400 for
 * anything that is not an HTTP/1.x request line. The connection is then
 * closed by the caller. */
int em_metrics_answer(em_conn_t *conn, const char *body, int timeout_ms, em_error_t *err);

/* Label value with \, " and newline escaped (malloc'd). */
char *em_metrics_label(const char *v);

#endif
