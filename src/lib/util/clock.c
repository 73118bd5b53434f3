#include "util/clock.h"

#include <errno.h>
#include <time.h>

static int64_t ns_of(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t em_mono_ns(void)
{
        return ns_of(CLOCK_MONOTONIC);
}

int64_t em_mono_ms(void)
{
        return ns_of(CLOCK_MONOTONIC) / 1000000;
}

int em_ms_left(int64_t deadline)
{
        int64_t left = deadline - em_mono_ms();

        return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

double em_mono_s(void)
{
        return (double)ns_of(CLOCK_MONOTONIC) / 1e9;
}

int64_t em_now_ms(void)
{
        return ns_of(CLOCK_REALTIME) / 1000000;
}

void em_sleep_ns(int64_t ns)
{
        struct timespec ts = {ns / 1000000000, ns % 1000000000};

        if (ns <= 0)
                return;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}
