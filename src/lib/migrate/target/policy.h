/* Policy for an incoming container: a migrating container arrives as a spec
 * from an (authenticated, but not blindly trusted) peer. The target builds
 * the runtime config itself from the spec (no privileged mode, host mounts
 * or host namespaces can be expressed), and this check makes sure every
 * field is what `edgemig run` could have produced before any of it reaches
 * `ip`, runc or the file system. */
#ifndef EDGEMIG_MIGRATE_POLICY_H
#define EDGEMIG_MIGRATE_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/state.h"
#include "util/error.h"

#define EM_POLICY_MAX_CIDRS    16
#define EM_POLICY_SERVICE_CIDR EM_DEFAULT_SUBNET /* the default service range */

/* An IPv4 prefix, host byte order. */
struct em_cidr {
        uint32_t net, mask;
};
/* "A.B.C.D/N" (0 <= N <= 32, no host bits set). */
int em_cidr_parse(const char *s, struct em_cidr *out, em_error_t *err);
/* Back to "A.B.C.D/N". */
void em_cidr_format(const struct em_cidr *c, char out[20]);

/* What this host accepts beyond the fixed rules. */
struct em_policy {
        /* A service IP becomes a host route on this host and the router, so
         * it must lie in one of these ranges (edgemigd --service-cidr);
         * em_policy_init sets EM_POLICY_SERVICE_CIDR. */
        size_t n_cidrs;
        struct em_cidr cidrs[EM_POLICY_MAX_CIDRS];
        bool default_cidrs; /* still em_policy_init's: the first add replaces it */
        /* Upper bounds on the spec's memory (bytes) and cpus; em_policy_init
         * sets this host's memory and online CPUs (edgemigd --max-memory,
         * --max-cpus). 0 in a spec (no limit) stays allowed. */
        int64_t max_memory;
        double max_cpus;
};
void em_policy_init(struct em_policy *p);
/* Replaces the default range by the first call, adds further ones after. */
int em_policy_add_cidr(struct em_policy *p, const char *cidr, em_error_t *err);

/* policy: this host's (NULL: em_policy_init's defaults); spec: the container
 * spec; name: the container name of the HELLO; diff_ids: the image's layers
 * from the plan (array of digests). */
int em_policy_check_spec(const struct em_policy *policy, const json_t *spec, const char *name,
                         const json_t *diff_ids, em_error_t *err);

#endif
