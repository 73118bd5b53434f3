/* The masked directories (/proc/acpi, /sys/firmware, ...) as CRIU
 * external mounts, so that no dump or restore runs tar for them.
 *
 * runc masks a directory of config.json's maskedPaths with an empty
 * read-only tmpfs. CRIU dumps every tmpfs's contents by running tar (and
 * gzip) through its user-namespace daemon, and restores them with tar
 * again: 10-16 ms per mask inside the source's freeze, about 3 ms per mask
 * in the target's restore (docs/evaluation.md), for directories that are
 * empty by design. Marked external (`external mnt[<path>]:<key>` in the
 * bundle's criu.conf), a mask is not dumped; on restore CRIU bind-mounts
 * what the key maps to: an empty tmpfs this host mounts read-only at
 * EM_MASK_DIR, once per boot. The mask stays a read-only empty directory:
 * its superblock is read-only and belongs to the host's user namespace,
 * so a container that remounts its bind read-write still cannot write
 * into it (EROFS), nor remount the superblock. */
#ifndef EDGEMIG_CONTAINER_MASKS_H
#define EDGEMIG_CONTAINER_MASKS_H

#include <stdbool.h>

#include "util/error.h"

#define EM_MASK_DIR "/run/edgemig/mask"
/* A mask's key in the images: this prefix and its mountpoint. */
#define EM_MASK_KEY_PREFIX "edgemig-mask"

/* Makes dir an empty read-only tmpfs unless it is one already (a
 * statfs when it is). Needs root. */
int em_masks_mount_at(const char *dir, em_error_t *err);

/* True when dir is a read-only tmpfs (what em_masks_mount_at makes). */
bool em_masks_ready(const char *dir);

/* The criu.conf lines for every masked path: on a dump, the mountpoint
 * is external under its key; on a restore, the key maps to dir. A line
 * of one kind is unused by the other run, and a path the container does
 * not mask (absent on this kernel) matches no mount. NULL without memory;
 * the caller frees. */
char *em_masks_criu_conf(const char *dir);

/* True when key is the mask key of mountpoint (a checkpoint's mount
 * may be a mask this way). */
bool em_masks_key_of(const char *key, const char *mountpoint);

#endif
