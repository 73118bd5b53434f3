/* One HTTPS (or, on a trusted test network, HTTP) request to the platform
 * controller with a client certificate of the platform CA: what edgemigd's
 * agent and `edgemig platform` both send. */
#ifndef EDGEMIG_PLATFORM_HTTP_H
#define EDGEMIG_PLATFORM_HTTP_H

#include "util/error.h"

struct em_http_tls {
        const char *cert, *key, *ca; /* all NULL: no client certificate */
};

/* GET (body NULL) or POST of a JSON body to url, giving up after
 * timeout_ms (connecting: half of it). Returns the HTTP status, with the
 * response body (NUL-terminated, malloc'd) in *resp when resp is not NULL;
 * -1 (EHOSTUNREACH) if no answer came. */
long em_http_request(const char *url, const char *body, const struct em_http_tls *tls,
                     int timeout_ms, char **resp, em_error_t *err);

#endif
