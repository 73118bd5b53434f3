/* One HTTPS (or, on a trusted test network, HTTP) request to the platform
 * controller with a client certificate of the platform CA: what edgemigd's
 * agent and `edgemig platform` both send. */
#ifndef EDGEMIG_PLATFORM_HTTP_H
#define EDGEMIG_PLATFORM_HTTP_H

#include "util/error.h"

struct em_http_tls {
        const char *cert, *key; /* the client certificate; NULL: none */
        const char *ca;         /* checks the server's; NULL: the system's CAs */
        /* A libcurl share handle (CURLSH *, its locks set for the threads
         * that use it) whose connections and TLS sessions requests reuse,
         * as the etcd client's (platform/etcd.c); NULL: none. */
        void *share;
};

/* GET (body NULL) or POST of a JSON body to url, giving up after
 * timeout_ms (connecting: half of it); tls may be NULL. Returns the HTTP
 * status, with the response body (NUL-terminated, malloc'd) in *resp when
 * resp is not NULL; -1 (EHOSTUNREACH) if no answer came. */
long em_http_request(const char *url, const char *body, const struct em_http_tls *tls,
                     int timeout_ms, char **resp, em_error_t *err);

#endif
