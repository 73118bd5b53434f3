/* One probe run over one TCP connection, as edgemig-probe drives it:
 * redis SET/GET rounds or facedetect requests at a fixed pace until told to
 * stop, each outcome recorded in the statistics (probe/probe.h); and the
 * redis-verify pass that checks every key a run acknowledged. */
#ifndef EDGEMIG_PROBE_RUN_H
#define EDGEMIG_PROBE_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "probe/probe.h"
#include "util/error.h"

enum em_probe_mode { EM_PROBE_REDIS, EM_PROBE_FACE };

struct em_probe_run_opts {
        enum em_probe_mode mode;
        double interval_ms;     /* pace: one round per interval */
        double duration_s;      /* 0: until stopped */
        const char *until_file; /* stop once it exists */
        double timeout_s;       /* per request */
        size_t value_size;      /* redis values */
        long long expect_faces; /* facedetect: -1 any */
};

struct em_probe_run {
        const struct em_probe_run_opts *o;
        int fd;
        double t0; /* monotonic ms at start */
        struct em_probe_buf in;
        struct em_probe_stats stats;
        long long face_seq;
        const char *image; /* facedetect request body */
        size_t image_len;
        volatile sig_atomic_t *stop; /* set by a signal handler, or on a broken connection */
};

/* Milliseconds since r->t0. */
double em_probe_run_elapsed(const struct em_probe_run *r);

/* Rounds until stopped (signal, duration, until-file) or the connection is
 * unusable; failures are logged and counted in r->stats. */
void em_probe_run_loop(struct em_probe_run *r);

/* The text summary: counts, the longest interruption, latency
 * percentiles, every gap. */
void em_probe_run_print(const struct em_probe_run *r, FILE *f);

struct em_probe_verify {
        long long checked, missing, wrong, first_bad;
};

/* GETs k1..k<last> in batches and compares each with the value the run
 * wrote. */
int em_probe_run_verify(struct em_probe_run *r, long long last, struct em_probe_verify *v,
                        em_error_t *err);

/* The verify result as text or one JSON object. */
void em_probe_verify_print(const struct em_probe_verify *v, bool json, FILE *f);

#endif
