/* Control requests: the platform controller asks the edgemigd of a source
 * edge to migrate (or prepare) one of its containers to another edge. They
 * travel on the same mutual-TLS listener as migrations, as the first frame
 * of a connection instead of HELLO:
 *
 *   CONTROL        controller → edge  {"op": "migrate"|"prepare",
 *                                      "service": NAME, "to": "ADDR:PORT",
 *                                      "mode": "precopy"…   (migrate only, optional),
 *                                      "id": N              (the controller's action id, optional)}
 *   CONTROL_REPLY  edge → controller  {"ok": bool, "error": "…"?, "report": {…}?}
 *
 * The edge accepts a CONTROL frame only from a peer whose certificate names
 * one of its --allow-controller names; anyone else (a peer edge included)
 * gets CONTROL_REPLY {"ok": false, "error": …} and the refusal is logged.
 * An accepted request runs the source side of the migration exactly as
 * `edgemig migrate|prepare` does (em_migrate_outgoing), connecting to the
 * target with the daemon's own certificate; the reply carries the report
 * (the `migrate --json` timeline), on failure too. */
#ifndef EDGEMIG_PLATFORM_CONTROL_H
#define EDGEMIG_PLATFORM_CONTROL_H

#include <jansson.h>
#include <stdbool.h>

#include "migrate/migrate.h"
#include "platform/control_client.h"
#include "platform/control_req.h"
#include "transfer/conn.h"
#include "transfer/handshake.h"
#include "transfer/tls.h"
#include "util/config.h"
#include "util/error.h"

/* Whether the TLS identity peer may send control requests: it must be on
 * allow (NULL-terminated, case-insensitive like the TLS allow-list). No list
 * or no identity (plain TCP): nobody. */
bool em_control_allowed(const char *peer, const char *const *allow);

/* The source side of a migration as `edgemig migrate|prepare` runs it: host
 * features probed (or cached) before the clock starts, outgoing sessions of
 * dead processes recovered, then em_migrate_source_run. */
int em_migrate_outgoing(const struct em_config *cfg, const char *name,
                        const struct em_migrate_opts *o, json_t **report, em_error_t *err);

/* What edgemigd needs to serve control requests. */
struct em_control_server {
        const char *const *allow_controllers; /* --allow-controller; NULL: refuse all */
        /* The daemon's own credentials, used as the client certificate towards
         * the target; allow_peers (NULL: any certificate of the CA) are the
         * names the target's certificate must carry. */
        const char *tls_cert, *tls_key, *tls_ca;
        const char *const *allow_peers;
        const char *route_hook; /* `HOOK announce IP` if a migration rolls back here */
        int io_timeout_ms;
};

/* Serves the request whose first frame `first` (a CONTROL frame) arrived on
 * conn from the TLS identity peer (NULL without TLS). Always answers with a
 * CONTROL_REPLY; a refusal or failed migration returns -1 with the reason. */
int em_control_serve(const struct em_config *cfg, em_conn_t *conn, const char *peer,
                     const struct em_frame *first, const struct em_control_server *s,
                     em_error_t *err);

#endif
