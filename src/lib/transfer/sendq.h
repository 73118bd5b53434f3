/* A send pipeline: the caller produces frame payloads (reading, hashing and
 * delta-encoding pages) while a sender thread compresses and writes the
 * previous ones, so CPU work and the link overlap. Frames keep their order.
 * While a queue runs, all sends on the connection must go through it. */
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
/* Waits until everything is sent, stops the thread, frees the queue and
 * returns the sender's first error, if any. Safe with *q == NULL. */
int em_sendq_finish(em_sendq_t **q, em_error_t *err);

#endif
