/* Verified blobs: blobs/sha256/<hex>, written through a locked partial file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define COPY_BUF (1u << 20)

bool store_has_blob(struct em_store *s, const char *digest)
{
        const char *hex = em_digest_hex(digest);
        struct stat st;

        return hex != NULL && fstatat(s->blobs_fd, hex, &st, 0) == 0 && S_ISREG(st.st_mode);
}

int store_blob_open(struct em_store *s, const char *digest, em_error_t *err)
{
        const char *hex = em_digest_hex(digest);

        if (hex == NULL)
                return em_error_set(err, EINVAL, "invalid digest '%s'", digest);
        int fd = openat(s->blobs_fd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return em_error_set(err, errno, "blob %s", digest);
        return fd;
}

int store_blob_read(struct em_store *s, const char *digest, size_t max, char **out, size_t *len,
                    em_error_t *err)
{
        cleanup_close int fd = store_blob_open(s, digest, err);
        struct stat st;
        char got[EM_DIGEST_STR_LEN + 1];

        if (fd < 0)
                return -1;
        if (fstat(fd, &st) < 0)
                return em_error_set(err, errno, "blob %s", digest);
        if ((uint64_t)st.st_size > max)
                return em_error_set(err, EFBIG, "blob %s is larger than %zu bytes", digest, max);
        cleanup_free char *buf = malloc((size_t)st.st_size + 1);
        if (buf == NULL)
                return em_error_set(err, ENOMEM, "blob %s", digest);
        ssize_t n = em_read_all(fd, buf, (size_t)st.st_size, err);
        if (n < 0)
                return em_error_wrap(err, "reading blob %s", digest);
        buf[n] = '\0';
        em_sha256_buf(buf, (size_t)n, got);
        if (strcmp(got, digest) != 0)
                return em_error_set(err, EBADMSG, "blob %s is corrupt (content hashes to %s)",
                                    digest, got);
        *len = (size_t)n;
        *out = steal_pointer(&buf);
        return 0;
}

static int hash_existing(struct blob_writer *w, em_error_t *err)
{
        cleanup_free char *buf = malloc(COPY_BUF);
        ssize_t n;

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "resume");
        if (lseek(w->fd, 0, SEEK_SET) < 0)
                return em_error_set(err, errno, "seek");
        while ((n = em_read_all(w->fd, buf, COPY_BUF, err)) > 0) {
                em_sha256_update(w->h, buf, (size_t)n);
                w->n += (uint64_t)n;
        }
        return n < 0 ? -1 : 0;
}

int blob_writer_begin(struct em_store *s, const char *digest, bool resume, struct blob_writer *w,
                      em_error_t *err)
{
        const char *hex = em_digest_hex(digest);
        char name[EM_SHA256_HEX_LEN + 16];

        *w = (struct blob_writer){.fd = -1};
        if (hex == NULL)
                return em_error_set(err, EINVAL, "invalid digest '%s'", digest);
        snprintf(w->hex, sizeof(w->hex), "%s", hex);
        snprintf(name, sizeof(name), ".partial-%s", hex);
        w->fd = openat(s->blobs_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (w->fd < 0)
                return em_error_set(err, errno, "creating %s", name);
        while (flock(w->fd, LOCK_EX) < 0) {
                if (errno != EINTR)
                        return em_error_set(err, errno, "locking %s", name);
        }
        /* Another writer may have finished while we waited for its lock. */
        if (store_has_blob(s, digest)) {
                blob_writer_abort(w, true);
                return 1;
        }
        w->h = em_sha256_new();
        if (w->h == NULL)
                return em_error_set(err, ENOMEM, "sha256");
        if (!resume && ftruncate(w->fd, 0) < 0)
                return em_error_set(err, errno, "truncating %s", name);
        if (hash_existing(w, err) < 0)
                return em_error_wrap(err, "resuming %s", name);
        return 0;
}

int blob_writer_write(struct blob_writer *w, const void *buf, size_t len, em_error_t *err)
{
        if (em_write_all(w->fd, buf, len, err) < 0)
                return em_error_wrap(err, "writing blob sha256:%s", w->hex);
        em_sha256_update(w->h, buf, len);
        w->n += len;
        return 0;
}

void blob_writer_abort(struct blob_writer *w, bool keep_partial)
{
        if (w->fd >= 0 && !keep_partial && ftruncate(w->fd, 0) < 0)
                w->n = 0;
        if (w->fd >= 0)
                close(w->fd);
        w->fd = -1;
        em_sha256_free(&w->h);
}

