/* Where the controller keeps its state: edges, services, users (with their
 * scheduler memory) and the history of prepares and migrations. Two
 * backends behind one table of operations: SQLite (one machine,
 * platform/ctlstore_sqlite.h, the default) and etcd (replicated, several
 * controller replicas, platform/ctlstore_etcd.h). The API
 * (platform/api.c) calls these with its lock held. Rows are JSON objects
 * with the field names of docs/platform.md. */
#ifndef EDGEMIG_PLATFORM_CTLSTORE_H
#define EDGEMIG_PLATFORM_CTLSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/scheduler.h"
#include "util/error.h"

/* An edge is alive while its last registration or heartbeat is less than
 * edge_ttl_s old (--edge-ttl, default EM_CTL_EDGE_TTL_S). The etcd backend
 * enforces this with a lease of that TTL that each heartbeat renews; the
 * SQLite backend compares the time of the last contact with
 * em_ctl_alive_since. Only alive edges are offered to the scheduler, and
 * GET /edges shows "alive" by the same rule. */
#define EM_CTL_EDGE_TTL_S 15

/* The oldest last contact at now_ms that still counts as alive. */
static inline int64_t em_ctl_alive_since(int64_t now_ms, int edge_ttl_s)
{
        return now_ms - (int64_t)edge_ttl_s * 1000;
}

static inline bool em_ctl_edge_alive(int64_t seen_ms, int64_t now_ms, int edge_ttl_s)
{
        return seen_ms > 0 && seen_ms > em_ctl_alive_since(now_ms, edge_ttl_s);
}

enum em_ctl_list { EM_CTL_EDGES, EM_CTL_SERVICES, EM_CTL_USERS, EM_CTL_MIGRATIONS };

/* A prepare or migration as recorded. */
struct em_ctl_action {
        const char *kind; /* "prepare" or "migrate" */
        const char *service, *user, *source, *target, *reason;
        const char *status; /* at the start: "running" or why it was skipped */
};

struct em_ctlstore;
struct em_ctlstore_ops {
        /* edge: {name, addr, x, y, capacity} */
        int (*edge_register)(struct em_ctlstore *s, const json_t *edge, int64_t now,
                             em_error_t *err);
        /* hb: {load, containers, cpu, mem_bytes, active_migrations,
         * bandwidth_mbps, load1, mem_available_bytes, container_names
         * (array or null), peers (object or null)}. Returns 0 for an unknown
         * edge, 1 once recorded (with the services it lists placed there). */
        int (*edge_heartbeat)(struct em_ctlstore *s, const char *edge, const json_t *hb,
                              int64_t now, em_error_t *err);
        /* 0: no such edge, 1: recorded. */
        int (*service_register)(struct em_ctlstore *s, const char *name, const char *user,
                                const char *edge, const char *ip, int64_t now, em_error_t *err);
        /* The user's service {name, edge, busy}, or NULL. */
        int (*user_service)(struct em_ctlstore *s, const char *user, json_t **svc, em_error_t *err);
        /* Mean bytes_wire of the service's last 3 successful migrations. */
        int (*handoff_bytes)(struct em_ctlstore *s, const char *service, double *out,
                             em_error_t *err);
        int (*load_user)(struct em_ctlstore *s, const char *name, struct em_sched_user *u,
                         em_error_t *err);
        int (*save_user)(struct em_ctlstore *s, const char *name, double x, double y, int64_t now,
                         const struct em_sched_user *u, em_error_t *err);
        /* The edges a target may be chosen from (the alive ones), as the
         * scheduler sees them. */
        int (*load_edges)(struct em_ctlstore *s, struct em_sched_edge **out, size_t *n,
                          em_error_t *err);
        int (*list)(struct em_ctlstore *s, enum em_ctl_list what, json_t **rows, em_error_t *err);
        /* [{kind, status, n, ms}] and {users, services}. */
        int (*counts)(struct em_ctlstore *s, json_t **actions, json_t **totals, em_error_t *err);
        /* An edge's ADDR:PORT (*addr NULL if unknown). */
        int (*edge_addr)(struct em_ctlstore *s, const char *edge, char **addr, em_error_t *err);
        /* Records an action (its intent, before it starts); a running one
         * marks its service busy. */
        int (*action_begin)(struct em_ctlstore *s, const struct em_ctl_action *a, int64_t now,
                            int64_t *id, em_error_t *err);
        /* status: "done" (a migration's service is then on its target),
         * "failed" or "cancelled". */
        int (*action_finish)(struct em_ctlstore *s, int64_t id, const struct em_ctl_action *a,
                             const char *status, const char *detail, int64_t now, em_error_t *err);
        /* A running action's detail becomes the edge's latest progress. */
        int (*action_progress)(struct em_ctlstore *s, int64_t id, const char *detail,
                               em_error_t *err);
        /* One history record with its source edge's address: {kind, status,
         * source, detail, addr}, or NULL. */
        int (*migration_get)(struct em_ctlstore *s, int64_t id, json_t **row, em_error_t *err);
        /* Settles the actions a previous controller left running. */
        int (*recover)(struct em_ctlstore *s, int64_t now, em_error_t *err);
        void (*close)(struct em_ctlstore *s);
};

struct em_ctlstore {
        const struct em_ctlstore_ops *ops;
        const char *name; /* "sqlite" or "etcd", for logs */
};

#endif
