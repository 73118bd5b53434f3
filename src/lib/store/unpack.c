#include "store/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

#define RESOLVE_SAFE (RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
#define WH_PREFIX    ".wh."
#define WH_OPAQUE    ".wh..wh..opq"

static void free_archive(struct archive **a)
{
        if (*a != NULL)
                archive_read_free(*a);
        *a = NULL;
}
#define cleanup_archive __attribute__((cleanup(free_archive)))

/* A printable, bounded copy of an entry name for error messages. */
static const char *shown(const char *name, char buf[112])
{
        size_t n = strlen(name);

        if (n < 80)
                return name;
        snprintf(buf, 112, "%.64s...(%zu bytes)", name, n);
        return buf;
}

int em_tarpath_clean(const char *name, char *out, size_t out_size, em_error_t *err)
{
        char sb[112];
        size_t len = strlen(name), o = 0;

        if (len == 0)
                return em_error_set(err, EINVAL, "entry with an empty name");
        if (len >= PATH_MAX || out_size < len + 1)
                return em_error_set(err, ENAMETOOLONG, "entry '%s': name too long",
                                    shown(name, sb));
        if (name[0] == '/')
                return em_error_set(err, EPERM, "entry '%s': absolute path", shown(name, sb));
        for (const char *p = name; *p != '\0';) {
                const char *slash = strchr(p, '/');
                size_t clen = slash != NULL ? (size_t)(slash - p) : strlen(p);

                if (clen == 2 && p[0] == '.' && p[1] == '.')
                        return em_error_set(err, EPERM, "entry '%s': '..' component",
                                            shown(name, sb));
                if (clen > NAME_MAX)
                        return em_error_set(err, ENAMETOOLONG,
                                            "entry '%s': component of %zu bytes (max %d)",
                                            shown(name, sb), clen, NAME_MAX);
                if (clen > 0 && !(clen == 1 && p[0] == '.')) {
                        if (o > 0)
                                out[o++] = '/';
                        memcpy(out + o, p, clen);
                        o += clen;
                }
                p += clen;
                while (*p == '/')
                        p++;
        }
        out[o] = '\0';
        return 0;
}

struct dir_time {
        char *path;
        struct timespec mtime;
};

struct unpacker {
        int root_fd;
        int parent_fd; /* cached fd of parent_path, -1 if none */
        char parent_path[PATH_MAX];
        struct dir_time *dirs;
        size_t n_dirs, cap_dirs;
        struct archive *tar;
        uint64_t skipped_devices;
};

static void unpacker_clear(struct unpacker *u)
{
        if (u->parent_fd >= 0)
                close(u->parent_fd);
        u->parent_fd = -1;
        for (size_t i = 0; i < u->n_dirs; i++)
                free(u->dirs[i].path);
        free(u->dirs);
        u->dirs = NULL;
        u->n_dirs = 0;
}

static int openat2_safe(int dirfd, const char *path, int flags, em_error_t *err)
{
        struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC, .resolve = RESOLVE_SAFE};
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

        return fd < 0 ? -1 : (int)fd;
}

static int parent_error(const char *entry, int e, em_error_t *err)
{
        char sb[112];

        if (e == ELOOP || e == EXDEV)
                return em_error_set(err, EPERM, "entry '%s': path goes through a symlink",
                                    shown(entry, sb));
        if (e == ENOTDIR)
                return em_error_set(err, ENOTDIR, "entry '%s': a parent is not a directory",
                                    shown(entry, sb));
        return em_error_set(err, e, "entry '%s': opening its parent directory", shown(entry, sb));
}

/* Creates the missing directories of dir one component at a time, never
 * following a symlink. Returns an fd of dir. */
static int mkdir_parents(int root_fd, const char *dir, const char *entry, em_error_t *err)
{
        cleanup_free char *copy = strdup(dir);
        cleanup_close int fd = dup(root_fd);
        char *save = NULL;

        if (copy == NULL || fd < 0)
                return em_error_set(err, errno, "entry '%s'", entry);
        for (char *c = strtok_r(copy, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
                if (mkdirat(fd, c, 0755) < 0 && errno != EEXIST)
                        return em_error_set(err, errno, "entry '%s': creating parent '%s'", entry,
                                            c);
                int nfd = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0)
                        return parent_error(entry, errno, err);
                close(fd);
                fd = nfd;
        }
        return steal_fd(&fd);
}

