#include "checkpoint/userns_img.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/pbwire.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define IMG_MAGIC    0x54564319u
#define ENTRY_MAX    480
#define FIELD_UIDMAP 1
#define FIELD_GIDMAP 2

static uint32_t get_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

int em_userns_img_decode(const uint8_t *buf, size_t len, struct em_ck_userns *out, em_error_t *err)
{
        memset(out, 0, sizeof(*out));
        if (len < 12 || get_le32(buf) != IMG_MAGIC)
                return em_error_set_code(err, EPROTO, "userns image: not a CRIU image");
        uint32_t elen = get_le32(buf + 8);
        if (elen > ENTRY_MAX || elen != len - 12)
                return em_error_set_code(err, EPROTO, "userns image: entry length %u of %zu bytes",
                                         elen, len);
        /* The validator's decoder, so restore reads the map it checked. */
        if (em_ck_decode_userns("userns image", buf + 12, elen, out, err) < 0)
                return -1;
        if (out->n_uid > EM_USERNS_IMG_MAX_EXTENTS || out->n_gid > EM_USERNS_IMG_MAX_EXTENTS)
                return em_error_set_code(err, EPROTO, "userns image: too many extents");
        return 0;
}

static size_t put_extent(uint8_t *p, unsigned field, uint32_t first, uint32_t lower, uint32_t count)
{
        uint8_t body[32];
        size_t b = 0, n = 0;

        b += em_pb_put_varint(body + b, 1 << 3);
        b += em_pb_put_varint(body + b, first);
        b += em_pb_put_varint(body + b, 2 << 3);
        b += em_pb_put_varint(body + b, lower);
        b += em_pb_put_varint(body + b, 3 << 3);
        b += em_pb_put_varint(body + b, count);
        n += em_pb_put_varint(p + n, field << 3 | 2);
        n += em_pb_put_varint(p + n, b);
        memcpy(p + n, body, b);
        return n + b;
}

size_t em_userns_img_encode(const struct em_ck_userns *m, uint32_t magic2, uint8_t *buf)
{
        size_t n = 12;

        for (size_t i = 0; i < m->n_uid; i++)
                n += put_extent(buf + n, FIELD_UIDMAP, m->uid[i].first, m->uid[i].lower_first,
                                m->uid[i].count);
        for (size_t i = 0; i < m->n_gid; i++)
                n += put_extent(buf + n, FIELD_GIDMAP, m->gid[i].first, m->gid[i].lower_first,
                                m->gid[i].count);
        put_le32(buf, IMG_MAGIC);
        put_le32(buf + 4, magic2);
        put_le32(buf + 8, (uint32_t)(n - 12));
        return n;
}

static int move_one(const char *what, uint32_t first, uint32_t *lower, uint32_t count,
                    const struct em_idrange *from, const struct em_idrange *to, em_error_t *err)
{
        uint64_t off = (uint64_t)*lower - from->base;

        if (*lower < from->base || off + count > from->size || (uint64_t)first + count > to->size ||
            off != first)
                return em_error_set_code(err, EPERM,
                                         "userns image: %s extent %u %u %u is not the "
                                         "container's range %u+%u",
                                         what, first, *lower, count, from->base, from->size);
        *lower = to->base + (uint32_t)off;
        return 0;
}

int em_userns_map_move(struct em_ck_userns *m, const struct em_idrange *from,
                       const struct em_idrange *to, em_error_t *err)
{
        if (m->n_uid == 0 || m->n_gid == 0)
                return em_error_set_code(err, EPERM, "userns image: no uid or gid mapping");
        for (size_t i = 0; i < m->n_uid; i++) {
                if (move_one("uid", m->uid[i].first, &m->uid[i].lower_first, m->uid[i].count, from,
                             to, err) < 0)
                        return -1;
        }
        for (size_t i = 0; i < m->n_gid; i++) {
                if (move_one("gid", m->gid[i].first, &m->gid[i].lower_first, m->gid[i].count, from,
                             to, err) < 0)
                        return -1;
        }
        return 0;
}

static int remap_file(int dfd, const char *name, const struct em_idrange *from,
                      const struct em_idrange *to, em_error_t *err)
{
        uint8_t buf[512], out[EM_USERNS_IMG_ENCODED_MAX];
        struct em_ck_userns m;
        cleanup_close int fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", name);
        ssize_t n = em_read_all(fd, buf, sizeof(buf), err);
        if (n < 0 || em_userns_img_decode(buf, (size_t)n, &m, err) < 0 ||
            em_userns_map_move(&m, from, to, err) < 0)
                return em_error_wrap(err, "%s", name);
        if (from->base == to->base)
                return 0;
        size_t len = em_userns_img_encode(&m, get_le32(buf + 4), out);
        if (ftruncate(fd, 0) < 0 || pwrite(fd, out, len, 0) != (ssize_t)len)
                return em_error_set(err, errno, "rewriting %s", name);
        return 0;
}

static bool is_userns_img(const char *name)
{
        size_t len = strlen(name);
        return strncmp(name, "userns-", 7) == 0 && len > 11 && strcmp(name + len - 4, ".img") == 0;
}

int em_userns_img_remap(const char *dir, const struct em_idrange *from, const struct em_idrange *to,
                        em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;
        int found = 0;

        if (d == NULL)
                return em_error_set(err, errno, "opening %s", dir);
        while ((de = readdir(d)) != NULL) {
                if (!is_userns_img(de->d_name))
                        continue;
                if (found++ > 0)
                        return em_error_set_code(err, EPERM, "%s: more than one user namespace",
                                                 dir);
                if (remap_file(dirfd(d), de->d_name, from, to, err) < 0)
                        return em_error_wrap(err, "checking the user namespace in %s", dir);
        }
        if (found == 0)
                return em_error_set_code(err, ENOENT,
                                         "%s: the checkpoint has no user namespace, and this "
                                         "host runs every container in one",
                                         dir);
        return 0;
}
