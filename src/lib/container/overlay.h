/* The container root: an overlay of the image layers (read-only, shared by
 * every container and identical on every host) under the container's own
 * upper dir. */
#ifndef EDGEMIG_CONTAINER_OVERLAY_H
#define EDGEMIG_CONTAINER_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* Mounts target with lowerdir = lower (given bottom first, passed top first),
 * upperdir = upper, workdir = work; nodev and nosuid. */
int em_overlay_mount(char *const *lower, size_t n_lower, const char *upper, const char *work,
                     const char *target, em_error_t *err);
/* Unmounts target (lazily if busy); not mounted is not an error. */
int em_overlay_umount(const char *target, em_error_t *err);
/* True if path is the root of a mount (its device differs from its parent's). */
bool em_is_mountpoint(const char *path);

#endif
