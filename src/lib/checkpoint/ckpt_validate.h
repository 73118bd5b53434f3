/* Judges a CRIU image directory against this host's policy before anything
 * is restored from it. CRIU restores credentials, capabilities,
 * no_new_privs, seccomp filters, namespaces, user-namespace ID maps, mounts
 * and open files as the images say, and runs as root while doing so; a
 * migration peer with a valid certificate writes those images. The
 * validator refuses, naming the image and the field:
 *   - capabilities (effective, permitted, inheritable, bounding, ambient)
 *     beyond the policy's set;
 *   - uids and gids (real, effective, saved, fs, supplementary) outside the
 *     container's range, as its processes see them;
 *   - a thread without no_new_privs, a seccomp chain that does not hold
 *     (past the end, a loop) and, when the policy requires seccomp, a
 *     thread without a filter or whose chain lets through a call the
 *     default profile denies (checkpoint/seccomp_eval.h runs it);
 *   - a task in the host's namespace of a kind the container has its own of,
 *     or in a namespace other than the container init's; a user namespace the
 *     policy does not give, or whose ID map is not the container's;
 *   - mounts other than those the container's config.json makes, kernel file
 *     systems other than proc/sysfs/tmpfs/devpts/mqueue, binds of host
 *     files other than the device nodes and /dev/null masks runc makes and
 *     the container's own volumes (external binds keyed by their mount
 *     point, which the target maps to its own directories);
 *   - file descriptors on paths with "..", on mounts that are not in the
 *     images, on namespaces, tun devices, BPF maps or external files;
 *   - images of the legacy or host-level kinds CRIU would also read
 *     (reg-files.img, creds-*.img, netdev-*.img, binfmt-misc.img, ...).
 * What it cannot judge is listed in docs/security.md. */
#ifndef EDGEMIG_CHECKPOINT_CKPT_VALIDATE_H
#define EDGEMIG_CHECKPOINT_CKPT_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint/ckpt_info.h"
#include "container/security.h"
#include "util/error.h"

struct em_ckpt_policy {
        uint64_t cap_mask;                    /* capabilities any thread may hold, in any set */
        uint32_t id_first, id_count;          /* uids and gids as the container sees them */
        bool userns;                          /* the container has its own user namespace... */
        struct em_ck_extent uid_map, gid_map; /* ...with exactly this map (one extent) */
        bool no_new_privs;                    /* every thread must have it */
        bool seccomp;                         /* every thread must run under a filter... */
        const uint8_t *seccomp_prog;          /* ...whose chain holds this program, if set */
        size_t seccomp_len;                   /* (struct sock_filter[], 8 bytes each) */
        const char *const *masked;            /* mount points config.json masks */
        const char *const *readonly;          /* and makes read-only */
        const char *const *binds;             /* mount points of its volumes and bind mounts */
        const char *const *tmpfs;             /* and of its --tmpfs mounts */
};

/* This host's policy for the containers it runs today: the default
 * capabilities (em_caps_default), no_new_privs, ids 0..65535 in the host's
 * user namespace, no seccomp requirement (containers run without a filter
 * yet). */
void em_ckpt_policy_default(struct em_ckpt_policy *p);
/* The policy of a container that will run under prof (container/security.h):
 * its capabilities, no_new_privs and seccomp, and with an ID range, its own
 * user namespace mapping 0..size-1 to base..base+size-1 (in-namespace ids
 * 0..size-1, which is how CRIU records them). */
void em_ckpt_policy_from_profile(struct em_ckpt_policy *p, const struct em_security_profile *prof);

/* The policy an incoming checkpoint of spec (an edgemig container spec, a
 * migration's or container.json's) is held to on this host: the profile
 * this host's policy resolves for spec, in the ID range spec names
 * (em_security_profile_incoming). */
int em_ckpt_policy_for_spec(const struct em_config *cfg, const json_t *spec,
                            struct em_ckpt_policy *p, em_error_t *err);

int em_ckpt_validate(const struct em_ckpt_info *ci, const struct em_ckpt_policy *p,
                     em_error_t *err);
/* Loads dir (checkpoint/ckpt_info.h) and validates it. */
int em_ckpt_validate_dir(const char *dir, const struct em_ckpt_policy *p, em_error_t *err);

#endif
