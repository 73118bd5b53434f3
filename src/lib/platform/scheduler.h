/* Edge scheduling policy: which edge should serve a mobile user, and when to
 * pre-transfer ("prepare") a service to the edge the user is heading to.
 *
 * Pure: no I/O, no clock. The caller (edgemig-controller) owns the state
 * (struct em_sched_user persists across reports, in SQLite) and the time. */
#ifndef EDGEMIG_PLATFORM_SCHEDULER_H
#define EDGEMIG_PLATFORM_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_SCHED_NAME_MAX 64
/* Positions remembered per user for the approach ("heading to") test. */
#define EM_SCHED_HISTORY 8

struct em_sched_edge {
        char name[EM_SCHED_NAME_MAX];
        double x, y;
        int capacity;          /* services it accepts */
        int load;              /* services it runs now */
        double bandwidth_mbps; /* measured to its peers; 0 = unknown */
        /* Round-trip time the edge measured to the user's attachment point
         * (ms; 0 = unknown). When every edge has one, "nearest" means the
         * lowest RTT (margin rtt_margin_ms) instead of x,y distance. */
        double rtt_ms;
};

struct em_sched_params {
        double margin;         /* a new edge must be closer by this much (distance units) */
        int64_t dwell_ms;      /* ...continuously for this long */
        int approach_reports;  /* prepare after this many strictly shrinking distances */
        double prepare_radius; /* ...and only if the edge is within this distance (0: any) */
        /* Adaptation to the expected handoff time H (em_sched_handoff_ms):
         * the dwell becomes dwell_ms + dwell_per_handoff * H (at most
         * dwell_max_ms), and every prepare_lead_ms of H removes one required
         * approaching report (down to 1) and widens prepare_radius by as much
         * again. H = 0 (unknown bytes or bandwidth) keeps the fixed values. */
        double dwell_per_handoff;
        int64_t dwell_max_ms;
        int64_t prepare_lead_ms; /* 0: no adaptation of the prepare lead */
        double rtt_margin_ms;    /* with RTTs: a new edge must be lower by this (default 5) */
};

/* Defaults: margin 10, dwell 2000 ms, 3 approaching reports, radius 0,
 * dwell_per_handoff 2, dwell_max_ms 10000, prepare_lead_ms 1000. */
void em_sched_params_default(struct em_sched_params *p);

/* What the scheduler remembers about one user between reports. */
struct em_sched_user {
        char serving[EM_SCHED_NAME_MAX];   /* edge running the user's service ("" = none) */
        char candidate[EM_SCHED_NAME_MAX]; /* edge currently better by the margin */
        int64_t candidate_since_ms;        /* when candidate first qualified */
        char prepared[EM_SCHED_NAME_MAX];  /* last edge a prepare was decided for */
        double hist_x[EM_SCHED_HISTORY], hist_y[EM_SCHED_HISTORY]; /* oldest first */
        int hist_n;
        /* Input, not memory: bytes a migration of the user's service is
         * expected to send (from its past migrations; 0 = unknown). */
        double handoff_bytes;
};

enum em_sched_action {
        EM_SCHED_STAY,
        EM_SCHED_PREPARE, /* pre-transfer the service to target */
        EM_SCHED_MIGRATE, /* move the service to target */
};

struct em_sched_decision {
        enum em_sched_action action;
        int target;         /* index in edges, -1 for STAY */
        const char *reason; /* static text for logs and the history */
        bool by_rtt;        /* nearest by the edges' measured RTTs, not distance */
        double handoff_ms;  /* expected handoff time to target (0 = unknown) */
};

const char *em_sched_action_name(enum em_sched_action a);

/* Expected handoff time in ms of moving `bytes` from a to b: bytes over the
 * slower of the two edges' measured bandwidths (one known one is used
 * alone); 0 when the bytes or both bandwidths are unknown. */
double em_sched_handoff_ms(const struct em_sched_edge *a, const struct em_sched_edge *b,
                           double bytes);

/* Records the position (x, y) reported at now_ms into *u and decides.
 * Among the edges with room within the margin of the nearest one, the least
 * loaded (load/capacity) is preferred. An edge at capacity is never picked;
 * the serving edge counts as having room for this user even when full.
 * On MIGRATE the caller sets u->serving once the migration succeeded; on
 * PREPARE u->prepared is already updated so the same prepare is not repeated.
 * Fails only on invalid input (EINVAL). */
int em_sched_decide(const struct em_sched_params *p, const struct em_sched_edge *edges,
                    size_t n_edges, struct em_sched_user *u, double x, double y, int64_t now_ms,
                    struct em_sched_decision *out, em_error_t *err);

#endif
