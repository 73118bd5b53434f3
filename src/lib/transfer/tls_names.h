#ifndef EDGEMIG_TRANSFER_TLS_NAMES_H
#define EDGEMIG_TRANSFER_TLS_NAMES_H

/* The identity rule of the allow-lists (--allow-peer, --allow-controller,
 * the controller's --admin and edge names): the first of a certificate's
 * names (em_x509_names: SAN DNS/URI, then CN) that allowed lists, compared
 * case-insensitively as DNS names are; NULL if none (or either list is NULL
 * or empty). */
const char *em_tls_name_match(const char *const *names, const char *const *allowed);

#endif
