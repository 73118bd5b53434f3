#include "transfer/zadapt.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>

/* The rungs the level moves on: the calibrated levels (compress.c). */
static const int rungs[] = {1, 3, 9, 19};
#define NRUNGS ((int)(sizeof(rungs) / sizeof(rungs[0])))
/* A lower rung costs bytes (redis: a third more at 1 than at 9), a short
 * idle costs little: down only when the link would idle for more than
 * DOWN_SHARE of a compression; up while the queue holds UP_MARGIN
 * compressions (a socket buffer of ~100 KB holds no more at 20 Mbit/s). */
#define DOWN_SHARE 0.5
#define UP_MARGIN  2.0

static int rung_below(int level)
{
        int r = rungs[0];

        for (int i = 0; i < NRUNGS && rungs[i] < level; i++)
                r = rungs[i];
        return r;
}

static int rung_above(int level, int cap)
{
        for (int i = 0; i < NRUNGS; i++) {
                if (rungs[i] > level)
                        return rungs[i] < cap ? rungs[i] : cap;
        }
        return cap;
}

int em_zadapt_next(struct em_zadapt *a, int cap, size_t len, double drain_s, bool waiting)
{
        double need = a->s_per_byte * (double)len;

        /* No policy level, no estimate yet, or a new lower cap: the cap. */
        if (cap <= 0 || a->level <= 0 || a->level > cap || drain_s < 0)
                a->level = cap;
        if (cap <= 0 || drain_s < 0 || need <= 0)
                return a->level;
        if (waiting && drain_s < need * DOWN_SHARE && a->level > rungs[0]) {
                a->level = rung_below(a->level);
                a->down++;
        } else if (drain_s > need * UP_MARGIN && a->level < cap) {
                a->level = rung_above(a->level, cap);
        }
        return a->level;
}

void em_zadapt_record(struct em_zadapt *a, size_t len, double compress_s)
{
        if (len > 0 && compress_s >= 0)
                a->s_per_byte = compress_s / (double)len;
}

double em_zadapt_link_rate(em_conn_t *c)
{
        return em_conn_send_rate_min(c, EM_ZADAPT_RATE_MIN_BYTES);
}

double em_zadapt_drain_s(em_conn_t *c, size_t ahead)
{
        int queued = 0;
        double rate = em_zadapt_link_rate(c);

        if (rate <= 0 || ioctl(em_conn_fd(c), SIOCOUTQ, &queued) < 0 || queued < 0)
                return -1;
        return ((double)queued + (double)ahead) / rate;
}
