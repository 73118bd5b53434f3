/* Target side of the memory and writable-layer sync (source/pagesync.h
 * describes what travels): rebuilds CRIU images from page deltas, keeps the
 * page cache, and hands file frames to target/upper_recv.c. */
#ifndef EDGEMIG_MIGRATE_TARGET_SYNC_TARGET_H
#define EDGEMIG_MIGRATE_TARGET_SYNC_TARGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

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
 * (migrate/source/known_cache.h): N if the cache's first N pages still match D,
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
/* The same for a cache no em_sync_target opened (cache_dir as
 * em_sync_target_new takes it); one that is not there is no error. */
void em_sync_target_drop_dir(const char *cache_dir);

#endif
