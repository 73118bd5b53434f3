/* The controller's side of a control request (control.h describes the
 * exchange); the edge's side is control.c. */
#ifndef EDGEMIG_PLATFORM_CONTROL_CLIENT_H
#define EDGEMIG_PLATFORM_CONTROL_CLIENT_H

#include <jansson.h>

#include "platform/control_req.h"
#include "transfer/tls.h"
#include "util/error.h"

/* Controller side: connects to the edge's edgemigd at addr over mutual TLS
 * (tls: a client context whose allow-list names the edge), sends req and
 * waits up to timeout_ms for the answer. Returns 0 with *reply (a
 * CONTROL_REPLY object, whose "ok" may be false) when the exchange
 * completed, -1 when it did not (connect, TLS refusal, timeout). */
int em_control_request(em_tls_ctx_t *tls, const char *addr, const struct em_control_req *req,
                       int timeout_ms, json_t **reply, em_error_t *err);

#endif
