#include "util/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

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

void em_sha256_final(em_sha256_t *h, char out[EM_DIGEST_STR_LEN + 1])
{
        static const char hexd[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        EVP_DigestFinal_ex(h->ctx, md, &n);
        memcpy(out, "sha256:", 7);
        for (unsigned int i = 0; i < n && i < 32; i++) {
                out[7 + 2 * i] = hexd[md[i] >> 4];
                out[7 + 2 * i + 1] = hexd[md[i] & 15];
        }
        out[EM_DIGEST_STR_LEN] = '\0';
}

void em_sha256_free(em_sha256_t **h)
{
        if (*h == NULL)
                return;
        EVP_MD_CTX_free((*h)->ctx);
        free(*h);
        *h = NULL;
}

void em_sha256_buf(const void *data, size_t len, char out[EM_DIGEST_STR_LEN + 1])
{
        unsigned char md[32];
        static const char hexd[] = "0123456789abcdef";

        EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
        memcpy(out, "sha256:", 7);
        for (int i = 0; i < 32; i++) {
                out[7 + 2 * i] = hexd[md[i] >> 4];
                out[7 + 2 * i + 1] = hexd[md[i] & 15];
        }
        out[EM_DIGEST_STR_LEN] = '\0';
}

int em_sha256_fd(int fd, char out[EM_DIGEST_STR_LEN + 1], uint64_t *size, em_error_t *err)
{
        cleanup_sha256 em_sha256_t *h = em_sha256_new();
        cleanup_free char *buf = malloc(1 << 16);
        uint64_t total = 0;

        if (h == NULL || buf == NULL)
                return em_error_set(err, ENOMEM, "hashing");
        for (;;) {
                ssize_t r = read(fd, buf, 1 << 16);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return em_error_set(err, errno, "reading for digest");
                if (r == 0)
                        break;
                em_sha256_update(h, buf, (size_t)r);
                total += (uint64_t)r;
        }
        em_sha256_final(h, out);
        if (size)
                *size = total;
        return 0;
}

int em_sha256_file(const char *path, char out[EM_DIGEST_STR_LEN + 1], uint64_t *size,
                   em_error_t *err)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", path);
        if (em_sha256_fd(fd, out, size, err) < 0)
                return em_error_wrap(err, "digest of %s", path);
        return 0;
}

bool em_digest_valid(const char *digest)
{
        if (digest == NULL || strncmp(digest, "sha256:", 7) != 0)
                return false;
        const char *h = digest + 7;
        size_t i;
        for (i = 0; h[i]; i++) {
                if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
                        return false;
        }
        return i == EM_SHA256_HEX_LEN;
}

const char *em_digest_hex(const char *digest)
{
        return em_digest_valid(digest) ? digest + 7 : NULL;
}