/* The fd of the entry's parent directory (borrowed from the cache). */
static int open_parent(struct unpacker *u, const char *dir, const char *entry, em_error_t *err)
{
        if (*dir == '\0')
                return u->root_fd;
        if (u->parent_fd >= 0 && strcmp(dir, u->parent_path) == 0)
                return u->parent_fd;
        int fd = openat2_safe(u->root_fd, dir, O_RDONLY | O_DIRECTORY, err);
        if (fd < 0 && errno == ENOENT)
                fd = mkdir_parents(u->root_fd, dir, entry, err);
        else if (fd < 0)
                return parent_error(entry, errno, err);
        if (fd < 0)
                return -1;
        if (u->parent_fd >= 0)
                close(u->parent_fd);
        u->parent_fd = fd;
        snprintf(u->parent_path, sizeof(u->parent_path), "%s", dir);
        return fd;
}

/* Removes whatever is at parent/name (a file or a whole tree). */
static int remove_existing(struct unpacker *u, int parent, const char *name, em_error_t *err)
{
        /* The cached parent may live inside the tree we remove. */
        if (u->parent_fd >= 0 && u->parent_fd != parent) {
                close(u->parent_fd);
                u->parent_fd = -1;
        }
        if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return em_error_set(err, errno, "removing existing '%s'", name);
        return em_rm_rf_at(parent, name, err);
}

static int set_xattrs(int fd, struct archive_entry *e, const char *entry, em_error_t *err)
{
        const char *name;
        const void *value;
        size_t size;

        if (archive_entry_xattr_reset(e) == 0)
                return 0;
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                /* Overlay metadata in a layer could redirect lookups: only our own
                 * whiteout conversion may set it. */
                if (strncmp(name, "trusted.overlay.", 16) == 0) {
                        em_log_debug("layer entry '%s': dropping xattr %s", entry, name);
                        continue;
                }
                if (fsetxattr(fd, name, value, size, 0) < 0 && errno != EOPNOTSUPP)
                        return em_error_set(err, errno, "entry '%s': setting xattr %s", entry,
                                            name);
        }
        return 0;
}

static int set_owner_mode(int fd, struct archive_entry *e, const char *entry, em_error_t *err)
{
        if (fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0)
                return em_error_set(err, errno, "entry '%s': chown", entry);
        if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
                return em_error_set(err, errno, "entry '%s': chmod", entry);
        return set_xattrs(fd, e, entry, err);
}

static struct timespec entry_mtime(struct archive_entry *e)
{
        struct timespec ts = {.tv_sec = 0, .tv_nsec = UTIME_OMIT};

        if (archive_entry_mtime_is_set(e)) {
                ts.tv_sec = archive_entry_mtime(e);
                ts.tv_nsec = archive_entry_mtime_nsec(e);
        }
        return ts;
}

static int write_data(struct unpacker *u, int fd, struct archive_entry *e, const char *entry,
                      em_error_t *err)
{
        const void *buf;
        size_t size;
        la_int64_t off, end = 0;
        int rc;

        while ((rc = archive_read_data_block(u->tar, &buf, &size, &off)) == ARCHIVE_OK) {
                const char *p = buf;
                while (size > 0) {
                        ssize_t n = pwrite(fd, p, size, off);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return em_error_set(err, errno, "entry '%s': write", entry);
                        p += n, off += n, size -= (size_t)n;
                }
                end = off;
        }
        if (rc != ARCHIVE_EOF)
                return em_error_set(err, EIO, "entry '%s': reading data: %s", entry,
                                    archive_error_string(u->tar));
        /* A sparse file may end in a hole. */
        if (end < archive_entry_size(e) && ftruncate(fd, archive_entry_size(e)) < 0)
                return em_error_set(err, errno, "entry '%s': truncate", entry);
        return 0;
}

static int do_regular(struct unpacker *u, int parent, const char *base, struct archive_entry *e,
                      const char *entry, em_error_t *err)
{
        const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
        cleanup_close int fd = openat(parent, base, flags, 0600);

        if (fd < 0 && errno == EEXIST) {
                if (remove_existing(u, parent, base, err) < 0)
                        return em_error_wrap(err, "entry '%s'", entry);
                fd = openat(parent, base, flags, 0600);
        }
        if (fd < 0)
                return em_error_set(err, errno, "entry '%s': creating file", entry);
        if (write_data(u, fd, e, entry, err) < 0 || set_owner_mode(fd, e, entry, err) < 0)
                return -1;
        struct timespec ts[2] = {entry_mtime(e), entry_mtime(e)};
        if (futimens(fd, ts) < 0)
                return em_error_set(err, errno, "entry '%s': setting times", entry);
        return 0;
}

