/* A container's files seen through its host ID range.
 *
 * The image layers stay on disk with the ids of the image (root = 0) and are
 * shared by every container: each container's overlay stacks idmapped mounts
 * of them (mount_setattr MOUNT_ATTR_IDMAP), so the same inode shows owner
 * base + uid to that container. The writable layer (upper dir) holds host
 * ids of the container's range (overlay copies up with the ids it sees), so
 * it is shifted when a container moves to another range. */
#ifndef EDGEMIG_CONTAINER_IDMAP_H
#define EDGEMIG_CONTAINER_IDMAP_H

#include <stddef.h>
#include <sys/types.h>

#include "state/state.h"
#include "util/error.h"

/* An fd of a user namespace mapping 0..size-1 to ids (uids and gids alike). */
int em_userns_open(const struct em_idrange *ids, int *fd, em_error_t *err);

/* Mounts `src` at `dst` (an existing directory) through userns_fd's mapping. */
int em_idmap_mount(const char *src, const char *dst, int userns_fd, em_error_t *err);

/* The overlay of `lower` (bottom first) under upper/work at target, each
 * lower dir seen through ids: idmapped mounts under stage_dir/N, detached
 * once the overlay holds them (overlayfs keeps its own private clones). */
int em_idmap_overlay(char *const *lower, size_t n_lower, const char *upper, const char *work,
                     const char *target, const char *stage_dir, const struct em_idrange *ids,
                     em_error_t *err);

/* Re-owns every entry under dir (dir included) whose uid or gid lies in
 * `from` to the same offset in `to`; other ids stay (an overlay whiteout is
 * 0:0 whatever the range). Symlinks are not followed. */
int em_idmap_shift_tree(const char *dir, const struct em_idrange *from, const struct em_idrange *to,
                        em_error_t *err);

/* Lets group gid read the files directly in dir and search dir itself:
 * CRIU opens some images from inside the user namespace it restores, as
 * the container's root (host uid/gid base), after it left the host's. */
int em_idmap_grant_dir(const char *dir, gid_t gid, em_error_t *err);

#endif
