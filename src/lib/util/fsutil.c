#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

int em_write_all(int fd, const void *buf, size_t len, em_error_t *err)
{
        const char *p = buf;

        while (len > 0) {
                ssize_t w = write(fd, p, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return em_error_set(err, errno, "write");
                }
                p += w;
                len -= (size_t)w;
        }
        return 0;
}

ssize_t em_read_all(int fd, void *buf, size_t len, em_error_t *err)
{
        char *p = buf;
        size_t got = 0;

        while (got < len) {
                ssize_t r = read(fd, p + got, len - got);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return em_error_set(err, errno, "read");
                }
                if (r == 0)
                        break;
                got += (size_t)r;
        }
        return (ssize_t)got;
}

int em_fsync_dir(const char *dir, em_error_t *err)
{
        cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "opening directory %s", dir);
        if (fsync(fd) < 0)
                return em_error_set(err, errno, "fsync %s", dir);
        return 0;
}

int em_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         em_error_t *err)
{
        cleanup_free char *tmp = NULL, *dircopy = NULL;
        cleanup_close int fd = -1;

        if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
                return em_error_set(err, ENOMEM, "writing %s", path);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return em_error_set(err, errno, "creating temporary file for %s", path);
        if (fchmod(fd, mode) < 0 || em_write_all(fd, data, len, err) < 0 || fsync(fd) < 0) {
                int e = errno;
                unlink(tmp);
                if (*err == NULL)
                        em_error_set(err, e, "writing %s", tmp);
                return em_error_wrap(err, "writing %s", path);
        }
        if (rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                return em_error_set(err, e, "renaming %s to %s", tmp, path);
        }
        dircopy = strdup(path);
        if (dircopy == NULL)
                return em_error_set(err, ENOMEM, "writing %s", path);
        return em_fsync_dir(dirname(dircopy), err);
}

int em_read_file(const char *path, size_t max_len, char **out, size_t *out_len, em_error_t *err)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        cleanup_free char *buf = NULL;
        /* Read up to max_len + 1 bytes: a file of exactly max_len is allowed. */
        size_t limit = max_len + 1, cap = limit < 4096 ? limit : 4096, len = 0;

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", path);
        buf = malloc(cap + 1);
        if (buf == NULL)
                return em_error_set(err, ENOMEM, "reading %s", path);
        for (;;) {
                if (len == cap) {
                        if (cap >= limit)
                                return em_error_set(err, EFBIG, "reading %s: larger than %zu bytes",
                                                    path, max_len);
                        cap = cap > limit / 2 ? limit : cap * 2;
                        char *n = realloc(buf, cap + 1);
                        if (n == NULL)
                                return em_error_set(err, ENOMEM, "reading %s", path);
                        buf = n;
                }
                ssize_t r = read(fd, buf + len, cap - len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return em_error_set(err, errno, "reading %s", path);
                if (r == 0)
                        break;
                len += (size_t)r;
        }
        if (len > max_len)
                return em_error_set(err, EFBIG, "reading %s: larger than %zu bytes", path, max_len);
        buf[len] = '\0';
        if (out_len)
                *out_len = len;
        *out = steal_pointer(&buf);
        return 0;
}

int em_mkdir_p(const char *path, mode_t mode, em_error_t *err)
{
        cleanup_free char *copy = strdup(path);

        if (copy == NULL)
                return em_error_set(err, ENOMEM, "mkdir %s", path);
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, mode) < 0 && errno != EEXIST)
                        return em_error_set(err, errno, "creating directory %s", copy);
                *p = '/';
        }
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                return em_error_set(err, errno, "creating directory %s", copy);
        struct stat st;
        if (stat(path, &st) < 0)
                return em_error_set(err, errno, "creating directory %s", path);
        if (!S_ISDIR(st.st_mode))
                return em_error_set(err, ENOTDIR, "creating directory %s", path);
        return 0;
}

static int rm_rf_children(int dfd, dev_t dev, em_error_t *err);

