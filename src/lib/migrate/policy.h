/* Policy for an incoming container: a migrating container arrives as a spec
 * from an (authenticated, but not blindly trusted) peer. The target builds
 * the runtime config itself from the spec (no privileged mode, host mounts
 * or host namespaces can be expressed), and this check makes sure every
 * field is what `edgemig run` could have produced before any of it reaches
 * `ip`, runc or the file system. */
#ifndef EDGEMIG_MIGRATE_POLICY_H
#define EDGEMIG_MIGRATE_POLICY_H

#include <jansson.h>

#include "util/error.h"

/* spec: the container spec; name: the container name of the HELLO;
 * diff_ids: the image's layers from the plan (array of digests). */
int em_policy_check_spec(const json_t *spec, const char *name, const json_t *diff_ids,
                         em_error_t *err);

#endif
