/* What a migration moves besides layers, as deltas, on top of delta/:
 *  - memory: pages by content (delta/pages.h). Pre-copy rounds push the pages
 *    of the live processes that the target lacks (PREFILL, no freeze); the
 *    final CRIU pages-*.img files then travel as ZERO/REF/DATA ops and are
 *    rebuilt byte for byte and digest-checked on the target;
 *  - the writable layer: manifest diffs (delta/upper.h, via upper_sync.c).
 * The target's page cache (<root>/pagecache/<container>/<peer>/, one per
 * source peer: migrate/session.h em_session_cache_dir) outlives a session,
 * so `prepare` can fill it ahead of the handoff; at the plan step the target
 * tells the source which pages it holds (PAGES_HASHES). */
#ifndef EDGEMIG_MIGRATE_SYNC_H
#define EDGEMIG_MIGRATE_SYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "delta/pages.h"
#include "transfer/compress.h"
#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

struct em_sync_stats {
        uint64_t pages_scanned, pages_zero, pages_known, pages_sent;
        uint64_t pages_xor;    /* of pages_sent: as XORs with the previous content */
        uint64_t pages_zblock; /* of pages_sent: compressed against old neighbours */
        uint64_t files_sent, files_deleted;
        uint64_t raw_bytes; /* payload bytes handed to the connection */
};

/* ---- target side ---- */
struct em_sync_target;
/* Opens the page cache in cache_dir (created if needed) and prepares to
 * rebuild CRIU images into images_dir and the writable layer into upper_dir. */
int em_sync_target_new(const char *cache_dir, const char *images_dir, const char *upper_dir,
                       struct em_sync_target **out, em_error_t *err);
void em_sync_target_free(struct em_sync_target **t);
/* Bytes of pages described so far (rebuilt into image files or the cache). */
uint64_t em_sync_target_rebuilt(const struct em_sync_target *t);
/* Sends the hashes of the cache's pages from page `from` on as PAGES_HASHES
 * frames, the last flagged LAST (an empty one if there are none). */
int em_sync_target_send_hashes(struct em_sync_target *t, em_conn_t *c, uint64_t from,
                               em_error_t *err);
/* prefix = {"pages": N, "digest": D}, the source's record of this cache
 * (migrate/known_cache.h): N if the cache's first N pages still match D,
 * else 0 (the whole list must travel). */
uint64_t em_sync_target_cache_match(struct em_sync_target *t, const json_t *prefix);
/* Adds {"cache_pages": N, "cache_digest": D} (the whole cache) to out. */
int em_sync_target_cache_state(struct em_sync_target *t, json_t *out, em_error_t *err);
/* Handles PAGES_DATA, FILE_MANIFEST, FILE_DATA and FILE_DELETE frames. */
int em_sync_target_frame(struct em_sync_target *t, em_conn_t *c, const struct em_frame *f,
                         em_error_t *err);
/* Records an image file received (and digest-checked) outside the page
 * delta; the page delta records its own files. */
void em_sync_target_note_file(struct em_sync_target *t, const char *name, const char *digest);
/* {name: sha256} of every image file verified on receipt. */
const json_t *em_sync_target_files(const struct em_sync_target *t);
/* The container's named volumes (spec "mounts"): opens their copies kept
 * for this source and sets have to {name: manifest of the copy}, for the
 * plan answer. */
int em_sync_target_volumes(struct em_sync_target *t, const json_t *spec, json_t **have,
                           em_error_t *err);
/* Moves the received volumes to <root>/volumes (before the restore), or
 * back into the cache (back: the restore failed). */
int em_sync_target_install_volumes(struct em_sync_target *t, const struct em_config *cfg, bool back,
                                   em_error_t *err);
/* Fails if a page delta or file is still incomplete. */
int em_sync_target_finish(struct em_sync_target *t, em_error_t *err);
/* After a commit the cached pages are no longer needed. */
void em_sync_target_drop_cache(struct em_sync_target *t);

/* ---- source side ---- */
struct em_sync_state;
int em_sync_state_new(struct em_sync_state **out, em_error_t *err);
void em_sync_state_free(struct em_sync_state **st);
/* The page hashes the target is known to hold. */
em_hashset_t *em_sync_state_known(struct em_sync_state *st);
/* Receives the target's PAGES_HASHES frames. */
int em_sync_state_recv_hashes(struct em_sync_state *st, em_conn_t *c, em_error_t *err);

/* Gives st the sender's shadow of the target's memory (delta/shadow.h),
 * which st then owns: changed pages travel as XORs with what the target
 * holds for their address. */
void em_sync_state_set_shadow(struct em_sync_state *st, struct em_shadow *shadow);
struct em_shadow *em_sync_state_shadow(struct em_sync_state *st);

/* Lets page deltas pick their zstd level per chunk from opt, cal and the
 * connection's measured send rate (the pointers must outlive st). */
void em_sync_state_set_compress(struct em_sync_state *st, const struct em_compress_opt *opt,
                                const struct em_compress_calibration *cal);

/* Reads the live memory of pids (no freeze) and pushes the pages the target
 * lacks. stats->pages_sent * 4096 is this round's dirty memory. */
int em_sync_push_memory(em_conn_t *c, struct em_sync_state *st, const pid_t *pids, size_t npids,
                        int level, struct em_sync_stats *stats, em_error_t *err);
/* The memory pushed last was the frozen container's (during its final
 * dump): the image's pages are known, so no first pass over them. */
void em_sync_state_frozen_pushed(struct em_sync_state *st);
/* Sends every file of a CRIU image dir (pages-*.img as page deltas) and
 * fills digests {name: sha256} for the target's final check. */
int em_sync_send_images(em_conn_t *c, struct em_sync_state *st, const char *images_dir, int level,
                        json_t *digests, struct em_sync_stats *stats, em_error_t *err);
/* Measures zstd levels on a sample of pid's memory (for --compress auto). */
int em_sync_calibrate(pid_t pid, struct em_compress_calibration *cal, em_error_t *err);

/* From the plan answer: the container's named volumes travel with it,
 * each diffed against have[name], the target's copy. */
int em_sync_volumes_plan(struct em_sync_state *st, const struct em_config *cfg, const json_t *spec,
                         const json_t *have, em_error_t *err);
/* Sends what changed in upper_dir since the previous call (first: all),
 * then in each named volume (em_sync_volumes_plan).
 * live: the container is running, so files may change while being read. */
int em_sync_send_upper(em_conn_t *c, struct em_sync_state *st, const char *upper_dir, bool live,
                       int level, struct em_sync_stats *stats, em_error_t *err);

#endif
