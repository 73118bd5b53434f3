/* The edge's side of the platform: edgemigd registers its edge with the
 * controller (POST /edges) and heartbeats real metrics
 * (POST /edges/NAME/heartbeat). It runs in a process of its own, forked by
 * edgemigd before any session, so a slow or dead controller never delays
 * the accept loop or a migration, and no thread is alive when edgemigd forks
 * session children (OpenSSL and libcurl locks held by a thread across fork
 * would deadlock a child).
 *
 * Registration: {"name", "addr", "x", "y", "capacity"}; retried with
 * exponential backoff (1 s doubling to 10 s) while the controller is down,
 * and again whenever a heartbeat answers 404 (the controller forgot us).
 * Heartbeat (docs/platform.md "Registration and heartbeat"):
 *   {"load": running containers (the scheduler's unit, compared with capacity),
 *    "containers": [names of running containers],
 *    "cpu": 1-min load average / online CPUs, "load1": 1-min load average,
 *    "mem_bytes": memory in use, "mem_available_bytes": MemAvailable,
 *    "active_migrations": live sessions in incoming/ and outgoing/,
 *    "bandwidth_mbps": throughput of the latest completed outgoing transfer
 *                      (0: unknown),
 *    "peers": {"ADDR:PORT": {"mbps": M, "at_ms": T}}  (latest per peer)} */
#ifndef EDGEMIG_PLATFORM_EDGE_AGENT_H
#define EDGEMIG_PLATFORM_EDGE_AGENT_H

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "util/config.h"
#include "util/error.h"

struct em_edge_agent_opts {
        /* base URL, https://HOST:PORT (http:// only if insecure); replicas:
         * URL,URL,... (tried in turn while one does not answer) */
        const char *controller;
        const char *name;      /* this edge's name at the controller */
        const char *advertise; /* ADDR:PORT peers and the controller dial */
        double x, y;
        int capacity;
        int interval_s;                          /* heartbeat period */
        int timeout_ms;                          /* per request */
        const char *tls_cert, *tls_key, *tls_ca; /* client certificate and the CA */
        /* Users' attachment points this edge measures its RTT to, each
         * "NAME=HOST:PORT" (NULL-terminated, or NULL): a TCP connect each
         * heartbeat, answered or refused, takes one round trip. */
        const char *const *attachments;
};
void em_edge_agent_opts_init(struct em_edge_agent_opts *o);

struct em_edge_metrics {
        double load1; /* 1-min load average */
        long ncpu;
        uint64_t mem_total, mem_available; /* bytes */
        json_t *containers;                /* array of running container names */
        int active_migrations;
        json_t *peers;         /* {"ADDR:PORT": {"mbps", "at_ms"}} */
        double bandwidth_mbps; /* latest measured, 0: unknown */
        json_t *rtts;          /* {"ATTACHMENT": ms} measured (NULL: none) */
};
void em_edge_metrics_clear(struct em_edge_metrics *m);

/* Pure parsers (unit-tested). */
/* The comma-separated controller URLs of list, split once (*urls
 * NULL-terminated, or NULL when *n is 0; empty and repeated ones left
 * out). */
int em_edge_agent_controllers(const char *list, char ***urls, size_t *n, em_error_t *err);
int em_loadavg_parse(const char *text, double *load1, em_error_t *err);
int em_meminfo_parse(const char *text, uint64_t *total, uint64_t *available, em_error_t *err);
/* "NAME=HOST:PORT" → the name (in name[size]) and *hostport into spec. */
int em_edge_attachment_parse(const char *spec, char *name, size_t size, const char **hostport,
                             em_error_t *err);
struct em_edge_attachment {
        char name[64];
        const char *hostport; /* into the option's text */
};
/* Each "NAME=HOST:PORT" of specs (NULL-terminated, or NULL) into *out
 * (malloc'd, *n of them); fails at the first bad one. */
int em_edge_attachments_parse(const char *const *specs, struct em_edge_attachment **out, size_t *n,
                              em_error_t *err);
/* The RTT to each of the n attachment points, by one TCP connect each (a
 * refusal counts: the RST took a round trip too); an unreachable one is
 * left out. NULL if none was measured. */
json_t *em_edge_measure_rtts(const struct em_edge_attachment *atts, size_t n, int timeout_ms);

/* "X,Y" → numbers. */
int em_edge_location_parse(const char *s, double *x, double *y, em_error_t *err);

/* Reads /proc and the state root. */
int em_edge_metrics_collect(const struct em_config *cfg, struct em_edge_metrics *m,
                            em_error_t *err);

/* Request bodies. */
json_t *em_edge_register_json(const struct em_edge_agent_opts *o);
json_t *em_edge_heartbeat_json(const struct em_edge_metrics *m);

/* Checks options before the daemon starts (names the fix). */
int em_edge_agent_check(const struct em_edge_agent_opts *o, em_error_t *err);

/* Registers and heartbeats until *stop is set; never returns an error for
 * an unreachable controller (it retries), only for a broken setup. For the
 * agent process that edgemigd forks. */
int em_edge_agent_run(const struct em_config *cfg, const struct em_edge_agent_opts *o,
                      volatile sig_atomic_t *stop, em_error_t *err);

#endif
