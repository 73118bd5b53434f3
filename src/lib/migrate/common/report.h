/* The JSON timeline of one migration, with the paper's definitions:
 *   handoff time = migration request -> service running on the target;
 *   downtime     = source container stopped -> service running on the target;
 *   pre-transfer bytes = sent before the request (by `prepare`);
 *   final-transfer bytes = sent after it.
 * Stored at <root>/migrations/<id>.json and printed by `migrate --json`. */
#ifndef EDGEMIG_MIGRATE_REPORT_H
#define EDGEMIG_MIGRATE_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/clock.h"
#include "util/error.h"

struct em_report;

/* Starts the clock: now is the migration request. */
struct em_report *em_report_new(const char *id, const char *container, const char *mode,
                                const char *target);
void em_report_free(struct em_report **r);
#define cleanup_report __attribute__((cleanup(em_report_free)))

void em_report_phase_begin(struct em_report *r, const char *phase);
/* Ends the phase most recently begun with that name; adds its byte counts. */
void em_report_phase_end(struct em_report *r, const char *phase, uint64_t raw_bytes,
                         uint64_t wire_bytes);
/* Named instants: "source_stopped", "target_running", "route_switched", ... */
void em_report_mark(struct em_report *r, const char *event);
void em_report_round(struct em_report *r, unsigned n, uint64_t dirty_bytes, uint64_t wire_bytes,
                     uint64_t pages_sent, uint64_t files_sent, int64_t duration_ms,
                     int64_t freeze_ms);
/* Adds a field to the last round. */
void em_report_round_set(struct em_report *r, const char *key, json_t *value /* stolen */);
/* The target's share of the downtime, from its RESTORE_OK "timing"
 * {verify_ms, restore_ms, route_ms}: phases "verify", "restore" and "route"
 * with "side": "target", one after the other, ending at the mark
 * "target_running" (or now). A peer may send
 * anything: only those keys count, each a non-negative integer, together
 * at most the time since the last phase the source began; otherwise none
 * is kept and "target_timing_invalid" is set. */
void em_report_target_phases(struct em_report *r, const json_t *timing);
/* Free-form fields: stop reason, compression level, bandwidth estimate, ... */
void em_report_set(struct em_report *r, const char *key, json_t *value /* stolen */);
void em_report_add_bytes(struct em_report *r, uint64_t raw, uint64_t wire);
/* Computes handoff/downtime, records success or the error. */
void em_report_finish(struct em_report *r, bool ok, const char *error);
/* Throughput of a saved migration report (<root>/migrations/<id>.json) in
 * Mbit/s: its measured "bandwidth_bps" if any, else bytes on the wire over
 * the time of the phases that moved them; 0 if it moved nothing or failed. */
double em_report_throughput_mbps(const json_t *report);
/* Calls fn on the saved reports under root, newest first (by file time), at
 * most max of them, until fn returns non-zero. Unreadable files are skipped. */
int em_report_foreach_recent(const char *root, size_t max,
                             int (*fn)(const json_t *report, void *ud), void *ud, em_error_t *err);
/* The latest measured link rate to target (bytes/s, a report's
 * "bandwidth_bps") from a successful migration or prepare at most max_age_ms
 * old, or 0: a new migration's first estimate of the link. */
double em_report_peer_bandwidth(const char *root, const char *target, int64_t max_age_ms);
/* Borrowed view of the timeline JSON. */
json_t *em_report_json(struct em_report *r);
int em_report_save(struct em_report *r, const char *root, em_error_t *err);

struct rusage;
/* Resource use as JSON (seconds rounded to the microsecond):
 *   {"cpu_s", "user_s", "sys_s", "max_rss_kb"}
 * of self plus, when children is not NULL, its waited-for children (then also
 * "children_cpu_s" and "children_max_rss_kb"). CPU times add up; max_rss_kb is
 * the larger of the two, as the kernel reports the largest single process for
 * the children. NULL on out of memory. */
json_t *em_rusage_json(const struct rusage *self, const struct rusage *children);
/* The same for the calling process now: RUSAGE_SELF + RUSAGE_CHILDREN. */
json_t *em_rusage_json_now(void);

#endif
