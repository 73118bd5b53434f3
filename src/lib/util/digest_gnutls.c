/* The SHA-256 backend over GnuTLS (util/digest.h): edgemig-controller links
 * this object ahead of libedgemig.a (Makefile), so the archive's OpenSSL
 * backend is never pulled in and the controller needs no libcrypto. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>

#include "util/digest.h"

struct em_sha256 {
        gnutls_hash_hd_t hd;
};

em_sha256_t *em_sha256_new(void)
{
        em_sha256_t *h = calloc(1, sizeof(*h));

        if (h == NULL)
                return NULL;
        if (gnutls_hash_init(&h->hd, GNUTLS_DIG_SHA256) < 0) {
                free(h);
                return NULL;
        }
        return h;
}

void em_sha256_update(em_sha256_t *h, const void *data, size_t len)
{
        gnutls_hash(h->hd, data, len);
}

/* gnutls_hash_output resets the hash; it is spent either way. */
void em_sha256_final_raw(em_sha256_t *h, uint8_t out[EM_SHA256_LEN])
{
        gnutls_hash_output(h->hd, out);
}

void em_sha256_free(em_sha256_t **h)
{
        if (*h == NULL)
                return;
        gnutls_hash_deinit((*h)->hd, NULL);
        free(*h);
        *h = NULL;
}

void em_sha256_buf_raw(const void *data, size_t len, uint8_t out[EM_SHA256_LEN])
{
        gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out);
}
