/* Named volumes over a migration connection, both ends (the wire format is
 * described in volume_sync.c): the source's em_volume_tx, set up by
 * em_sync_volumes_plan, and the target's em_volume_rx. */
#ifndef EDGEMIG_MIGRATE_COMMON_VOLUME_SYNC_H
#define EDGEMIG_MIGRATE_COMMON_VOLUME_SYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "migrate/source/pagesync.h"
#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

/* From the plan answer: the container's named volumes travel with it,
 * each diffed against have[name], the target's copy. */
int em_sync_volumes_plan(struct em_sync_state *st, const struct em_config *cfg, const json_t *spec,
                         const json_t *have, em_error_t *err);

/* Source: the container's named volumes, each a tree like the writable
 * layer. */
struct em_volume_tx;
/* The tx of spec's named volumes, each diffed against have[name]; *out
 * stays NULL when spec has none. The caller checks they may move
 * (em_volumes_movable). */
int em_volume_tx_new(const struct em_config *cfg, const json_t *spec, const json_t *have,
                     struct em_volume_tx **out, em_error_t *err);
void em_volume_tx_free(struct em_volume_tx **tx);
int em_volume_tx_send(struct em_volume_tx *tx, em_conn_t *c, bool live, int level,
                      struct em_sync_stats *stats, em_error_t *err);

/* {"mounts": [...]}: the named-volume mounts of every spec of the array,
 * each volume once (a pod's containers may share one); NULL on OOM. */
json_t *em_volume_spec_union(const json_t *specs);

/* Target: have[key] = the manifest of the tree copy in dir (a volume's,
 * a pod member's writable layer) for the source to diff against, with
 * its large files' block hashes (so only changed blocks cross) if that
 * fits in max bytes of JSON, else without; if even that does not fit,
 * dir is emptied (it then travels whole) and have gets no key. what
 * names the tree in messages. */
int em_tree_copy_have(const char *dir, const char *what, const char *key, size_t max, json_t *have,
                      em_error_t *err);

/* Target: the copies of the volumes. */
struct em_upper_rx;
struct em_volume_rx;
/* Opens (creates) the copies of spec's named volumes under
 * cache_dir/volumes and adds {name: manifest} of each to have. */
int em_volume_rx_new(const char *cache_dir, const json_t *spec, struct em_volume_rx **out,
                     json_t *have, em_error_t *err);
void em_volume_rx_free(struct em_volume_rx **rx);
/* Moves the copies to <root>/volumes, all or none: never over a volume
 * of that name (EEXIST: one created here since the plan). back: moves
 * those this rx installed back into the cache, and only those. */
int em_volume_rx_install(struct em_volume_rx *rx, const struct em_config *cfg, bool back,
                         em_error_t *err);
/* Writes to path what em_volume_rx_install may move into <root>/volumes,
 * one "NAME DEV INO" a line: the identity of each copy, which the rename
 * keeps. Written before the install, for an abort after a crash
 * (migrate/common/outcome.h) to tell the copy this session installed
 * from a volume of that name created here meanwhile. Nothing is written
 * for no volumes. */
int em_volume_rx_list(const struct em_volume_rx *rx, const char *path, em_error_t *err);
/* Whether line, one of that list (cut at its first space: *name is the
 * volume's name), names the volume now at <root>/volumes/NAME, that is
 * the copy this session installed. */
bool em_volume_rx_listed_here(const struct em_config *cfg, char *line, const char **name);
/* FILE_ROOT: the receiver the next FILE_* frames go to (NULL: the
 * writable layer's). */
int em_volume_rx_root(struct em_volume_rx *rx, const struct em_frame *f, struct em_upper_rx **cur,
                      em_error_t *err);
/* The same for a FILE_ROOT already parsed (a pod session's, routed on
 * its keys: migrate/target/pod_target.h). */
int em_volume_rx_root_json(struct em_volume_rx *rx, const json_t *msg, struct em_upper_rx **cur,
                           em_error_t *err);
int em_volume_rx_finish(struct em_volume_rx *rx, em_error_t *err);

#endif
