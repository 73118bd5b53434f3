/* The platform CA: one self-signed EC P-256 authority per edgemig platform
 * that issues every edge host's and controller's certificate, so peers can
 * authenticate each other with mutual TLS (transfer/tls.h). Keys never leave
 * the machine they are written on, are written 0600 and never overwritten. */
#ifndef EDGEMIG_TRANSFER_CA_H
#define EDGEMIG_TRANSFER_CA_H

#include <jansson.h>
#include <openssl/x509.h>

#include "util/error.h"

#define EM_CA_CERT         "ca.crt"
#define EM_CA_KEY          "ca.key"
#define EM_CA_DAYS_DEFAULT 3650
/* Where `edgemig ca` keeps the CA by default: not in any state root. */
#define EM_CA_DIR_DEFAULT "/etc/edgemig/ca"
#define EM_CERT_DAYS      365
#define EM_CERT_NAME_MAX  253

/* NAME of an issued certificate: a DNS-style host name ([A-Za-z0-9.-],
 * labels not starting or ending with '-', no empty label), since it becomes
 * both a SAN DNS name and a file name. */
int em_cert_name_check(const char *name, em_error_t *err);

/* Creates DIR/ca.crt and DIR/ca.key (0600), DIR 0700; refuses if either
 * exists. The subject carries a random tag so two CAs never share a name. */
int em_ca_init(const char *dir, int days, em_error_t *err);

/* Issues a certificate for NAME (CN=NAME, SAN DNS:NAME, serverAuth and
 * clientAuth) signed by the CA in ca_dir, as out_dir/NAME.crt and
 * out_dir/NAME.key (0600); refuses to overwrite. The validity is clamped to
 * the CA's. Returns the certificate's path in *crt_path if not NULL. */
int em_ca_issue(const char *ca_dir, const char *name, const char *out_dir, int days,
                char **crt_path, em_error_t *err);
/* Same, with extra SAN IP entries (NULL-terminated IPv4/IPv6 literals, or
 * NULL): for a host that clients dial by address, e.g. a controller without
 * a DNS name (TLS clients match an address URL against SAN IPs only). */
int em_ca_issue_ips(const char *ca_dir, const char *name, const char *const *ips,
                    const char *out_dir, int days, char **crt_path, em_error_t *err);

/* JSON description of the CA in dir and of every other *.crt next to it:
 * {"dir", "ca": CERT, "certificates": [CERT...]}, CERT = {"file", "subject",
 * "issuer", "serial", "names", "not_before", "not_after", "sha256",
 * "is_ca", "expired", "signed_by_ca"}. */
int em_ca_show(const char *dir, json_t **out, em_error_t *err);

/* PEM loading with the OpenSSL error text in the message. */
int em_x509_load(const char *path, X509 **out, em_error_t *err);
int em_pkey_load(const char *path, EVP_PKEY **out, em_error_t *err);
/* The identities a certificate names: SAN DNS and URI names, then the CN.
 * NULL-terminated, malloc'd (free with em_strv_free). */
int em_x509_names(X509 *x, char ***out, em_error_t *err);
/* "CN=..., O=..." (malloc'd, never NULL unless out of memory). */
char *em_x509_subject(X509 *x);

/* Appends the OpenSSL error queue ("; "-joined ERR_error_string_n texts) to
 * a new error and clears the queue. */
__attribute__((format(printf, 3, 4))) int em_ssl_error(em_error_t *err, int status, const char *fmt,
                                                       ...);

void em_x509_freep(X509 **x);
void em_pkey_freep(EVP_PKEY **k);
#define cleanup_x509 __attribute__((cleanup(em_x509_freep)))
#define cleanup_pkey __attribute__((cleanup(em_pkey_freep)))

#endif
