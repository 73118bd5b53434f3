/* Mutual TLS 1.3 client connections over GnuTLS, for edgemig-controller.
 * The controller serves HTTPS with libmicrohttpd, which Debian builds on
 * GnuTLS; its control requests to edgemigd (whose server is tls.c, on
 * OpenSSL) go through this backend so that the controller links one TLS
 * library (docs/security.md). It keeps tls.h's client contract: the same
 * files (struct em_tls_config), the chain checked against the platform CA
 * for a server certificate, the peer's identity (transfer/cert_names.h)
 * checked against the allow-list by em_tls_name_match, a CA certificate
 * refused as a peer, and errors with the same status codes (EACCES for a
 * refusal either way, EPROTO for a peer that does not speak TLS, ETIMEDOUT
 * for a stalled handshake). There is no server role: edgemig and edgemigd
 * use tls.h. */
#ifndef EDGEMIG_TRANSFER_TLS_GNUTLS_H
#define EDGEMIG_TRANSFER_TLS_GNUTLS_H

#include <stdbool.h>

#include "transfer/conn.h"
#include "transfer/tls.h"
#include "util/error.h"

typedef struct em_gtls_ctx em_gtls_ctx_t;

/* Loads and cross-checks the files as em_tls_ctx_new does (the key matches
 * the certificate, the certificate is signed by the CA), for the client
 * role. */
int em_gtls_client_new(const struct em_tls_config *cfg, em_gtls_ctx_t **out, em_error_t *err);
void em_gtls_ctx_free(em_gtls_ctx_t **ctx);
#define cleanup_gtls_ctx __attribute__((cleanup(em_gtls_ctx_free)))
/* This side's own identity (first name of its certificate), for logs. */
const char *em_gtls_ctx_name(const em_gtls_ctx_t *ctx);

/* Connects to "HOST:PORT" and runs the client handshake; returns only once
 * the server has accepted this side's certificate too (its first TLS 1.3
 * session ticket, or data), as em_tls_connect does. timeout_ms bounds the
 * TCP connect and, separately, the handshake. *peer_name (may be NULL)
 * receives the server's matched identity. */
int em_gtls_connect(em_gtls_ctx_t *ctx, const char *hostport, int timeout_ms, em_conn_t **out,
                    char **peer_name, em_error_t *err);

/* Runs the client handshake over a plain connection (fd backend); *conn is
 * consumed either way (NULL on failure). */
int em_gtls_upgrade(em_gtls_ctx_t *ctx, em_conn_t **conn, int timeout_ms, char **peer_name,
                    em_error_t *err);

/* True if c runs over this backend. */
bool em_gtls_conn(const em_conn_t *c);

#endif
