/* Who may do what at edgemig-controller (docs/security.md, "The platform
 * controller"). Authentication (a certificate of the platform CA) comes
 * first and is the controller's; this is the decision after it, from the
 * certificate's names (transfer/ca.h em_x509_names: SAN DNS/URI, then CN),
 * matched as edgemigd matches --allow-peer (transfer/tls.h
 * em_tls_name_match):
 *
 *   GET/HEAD anything              any certificate of the CA
 *   POST /edges {"name": N}        a certificate naming N, or an admin
 *   POST /edges/N/heartbeat        a certificate naming N, or an admin
 *   any other request (services,   an admin: a certificate naming one of
 *   positions, other methods)      the controller's --admin names
 *
 * Pure: no I/O, no clock (unit tests in tests/unit/test_authz.c). */
#ifndef EDGEMIG_PLATFORM_AUTHZ_H
#define EDGEMIG_PLATFORM_AUTHZ_H

#include "util/error.h"

struct em_authz_request {
        const char *method, *path; /* path without the query string */
        const char *const *names;  /* the client certificate's names, NULL-terminated */
        /* POST /edges: the body's "name" ("" if it has none); NULL while the
         * body is not read yet. Ignored for other requests. */
        const char *body_edge;
};

#define EM_AUTHZ_ALLOW      0
#define EM_AUTHZ_NEEDS_BODY 1 /* POST /edges by a non-admin, body_edge NULL: ask again with it */

/* admins: NULL-terminated --admin names (NULL or empty: no admin). Returns
 * EM_AUTHZ_ALLOW, EM_AUTHZ_NEEDS_BODY, or -1 with err set (status EACCES)
 * to a message for the client that says what would be allowed. */
int em_authz_check(const char *const *admins, const struct em_authz_request *rq, em_error_t *err);

#endif
