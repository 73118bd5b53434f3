/* Receiving end of the writable-layer sync (source/upper_send.c sends):
 * applies FILE_DELETE, FILE_MANIFEST and FILE_DATA frames to the staging
 * upper dir, confined by delta/upper's openat2-based functions. */
#ifndef EDGEMIG_MIGRATE_TARGET_UPPER_RECV_H
#define EDGEMIG_MIGRATE_TARGET_UPPER_RECV_H

#include "transfer/conn.h"
#include "util/error.h"

struct em_upper_rx;
int em_upper_rx_new(const char *upper_dir, struct em_upper_rx **out, em_error_t *err);
void em_upper_rx_free(struct em_upper_rx **rx);
int em_upper_rx_frame(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                      em_error_t *err);
int em_upper_rx_finish(struct em_upper_rx *rx, em_error_t *err);

#endif