int blob_writer_commit(struct em_store *s, struct blob_writer *w, uint64_t size, em_error_t *err)
{
        char got[EM_DIGEST_STR_LEN + 1], name[EM_SHA256_HEX_LEN + 16];

        em_sha256_final(w->h, got);
        if (size != UINT64_MAX && w->n != size) {
                blob_writer_abort(w, false);
                return em_error_set(err, EBADMSG, "blob sha256:%s: got %llu bytes, expected %llu",
                                    w->hex, (unsigned long long)w->n, (unsigned long long)size);
        }
        if (strcmp(got + 7, w->hex) != 0) {
                blob_writer_abort(w, false);
                return em_error_set(err, EBADMSG, "blob sha256:%s: digest mismatch (got %s)",
                                    w->hex, got);
        }
        snprintf(name, sizeof(name), ".partial-%s", w->hex);
        if (fdatasync(w->fd) < 0 || renameat(s->blobs_fd, name, s->blobs_fd, w->hex) < 0) {
                int e = errno;
                blob_writer_abort(w, false);
                return em_error_set(err, e, "storing blob sha256:%s", w->hex);
        }
        blob_writer_abort(w, true);
        return 0;
}

int store_blob_put_buf(struct em_store *s, const void *buf, size_t len, const char *want,
                       char digest_out[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        char digest[EM_DIGEST_STR_LEN + 1];
        struct blob_writer w;

        em_sha256_buf(buf, len, digest);
        if (want != NULL && strcmp(want, digest) != 0)
                return em_error_set(err, EBADMSG, "content of %s hashes to %s", want, digest);
        if (digest_out != NULL)
                memcpy(digest_out, digest, sizeof(digest));
        int rc = blob_writer_begin(s, digest, false, &w, err);
        if (rc != 0)
                return rc < 0 ? -1 : 0;
        if (blob_writer_write(&w, buf, len, err) < 0) {
                blob_writer_abort(&w, false);
                return -1;
        }
        return blob_writer_commit(s, &w, len, err);
}

/* Reads and discards `size` bytes so a stream stays in sync. */
static int drain(int fd, uint64_t size, char *buf, em_error_t *err)
{
        while (size > 0) {
                size_t want = size < COPY_BUF ? (size_t)size : COPY_BUF;
                ssize_t n = em_read_all(fd, buf, want, err);
                if (n < 0)
                        return -1;
                if (n == 0)
                        return em_error_set(err, EPIPE, "stream ended early");
                size -= (uint64_t)n;
        }
        return 0;
}

static int copy_in(struct blob_writer *w, int fd, uint64_t size, char *buf, em_error_t *err)
{
        uint64_t left = size;

        for (;;) {
                size_t want = left < COPY_BUF ? (size_t)left : COPY_BUF;
                if (want == 0)
                        return 0;
                ssize_t n = em_read_all(fd, buf, want, err);
                if (n < 0)
                        return -1;
                if (n == 0)
                        return size == UINT64_MAX ? 0
                                                  : em_error_set(err, EPIPE,
                                                                 "stream ended "
                                                                 "early");
                if (blob_writer_write(w, buf, (size_t)n, err) < 0)
                        return -1;
                if (size != UINT64_MAX)
                        left -= (uint64_t)n;
        }
}

int store_blob_put_fd(struct em_store *s, const char *digest, uint64_t size, int fd,
                      em_error_t *err)
{
        cleanup_free char *buf = malloc(COPY_BUF);
        struct blob_writer w;

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "blob copy");
        int rc = blob_writer_begin(s, digest, false, &w, err);
        if (rc < 0)
                return -1;
        if (rc == 1)
                return size == UINT64_MAX ? 0 : drain(fd, size, buf, err);
        if (copy_in(&w, fd, size, buf, err) < 0) {
                blob_writer_abort(&w, false);
                return em_error_wrap(err, "importing blob %s", digest);
        }
        return blob_writer_commit(s, &w, size, err);
}

int em_store_blob_export(struct em_store *s, const char *digest, int fd, em_error_t *err)
{
        cleanup_close int in = store_blob_open(s, digest, err);
        cleanup_free char *buf = malloc(COPY_BUF);
        ssize_t n;

        if (in < 0)
                return -1;
        if (buf == NULL)
                return em_error_set(err, ENOMEM, "blob export");
        while ((n = em_read_all(in, buf, COPY_BUF, err)) > 0) {
                if (em_write_all(fd, buf, (size_t)n, err) < 0)
                        return em_error_wrap(err, "exporting blob %s", digest);
        }
        return n < 0 ? em_error_wrap(err, "exporting blob %s", digest) : 0;
}

int em_store_blob_import(struct em_store *s, const char *digest, uint64_t size, int fd,
                         em_error_t *err)
{
        cleanup_close int lock = store_lock(s, LOCK_SH, err);

        if (lock < 0)
                return -1;
        return store_blob_put_fd(s, digest, size, fd, err);
}

int blob_writer_reset(struct blob_writer *w, em_error_t *err)
{
        em_sha256_free(&w->h);
        w->h = em_sha256_new();
        w->n = 0;
        if (w->h == NULL)
                return em_error_set(err, ENOMEM, "sha256");
        if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
                return em_error_set(err, errno, "restarting blob sha256:%s", w->hex);
        return 0;
}
