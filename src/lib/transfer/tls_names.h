#ifndef EDGEMIG_TRANSFER_TLS_NAMES_H
#define EDGEMIG_TRANSFER_TLS_NAMES_H

#include <stddef.h>

#include "util/error.h"

/* The identity rule of the allow-lists (--allow-peer, --allow-controller,
 * the controller's --admin and edge names): the first of a certificate's
 * names (em_x509_names: SAN DNS/URI, then CN) that allowed lists, compared
 * case-insensitively as DNS names are; NULL if none (or either list is NULL
 * or empty). */
const char *em_tls_name_match(const char *const *names, const char *const *allowed);

/* The name a peer whose certificate has names (at least one) is known
 * by: its first name when allowed is empty (any certificate of the CA),
 * else em_tls_name_match's. NULL when allowed does not list it, with the
 * refusal, naming both lists, in reason[size] (what both TLS backends
 * report). */
const char *em_tls_name_admit(char *const *names, char *const *allowed, char *reason, size_t size);

/* A copy of the NULL-terminated src (NULL: an empty list) into *out, a
 * backend's allow-list. */
int em_tls_names_copy(const char *const *src, char ***out, em_error_t *err);

#endif
