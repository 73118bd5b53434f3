#include "migrate/source/stop_rule.h"

#define SLOW_LINK_BPS (1e6 / 8) /* assume 1 Mbit/s until measured */

void em_stop_rule_defaults(struct em_stop_rule *r)
{
        r->max_rounds = 5;
        r->downtime_target_ms = 500;
        r->time_budget_ms = 120000;
        r->shrink_ratio = 0.9;
}

uint64_t em_transfer_estimate_ms(uint64_t wire_bytes, double bandwidth_bps)
{
        double bps = bandwidth_bps > 0 ? bandwidth_bps : SLOW_LINK_BPS;
        return (uint64_t)((double)wire_bytes * 1000.0 / bps + 0.5);
}

enum em_stop_reason em_stop_rule_decide(const struct em_stop_rule *r,
                                        const struct em_round_stat *rounds, size_t n,
                                        double bandwidth_bps)
{
        const struct em_round_stat *last = &rounds[n - 1];

        if (em_transfer_estimate_ms(last->dirty_wire_bytes, bandwidth_bps) <= r->downtime_target_ms)
                return EM_STOP_FITS_TARGET;
        if (n >= r->max_rounds)
                return EM_STOP_ROUNDS;
        if (r->time_budget_ms && last->elapsed_ms >= r->time_budget_ms)
                return EM_STOP_TIME;
        /* Round 1 sends the base; shrinking is judged from round 2 on. */
        if (n >= 3 &&
            (double)last->dirty_bytes >= r->shrink_ratio * (double)rounds[n - 2].dirty_bytes)
                return EM_STOP_NOT_SHRINKING;
        return EM_STOP_CONTINUE;
}

const char *em_stop_reason_name(enum em_stop_reason reason)
{
        switch (reason) {
        case EM_STOP_CONTINUE:
                return "continue";
        case EM_STOP_FITS_TARGET:
                return "fits-downtime-target";
        case EM_STOP_NOT_SHRINKING:
                return "dirty-set-not-shrinking";
        case EM_STOP_ROUNDS:
                return "round-budget";
        case EM_STOP_TIME:
                return "time-budget";
        }
        return "unknown";
}
