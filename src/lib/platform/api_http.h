/* The controller's API over HTTP (libmicrohttpd): plain, or HTTPS where
 * every client must present a certificate of the platform CA; each request
 * is then authorized and served by platform/api.h. */
#ifndef EDGEMIG_PLATFORM_API_HTTP_H
#define EDGEMIG_PLATFORM_API_HTTP_H

#include <stddef.h>

#include "platform/api.h"
#include "util/error.h"

struct em_api_http_tls {
        const char *cert, *key, *ca; /* PEM files: the server's and the platform CA */
};

/* What a flood of connections can cost (libmicrohttpd's options): at most
 * max_connections open (per_ip from one address), each closed after
 * timeout_s idle and given a memory pool of conn_memory bytes; threads
 * polling threads serve them. Anything over a limit is closed at accept. */
struct em_api_http_limits {
        unsigned max_connections, per_ip, timeout_s, threads;
        size_t conn_memory;
};

#define EM_API_HTTP_LIMITS_INIT                                                                    \
        {                                                                                          \
                .max_connections = 256, .per_ip = 16, .timeout_s = 30, .threads = 2,               \
                .conn_memory = 64 * 1024                                                           \
        }

struct em_api_http;

/* Serves api on listen (IPv4ADDR:PORT) from libmicrohttpd's threads; tls
 * NULL: plain HTTP; lim NULL: EM_API_HTTP_LIMITS_INIT. */
int em_api_http_start(struct em_api *api, const char *listen, const struct em_api_http_tls *tls,
                      const struct em_api_http_limits *lim, struct em_api_http **out,
                      em_error_t *err);
void em_api_http_stop(struct em_api_http *h);

#endif
