/* Nearest-edge scheduling with hysteresis (margin + dwell) and approach-based
 * pre-transfer. See docs/platform.md for the policy and its parameters. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "platform/scheduler.h"

void em_sched_params_default(struct em_sched_params *p)
{
        p->margin = 10.0;
        p->rtt_margin_ms = 5.0;
        p->dwell_ms = 2000;
        p->approach_reports = 3;
        p->prepare_radius = 0.0;
        p->dwell_per_handoff = 2.0;
        p->dwell_max_ms = 10000;
        p->prepare_lead_ms = 1000;
}

const char *em_sched_action_name(enum em_sched_action a)
{
        switch (a) {
        case EM_SCHED_PREPARE:
                return "prepare";
        case EM_SCHED_MIGRATE:
                return "migrate";
        default:
                return "stay";
        }
}

static double dist(const struct em_sched_edge *e, double x, double y)
{
        return hypot(e->x - x, e->y - y);
}

/* How far the user is from an edge: the RTT the edge measured to the
 * user's attachment point when every edge has one (a measured path beats
 * geometry: a close edge may be many hops away), else the distance. */
struct near {
        bool rtt;
        double x, y, margin;
};

static struct near near_of(const struct em_sched_params *p, const struct em_sched_edge *edges,
                           size_t n, double x, double y)
{
        struct near m = {n > 0, x, y, p->rtt_margin_ms};

        for (size_t i = 0; i < n; i++)
                m.rtt = m.rtt && edges[i].rtt_ms > 0 && isfinite(edges[i].rtt_ms);
        if (!m.rtt)
                m.margin = p->margin;
        return m;
}

static double cost(const struct near *m, const struct em_sched_edge *e)
{
        return m->rtt ? e->rtt_ms : dist(e, m->x, m->y);
}

double em_sched_handoff_ms(const struct em_sched_edge *a, const struct em_sched_edge *b,
                           double bytes)
{
        double bw = fmin(a->bandwidth_mbps > 0 ? a->bandwidth_mbps : INFINITY,
                         b->bandwidth_mbps > 0 ? b->bandwidth_mbps : INFINITY);

        if (!(bytes > 0) || !isfinite(bw))
                return 0;
        return bytes * 8.0 / (bw * 1000.0); /* Mbit/s = 1000 bits per ms */
}

/* Longer expected handoffs need a longer stay to pay off. */
static int64_t dwell_for(const struct em_sched_params *p, double handoff_ms)
{
        double d = (double)p->dwell_ms + p->dwell_per_handoff * handoff_ms;
        double max = (double)(p->dwell_max_ms > p->dwell_ms ? p->dwell_max_ms : p->dwell_ms);
        return (int64_t)fmin(d, max);
}

/* Lead steps: how many prepare_lead_ms the expected handoff lasts. */
static int lead_steps(const struct em_sched_params *p, double handoff_ms)
{
        if (p->prepare_lead_ms <= 0)
                return 0;
        return (int)fmin(handoff_ms / (double)p->prepare_lead_ms, 100.0);
}

static int find_edge(const struct em_sched_edge *edges, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (name[0] != '\0' && strcmp(edges[i].name, name) == 0)
                        return (int)i;
        return -1;
}

static void push_position(struct em_sched_user *u, double x, double y)
{
        if (u->hist_n == EM_SCHED_HISTORY) {
                memmove(u->hist_x, u->hist_x + 1, sizeof(u->hist_x[0]) * (EM_SCHED_HISTORY - 1));
                memmove(u->hist_y, u->hist_y + 1, sizeof(u->hist_y[0]) * (EM_SCHED_HISTORY - 1));
                u->hist_n--;
        }
        u->hist_x[u->hist_n] = x;
        u->hist_y[u->hist_n] = y;
        u->hist_n++;
}

/* Room for one more service; the serving edge always has room for its own. */
static int has_room(const struct em_sched_edge *e, int idx, int serving)
{
        return idx == serving || e->load < e->capacity;
}

static double load_share(const struct em_sched_edge *e)
{
        return e->capacity > 0 ? (double)e->load / e->capacity : 1.0;
}

/* The nearest edge with room, or a less loaded one with room within the
 * margin of it (the serving edge, if among them, wins: no move for load). */
static int best_with_room(const struct near *m, const struct em_sched_edge *edges, size_t n,
                          int serving)
{
        int best = -1;
        double near = INFINITY;

        for (size_t i = 0; i < n; i++)
                if (has_room(&edges[i], (int)i, serving))
                        near = fmin(near, cost(m, &edges[i]));
        for (size_t i = 0; i < n; i++) {
                double d = cost(m, &edges[i]);
                if (!has_room(&edges[i], (int)i, serving) || d > near + m->margin)
                        continue;
                if ((int)i == serving)
                        return serving;
                if (best < 0 || load_share(&edges[i]) < load_share(&edges[best]) ||
                    (load_share(&edges[i]) == load_share(&edges[best]) &&
                     d < cost(m, &edges[best])))
                        best = (int)i;
        }
        return best;
}

