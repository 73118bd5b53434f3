/* Edge scheduling policy: which edge should serve a mobile user, and when to
 * pre-transfer ("prepare") a service to the edge the user is heading to.
 *
 * Pure: no I/O, no clock. The caller (edgemig-controller) owns the state
 * (struct em_sched_user persists across reports, in SQLite) and the time. */
#ifndef EDGEMIG_PLATFORM_SCHEDULER_H
#define EDGEMIG_PLATFORM_SCHEDULER_H

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
};

struct em_sched_params {
        double margin;         /* a new edge must be closer by this much (distance units) */
        int64_t dwell_ms;      /* ...continuously for this long */
        int approach_reports;  /* prepare after this many strictly shrinking distances */
        double prepare_radius; /* ...and only if the edge is within this distance (0: any) */
};

/* Defaults: margin 10, dwell 2000 ms, 3 approaching reports, radius 0. */
void em_sched_params_default(struct em_sched_params *p);

/* What the scheduler remembers about one user between reports. */
struct em_sched_user {
        char serving[EM_SCHED_NAME_MAX];   /* edge running the user's service ("" = none) */
        char candidate[EM_SCHED_NAME_MAX]; /* edge currently better by the margin */
        int64_t candidate_since_ms;        /* when candidate first qualified */
        char prepared[EM_SCHED_NAME_MAX];  /* last edge a prepare was decided for */
        double hist_x[EM_SCHED_HISTORY], hist_y[EM_SCHED_HISTORY]; /* oldest first */
        int hist_n;
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
};

const char *em_sched_action_name(enum em_sched_action a);

/* Records the position (x, y) reported at now_ms into *u and decides.
 * The serving edge counts as having room for this user even when full.
 * On MIGRATE the caller sets u->serving once the migration succeeded; on
 * PREPARE u->prepared is already updated so the same prepare is not repeated.
 * Fails only on invalid input (EINVAL). */
int em_sched_decide(const struct em_sched_params *p, const struct em_sched_edge *edges,
                    size_t n_edges, struct em_sched_user *u, double x, double y, int64_t now_ms,
                    struct em_sched_decision *out, em_error_t *err);

#endif
