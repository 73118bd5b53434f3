/* Internals shared by the migration sync modules. */
#ifndef EDGEMIG_MIGRATE_SYNC_INT_H
#define EDGEMIG_MIGRATE_SYNC_INT_H

#include "delta/pages.h"
#include "migrate/sync.h"

struct em_upper_state;
struct em_upper_manifest;
int em_upper_state_new(struct em_upper_state **out, em_error_t *err);
void em_upper_state_free(struct em_upper_state **st);
/* What the receiver holds: the next send diffs against m (taken over). */
void em_upper_state_set_prev(struct em_upper_state *st, struct em_upper_manifest *m);
/* Sends what changed in dir since the last call on ust (first: all of it). */
int em_upper_send_tree(em_conn_t *c, struct em_upper_state *ust, const char *dir, bool live,
                       int level, struct em_sync_stats *stats, em_error_t *err);

struct em_upper_rx;

/* The container's named volumes, each a tree like the writable layer
 * (volume_sync.c). */
struct em_volume_tx;
void em_volume_tx_free(struct em_volume_tx **tx);
int em_volume_tx_send(struct em_volume_tx *tx, em_conn_t *c, bool live, int level,
                      struct em_sync_stats *stats, em_error_t *err);
struct em_volume_rx;
/* Opens (creates) the copies of spec's named volumes under
 * cache_dir/volumes and adds {name: manifest} of each to have. */
int em_volume_rx_new(const char *cache_dir, const json_t *spec, struct em_volume_rx **out,
                     json_t *have, em_error_t *err);
void em_volume_rx_free(struct em_volume_rx **rx);
/* Moves the copies to <root>/volumes (back: from there into the cache). */
int em_volume_rx_install(struct em_volume_rx *rx, const struct em_config *cfg, bool back,
                         em_error_t *err);
/* FILE_ROOT: the receiver the next FILE_* frames go to (NULL: the
 * writable layer's). */
int em_volume_rx_root(struct em_volume_rx *rx, const struct em_frame *f, struct em_upper_rx **cur,
                      em_error_t *err);
int em_volume_rx_finish(struct em_volume_rx *rx, em_error_t *err);

struct em_sync_state {
        em_hashset_t *known; /* page hashes the target holds */
        /* --compress policy and calibration: with these, the level of each
         * page chunk follows the link's measured rate (NULL: fixed level). */
        const struct em_compress_opt *copt;
        const struct em_compress_calibration *ccal;
        struct em_upper_state *upper;
        struct em_shadow *shadow;     /* owned; NULL: changed pages travel whole */
        bool frozen_pushed;           /* the target got the frozen memory */
        struct em_volume_tx *volumes; /* NULL: the container has none */
};

/* Receiving end of the writable-layer sync (upper_sync.c). */
struct em_upper_rx;
int em_upper_rx_new(const char *upper_dir, struct em_upper_rx **out, em_error_t *err);
void em_upper_rx_free(struct em_upper_rx **rx);
int em_upper_rx_frame(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                      em_error_t *err);
int em_upper_rx_finish(struct em_upper_rx *rx, em_error_t *err);
#endif
