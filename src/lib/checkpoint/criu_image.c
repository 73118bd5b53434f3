#include "checkpoint/criu_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

static uint32_t get32(const uint8_t *p)
{
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
}

void em_criu_img_free(struct em_criu_img *img)
{
        free(img->buf);
        img->buf = NULL;
        img->len = img->off = 0;
}

static int check_magic(struct em_criu_img *img, uint32_t type_magic, em_error_t *err)
{
        const uint8_t *b = img->buf;

        if (type_magic == EM_CRIU_MAGIC_INVENTORY) {
                if (img->len < 4 || get32(b) != type_magic)
                        return em_error_set(err, EBADMSG, "%s: not a CRIU inventory image",
                                            img->name);
                img->off = 4;
                return 0;
        }
        if (img->len < 8 || get32(b) != EM_CRIU_MAGIC_COMMON || get32(b + 4) != type_magic)
                return em_error_set(err, EBADMSG, "%s: bad magic (expected 0x%08x)", img->name,
                                    type_magic);
        img->off = 8;
        return 0;
}

int em_criu_img_from(const char *name, const uint8_t *buf, size_t len, uint32_t type_magic,
                     struct em_criu_img *img, em_error_t *err)
{
        memset(img, 0, sizeof(*img));
        snprintf(img->name, sizeof(img->name), "%s", name);
        if (len > EM_CRIU_IMG_MAX)
                return em_error_set(err, EFBIG, "%s: %zu bytes, more than a CRIU image may have",
                                    name, len);
        img->buf = malloc(len ? len : 1);
        if (img->buf == NULL)
                return em_error_set(err, ENOMEM, "%s", name);
        memcpy(img->buf, buf, len);
        img->len = len;
        return check_magic(img, type_magic, err);
}

int em_criu_img_open(int dirfd, const char *name, uint32_t type_magic, struct em_criu_img *img,
                     em_error_t *err)
{
        cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;

        memset(img, 0, sizeof(*img));
        snprintf(img->name, sizeof(img->name), "%s", name);
        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", name);
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > EM_CRIU_IMG_MAX)
                return em_error_set(err, EFBIG, "%s: not a regular file of at most %u MiB", name,
                                    EM_CRIU_IMG_MAX >> 20);
        img->buf = malloc(st.st_size ? (size_t)st.st_size : 1);
        if (img->buf == NULL)
                return em_error_set(err, ENOMEM, "%s", name);
        ssize_t n = em_read_all(fd, img->buf, (size_t)st.st_size, err);
        if (n < 0)
                return em_error_wrap(err, "reading %s", name);
        img->len = (size_t)n;
        return check_magic(img, type_magic, err);
}

int em_criu_img_next(struct em_criu_img *img, const uint8_t **rec, size_t *len, em_error_t *err)
{
        size_t left = img->len - img->off;
        uint32_t n;

        if (left == 0)
                return 0;
        if (left < 4)
                return em_error_set(err, EBADMSG, "%s: truncated record length at offset %zu",
                                    img->name, img->off);
        n = get32(img->buf + img->off);
        if (n > EM_CRIU_REC_MAX || n > left - 4)
                return em_error_set(err, EBADMSG,
                                    "%s: record of %u bytes at offset %zu, %zu bytes left",
                                    img->name, n, img->off, left - 4);
        *rec = img->buf + img->off + 4;
        *len = n;
        img->off += 4 + (size_t)n;
        return 1;
}
