/* The adaptive stop rule of iterative pre-copy: decides after each round
 * whether another round is worth it or the final (frozen) step should start.
 *
 * After each round the source measures what is left (the pages the target
 * still lacks, src/lib/migrate/source/pagesync.h em_sync_dirty_scan; a
 * round that itself would fit the downtime target stands for it). A
 * round that fails to halve what was left (gVisor's rule) says the service
 * rewrites its memory about as fast as the link drains it: more rounds would
 * only send the same memory again, so pre-copy ends at once and the caller
 * hands off in hybrid mode or, if the operator opted in, throttles. */
#ifndef EDGEMIG_MIGRATE_STOP_RULE_H
#define EDGEMIG_MIGRATE_STOP_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the final step sends besides the pages left: the CRIU images other
 * than pages, the log, FINAL (tens of KB for a small service). */
#define EM_FINAL_OVERHEAD_BYTES (16 * 1024)

struct em_stop_rule {
        unsigned max_rounds;         /* round budget (>= 1) */
        uint64_t downtime_target_ms; /* wanted final transfer time */
        uint64_t time_budget_ms;     /* total pre-copy time budget, 0: none */
        /* A round converges when what is left after it is at most
         * converge_ratio times what it sent (0.5: it halved what was left). */
        double converge_ratio;
};

struct em_round_stat {
        uint64_t dirty_bytes;      /* raw bytes the round sent (changed since the previous one) */
        uint64_t dirty_wire_bytes; /* the same on the wire */
        uint64_t left_wire_bytes;  /* estimated wire bytes still to send after the round */
        uint64_t elapsed_ms;       /* time since pre-copy began, at the end of the round */
};

enum em_stop_reason {
        EM_STOP_CONTINUE = 0,
        EM_STOP_FITS_TARGET,    /* estimated final transfer (what is left + the
                                 * overhead) <= downtime target */
        EM_STOP_NOT_CONVERGING, /* a round failed to halve what was left */
        EM_STOP_ROUNDS,         /* round budget used up */
        EM_STOP_TIME,           /* time budget used up */
};

void em_stop_rule_defaults(struct em_stop_rule *r);
/* Estimated time to send `wire_bytes` at `bandwidth_bps` (bytes/s); a
 * bandwidth of 0 (unmeasured) is treated as very slow (1 Mbit/s). */
uint64_t em_transfer_estimate_ms(uint64_t wire_bytes, double bandwidth_bps);
/* Whether a final transfer of `wire_bytes` (plus the final overhead) at
 * `bandwidth_bps` fits the downtime target. */
bool em_stop_rule_fits(const struct em_stop_rule *r, uint64_t wire_bytes, double bandwidth_bps);
/* rounds[0..n-1] are the rounds done so far (n >= 1). */
enum em_stop_reason em_stop_rule_decide(const struct em_stop_rule *r,
                                        const struct em_round_stat *rounds, size_t n,
                                        double bandwidth_bps);
/* Whether the round and time budgets allow another round after
 * rounds[0..n-1] (n >= 1): EM_STOP_CONTINUE, EM_STOP_ROUNDS or
 * EM_STOP_TIME. em_stop_rule_decide asks it of a round that converged; a
 * caller that would go on after one that did not (auto-converge throttles
 * the service first) asks it too. */
enum em_stop_reason em_stop_rule_budget(const struct em_stop_rule *r,
                                        const struct em_round_stat *rounds, size_t n);
/* Whether the last round converged (halved what was left). */
bool em_stop_rule_converged(const struct em_stop_rule *r, const struct em_round_stat *last);
const char *em_stop_reason_name(enum em_stop_reason reason);

#endif
