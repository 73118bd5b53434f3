#include "util/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

static void to_hex(const uint8_t md[EM_SHA256_LEN], char out[EM_DIGEST_STR_LEN + 1])
{
        static const char hexd[] = "0123456789abcdef";

        memcpy(out, "sha256:", 7);
        for (int i = 0; i < EM_SHA256_LEN; i++) {
                out[7 + 2 * i] = hexd[md[i] >> 4];
                out[7 + 2 * i + 1] = hexd[md[i] & 15];
        }
        out[EM_DIGEST_STR_LEN] = '\0';
}

void em_sha256_final(em_sha256_t *h, char out[EM_DIGEST_STR_LEN + 1])
{
        uint8_t md[EM_SHA256_LEN];

        em_sha256_final_raw(h, md);
        to_hex(md, out);
}

void em_sha256_buf(const void *data, size_t len, char out[EM_DIGEST_STR_LEN + 1])
{
        uint8_t md[EM_SHA256_LEN];

        em_sha256_buf_raw(data, len, md);
        to_hex(md, out);
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
