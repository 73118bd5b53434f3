/* What a migration moves besides layers, as deltas, on top of delta/:
 *  - memory: pages by content (delta/pages.h). Pre-copy rounds push the pages
 *    of the live processes that the target lacks (PREFILL, no freeze); the
 *    final CRIU pages-*.img files then travel as ZERO/REF/DATA ops and are
 *    rebuilt byte for byte and digest-checked on the target;
 *  - the writable layer: manifest diffs (delta/upper.h, via upper_send.c and
 *    target/upper_recv.c).
 * The target's page cache (<root>/pagecache/<container>/<peer>/, one per
 * source peer: migrate/common/session.h em_session_cache_dir) outlives a session,
 * so `prepare` can fill it ahead of the handoff; at the plan step the target
 * tells the source which pages it holds (PAGES_HASHES). */
#ifndef EDGEMIG_MIGRATE_SOURCE_PAGESYNC_H
#define EDGEMIG_MIGRATE_SOURCE_PAGESYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "delta/pages.h"
#include "transfer/compress.h"
#include "transfer/conn.h"
#include "transfer/sendq.h"
#include "util/config.h"
#include "util/error.h"

struct em_sync_stats {
        uint64_t pages_scanned, pages_zero, pages_known, pages_sent;
        uint64_t pages_xor;    /* of pages_sent: as XORs with the previous content */
        uint64_t pages_zblock; /* of pages_sent: compressed against old neighbours */
        uint64_t files_sent, files_deleted;
        uint64_t raw_bytes;  /* payload bytes handed to the connection */
        uint64_t pages_read; /* pages the pushes read from the processes */
        /* Raw page bytes at each zstd level (em_sendq_levels), and how often
         * the sender stepped the level down to keep the link busy. */
        uint64_t raw_at_level[EM_SENDQ_LEVELS];
        uint64_t level_steps_down;
};

/* Source side: the sender's record of the target's pages. */
struct em_sync_state;
int em_sync_state_new(struct em_sync_state **out, em_error_t *err);
void em_sync_state_free(struct em_sync_state **st);
/* The page hashes the target is known to hold. */
em_hashset_t *em_sync_state_known(struct em_sync_state *st);
/* The most page hashes the source takes from a target: 2^24, a page cache
 * of 64 GiB (the decoder's bound on one pages file), about 0.8 GiB of
 * hash table here. A target may send anything; without a bound, a stream
 * of PAGES_HASHES frames that never ends in LAST grows the table until
 * this host runs out of memory. */
#define EM_SYNC_HASHES_MAX ((size_t)1 << 24)
/* Receives the target's PAGES_HASHES frames; EMSGSIZE once st would know
 * more than max positions (EM_SYNC_HASHES_MAX in the engine). */
int em_sync_state_recv_hashes(struct em_sync_state *st, em_conn_t *c, size_t max, em_error_t *err);

/* Gives st the sender's shadow of the target's memory (delta/shadow.h),
 * which st then owns: changed pages travel as XORs with what the target
 * holds for their address. */
void em_sync_state_set_shadow(struct em_sync_state *st, struct em_shadow *shadow);
struct em_shadow *em_sync_state_shadow(struct em_sync_state *st);

/* Lets page deltas pick their zstd level per chunk from opt, cal and the
 * connection's measured send rate (the pointers must outlive st). refresh,
 * if not NULL, is called (with arg, on the pushing thread) before each
 * chunk's choice: a calibration still running when the first round starts
 * updates cal there once it is done, instead of holding the link idle. */
void em_sync_state_set_compress(struct em_sync_state *st, const struct em_compress_opt *opt,
                                const struct em_compress_calibration *cal,
                                void (*refresh)(void *arg), void *arg);
/* The link's rate as last measured (bytes/s, read at each chunk; the
 * pointer must outlive st): stands in for the connection's until that has
 * sent enough to say (em_zadapt_link_rate). Without it the chunks queued
 * before the link is measured (the queue and the socket's buffer ahead
 * of it) go at level 1. */
void em_sync_state_set_bandwidth_hint(struct em_sync_state *st, const double *bps);

/* Reads the live memory of pids (no freeze) and pushes the pages the target
 * lacks. stats->pages_sent * 4096 is this round's dirty memory. */
int em_sync_push_memory(em_conn_t *c, struct em_sync_state *st, const pid_t *pids, size_t npids,
                        int level, struct em_sync_stats *stats, em_error_t *err);
/* The same for the pages the last em_sync_dirty_scan found missing (of a
 * process it did not see, all): the scan read the whole memory, the push
 * reads only those pages again. Pages that changed between the two go
 * with the next round, whose scan sees them. Without a scan since the last
 * push, em_sync_push_memory. */
int em_sync_push_left(em_conn_t *c, struct em_sync_state *st, const pid_t *pids, size_t npids,
                      int level, struct em_sync_stats *stats, em_error_t *err);
/* Reads the live memory of pids like em_sync_push_memory but sends
 * nothing: *bytes is the raw size of the non-zero pages the target lacks,
 * what the next round would send (the stop rule's "what is left"); st
 * keeps where they are for em_sync_push_left. */
int em_sync_dirty_scan(struct em_sync_state *st, const pid_t *pids, size_t npids, uint64_t *bytes,
                       em_error_t *err);
/* What CRIU would dump of pids' memory (container/memusage.h: anonymous,
 * shared and swapped, a page several of them map counted once), an upper
 * bound of what a first round sends; 0 if unreadable. */
uint64_t em_sync_dump_bytes(const pid_t *pids, size_t npids);
/* The memory pushed last was the frozen container's (during its final
 * dump): the image's pages are known, so no first pass over them. */
void em_sync_state_frozen_pushed(struct em_sync_state *st);
/* Sends every file of a CRIU image dir (pages-*.img as page deltas) and
 * fills digests {name: sha256} for the target's final check. A file
 * already in digests was sent during the dump (early_images.h): it is
 * skipped if its content is still that digest's, an error otherwise. */
int em_sync_send_images(em_conn_t *c, struct em_sync_state *st, const char *images_dir, int level,
                        json_t *digests, struct em_sync_stats *stats, em_error_t *err);
/* Measures zstd levels on a sample of pid's memory (for --compress auto). */
int em_sync_calibrate(pid_t pid, struct em_compress_calibration *cal, em_error_t *err);
/* The same in stages (em_compress_calibrate_staged): fast_done(arg) once
 * the fast levels are measured, before the slow one. */
int em_sync_calibrate_staged(pid_t pid, struct em_compress_calibration *cal,
                             void (*fast_done)(void *), void *arg, em_error_t *err);

/* The writable layer's sync state (source/upper_send.h) st owns. */
struct em_upper_state *em_sync_state_upper(struct em_sync_state *st);
struct em_volume_tx;
/* The container's named volumes' sync state (common/volume_sync.h) st
 * owns; *NULL: the container has none. */
struct em_volume_tx **em_sync_state_volumes(struct em_sync_state *st);

#endif
