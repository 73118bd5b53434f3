/* Per-invocation settings shared by every front end: the state root and the
 * helper binaries. No globals: callers pass this around. */
#ifndef EDGEMIG_UTIL_CONFIG_H
#define EDGEMIG_UTIL_CONFIG_H

#include <stdbool.h>

#include "util/error.h"

#define EM_DEFAULT_ROOT "/var/lib/edgemig"
#define EM_DEFAULT_CRIU "/opt/edgemig/criu/bin/criu"

struct em_config {
        char *root; /* absolute state root */
        char *criu; /* CRIU >= 4.2 binary */
        char *runc; /* runc binary */
};

/* root_opt (may be NULL) > $EDGEMIG_ROOT > /var/lib/edgemig; criu: $EDGEMIG_CRIU >
 * /opt/edgemig/criu/bin/criu > "criu" in PATH; runc: $EDGEMIG_RUNC > "runc".
 * Creates the root directory (0700). */
int em_config_init(struct em_config *c, const char *root_opt, em_error_t *err);
/* The state root em_config_init would use (root_opt > $EDGEMIG_ROOT >
 * default), as given: nothing is created or resolved. */
const char *em_config_root_choice(const char *root_opt);
void em_config_free(struct em_config *c);
/* malloc'd "<root>/<rel>", NULL on OOM. */
char *em_config_path(const struct em_config *c, const char *rel);

#endif
