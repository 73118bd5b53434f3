/* A running migration seen from outside, by a thread of its own beside the
 * phases (source.c starts it once the session's directory exists):
 *  - progress: about once a second, and at each new phase, a snapshot as
 *    JSON (em_progress_json) goes to the options' progress callback
 *    (`edgemig migrate --progress`, and edgemigd towards the controller),
 *    never from the phases' own calls. A phase's snapshot is taken when
 *    em_monitor_phase is called and queued, so phases that pass faster
 *    than the thread runs each still get theirs, in order;
 *  - cancel: `edgemig migrate --cancel ID` leaves a file "cancel" in the
 *    session's outgoing directory. Until the final step begins the monitor
 *    then shuts the connection down, and the usual failure path leaves the
 *    service running here and nothing on the target (it aborts a session
 *    whose source went away). From the final step on a cancel is too late:
 *    the commit rule decides, as for any failure then. */
#ifndef EDGEMIG_MIGRATE_SOURCE_MONITOR_H
#define EDGEMIG_MIGRATE_SOURCE_MONITOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

struct source;
struct em_monitor;

/* What a progress line says; the monitor fills it from the phases. */
struct em_progress {
        const char *session, *container, *phase;
        unsigned round;
        int64_t elapsed_ms;
        uint64_t bytes_sent;     /* on the wire so far (this session) */
        uint64_t round_sent;     /* of which in the phase or round under way */
        uint64_t left_estimate;  /* wire bytes the phase or round under way is expected to send; 0:
                                    unknown */
        uint64_t final_estimate; /* wire bytes the final step would send after the last round; 0:
                                    unknown */
        double rate;             /* link rate, bytes/s; 0: not measured yet */
        double dirty_rate;       /* bytes/s the service dirtied that the target lacks */
        int throttle_pct;        /* CPU cap of --auto-converge, 0: none */
};
/* {"event": "progress", "session", "container", "phase", "round",
 *  "elapsed_ms", "bytes_sent", "bytes_left" (estimate, null: unknown),
 *  "rate_bytes_per_s", "dirty_bytes_per_s", "eta_ms" (to the end of the
 *  transfers before the handoff, null: unknown), "expected_downtime_ms" (the
 *  final transfer at the link rate, null: unknown), "throttle_pct"}. */
json_t *em_progress_json(const struct em_progress *p);

int em_monitor_start(struct source *s, em_error_t *err);
/* Stops the thread (idempotent); the queued phase snapshots, then a last
 * one with phase "done", "cancelled" or "failed", are sent. */
void em_monitor_stop(struct source *s, bool ok);
void em_monitor_phase(struct source *s, const char *phase, uint64_t left_estimate);
void em_monitor_round(struct source *s, unsigned round, uint64_t left_estimate);
/* After a round: what the final step would send, the dirty and link rates. */
void em_monitor_rates(struct source *s, uint64_t final_estimate, double dirty_rate, double rate);
void em_monitor_throttle(struct source *s, int pct);
/* The connection the monitor may read counters from and shut down; NULL
 * before it is freed. */
void em_monitor_conn(struct source *s, em_conn_t *conn);
/* The final step begins: -1 (ECANCELED) if a cancel came first; from now on
 * cancels are refused. */
int em_monitor_enter_final(struct source *s, em_error_t *err);
bool em_monitor_cancelled(const struct source *s);
/* A cancel ended the migration (rolled back): the timeline says so
 * ("cancelled": true) and *err becomes ECANCELED, naming the service. */
void em_monitor_report_cancel(struct source *s, em_error_t *err);

/* `edgemig migrate --cancel SESSION` on this host (cfg's root): asks the
 * migration to cancel and waits up to wait_ms for it to end. *report gets
 * its timeline (ok false and "cancelled" true once rolled back). */
int em_migrate_cancel(const struct em_config *cfg, const char *session, int wait_ms,
                      json_t **report, em_error_t *err);

#endif
