/* Clocks: monotonic for durations and deadlines, wall time for stamps. */
#ifndef EDGEMIG_UTIL_CLOCK_H
#define EDGEMIG_UTIL_CLOCK_H

#include <stdint.h>

int64_t em_mono_ns(void); /* CLOCK_MONOTONIC */
int64_t em_mono_ms(void); /* CLOCK_MONOTONIC */
double em_mono_s(void);   /* CLOCK_MONOTONIC, sub-second precision */
int64_t em_now_ms(void);  /* CLOCK_REALTIME: unix time */
/* Milliseconds until deadline (an em_mono_ms value), 0 once past it: a
 * poll timeout that never goes negative (which would mean for ever). */
int em_ms_left(int64_t deadline);
/* Sleeps ns nanoseconds (nothing if ns <= 0), resuming after signals. */
void em_sleep_ns(int64_t ns);

#endif
