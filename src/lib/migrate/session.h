/* Pieces shared by the source and target sides of a migration. */
#ifndef EDGEMIG_MIGRATE_SESSION_H
#define EDGEMIG_MIGRATE_SESSION_H

#include <jansson.h>

#include "transfer/handshake.h"
#include "util/config.h"
#include "util/error.h"

/* Fills a HELLO describing this host: versions, CRIU version and features
 * (from the cached `edgemig check`), CPU. container/mode/session are the
 * caller's. */
int em_session_local_hello(const struct em_config *cfg, struct em_hello *h, em_error_t *err);

/* <root>/incoming/<session-hex>: where a target stages what it receives. */
char *em_session_incoming_dir(const struct em_config *cfg, const char *session_hex);

/* Runs `hook VERB IP` (route handoff); no hook: nothing to do. */
int em_session_route_hook(const char *hook, const char *verb, const char *ip, em_error_t *err);

#endif
