/* SHA-256 digests in the OCI "sha256:<hex>" form. The hashing itself is a
 * backend chosen per binary at link time (Makefile): digest_openssl.c,
 * which libedgemig.a carries, for edgemig, edgemigd and the tests, and
 * digest_gnutls.c (gnutls_hash), which edgemig-controller links ahead of
 * the archive so that it needs no libcrypto (docs/security.md, "TLS
 * libraries per binary"). digest.c holds what does not depend on it. */
#ifndef EDGEMIG_UTIL_DIGEST_H
#define EDGEMIG_UTIL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_SHA256_HEX_LEN 64
#define EM_DIGEST_STR_LEN (7 + EM_SHA256_HEX_LEN) /* "sha256:" + hex */
#define EM_SHA256_LEN     32

typedef struct em_sha256 em_sha256_t;

/* The backend: a running hash (NULL when out of memory), its update, its
 * 32 raw bytes (the hash is spent then), and a one-shot hash. */
em_sha256_t *em_sha256_new(void);
void em_sha256_update(em_sha256_t *h, const void *data, size_t len);
void em_sha256_final_raw(em_sha256_t *h, uint8_t out[EM_SHA256_LEN]);
void em_sha256_free(em_sha256_t **h);
void em_sha256_buf_raw(const void *data, size_t len, uint8_t out[EM_SHA256_LEN]);

/* Writes "sha256:<hex>" (EM_DIGEST_STR_LEN + 1 bytes) and frees nothing. */
void em_sha256_final(em_sha256_t *h, char out[EM_DIGEST_STR_LEN + 1]);
#define cleanup_sha256 __attribute__((cleanup(em_sha256_free)))

void em_sha256_buf(const void *data, size_t len, char out[EM_DIGEST_STR_LEN + 1]);
int em_sha256_fd(int fd, char out[EM_DIGEST_STR_LEN + 1], uint64_t *size, em_error_t *err);
int em_sha256_file(const char *path, char out[EM_DIGEST_STR_LEN + 1], uint64_t *size,
                   em_error_t *err);

/* True for "sha256:" followed by exactly 64 lowercase hex digits. */
bool em_digest_valid(const char *digest);
/* Pointer to the hex part of a valid digest, NULL otherwise. */
const char *em_digest_hex(const char *digest);

#endif
