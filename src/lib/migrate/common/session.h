/* Pieces shared by the source and target sides of a migration. */
#ifndef EDGEMIG_MIGRATE_SESSION_H
#define EDGEMIG_MIGRATE_SESSION_H

#include <jansson.h>

#include "transfer/conn.h"
#include "transfer/handshake.h"
#include "transfer/tls.h"
#include "util/config.h"
#include "util/error.h"

/* Fills a HELLO describing this host: versions, CRIU version and features
 * (from the cached `edgemig check`), CPU. container/mode/session are the
 * caller's. */
int em_session_local_hello(const struct em_config *cfg, struct em_hello *h, em_error_t *err);

/* <root>/incoming/<session-hex>: where a target stages what it receives. */
char *em_session_incoming_dir(const struct em_config *cfg, const char *session_hex);

/* <root>/pagecache/<container>/<peer>: the page cache that one peer (its
 * authenticated identity, em_conn_identity; NULL: an unauthenticated
 * --insecure peer, "-insecure") keeps here for one container. Keyed by both,
 * so a peer can neither read another's pages nor feed them. An identity that
 * is not a plain lower-case name ([a-z0-9][a-z0-9._-]{0,63}, compared
 * case-insensitively like the allow-lists) becomes "sha256-<hex>" of it. */
char *em_session_cache_dir(const struct em_config *cfg, const char *container,
                           const char *identity);
/* That path component of a peer identity. */
#define EM_PEER_KEY_LEN 80
int em_session_peer_key(const char *identity, char out[EM_PEER_KEY_LEN]);

/* One of max session slots of a peer: an flock on
 * <root>/peers/<peer>/slot-<i>, held through *fd_out until the session's
 * process closes it or dies. EBUSY, naming the option, when all are held. */
int em_session_peer_slot(const struct em_config *cfg, const char *identity, int max, int *fd_out,
                         em_error_t *err);

/* Connects to a peer's edgemigd at target (HOST:PORT): mutual TLS with tls,
 * else plain TCP (--insecure). *identity gets the peer's certificate name
 * (NULL without TLS). The signature is the source's seam for reaching the
 * target (migrate/source/source.h, em_source_ops). */
typedef int (*em_session_connect_fn)(em_tls_ctx_t *tls, const char *target, int timeout_ms,
                                     em_conn_t **conn, char **identity, em_error_t *err);
int em_session_connect(em_tls_ctx_t *tls, const char *target, int timeout_ms, em_conn_t **conn,
                       char **identity, em_error_t *err);

/* Runs `hook VERB IP` (route handoff); no hook: nothing to do. */
int em_session_route_hook(const char *hook, const char *verb, const char *ip, em_error_t *err);
typedef int (*em_session_route_fn)(const char *hook, const char *verb, const char *ip,
                                   em_error_t *err);

/* Runs `hook VERB IP` through run (the source's em_source_ops seam; NULL:
 * em_session_route_hook). Moving the route away is never fatal to the step
 * that asks for it (an abort must still remove its copy, a commit must
 * still complete), so a failure is logged as a warning after context and
 * not returned. Returns -1 when the hook failed, else 0 (also when there
 * is no hook or no ip). */
int em_session_route_warn(em_session_route_fn run, const char *hook, const char *verb,
                          const char *ip, const char *context);

#endif
