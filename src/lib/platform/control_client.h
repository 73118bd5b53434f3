/* The requesting side of a control request (control.h describes the
 * exchange); the edge's side is control.c. Transport-free: the controller
 * connects with GnuTLS (transfer/tls_gnutls.h), `edgemig control` with
 * OpenSSL (transfer/tls.h), so each binary links one TLS library. */
#ifndef EDGEMIG_PLATFORM_CONTROL_CLIENT_H
#define EDGEMIG_PLATFORM_CONTROL_CLIENT_H

#include <jansson.h>

#include "platform/control_req.h"
#include "transfer/conn.h"
#include "util/error.h"

/* Sends req on conn (a mutual-TLS connection to the edge's edgemigd, whose
 * matched name em_conn_identity gives) and waits up to timeout_ms for the
 * answer. Returns 0 with *reply (a CONTROL_REPLY object, whose "ok" may be
 * false) when the exchange completed, -1 when it did not (timeout, the
 * connection lost, a malformed reply). */
int em_control_exchange(em_conn_t *conn, const struct em_control_req *req, int timeout_ms,
                        json_t **reply, em_error_t *err);
/* The same for a request with "progress": true: the edge's progress
 * replies ({"progress": {...}}, migrate/source/monitor.h) go to fn as they
 * arrive; timeout_ms bounds the whole exchange however many arrive. */
typedef void (*em_control_progress_fn)(void *ud, const json_t *progress);
int em_control_exchange_progress(em_conn_t *conn, const struct em_control_req *req, int timeout_ms,
                                 em_control_progress_fn fn, void *ud, json_t **reply,
                                 em_error_t *err);

#endif
