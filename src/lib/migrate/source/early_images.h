/* Image files CRIU has finished while the final dump still runs, sent at
 * once: the link carries them during the dump instead of after it. On a
 * thin link this is most of what is left: after `prepare`, facedetect's
 * final step is ~60 KB of non-page images (~100 ms at 5 Mbit/s), and CRIU
 * closes its per-task images (core, mm, pagemap, fdinfo, a socket's queue
 * in tcp-stream) well before the global ones (files, cgroup, inventory).
 *
 * Only files CRIU writes once and closes before its dump ends are taken
 * (em_early_image_name); em_sync_send_images (pagesync.h) later skips each
 * of them after checking it did not change, and fails if it did. */
#ifndef EDGEMIG_MIGRATE_SOURCE_EARLY_IMAGES_H
#define EDGEMIG_MIGRATE_SOURCE_EARLY_IMAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "transfer/conn.h"
#include "util/error.h"

struct em_early_images;

/* Watches dir for files closed after writing (before the dump starts). */
int em_early_images_watch(const char *dir, struct em_early_images **out, em_error_t *err);
void em_early_images_free(struct em_early_images **w);

/* Sends (IMAGE_FILE, compression level) each file of the watched dir that
 * em_early_image_name takes, as soon as it is closed, until process pid (a
 * child: runc, left unreaped) has exited or timeout_ms passed. Each name
 * sent goes into digests ("sha256:<hex>"), its bytes into *raw, the count
 * into *files. pid <= 0: nothing to wait for, returns at once. */
int em_early_images_pump(struct em_early_images *w, pid_t pid, int timeout_ms, em_conn_t *c,
                         int level, json_t *digests, uint64_t *raw, unsigned *files,
                         em_error_t *err);

/* The CRIU images written once per dump and closed before it ends. */
bool em_early_image_name(const char *name);

#endif
