/* Internals shared by the migration sync modules. */
#ifndef EDGEMIG_MIGRATE_SYNC_INT_H
#define EDGEMIG_MIGRATE_SYNC_INT_H

#include "delta/pages.h"
#include "migrate/sync.h"

struct em_upper_state;
int em_upper_state_new(struct em_upper_state **out, em_error_t *err);
void em_upper_state_free(struct em_upper_state **st);

struct em_sync_state {
        em_hashset_t *known; /* page hashes the target holds */
        /* --compress policy and calibration: with these, the level of each
         * page chunk follows the link's measured rate (NULL: fixed level). */
        const struct em_compress_opt *copt;
        const struct em_compress_calibration *ccal;
        struct em_upper_state *upper;
        struct em_shadow *shadow; /* owned; NULL: changed pages travel whole */
        bool frozen_pushed;       /* the target got the frozen memory */
};

/* Receiving end of the writable-layer sync (upper_sync.c). */
struct em_upper_rx;
int em_upper_rx_new(const char *upper_dir, struct em_upper_rx **out, em_error_t *err);
void em_upper_rx_free(struct em_upper_rx **rx);
int em_upper_rx_frame(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                      em_error_t *err);
int em_upper_rx_finish(struct em_upper_rx *rx, em_error_t *err);
#endif
