#include "migrate/upper_entry.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define XATTR_LIST_MAX_ 65536
#define XATTR_VAL_MAX   65536

static char type_char(mode_t m)
{
        switch (m & S_IFMT) {
        case S_IFREG:
                return 'f';
        case S_IFDIR:
                return 'd';
        case S_IFLNK:
                return 'l';
        case S_IFCHR:
                return 'c';
        case S_IFBLK:
                return 'b';
        case S_IFIFO:
                return 'p';
        default:
                return '?';
        }
}

static char *hex_of(const unsigned char *v, size_t n)
{
        static const char hx[] = "0123456789abcdef";
        char *s = malloc(2 * n + 1);

        if (s == NULL)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                s[2 * i] = hx[v[i] >> 4];
                s[2 * i + 1] = hx[v[i] & 15];
        }
        s[2 * n] = '\0';
        return s;
}

static int read_xattrs(const char *fpath, json_t *out, em_error_t *err)
{
        cleanup_free char *names = malloc(XATTR_LIST_MAX_);
        cleanup_free unsigned char *val = malloc(XATTR_VAL_MAX);
        ssize_t len = names ? llistxattr(fpath, names, XATTR_LIST_MAX_) : -1;

        if (len < 0)
                return (errno == ENOTSUP) ? 0
                                          : em_error_set(err, errno, "listing xattrs of %s", fpath);
        for (char *n = names; n < names + len; n += strlen(n) + 1) {
                ssize_t vl = lgetxattr(fpath, n, val, XATTR_VAL_MAX);
                if (vl < 0)
                        return em_error_set(err, errno, "reading xattr %s of %s", n, fpath);
                cleanup_free char *hx = hex_of(val, (size_t)vl);
                if (hx == NULL)
                        return em_error_set(err, ENOMEM, "xattrs");
                json_object_set_new(out, n, json_string(hx));
        }
        return 0;
}

json_t *em_upper_entry_from_stat(const char *fpath, const char *rel, const struct stat *sb,
                                 em_error_t *err)
{
        char t[2] = {type_char(sb->st_mode), 0};
        json_t *x = json_object();
        json_t *e = json_pack("{s:s, s:s, s:i, s:i, s:i, s:I, s:[I,i], s:[I,i], s:I, s:[i,i], s:o}",
                              "path", rel, "type", t, "mode", (int)(sb->st_mode & 07777), "uid",
                              (int)sb->st_uid, "gid", (int)sb->st_gid, "size",
                              (json_int_t)sb->st_size, "mtime", (json_int_t)sb->st_mtim.tv_sec,
                              (int)sb->st_mtim.tv_nsec, "ctime", (json_int_t)sb->st_ctim.tv_sec,
                              (int)sb->st_ctim.tv_nsec, "ino", (json_int_t)sb->st_ino, "rdev",
                              (int)major(sb->st_rdev), (int)minor(sb->st_rdev), "xattrs", x);

        if (e == NULL || t[0] == '?') {
                json_decref(e);
                em_error_set(err, e ? ENOTSUP : ENOMEM, "unsupported file type at %s", rel);
                return NULL;
        }
        if (t[0] == 'l') {
                char target[4096];
                ssize_t n = readlink(fpath, target, sizeof(target) - 1);
                if (n < 0) {
                        json_decref(e);
                        em_error_set(err, errno, "readlink %s", rel);
                        return NULL;
                }
                target[n] = '\0';
                json_object_set_new(e, "target", json_string(target));
        } else if (read_xattrs(fpath, x, err) < 0) {
                json_decref(e);
                return NULL;
        }
        return e;
}

bool em_upper_entry_same_type(const json_t *a, const json_t *b)
{
        const char *ta = em_json_str(a, "type"), *tb = em_json_str(b, "type");
        return ta && tb && strcmp(ta, tb) == 0;
}

bool em_upper_entry_is_file(const json_t *e)
{
        const char *t = em_json_str(e, "type");
        return t && strcmp(t, "f") == 0;
}

static int by_path(const void *a, const void *b)
{
        const char *pa = em_json_str(*(json_t *const *)a, "path");
        const char *pb = em_json_str(*(json_t *const *)b, "path");
        return strcmp(pa ? pa : "", pb ? pb : "");
}

void em_upper_entries_sort(json_t *entries)
{
        size_t n = json_array_size(entries);
        json_t **v = calloc(n ? n : 1, sizeof(*v));

        if (v == NULL)
                return;
        for (size_t i = 0; i < n; i++)
                v[i] = json_incref(json_array_get(entries, i));
        qsort(v, n, sizeof(*v), by_path);
        json_array_clear(entries);
        for (size_t i = 0; i < n; i++)
                json_array_append_new(entries, v[i]);
        free(v);
}

bool em_upper_path_ok(const json_t *s)
{
        const char *p = json_string_value(s);
        size_t len = json_string_length(s);

        if (p == NULL || len == 0 || len > EM_UPPER_PATH_MAX || strlen(p) != len || p[0] == '/')
                return false;
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c += n;
                if (*c == '/')
                        c++;
                if (*c == '\0' && c[-1] == '/')
                        return false;
        }
        return true;
}

