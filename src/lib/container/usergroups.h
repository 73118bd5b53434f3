/* Supplementary groups of an image's user, from the image's /etc/group.
 *
 * Docker and podman (through runc's user lookup) give a container process
 * the groups whose member list names its user, so a Debian service reads
 * its TLS key through the ssl-cert group. The same rules here:
 *   - "name" or "uid": the groups listing that user (a numeric uid is named
 *     by its /etc/passwd entry; without one it has no supplementary group);
 *   - "user:group": the group is explicit, no supplementary group;
 *   - empty: the user is root (uid 0).
 * The primary gid and duplicates are left out. A missing /etc/group or
 * /etc/passwd means no groups; both are opened without leaving the rootfs. */
#ifndef EDGEMIG_CONTAINER_USERGROUPS_H
#define EDGEMIG_CONTAINER_USERGROUPS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* More supplementary groups than this is a broken image, not a service. */
#define EM_USERGROUPS_MAX 256

/* Fills gids (capacity EM_USERGROUPS_MAX) with the supplementary groups of
 * the image user string `user` whose primary group is `primary`. */
int em_usergroups_lookup(const char *rootfs, const char *user, gid_t primary, gid_t *gids,
                         size_t *n, em_error_t *err);

/* Sets process.user.additionalGids of an OCI config (whose process.user.gid
 * is already resolved) when the user has supplementary groups. */
int em_usergroups_apply(json_t *cfg, const char *rootfs, const char *user, em_error_t *err);

#endif
