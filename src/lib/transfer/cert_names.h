/* A certificate's identities, read with GnuTLS: the controller's TLS is
 * GnuTLS (libmicrohttpd's server, transfer/tls_gnutls.c's client), so the
 * names its authorization (platform/authz.h) and its allow-list of an edge
 * check come from the same library that verified the chain.
 * The rule is transfer/ca.h em_x509_names' (edgemigd's, on OpenSSL): SAN
 * DNS and URI entries in order, then the first CN; entries with an embedded
 * NUL are skipped ("good\0.evil" must not pass as "good"), duplicates
 * (compared case-insensitively) listed once. tests/unit/test_cert_names.c
 * holds the two readers to the same answers. */
#ifndef EDGEMIG_TRANSFER_CERT_NAMES_H
#define EDGEMIG_TRANSFER_CERT_NAMES_H

#include <gnutls/x509.h>

#include "util/error.h"

/* *out: a NULL-terminated array (em_strv_free), possibly empty. */
int em_gnutls_crt_names(gnutls_x509_crt_t crt, char ***out, em_error_t *err);

#endif
