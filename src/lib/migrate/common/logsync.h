/* The container's log travels with a migration, so that `edgemig logs` on
 * the target goes on from what the source had.
 *
 * The source sends containers/NAME/log in the final phase, after the
 * checkpoint and once the log forwarder has written out what the pipe still
 * held (in post-copy, right after the freeze: the frozen processes still
 * hold the pipe, so the forwarder never ends there, and what it had not
 * yet written out stays here), as one LOG_FILE file
 * (migrate/common/proto.h) before FINAL; at most the last EM_LOGSYNC_MAX bytes,
 * from a line start, so that a huge log cannot stretch the downtime
 * without bound. The target stages it as <session dir>/log (a larger one
 * is refused as a protocol error) and the restore installs it as the
 * container's log before the new log forwarder appends to it. A source
 * without a log sends nothing. */
#ifndef EDGEMIG_MIGRATE_LOGSYNC_H
#define EDGEMIG_MIGRATE_LOGSYNC_H

#include <jansson.h>
#include <stdint.h>

#include "transfer/conn.h"
#include "util/error.h"

#define EM_LOGSYNC_MAX  (16ull << 20)
#define EM_LOGSYNC_NAME "log"
/* How long a sender waits for the log forwarder of a checkpointed (dead)
 * container to write out what its pipe still held: microseconds when the
 * forwarder gets the CPU; a warning, not a failure, past it. */
#define EM_LOGSYNC_DRAIN_MS 500

/* Sends log_path (if it exists); a longer log is cut to its tail in
 * workdir first. *raw_sent grows by the bytes sent. */
int em_logsync_send(em_conn_t *c, const char *log_path, const char *workdir, int level,
                    uint64_t *raw_sent, em_error_t *err);
/* Having received a LOG_FILE header: stores the file as dirfd/log. */
int em_logsync_recv(em_conn_t *c, const json_t *hdr, int dirfd, em_error_t *err);

#endif
