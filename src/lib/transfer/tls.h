/* Mutual TLS 1.3 backend for em_conn_t (OpenSSL over a non-blocking TCP
 * socket). Both sides present a certificate issued by the platform CA
 * (transfer/ca.h), verify the peer's chain against that CA, and check the
 * peer's identity (a SAN DNS or URI name, or the CN) against an allow-list.
 * A refused peer gets a TLS alert; the error says why (status EACCES for an
 * authentication failure, EPROTO for a peer that does not speak TLS,
 * ETIMEDOUT for a stalled handshake) and carries OpenSSL's error text.
 *
 * A TLS connection must be freed by the one process that uses it: freeing it
 * sends close_notify, which would corrupt a session a forked child still
 * serves. Do the handshake in the child (em_tls_upgrade). */
#ifndef EDGEMIG_TRANSFER_TLS_H
#define EDGEMIG_TRANSFER_TLS_H

#include <stdbool.h>

#include "transfer/conn.h"
#include "transfer/tls_names.h"
#include "util/error.h"

typedef struct em_tls_ctx em_tls_ctx_t;

struct em_tls_config {
        const char *ca, *cert, *key; /* PEM files */
        /* NULL-terminated names; NULL or empty: any certificate signed by the CA. */
        const char *const *allowed_peers;
};

/* Loads and cross-checks the files (the key matches the certificate, the
 * certificate is signed by the CA). server selects the accepting role. */
int em_tls_ctx_new(const struct em_tls_config *cfg, bool server, em_tls_ctx_t **out,
                   em_error_t *err);
void em_tls_ctx_free(em_tls_ctx_t **ctx);
#define cleanup_tls_ctx __attribute__((cleanup(em_tls_ctx_free)))
/* This side's own identity (first name of its certificate), for logs. */
const char *em_tls_ctx_name(const em_tls_ctx_t *ctx);
/* True if there is no allow-list (any certificate signed by the CA passes). */
bool em_tls_ctx_allows_any(const em_tls_ctx_t *ctx);

/* Connects to "HOST:PORT" and runs the client handshake. Returns only once
 * the server has accepted this side's certificate too (TLS 1.3 lets a client
 * finish before the server checked it: we wait for the server's session
 * ticket), so a refusal is reported here and not on the first read.
 * timeout_ms bounds the TCP connect and, separately, the whole handshake.
 * *peer_name (may be NULL) receives the server's matched identity. */
int em_tls_connect(em_tls_ctx_t *ctx, const char *hostport, int timeout_ms, em_conn_t **out,
                   char **peer_name, em_error_t *err);

/* Accepts one TCP connection (waiting up to timeout_ms) and runs the server
 * handshake (bounded by timeout_ms as a whole). *peer_name (may be NULL)
 * receives the client's matched identity. Errors name the peer's address. */
int em_tls_accept(em_tls_ctx_t *ctx, int listen_fd, int timeout_ms, em_conn_t **out,
                  char **peer_name, em_error_t *err);

/* Replaces a plain connection (fd backend, e.g. from em_tcp_accept) by a TLS
 * one in ctx's role. *conn is consumed either way (NULL on failure). */
int em_tls_upgrade(em_tls_ctx_t *ctx, em_conn_t **conn, int timeout_ms, char **peer_name,
                   em_error_t *err);

/* True if c runs over mutual TLS (false: plain TCP or a socketpair). */
bool em_tls_conn(const em_conn_t *c);

/* Default files of this host under <root>/pki/: ca.crt, NAME.crt, NAME.key,
 * NAME = name or, if NULL, this host's name (up to the first dot). Returns 1
 * if all three exist, 0 if not (the paths are set either way). */
int em_tls_default_paths(const char *root, const char *name, char **ca, char **cert, char **key,
                         em_error_t *err);

#endif
