/* A send pipeline: the caller produces frame payloads (reading, hashing and
 * delta-encoding pages) while a packer thread compresses the previous ones
 * and a writer thread sends what is compressed, so reading, compressing and
 * the link all overlap: the socket is written again as soon as it has room,
 * not after the next frame's compression (with both in one thread the link
 * idled for each compression the socket's buffer did not cover). Frames
 * keep their order. While a queue runs, all sends on the connection must go
 * through it. */
#ifndef EDGEMIG_TRANSFER_SENDQ_H
#define EDGEMIG_TRANSFER_SENDQ_H

#include <stddef.h>
#include <stdint.h>

#include "transfer/conn.h"
#include "util/error.h"

typedef struct em_sendq em_sendq_t;

/* depth: frames in flight (>= 1). */
int em_sendq_start(em_conn_t *c, size_t depth, em_sendq_t **out, em_error_t *err);
/* Copies the payload and queues it; waits while the queue is full. Fails
 * at once if the sender already failed (that error is returned). */
int em_sendq_push(em_sendq_t *q, uint16_t type, uint16_t flags, uint32_t stream, const void *buf,
                  size_t len, int level, em_error_t *err);
/* The rungs the level may take (zadapt.h); "0" is no compression. */
#define EM_SENDQ_LEVELS 5
extern const int em_sendq_levels[EM_SENDQ_LEVELS]; /* 0, 1, 3, 9, 19 */
struct em_sendq_stats {
        uint64_t packed, written; /* frames compressed (or passed as they are), and sent */
        /* Raw bytes packed at each of em_sendq_levels (another level counts
         * at the next lower one), for the timeline. */
        uint64_t raw_at[EM_SENDQ_LEVELS];
        unsigned long steps_down; /* zadapt's */
};
void em_sendq_stats(em_sendq_t *q, struct em_sendq_stats *out);
/* Waits until everything is sent (then its stats into *st, if not NULL), stops the thread, frees
 * the queue and returns the sender's first error, if any. Safe with *q == NULL. */
int em_sendq_finish(em_sendq_t **q, struct em_sendq_stats *st, em_error_t *err);

#endif
