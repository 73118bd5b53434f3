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
struct em_sendq_stats {
        uint64_t packed, written; /* frames compressed (or passed as they are), and sent */
};
void em_sendq_stats(em_sendq_t *q, struct em_sendq_stats *out);
/* Waits until everything is sent, stops the thread, frees the queue and
 * returns the sender's first error, if any. Safe with *q == NULL. */
int em_sendq_finish(em_sendq_t **q, em_error_t *err);

#endif
