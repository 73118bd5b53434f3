/* Sending end of the writable-layer sync (the wire format is described in
 * upper_send.c; target/upper_recv.h is the receiving end). */
#ifndef EDGEMIG_MIGRATE_SOURCE_UPPER_SEND_H
#define EDGEMIG_MIGRATE_SOURCE_UPPER_SEND_H

#include <jansson.h>
#include <stdbool.h>

#include "migrate/source/pagesync.h"
#include "transfer/conn.h"
#include "util/error.h"

/* The previous round's manifest of the upper dir (owned by em_sync_state). */
struct em_upper_state;
int em_upper_state_new(struct em_upper_state **out, em_error_t *err);
void em_upper_state_free(struct em_upper_state **st);
/* What the receiver holds: the next send diffs against m (taken over). */
struct em_upper_manifest;
void em_upper_state_set_prev(struct em_upper_state *st, struct em_upper_manifest *m);
/* The same from the manifest JSON a target reported for its copy (its
 * plan answer); m NULL: it holds nothing. A malformed one is the
 * target's fault: the caller stops the migration. */
int em_upper_state_set_json(struct em_upper_state *st, const json_t *m, em_error_t *err);
/* Sends what changed in dir since the last call on ust (first: all of it). */
int em_upper_send_tree(em_conn_t *c, struct em_upper_state *ust, const char *dir, bool live,
                       int level, struct em_sync_stats *stats, em_error_t *err);

/* Sends what changed in upper_dir since the previous call (first: all),
 * then in each named volume (common/volume_sync.h em_sync_volumes_plan).
 * live: the container is running, so files may change while being read. */
int em_sync_send_upper(em_conn_t *c, struct em_sync_state *st, const char *upper_dir, bool live,
                       int level, struct em_sync_stats *stats, em_error_t *err);

#endif
