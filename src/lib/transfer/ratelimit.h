/* A token bucket for `--max-rate`: caps what a connection sends, so that a
 * migration's bulk transfer leaves room for the users' traffic on a thin
 * backhaul. Bytes are taken before they are written; when the bucket runs
 * dry the sender waits until the rate has paid for them. */
#ifndef EDGEMIG_TRANSFER_RATELIMIT_H
#define EDGEMIG_TRANSFER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct em_ratelimit {
        double rate;   /* bytes per second; 0: unlimited */
        double burst;  /* bucket size in bytes */
        double tokens; /* may go negative: a frame larger than the bucket is a debt */
        int64_t last_ns;
};

/* bits_per_s 0: no limit. The bucket holds 50 ms of the rate (at least
 * 16 KiB) and starts full. */
void em_ratelimit_init(struct em_ratelimit *rl, uint64_t bits_per_s, int64_t now_ns);
/* Takes n bytes at now_ns; returns how long (ns) the sender must wait
 * before writing them (0: at once). */
int64_t em_ratelimit_take(struct em_ratelimit *rl, int64_t now_ns, size_t n);
/* Parses a rate as operators write link rates: a decimal number of bits per
 * second with an optional k, M or G (10^3, 10^6, 10^9) and optional
 * "bit/s" or "bps", e.g. "20M", "500k", "1.5Gbit/s". At least 8 kbit/s. */
int em_rate_parse(const char *s, uint64_t *bits_per_s, em_error_t *err);

#endif
