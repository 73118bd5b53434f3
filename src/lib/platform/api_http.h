/* The controller's API over HTTP (libmicrohttpd): plain, or HTTPS where
 * every client must present a certificate of the platform CA; each request
 * is then authorized and served by platform/api.h. */
#ifndef EDGEMIG_PLATFORM_API_HTTP_H
#define EDGEMIG_PLATFORM_API_HTTP_H

#include "platform/api.h"
#include "util/error.h"

struct em_api_http_tls {
        const char *cert, *key, *ca; /* PEM files: the server's and the platform CA */
};

struct em_api_http;

/* Serves api on listen (IPv4ADDR:PORT) from libmicrohttpd's thread; tls
 * NULL: plain HTTP. */
int em_api_http_start(struct em_api *api, const char *listen, const struct em_api_http_tls *tls,
                      struct em_api_http **out, em_error_t *err);
void em_api_http_stop(struct em_api_http *h);

#endif
