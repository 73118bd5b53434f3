/* The zstd level of each bulk frame, adapted to keep the link busy.
 *
 * The level the policy chooses (transfer/compress.h) comes from a short
 * calibration at the request and assumes the compressor gets a whole core.
 * On a loaded host it does not: a 1 MiB chunk at level 9 can take longer to
 * compress than its output takes to drain, and the link idles between
 * frames (redis at 20 Mbit/s used half of it). Like `zstd --adapt`, the
 * sender steps the level down while its unsent queue would run dry well
 * before the next chunk is compressed, and back up (never above the
 * policy's level) while the queue stays ahead of the compressor. */
#ifndef EDGEMIG_TRANSFER_ZADAPT_H
#define EDGEMIG_TRANSFER_ZADAPT_H

#include <stdbool.h>
#include <stddef.h>

#include "transfer/conn.h"

struct em_zadapt {
        int level;          /* the level in use (0: none yet) */
        double s_per_byte;  /* wall seconds per raw byte of the last compression */
        unsigned long down; /* step-downs so far, for the report */
};

/* The level for the next frame of len raw bytes. cap: the policy's level
 * (0: no compression). drain_s: seconds until the socket's unsent bytes are
 * on the wire (< 0: unknown, the level stays at cap). waiting: the producer
 * has queued another frame already; when it has not, the producer (reading,
 * hashing) is what the link waits for, and a lower level would only cost
 * bytes, so the level does not step down. */
int em_zadapt_next(struct em_zadapt *a, int cap, size_t len, double drain_s, bool waiting);
/* Records that the last frame's len raw bytes took compress_s to compress. */
void em_zadapt_record(struct em_zadapt *a, size_t len, double compress_s);
/* The rate of c's link (bytes/s; 0: unknown): what was sent over the last
 * seconds, once that is at least EM_ZADAPT_RATE_MIN_BYTES. The send meter
 * at the start of a round holds only the handshake's few kilobytes, spread
 * over its round trips: a "link" of kilobytes per second, for which the
 * level rule chose level 19, whose compression then starved the link and
 * kept the measured rate low (redis at 20 Mbit/s: 11-16 s rounds at 15-20 %
 * of the link). Unknown, the rule takes level 1, which never starves it.
 * (TCP's delivery-rate samples were tried in its place: they run above a
 * tbf link, and the rule then sent whole chunks uncompressed.) */
#define EM_ZADAPT_RATE_MIN_BYTES (256u << 10)
double em_zadapt_link_rate(em_conn_t *c);
/* Seconds until the link idles unless more is compressed: what c's socket
 * still holds (unsent, or sent and in the queues before the bottleneck, not
 * yet acknowledged) plus ahead bytes compressed and waiting for the socket,
 * at em_zadapt_link_rate; < 0 when either is unknown (not a TCP socket,
 * nothing sent yet). */
double em_zadapt_drain_s(em_conn_t *c, size_t ahead);

#endif