int em_upper_open_parent(int rootfd, const char *rel, const char **base, em_error_t *err)
{
        const char *slash = strrchr(rel, '/');
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};

        *base = slash ? slash + 1 : rel;
        if (slash == NULL) {
                int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
                return fd >= 0 ? fd : em_error_set(err, errno, "dup");
        }
        cleanup_free char *dir = strndup(rel, (size_t)(slash - rel));
        if (dir == NULL)
                return em_error_set(err, ENOMEM, "%s", rel);
        int fd = (int)syscall(SYS_openat2, rootfd, dir, &how, sizeof(how));
        if (fd < 0)
                return em_error_set(err, errno, "opening the parent of %s inside the layer", rel);
        return fd;
}

static int unhex(const char *h, unsigned char *out, size_t *n)
{
        size_t len = strlen(h);

        if (len % 2 || len / 2 > XATTR_VAL_MAX)
                return -1;
        for (size_t i = 0; i < len / 2; i++) {
                unsigned v;
                if (sscanf(h + 2 * i, "%2x", &v) != 1)
                        return -1;
                out[i] = (unsigned char)v;
        }
        *n = len / 2;
        return 0;
}

static int apply_xattrs(int fd, const json_t *e, em_error_t *err)
{
        json_t *x = json_object_get(e, "xattrs");
        cleanup_free unsigned char *val = malloc(XATTR_VAL_MAX);
        char proc[64];
        const char *name;
        json_t *v;

        if (val == NULL)
                return em_error_set(err, ENOMEM, "xattrs");
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        json_object_foreach(x, name, v)
        {
                size_t n;
                if (!json_is_string(v) || unhex(json_string_value(v), val, &n) < 0)
                        return em_error_set(err, EPROTO, "bad xattr value for %s", name);
                if (setxattr(proc, name, val, n, 0) < 0)
                        return em_error_set(err, errno, "setting xattr %s", name);
        }
        return 0;
}

static struct timespec mtime_of(const json_t *e)
{
        json_t *m = json_object_get(e, "mtime");
        return (struct timespec){.tv_sec = (time_t)json_integer_value(json_array_get(m, 0)),
                                 .tv_nsec = (long)json_integer_value(json_array_get(m, 1))};
}

int em_upper_apply_meta(int fd, const json_t *e, bool skip_times, em_error_t *err)
{
        const char *path = em_json_str(e, "path");
        mode_t mode = (mode_t)(em_json_int(e, "mode", 0644) & 07777);
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (fchownat(fd, "", (uid_t)em_json_int(e, "uid", 0), (gid_t)em_json_int(e, "gid", 0),
                     AT_EMPTY_PATH) < 0)
                return em_error_set(err, errno, "chown %s", path);
        if (chmod(proc, mode) < 0)
                return em_error_set(err, errno, "chmod %s", path);
        if (apply_xattrs(fd, e, err) < 0)
                return em_error_wrap(err, "%s", path);
        if (skip_times)
                return 0;
        struct timespec ts[2] = {mtime_of(e), mtime_of(e)};
        if (utimensat(AT_FDCWD, proc, ts, 0) < 0)
                return em_error_set(err, errno, "setting times of %s", path);
        return 0;
}

int em_upper_apply_times(int rootfd, const json_t *e, em_error_t *err)
{
        const char *base;
        cleanup_close int pfd = em_upper_open_parent(rootfd, em_json_str(e, "path"), &base, err);
        struct timespec ts[2] = {mtime_of(e), mtime_of(e)};

        if (pfd < 0)
                return -1;
        if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return em_error_set(err, errno, "setting times of %s", em_json_str(e, "path"));
        return 0;
}

static int make_node(int pfd, const char *base, const json_t *e, char t, em_error_t *err)
{
        json_t *rd = json_object_get(e, "rdev");
        dev_t dev = makedev((unsigned)json_integer_value(json_array_get(rd, 0)),
                            (unsigned)json_integer_value(json_array_get(rd, 1)));
        mode_t kind = t == 'c' ? S_IFCHR : t == 'b' ? S_IFBLK : S_IFIFO;

        if (t == 'd')
                return (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST) ? -1 : 0;
        if (t == 'l')
                return symlinkat(em_json_str(e, "target"), pfd, base);
        return mknodat(pfd, base, kind | 0600, dev);
}

int em_upper_create(int rootfd, const json_t *e, em_error_t *err)
{
        const char *path = em_json_str(e, "path"), *type = em_json_str(e, "type"), *base;
        cleanup_close int pfd = -1, fd = -1;
        struct stat st;

        if (type == NULL || strlen(type) != 1 || strchr("dlcbp", type[0]) == NULL)
                return em_error_set(err, EPROTO, "bad entry type for %s", path);
        if (type[0] == 'l' && !json_is_string(json_object_get(e, "target")))
                return em_error_set(err, EPROTO, "symlink %s without target", path);
        pfd = em_upper_open_parent(rootfd, path, &base, err);
        if (pfd < 0)
                return -1;
        /* Replace a non-directory that is in the way (a changed symlink). */
        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
                unlinkat(pfd, base, 0);
        if (make_node(pfd, base, e, type[0], err) < 0)
                return em_error_set(err, errno, "creating %s", path);
        if (type[0] == 'l') {
                if (fchownat(pfd, base, (uid_t)em_json_int(e, "uid", 0),
                             (gid_t)em_json_int(e, "gid", 0), AT_SYMLINK_NOFOLLOW) < 0)
                        return em_error_set(err, errno, "chown %s", path);
                return em_upper_apply_times(rootfd, e, err);
        }
        fd = openat(pfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return em_error_set(err, errno, "opening %s", path);
        /* Directory times are set last, after their children are in place. */
        return em_upper_apply_meta(fd, e, type[0] == 'd', err);
}