/* A bind mount of the same file system keeps st_dev, so also ask statx. */
static bool is_mount_root(int dirfd, const char *name)
{
        struct statx stx;

        if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, 0, &stx) < 0)
                return false;
        return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
               (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static int rm_entry_at(int dirfd, const char *name, dev_t dev, em_error_t *err)
{
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return em_error_set(err, errno, "stat %s", name);
        }
        if (S_ISDIR(st.st_mode)) {
                if (st.st_dev != dev || is_mount_root(dirfd, name))
                        return em_error_set(err, EBUSY, "refusing to cross mount point at %s",
                                            name);
                cleanup_close int cfd =
                    openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (cfd < 0)
                        return em_error_set(err, errno, "opening %s", name);
                if (rm_rf_children(steal_fd(&cfd), dev, err) < 0)
                        return em_error_wrap(err, "%s", name);
                if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        return em_error_set(err, errno, "removing directory %s", name);
                return 0;
        }
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return em_error_set(err, errno, "removing %s", name);
        return 0;
}

/* Takes ownership of dfd. */
static int rm_rf_children(int dfd, dev_t dev, em_error_t *err)
{
        cleanup_dir DIR *d = fdopendir(dfd);
        struct dirent *de;

        if (d == NULL) {
                close(dfd);
                return em_error_set(err, errno, "fdopendir");
        }
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (rm_entry_at(dirfd(d), de->d_name, dev, err) < 0)
                        return -1;
        }
        return 0;
}

int em_rm_rf_at(int dirfd, const char *name, em_error_t *err)
{
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "stat %s", name);
        if (rm_entry_at(dirfd, name, st.st_dev, err) < 0)
                return em_error_wrap(err, "removing %s", name);
        return 0;
}

int em_rm_rf(const char *path, em_error_t *err)
{
        return em_rm_rf_at(AT_FDCWD, path, err);
}

bool em_path_exists(const char *path)
{
        struct stat st;
        return lstat(path, &st) == 0;
}

char *em_path_join(const char *a, const char *b)
{
        char *out = NULL;
        size_t la = strlen(a);

        while (*b == '/')
                b++;
        if (asprintf(&out, "%s%s%s", a, (la > 0 && a[la - 1] == '/') ? "" : "/", b) < 0)
                return NULL;
        return out;
}

/* Appends the components of rest to out (a real path, room for PATH_MAX):
 * they do not exist, so none is a symlink and ".." just drops one. */
static void append_lexically(char *out, const char *rest)
{
        cleanup_free char *copy = strdup(rest);
        char *save = NULL;

        for (char *c = copy ? strtok_r(copy, "/", &save) : NULL; c;
             c = strtok_r(NULL, "/", &save)) {
                if (strcmp(c, ".") == 0)
                        continue;
                if (strcmp(c, "..") == 0) {
                        char *slash = strrchr(out, '/');
                        if (slash != NULL)
                                slash[slash == out ? 1 : 0] = '\0';
                        continue;
                }
                if (strlen(out) + strlen(c) + 2 < PATH_MAX)
                        strcat(strcmp(out, "/") ? strcat(out, "/") : out, c);
        }
}

/* The real path of path, which may not exist yet: its deepest existing
 * ancestor resolved, the rest appended. */
static char *resolve_partly(const char *path)
{
        size_t n = strlen(path);

        for (;;) {
                cleanup_free char *prefix =
                    n > 0 ? strndup(path, n) : strdup(path[0] == '/' ? "/" : ".");
                char *real = prefix ? realpath(prefix, NULL) : NULL;
                if (real != NULL) {
                        char *out = realloc(real, PATH_MAX);
                        if (out == NULL) {
                                free(real);
                                return NULL;
                        }
                        append_lexically(out, path + n);
                        return out;
                }
                if (prefix == NULL || n == 0)
                        return NULL;
                while (n > 0 && path[n - 1] != '/')
                        n--;
                while (n > 1 && path[n - 1] == '/')
                        n--;
                if (n == 1 && path[0] == '/')
                        n = 0;
        }
}

