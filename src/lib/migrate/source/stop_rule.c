#include "migrate/source/stop_rule.h"

#define SLOW_LINK_BPS (1e6 / 8) /* assume 1 Mbit/s until measured */

void em_stop_rule_defaults(struct em_stop_rule *r)
{
        r->max_rounds = 5;
        r->downtime_target_ms = 500;
        r->time_budget_ms = 120000;
        r->converge_ratio = 0.5;
}

uint64_t em_transfer_estimate_ms(uint64_t wire_bytes, double bandwidth_bps)
{
        double bps = bandwidth_bps > 0 ? bandwidth_bps : SLOW_LINK_BPS;
        return (uint64_t)((double)wire_bytes * 1000.0 / bps + 0.5);
}

bool em_stop_rule_converged(const struct em_stop_rule *r, const struct em_round_stat *last)
{
        return (double)last->left_wire_bytes <= r->converge_ratio * (double)last->dirty_wire_bytes;
}

bool em_stop_rule_fits(const struct em_stop_rule *r, uint64_t wire_bytes, double bandwidth_bps)
{
        return em_transfer_estimate_ms(wire_bytes + EM_FINAL_OVERHEAD_BYTES, bandwidth_bps) <=
               r->downtime_target_ms;
}

enum em_stop_reason em_stop_rule_decide(const struct em_stop_rule *r,
                                        const struct em_round_stat *rounds, size_t n,
                                        double bandwidth_bps)
{
        const struct em_round_stat *last = &rounds[n - 1];

        if (em_stop_rule_fits(r, last->left_wire_bytes, bandwidth_bps))
                return EM_STOP_FITS_TARGET;
        /* Judged from the first round on: the base round of a service that
         * rewrites its memory faster than the link drains it leaves as
         * much as it sent, and a second full copy would only repeat it. */
        if (!em_stop_rule_converged(r, last))
                return EM_STOP_NOT_CONVERGING;
        return em_stop_rule_budget(r, rounds, n);
}

enum em_stop_reason em_stop_rule_budget(const struct em_stop_rule *r,
                                        const struct em_round_stat *rounds, size_t n)
{
        if (n >= r->max_rounds)
                return EM_STOP_ROUNDS;
        if (r->time_budget_ms && rounds[n - 1].elapsed_ms >= r->time_budget_ms)
                return EM_STOP_TIME;
        return EM_STOP_CONTINUE;
}

const char *em_stop_reason_name(enum em_stop_reason reason)
{
        switch (reason) {
        case EM_STOP_CONTINUE:
                return "continue";
        case EM_STOP_FITS_TARGET:
                return "fits-downtime-target";
        case EM_STOP_NOT_CONVERGING:
                return "not-converging";
        case EM_STOP_ROUNDS:
                return "round-budget";
        case EM_STOP_TIME:
                return "time-budget";
        }
        return "unknown";
}
