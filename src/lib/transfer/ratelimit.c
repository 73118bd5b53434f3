#include "transfer/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BURST    16384.0
#define BURST_NS     50000000.0 /* 50 ms of the rate */
#define MIN_RATE_BIT 8000ULL

void em_ratelimit_init(struct em_ratelimit *rl, uint64_t bits_per_s, int64_t now_ns)
{
        rl->rate = (double)bits_per_s / 8.0;
        rl->burst = rl->rate * BURST_NS / 1e9;
        if (rl->burst < MIN_BURST)
                rl->burst = MIN_BURST;
        rl->tokens = rl->burst;
        rl->last_ns = now_ns;
}

int64_t em_ratelimit_take(struct em_ratelimit *rl, int64_t now_ns, size_t n)
{
        if (rl->rate <= 0)
                return 0;
        if (now_ns > rl->last_ns) {
                rl->tokens += rl->rate * (double)(now_ns - rl->last_ns) / 1e9;
                if (rl->tokens > rl->burst)
                        rl->tokens = rl->burst;
                rl->last_ns = now_ns;
        }
        rl->tokens -= (double)n;
        if (rl->tokens >= 0)
                return 0;
        return (int64_t)ceil(-rl->tokens * 1e9 / rl->rate);
}

static double unit_of(const char *u, bool *ok)
{
        static const struct {
                char c;
                double mult;
        } units[] = {{'k', 1e3}, {'K', 1e3}, {'M', 1e6}, {'G', 1e9}};
        double mult = 1;

        *ok = true;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (*u == units[i].c) {
                        mult = units[i].mult;
                        u++;
                        break;
                }
        if (*u != '\0' && strcmp(u, "bit/s") != 0 && strcmp(u, "bps") != 0 && strcmp(u, "bit") != 0)
                *ok = false;
        return mult;
}

int em_rate_parse(const char *s, uint64_t *bits_per_s, em_error_t *err)
{
        char *end = NULL;
        bool ok;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (end == s || errno != 0 || !isfinite(v) || v <= 0)
                return em_error_set(err, EINVAL,
                                    "invalid rate '%s': give bits per second, e.g. 20M or 500k", s);
        v *= unit_of(end, &ok);
        if (!ok)
                return em_error_set(
                    err, EINVAL, "invalid rate '%s': the unit is k, M or G (bit/s), e.g. 20M", s);
        if (v < (double)MIN_RATE_BIT || v > 1e15)
                return em_error_set(err, ERANGE, "rate '%s' out of range (8k to 1000000G)", s);
        *bits_per_s = (uint64_t)v;
        return 0;
}
