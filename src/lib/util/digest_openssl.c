/* The SHA-256 backend over OpenSSL (util/digest.h): libedgemig.a's, for
 * every binary but edgemig-controller. */
#include <openssl/evp.h>
#include <stdlib.h>

#include "util/digest.h"

struct em_sha256 {
        EVP_MD_CTX *ctx;
};

em_sha256_t *em_sha256_new(void)
{
        em_sha256_t *h = calloc(1, sizeof(*h));

        if (h == NULL)
                return NULL;
        h->ctx = EVP_MD_CTX_new();
        if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
                return NULL;
        }
        return h;
}

void em_sha256_update(em_sha256_t *h, const void *data, size_t len)
{
        EVP_DigestUpdate(h->ctx, data, len);
}

void em_sha256_final_raw(em_sha256_t *h, uint8_t out[EM_SHA256_LEN])
{
        unsigned int n = 0;

        EVP_DigestFinal_ex(h->ctx, out, &n);
}

void em_sha256_free(em_sha256_t **h)
{
        if (*h == NULL)
                return;
        EVP_MD_CTX_free((*h)->ctx);
        free(*h);
        *h = NULL;
}

void em_sha256_buf_raw(const void *data, size_t len, uint8_t out[EM_SHA256_LEN])
{
        EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}
