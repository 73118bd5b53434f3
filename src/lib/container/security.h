/* The security profile a container runs under, and the host policy that
 * bounds it (docs/security.md).
 *
 * Every container runs in its own user namespace with its own host ID range
 * (state.h: struct em_idrange, allocated per host from the policy's pool and
 * recorded in state.db and in the spec as "userns": {"base", "size"}), under
 * a default profile: Docker's default capability set, a default seccomp
 * filter, no_new_privs, masked and read-only /proc and /sys paths, a pids
 * limit and an RLIMIT_NOFILE. A container's spec may loosen the profile
 * ("security": {"cap_add", "cap_drop", "seccomp", "pids_limit", "nofile"})
 * only as far as the host policy allows, and a migration target resolves an
 * incoming spec against its own policy, never the source's.
 *
 * The host policy is <root>/security.json (every key optional):
 *   {"userns": true, "id_first": N, "id_slots": N, "id_size": N,
 *    "allow_cap_add": ["CAP_NET_ADMIN", ...], "allow_seccomp_unconfined": false,
 *    "pids_limit": N, "pids_limit_max": N, "nofile": N, "nofile_max": N} */
#ifndef EDGEMIG_CONTAINER_SECURITY_H
#define EDGEMIG_CONTAINER_SECURITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "state/state.h"
#include "util/config.h"
#include "util/error.h"

#define EM_SECURITY_POLICY_FILE "security.json"

/* Default pool: 16384 ranges of 65536 ids from 2^30, clear of the ids that
 * /etc/subuid conventionally hands to rootless users (from 100000) and below
 * 2^31, where some tools start treating ids as negative. */
#define EM_ID_FIRST_DEFAULT (1u << 30)
#define EM_ID_SLOTS_DEFAULT 16384u
#define EM_ID_SIZE_DEFAULT  65536u

#define EM_PIDS_LIMIT_DEFAULT 4096u
#define EM_NOFILE_DEFAULT     1024u
/* The highest CAP_* number this build knows (CAP_CHECKPOINT_RESTORE). */
#define EM_CAP_LAST 40

/* What a host allows. */
struct em_security_policy {
        bool userns; /* false only to measure the cost of user namespaces */
        struct em_idpool pool;
        uint64_t cap_add_allowed; /* capabilities beyond the default a spec may add */
        bool seccomp_unconfined_allowed;
        uint32_t pids_limit, pids_limit_max;
        uint32_t nofile, nofile_max;
};

/* What one container gets: run and restore apply it, and a migration target
 * validates a peer's checkpoint against it before restoring. */
struct em_security_profile {
        uint64_t caps;         /* bounding = permitted = effective set, bit (1 << CAP_x) */
        bool seccomp;          /* the default seccomp filter applies (false: unconfined) */
        bool no_new_privs;     /* always true today */
        struct em_idrange ids; /* size 0: the host's user namespace (policy userns false) */
        uint32_t pids_limit;   /* cgroup pids.max */
        uint32_t nofile;       /* RLIMIT_NOFILE, soft = hard */
};

/* Docker's default capability set, as a bit mask. */
uint64_t em_caps_default(void);
/* "CAP_NET_ADMIN" or "NET_ADMIN" (any case) → 12; -1 if unknown. */
int em_cap_parse(const char *name);
/* "CAP_NET_ADMIN"; NULL if out of range. */
const char *em_cap_name(int cap);
/* JSON array of the names in caps, in CAP_* order. */
json_t *em_caps_json(uint64_t caps);

void em_security_policy_default(struct em_security_policy *out);
/* <root>/security.json over the defaults; a missing file is the defaults. */
int em_security_policy_load(const struct em_config *cfg, struct em_security_policy *out,
                            em_error_t *err);
/* JSON form of a policy (inspect, docs, tests). */
json_t *em_security_policy_json(const struct em_security_policy *pol);

/* The profile spec asks for, held to pol: EPERM naming the option and the
 * policy key when spec asks for more than pol allows, EINVAL when malformed.
 * spec's "userns" must be one slot of pol's pool when pol->userns. */
int em_security_profile_resolve(const struct em_security_policy *pol, const json_t *spec,
                                struct em_security_profile *out, em_error_t *err);
/* The profile an incoming checkpoint is validated against, before this host
 * gives the container its own range: spec's options held to this host's
 * policy, and the ID range the checkpoint was dumped with (spec's "userns",
 * which must have this host's range size; restore then moves the files and
 * the user namespace onto this host's range). */
int em_security_profile_incoming(const struct em_config *cfg, const json_t *spec,
                                 struct em_security_profile *out, em_error_t *err);
/* em_security_policy_load + em_security_profile_resolve. */
int em_security_profile_of(const struct em_config *cfg, const json_t *spec,
                           struct em_security_profile *out, em_error_t *err);
/* JSON form of a profile: {"caps": [...], "seccomp", "no_new_privs",
 * "userns": {"base", "size"} or null, "pids_limit", "nofile"}. */
json_t *em_security_profile_json(const struct em_security_profile *p);

/* Gives container `name` (its row must exist in st) a host ID range under
 * the host policy, preferring the one spec's "userns" names (a migration or
 * a restore keeps its range where it can), and sets spec's "userns" to it.
 * With the policy's userns off, removes "userns" from spec. */
int em_security_claim_ids(const struct em_config *cfg, struct em_state *st, const char *name,
                          json_t *spec, em_error_t *err);
/* Sets spec's "userns" from a state row's range (nothing when size is 0). */
void em_security_spec_set_ids(json_t *spec, const struct em_idrange *ids);

/* Checks a "security" options object (run options or an incoming spec's)
 * for shape only: known keys, known capabilities, sane numbers. */
int em_security_opts_check(const json_t *opts, em_error_t *err);

#endif