/* True when the distance to e shrank at each of the last k reports. */
static int approaching(const struct em_sched_edge *e, const struct em_sched_user *u, int k)
{
        if (k < 1 || u->hist_n < k + 1)
                return 0;
        for (int i = u->hist_n - k; i < u->hist_n; i++) {
                double before = dist(e, u->hist_x[i - 1], u->hist_y[i - 1]);
                double now = dist(e, u->hist_x[i], u->hist_y[i]);
                if (!(now < before - 1e-9))
                        return 0;
        }
        return 1;
}

/* The nearest edge (other than the serving one, with room, within the
 * radius) the user has been heading to, unless it was already prepared. */
static int prepare_target(const struct em_sched_params *p, const struct em_sched_edge *edges,
                          size_t n, const struct em_sched_user *u, int serving)
{
        double x = u->hist_x[u->hist_n - 1], y = u->hist_y[u->hist_n - 1];
        int best = -1;
        double best_d = INFINITY;

        for (size_t i = 0; i < n; i++) {
                double d = dist(&edges[i], x, y);
                if ((int)i == serving || !has_room(&edges[i], (int)i, serving))
                        continue;
                /* A long expected handoff moves the prepare earlier. */
                int steps = lead_steps(
                    p, em_sched_handoff_ms(&edges[serving], &edges[i], u->handoff_bytes));
                int k = p->approach_reports - steps;
                if (k < 1 && p->approach_reports >= 1)
                        k = 1;
                if (p->prepare_radius > 0 && d > p->prepare_radius * (1 + steps))
                        continue;
                if (approaching(&edges[i], u, k) && d < best_d) {
                        best = (int)i;
                        best_d = d;
                }
        }
        if (best >= 0 && strcmp(u->prepared, edges[best].name) == 0)
                return -1;
        return best;
}

static void decide_set(struct em_sched_decision *out, enum em_sched_action a, int target,
                       const char *reason)
{
        out->action = a;
        out->target = target;
        out->reason = reason;
        out->handoff_ms = 0;
}

static void stay_or_prepare(const struct em_sched_params *p, const struct em_sched_edge *edges,
                            size_t n, struct em_sched_user *u, int serving,
                            struct em_sched_decision *out, const char *stay_reason)
{
        int t = prepare_target(p, edges, n, u, serving);

        if (t < 0) {
                decide_set(out, EM_SCHED_STAY, -1, stay_reason);
                return;
        }
        snprintf(u->prepared, sizeof(u->prepared), "%s", edges[t].name);
        decide_set(out, EM_SCHED_PREPARE, t, "user heading towards the edge");
        out->handoff_ms = em_sched_handoff_ms(&edges[serving], &edges[t], u->handoff_bytes);
}

int em_sched_decide(const struct em_sched_params *p, const struct em_sched_edge *edges,
                    size_t n_edges, struct em_sched_user *u, double x, double y, int64_t now_ms,
                    struct em_sched_decision *out, em_error_t *err)
{
        out->by_rtt = false;
        if (!isfinite(x) || !isfinite(y) || p->margin < 0 || p->rtt_margin_ms < 0 ||
            p->dwell_ms < 0 || p->dwell_per_handoff < 0)
                return em_error_set(err, EINVAL, "invalid position or scheduler parameters");
        push_position(u, x, y);
        int serving = find_edge(edges, n_edges, u->serving);
        if (serving < 0) {
                decide_set(out, EM_SCHED_STAY, -1, "service not on a known edge");
                return 0;
        }
        struct near m = near_of(p, edges, n_edges, x, y);
        out->by_rtt = m.rtt;
        int best = best_with_room(&m, edges, n_edges, serving);
        if (best == serving || cost(&m, &edges[best]) + m.margin > cost(&m, &edges[serving])) {
                u->candidate[0] = '\0';
                stay_or_prepare(p, edges, n_edges, u, serving, out,
                                best == serving ? "serving edge is nearest"
                                                : "no edge closer by the margin");
                return 0;
        }
        if (strcmp(u->candidate, edges[best].name) != 0) {
                snprintf(u->candidate, sizeof(u->candidate), "%s", edges[best].name);
                u->candidate_since_ms = now_ms;
        }
        double handoff = em_sched_handoff_ms(&edges[serving], &edges[best], u->handoff_bytes);
        if (now_ms - u->candidate_since_ms < dwell_for(p, handoff)) {
                stay_or_prepare(p, edges, n_edges, u, serving, out, "closer edge, dwell pending");
                return 0;
        }
        u->candidate[0] = '\0';
        u->prepared[0] = '\0';
        decide_set(out, EM_SCHED_MIGRATE, best, "closer by the margin for the dwell time");
        out->handoff_ms = handoff;
        return 0;
}