static int remember_dir(struct unpacker *u, const char *path, struct archive_entry *e,
                        em_error_t *err)
{
        if (u->n_dirs == u->cap_dirs) {
                size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 256;
                struct dir_time *d = realloc(u->dirs, cap * sizeof(*d));
                if (d == NULL)
                        return em_error_set(err, ENOMEM, "directory list");
                u->dirs = d, u->cap_dirs = cap;
        }
        u->dirs[u->n_dirs].path = strdup(path);
        u->dirs[u->n_dirs].mtime = entry_mtime(e);
        if (u->dirs[u->n_dirs].path == NULL)
                return em_error_set(err, ENOMEM, "directory list");
        u->n_dirs++;
        return 0;
}

static int do_dir(struct unpacker *u, int parent, const char *base, const char *path,
                  struct archive_entry *e, em_error_t *err)
{
        struct stat st;
        cleanup_close int fd = -1;

        if (*path == '\0') {
                fd = dup(u->root_fd);
        } else {
                if (mkdirat(parent, base, 0700) < 0 && errno == EEXIST &&
                    fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
                        if (remove_existing(u, parent, base, err) < 0)
                                return em_error_wrap(err, "entry '%s'", path);
                        mkdirat(parent, base, 0700);
                }
                fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0)
                return em_error_set(err, errno, "entry '%s': creating directory", path);
        if (set_owner_mode(fd, e, path, err) < 0)
                return -1;
        return remember_dir(u, path, e, err);
}