int em_path_within(const char *path, const char *dir, bool *within, em_error_t *err)
{
        cleanup_free char *p = resolve_partly(path);
        cleanup_free char *d = resolve_partly(dir);

        if (p == NULL || d == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "resolving %s and %s", path, dir);
        size_t n = strlen(d);
        *within = strncmp(p, d, n) == 0 && (p[n] == '\0' || p[n] == '/' || strcmp(d, "/") == 0);
        return 0;
}

/* Counts newlines backwards from end; the newline that ends the file does
 * not start a line. */
int em_tail_offset(int fd, uint64_t lines, off_t *out, em_error_t *err)
{
        char buf[65536];
        struct stat st;
        uint64_t seen = 0;

        *out = 0;
        if (fstat(fd, &st) < 0)
                return em_error_set(err, errno, "stat");
        off_t end = st.st_size;
        if (lines == 0) {
                *out = end;
                return 0;
        }
        for (off_t pos = end; pos > 0 && lines > 0;) {
                size_t len = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
                pos -= (off_t)len;
                ssize_t n = pread(fd, buf, len, pos);
                if (n != (ssize_t)len)
                        return em_error_set(err, n < 0 ? errno : EIO, "reading backwards");
                for (size_t i = len; i-- > 0;) {
                        if (buf[i] != '\n' || pos + (off_t)i == end - 1)
                                continue;
                        if (++seen == lines) {
                                *out = pos + (off_t)i + 1;
                                return 0;
                        }
                }
        }
        return 0;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_name(char ***v, size_t *n, const char *name, const char *what, em_error_t *err)
{
        char **nv = realloc(*v, sizeof(char *) * (*n + 2));

        if (nv == NULL)
                return em_error_set(err, ENOMEM, "listing %s", what);
        *v = nv;
        nv[*n] = strdup(name);
        nv[*n + 1] = NULL;
        if (nv[*n] == NULL)
                return em_error_set(err, ENOMEM, "listing %s", what);
        (*n)++;
        return 0;
}

int em_dir_names_at(int dirfd, bool (*keep)(const char *name), size_t max, const char *what,
                    char ***out, em_error_t *err)
{
        int fd = dup(dirfd);
        cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        cleanup_strv char **v = calloc(1, sizeof(char *));
        size_t n = 0;
        struct dirent *de;

        if (d == NULL || v == NULL) {
                if (fd >= 0 && d == NULL)
                        close(fd);
                return em_error_set(err, errno ? errno : ENOMEM, "listing %s", what);
        }
        rewinddir(d); /* the dup shares dirfd's offset */
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    (keep != NULL && !keep(de->d_name)))
                        continue;
                if (n >= max)
                        return em_error_set(err, E2BIG, "more than %zu files in %s", max, what);
                if (add_name(&v, &n, de->d_name, what, err) < 0)
                        return -1;
        }
        qsort(v, n, sizeof(char *), cmp_str);
        *out = steal_pointer(&v);
        return 0;
}

int em_dir_each(const char *dir, em_dir_fn fn, void *ud, const char *what, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0, r, failed = 0;

        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", dir);
        while ((de = readdir(d)) != NULL) {
                cleanup_error em_error_t e = NULL;
                if (de->d_name[0] == '.')
                        continue;
                cleanup_free char *path = em_path_join(dir, de->d_name);
                if (path == NULL)
                        return em_error_set(err, ENOMEM, "reading %s", dir);
                if ((r = fn(path, de->d_name, ud, &e)) < 0) {
                        em_log_error("%s", em_error_msg(e));
                        failed++;
                }
                n += r > 0 ? r : 0;
        }
        if (failed > 0)
                return em_error_set(err, EIO, "%d %s could not be recovered (see log)", failed,
                                    what);
        return n;
}
