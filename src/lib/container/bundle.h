/* The OCI runtime config (config.json) of a container, generated from its
 * spec JSON (image config + run options; see container.h) and its security
 * profile (security.h): user namespace and ID mappings, capabilities,
 * seccomp, no_new_privs, masked and read-only paths, pids limit, NOFILE.
 * No host mounts: the rootfs is the overlay, everything else is a fresh
 * kernel file system. */
#ifndef EDGEMIG_CONTAINER_BUNDLE_H
#define EDGEMIG_CONTAINER_BUNDLE_H

#include <jansson.h>
#include <sys/types.h>

#include "container/security.h"
#include "util/error.h"

struct em_bundle_params {
        const char *rootfs; /* absolute overlay mount point */
        /* Without a user namespace (profile->ids.size 0): the pre-created
         * network namespace to join. With one: runc creates the network
         * namespace inside it and netns_hook (nethook.h) wires it. */
        const char *netns;
        const json_t *netns_hook;
        /* NULL: the default profile without a user namespace. */
        const struct em_security_profile *profile;
        const char *cgroup; /* cgroupsPath */
        const char *hostname;
        const char *criu_config; /* CRIU options file for runc (org.criu.config), or NULL */
        /* A pod member (pod.h): > 0 joins the user, network, IPC and UTS
         * namespaces of this process, the pod's infra container; no hook. */
        int join_pid;
};

/* Builds config.json. The user ("uid[:gid]" or names) is resolved against
 * the rootfs' /etc/passwd and /etc/group, opened without leaving the rootfs. */
int em_bundle_config(const json_t *spec, const struct em_bundle_params *bp, json_t **out,
                     em_error_t *err);

/* Resolves an image "User" string. Empty → 0:0. */
int em_bundle_resolve_user(const char *rootfs, const char *user, uid_t *uid, gid_t *gid,
                           em_error_t *err);

/* The /proc and /sys paths config.json masks and makes read-only
 * (NULL-terminated): the mounts a restored checkpoint may have there. */
const char *const *em_bundle_masked_paths(void);
const char *const *em_bundle_readonly_paths(void);

#endif