static int do_symlink(struct unpacker *u, int parent, const char *base, struct archive_entry *e,
                      const char *entry, em_error_t *err)
{
        const char *target = archive_entry_symlink(e);
        struct timespec ts[2] = {entry_mtime(e), entry_mtime(e)};

        if (target == NULL || *target == '\0' || strlen(target) >= PATH_MAX)
                return em_error_set(err, EINVAL, "entry '%s': bad symlink target", entry);
        if (symlinkat(target, parent, base) < 0 && errno == EEXIST) {
                if (remove_existing(u, parent, base, err) < 0)
                        return em_error_wrap(err, "entry '%s'", entry);
                if (symlinkat(target, parent, base) < 0)
                        return em_error_set(err, errno, "entry '%s': symlink", entry);
        }
        if (fchownat(parent, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
                     AT_SYMLINK_NOFOLLOW) < 0)
                return em_error_set(err, errno, "entry '%s': chown", entry);
        if (utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return em_error_set(err, errno, "entry '%s': setting times", entry);
        return 0;
}

static int do_hardlink(struct unpacker *u, int parent, const char *base, const char *target_raw,
                       const char *entry, em_error_t *err)
{
        char target[PATH_MAX];
        struct stat st;

        if (em_tarpath_clean(target_raw, target, sizeof(target), err) < 0)
                return em_error_wrap(err, "entry '%s': hardlink target", entry);
        cleanup_close int tfd = openat2_safe(u->root_fd, target, O_PATH | O_NOFOLLOW, err);
        if (tfd < 0)
                return em_error_set(err, errno == ELOOP || errno == EXDEV ? EPERM : errno,
                                    "entry '%s': hardlink target '%s' is not inside the layer",
                                    entry, target);
        if (fstat(tfd, &st) < 0 || S_ISDIR(st.st_mode))
                return em_error_set(err, EPERM, "entry '%s': hardlink to a directory", entry);
        if (linkat(tfd, "", parent, base, AT_EMPTY_PATH) == 0)
                return 0;
        if (errno != EEXIST)
                return em_error_set(err, errno, "entry '%s': hardlink", entry);
        if (remove_existing(u, parent, base, err) < 0)
                return em_error_wrap(err, "entry '%s'", entry);
        if (linkat(tfd, "", parent, base, AT_EMPTY_PATH) < 0)
                return em_error_set(err, errno, "entry '%s': hardlink", entry);
        return 0;
}

/* mknod of a whiteout (char 0/0) or fifo, replacing what is there. */
static int do_node(struct unpacker *u, int parent, const char *base, mode_t mode, uid_t uid,
                   gid_t gid, const char *entry, em_error_t *err)
{
        if (mknodat(parent, base, mode, 0) < 0) {
                if (errno != EEXIST || remove_existing(u, parent, base, err) < 0 ||
                    mknodat(parent, base, mode, 0) < 0)
                        return em_error_set(err, errno, "entry '%s': mknod", entry);
        }
        if (fchownat(parent, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return em_error_set(err, errno, "entry '%s': chown", entry);
        return 0;
}

/* .wh..wh..opq marks its directory opaque; .wh.NAME becomes a 0/0 char device. */
static int do_whiteout(struct unpacker *u, int parent, const char *base, const char *entry,
                       em_error_t *err)
{
        if (strcmp(base, WH_OPAQUE) == 0) {
                if (fsetxattr(parent, "trusted.overlay.opaque", "y", 1, 0) < 0)
                        return em_error_set(err, errno, "entry '%s': marking directory opaque",
                                            entry);
                return 0;
        }
        const char *name = base + strlen(WH_PREFIX);
        if (strncmp(base, ".wh..wh.", 8) == 0) {
                em_log_debug("layer entry '%s': skipping aufs metadata", entry);
                return 0;
        }
        if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return em_error_set(err, EINVAL, "entry '%s': bad whiteout", entry);
        return do_node(u, parent, name, S_IFCHR | 0000, 0, 0, entry, err);
}

/* A debootstrap rootfs carries /dev/null, /dev/tty and friends. runc
 * populates the container's /dev itself, and a device node from a layer
 * could open the host's disks or memory, so the entry is left out (as
 * rootless podman and umoci do) and the rest of the layer is kept. */
static int skip_device(struct unpacker *u, struct archive_entry *e, const char *path)
{
        char sb[112];

        em_log_warn("layer entry '%s': skipping %s device node %u:%u (runc creates /dev)",
                    shown(path, sb), archive_entry_filetype(e) == AE_IFBLK ? "block" : "char",
                    major(archive_entry_rdev(e)), minor(archive_entry_rdev(e)));
        u->skipped_devices++;
        return 0;
}

static int dispatch(struct unpacker *u, int parent, const char *base, const char *path,
                    struct archive_entry *e, em_error_t *err)
{
        const char *hl = archive_entry_hardlink(e);
        mode_t type = archive_entry_filetype(e);
        char sb[112];

        if (*path != '\0' && strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0)
                return do_whiteout(u, parent, base, path, err);
        if (hl != NULL)
                return do_hardlink(u, parent, base, hl, path, err);
        switch (type) {
        case AE_IFREG:
                return do_regular(u, parent, base, e, path, err);
        case AE_IFDIR:
                return do_dir(u, parent, base, path, e, err);
        case AE_IFLNK:
                return do_symlink(u, parent, base, e, path, err);
        case AE_IFIFO:
                return do_node(u, parent, base, S_IFIFO | (archive_entry_perm(e) & 0777),
                               (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), path, err);
        case AE_IFCHR:
                if (archive_entry_rdev(e) == 0)
                        return do_node(u, parent, base, S_IFCHR, 0, 0, path, err);
                /* fallthrough */
        case AE_IFBLK:
                return skip_device(u, e, path);
        default:
                return em_error_set(err, EPERM, "entry '%s': unsupported file type 0%o",
                                    shown(path, sb), (unsigned)type);
        }
}

static int apply_entry(struct unpacker *u, struct archive_entry *e, em_error_t *err)
{
        const char *raw = archive_entry_pathname(e);
        char path[PATH_MAX], dir[PATH_MAX];

        if (raw == NULL)
                return em_error_set(err, EINVAL, "entry without a (decodable) name");
        if (em_tarpath_clean(raw, path, sizeof(path), err) < 0)
                return -1;
        if (*path == '\0' && archive_entry_filetype(e) != AE_IFDIR)
                return em_error_set(err, EINVAL, "entry '%s': the layer root must be a directory",
                                    raw);
        const char *slash = strrchr(path, '/');
        const char *base = slash != NULL ? slash + 1 : path;
        size_t dlen = slash != NULL ? (size_t)(slash - path) : 0;
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
        int parent = open_parent(u, dir, path, err);
        if (parent < 0)
                return -1;
        return dispatch(u, parent, base, path, e, err);
}

/* Directory mtimes last: creating children changes them. Reopened with the safe
 * resolver since a later entry may have replaced a component by a symlink. */
static int apply_dir_times(struct unpacker *u, em_error_t *err)
{
        for (size_t i = u->n_dirs; i-- > 0;) {
                const struct dir_time *d = &u->dirs[i];
                struct timespec ts[2] = {d->mtime, d->mtime};
                cleanup_close int fd = *d->path == '\0' ? dup(u->root_fd)
                                                        : openat2_safe(u->root_fd, d->path,
                                                                       O_RDONLY | O_DIRECTORY, err);
                if (fd < 0)
                        continue; /* replaced or removed by a later entry */
                if (futimens(fd, ts) < 0)
                        return em_error_set(err, errno, "entry '%s': setting times", d->path);
        }
        return 0;
}

/* The tar reader pulls the decompressed stream from a raw reader and hashes it
 * on the way: the diff-id is verified in the same single pass. */
struct raw_src {
        struct archive *raw;
        em_sha256_t *h;
        uint64_t n;
};

static la_ssize_t raw_read(struct archive *a, void *ud, const void **buf)
{
        struct raw_src *r = ud;
        size_t size;
        la_int64_t off;
        int rc = archive_read_data_block(r->raw, buf, &size, &off);

        if (rc == ARCHIVE_EOF)
                return 0;
        if (rc != ARCHIVE_OK) {
                archive_set_error(a, archive_errno(r->raw) ? archive_errno(r->raw) : EIO, "%s",
                                  archive_error_string(r->raw));
                return -1;
        }
        em_sha256_update(r->h, *buf, size);
        r->n += size;
        return (la_ssize_t)size;
}

static int check_magic(int fd, enum em_compression comp, em_error_t *err)
{
        unsigned char m[4] = {0};
        ssize_t n = pread(fd, m, sizeof(m), 0);

        if (n < 0)
                return em_error_set(err, errno, "reading layer");
        if (comp == EM_COMP_GZIP && !(n >= 2 && m[0] == 0x1f && m[1] == 0x8b))
                return em_error_set(err, EINVAL, "layer is not gzip-compressed as declared");
        if (comp == EM_COMP_ZSTD &&
            !(n == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd))
                return em_error_set(err, EINVAL, "layer is not zstd-compressed as declared");
        return 0;
}

static int open_raw(int fd, enum em_compression comp, struct archive **out, em_error_t *err)
{
        cleanup_archive struct archive *raw = archive_read_new();
        struct archive_entry *ae;

        if (raw == NULL)
                return em_error_set(err, ENOMEM, "archive_read_new");
        if (comp == EM_COMP_GZIP)
                archive_read_support_filter_gzip(raw);
        else if (comp == EM_COMP_ZSTD)
                archive_read_support_filter_zstd(raw);
        archive_read_support_format_raw(raw);
        archive_read_support_format_empty(raw);
        if (lseek(fd, 0, SEEK_SET) < 0)
                return em_error_set(err, errno, "seeking layer blob");
        if (archive_read_open_fd(raw, fd, 1 << 20) != ARCHIVE_OK)
                return em_error_set(err, EIO, "opening layer stream: %s",
                                    archive_error_string(raw));
        int rc = archive_read_next_header(raw, &ae);
        if (rc != ARCHIVE_OK)
                return em_error_set(err, EIO, "decompressing layer: %s",
                                    rc == ARCHIVE_EOF ? "empty stream" : archive_error_string(raw));
        *out = steal_pointer(&raw);
        return 0;
}

static int unpack_stream(struct unpacker *u, struct raw_src *src, struct em_unpack_stats *st,
                         em_error_t *err)
{
        struct archive_entry *e;
        int rc;

        archive_read_support_format_tar(u->tar);
        if (archive_read_open(u->tar, src, NULL, raw_read, NULL) != ARCHIVE_OK)
                return em_error_set(err, EIO, "reading layer tar: %s",
                                    archive_error_string(u->tar));
        while ((rc = archive_read_next_header(u->tar, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
                if (apply_entry(u, e, err) < 0)
                        return -1;
                st->entries++;
        }
        if (rc != ARCHIVE_EOF)
                return em_error_set(err, EIO, "reading layer tar: %s",
                                    archive_error_string(u->tar));
        /* Hash what follows the end-of-archive blocks too. */
        const void *buf;
        while ((rc = (int)raw_read(u->tar, src, &buf)) > 0)
                ;
        if (rc < 0)
                return em_error_set(err, EIO, "reading layer: %s", archive_error_string(u->tar));
        return apply_dir_times(u, err);
}

static int make_tmp_dir(int parent, char name[32], em_error_t *err)
{
        for (int tries = 0; tries < 16; tries++) {
                unsigned char r[6];
                if (getrandom(r, sizeof(r), 0) != sizeof(r))
                        return em_error_set(err, errno, "getrandom");
                snprintf(name, 32, ".tmp-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
                         r[5]);
                if (mkdirat(parent, name, 0755) == 0)
                        return 0;
                if (errno != EEXIST)
                        return em_error_set(err, errno, "creating temporary layer directory");
        }
        return em_error_set(err, EEXIST, "creating temporary layer directory");
}

static int unpack_into(int blob_fd, const struct em_unpack_opts *o, int tmp_fd,
                       char diff_id[EM_DIGEST_STR_LEN + 1], struct em_unpack_stats *st,
                       em_error_t *err)
{
        cleanup_archive struct archive *raw = NULL;
        cleanup_archive struct archive *tar = archive_read_new();
        cleanup_sha256 em_sha256_t *h = em_sha256_new();
        struct unpacker u = {.root_fd = tmp_fd, .parent_fd = -1, .tar = tar};

        if (tar == NULL || h == NULL)
                return em_error_set(err, ENOMEM, "unpacking layer");
        if (check_magic(blob_fd, o->comp, err) < 0 || open_raw(blob_fd, o->comp, &raw, err) < 0)
                return -1;
        struct raw_src src = {.raw = raw, .h = h};
        int rc = unpack_stream(&u, &src, st, err);
        st->skipped_devices = u.skipped_devices;
        unpacker_clear(&u);
        if (rc < 0)
                return -1;
        em_sha256_final(h, diff_id);
        st->tar_bytes = src.n;
        if (o->expected_diff_id != NULL && strcmp(diff_id, o->expected_diff_id) != 0)
                return em_error_set(err, EBADMSG, "layer diff-id mismatch: expected %s, got %s",
                                    o->expected_diff_id, diff_id);
        if (o->durable && syncfs(tmp_fd) < 0)
                return em_error_set(err, errno, "syncfs");
        return 0;
}

int em_layer_unpack(int blob_fd, const struct em_unpack_opts *opts, int parent_dirfd,
                    const char *final_name, char diff_id_out[EM_DIGEST_STR_LEN + 1],
                    struct em_unpack_stats *stats, em_error_t *err)
{
        char tmp[32], diff_id[EM_DIGEST_STR_LEN + 1];
        struct em_unpack_stats st = {0};
        em_error_t rm_err = NULL;

        if (make_tmp_dir(parent_dirfd, tmp, err) < 0)
                return -1;
        cleanup_close int tmp_fd =
            openat(parent_dirfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tmp_fd < 0 || unpack_into(blob_fd, opts, tmp_fd, diff_id, &st, err) < 0 ||
            (renameat(parent_dirfd, tmp, parent_dirfd, final_name) < 0 && errno != EEXIST &&
             errno != ENOTEMPTY && em_error_set(err, errno, "renaming layer to %s", final_name))) {
                if (tmp_fd < 0)
                        em_error_set(err, errno, "opening %s", tmp);
                if (em_rm_rf_at(parent_dirfd, tmp, &rm_err) < 0) {
                        em_log_warn("removing partial layer %s: %s", tmp, em_error_msg(rm_err));
                        em_error_free(&rm_err);
                }
                return -1;
        }
        /* Lost a race with a concurrent unpack of the same layer: drop ours. */
        struct stat sb;
        if (fstatat(parent_dirfd, tmp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
            em_rm_rf_at(parent_dirfd, tmp, &rm_err) < 0)
                em_error_free(&rm_err);
        if (diff_id_out != NULL)
                memcpy(diff_id_out, diff_id, sizeof(diff_id));
        if (stats != NULL)
                *stats = st;
        return 0;
}
