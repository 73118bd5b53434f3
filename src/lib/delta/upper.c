#include "delta/upper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

/* ---- manifest memory ---- */

static void entry_free(struct em_upper_entry *e)
{
        free(e->path);
        free(e->target);
        free(e->hardlink);
        for (size_t i = 0; i < e->nx; i++) {
                free(e->x[i].name);
                free(e->x[i].value);
        }
        free(e->x);
        em_blocks_free(&e->blocks);
        memset(e, 0, sizeof(*e));
}

void em_upper_manifest_free(struct em_upper_manifest *m)
{
        for (size_t i = 0; i < m->n; i++)
                entry_free(&m->e[i]);
        free(m->e);
        m->e = NULL;
        m->n = 0;
}

/* Drops the entries from n on (a file or a subtree that vanished). */
static void manifest_truncate(struct em_upper_manifest *m, size_t n)
{
        while (m->n > n)
                entry_free(&m->e[--m->n]);
}

static struct em_upper_entry *manifest_push(struct em_upper_manifest *m, em_error_t *err)
{
        struct em_upper_entry *ne;

        if (m->n >= EM_UPPER_MAX_ENTRIES) {
                em_error_set(err, E2BIG, "more than %u entries in the upper dir",
                             EM_UPPER_MAX_ENTRIES);
                return NULL;
        }
        /* Grow by doubling: capacity is the next power of two above n. */
        if ((m->n & (m->n - 1)) == 0) {
                ne = realloc(m->e, sizeof(*ne) * (m->n ? m->n * 2 : 16));
                if (ne == NULL) {
                        em_error_set(err, ENOMEM, "manifest");
                        return NULL;
                }
                m->e = ne;
        }
        ne = &m->e[m->n++];
        memset(ne, 0, sizeof(*ne));
        return ne;
}

static int cmp_entry(const void *a, const void *b)
{
        return strcmp(((const struct em_upper_entry *)a)->path,
                      ((const struct em_upper_entry *)b)->path);
}

static int cmp_xattr(const void *a, const void *b)
{
        return strcmp(((const struct em_xattr *)a)->name, ((const struct em_xattr *)b)->name);
}

/* ---- scan ---- */

static char type_of(mode_t m)
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
        case S_IFSOCK:
                return 's';
        }
        return 0;
}

/* The path of name in dirfd usable by l*xattr without following a final
 * symlink: /proc/self/fd/N is the already-resolved directory. */
static void fd_path(char *buf, size_t len, int dirfd, const char *name)
{
        snprintf(buf, len, "/proc/self/fd/%d/%s", dirfd, name);
}

#define OVL_OPAQUE "trusted.overlay.opaque"

static bool overlay_xattr(const char *name)
{
        return strncmp(name, "trusted.overlay.", 16) == 0 ||
               strncmp(name, "user.overlay.", 13) == 0;
}

static int read_xattrs(int dirfd, const char *name, struct em_upper_entry *e, em_error_t *err)
{
        char path[64 + NAME_MAX], list[8192];
        ssize_t n;

        fd_path(path, sizeof(path), dirfd, name);
        n = llistxattr(path, list, sizeof(list));
        if (n < 0)
                return errno == ENOTSUP ? 0
                                        : em_error_set(err, errno, "listing xattrs of %s", e->path);
        for (char *p = list; p < list + n; p += strlen(p) + 1) {
                uint8_t val[EM_UPPER_MAX_XATTR_V];
                ssize_t vl = lgetxattr(path, p, val, sizeof(val));
                struct em_xattr *nx;

                if (vl < 0)
                        return em_error_set(err, errno, "reading xattr %s of %s", p, e->path);
                /* Overlay's bookkeeping (origin file handles, impure, …)
                 * means nothing on another host; only opacity travels. */
                if (overlay_xattr(p)) {
                        e->opaque |= e->type == 'd' && strcmp(p + strlen(p) - 7, ".opaque") == 0 &&
                                     vl == 1 && val[0] == 'y';
                        continue;
                }
                if (e->nx >= EM_UPPER_MAX_XATTRS)
                        return em_error_set(err, E2BIG, "%s has too many xattrs", e->path);
                nx = realloc(e->x, sizeof(*nx) * (e->nx + 1));
                if (nx == NULL)
                        return em_error_set(err, ENOMEM, "xattrs");
                e->x = nx;
                nx[e->nx].name = strdup(p);
                nx[e->nx].value = malloc((size_t)vl + 1);
                nx[e->nx].len = (size_t)vl;
                if (nx[e->nx].name == NULL || nx[e->nx].value == NULL)
                        return em_error_set(err, ENOMEM, "xattrs");
                memcpy(nx[e->nx].value, val, (size_t)vl);
                e->nx++;
        }
        if (e->nx > 1)
                qsort(e->x, e->nx, sizeof(*e->x), cmp_xattr);
        return 0;
}

static void hash_hex(XXH128_hash_t h, char out[33])
{
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, h);
        for (int i = 0; i < 16; i++)
                snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

/* The content hash of fd from its current offset on, and with blocks
 * the hash of each block of a file of at least EM_BLOCK_MIN bytes (one
 * that shrank below it while read gets none), all from one read. */
static int hash_fd(int fd, struct em_upper_entry *e, bool blocks, em_error_t *err)
{
        cleanup_free uint8_t *buf = malloc(EM_BLOCK_SIZE);
        XXH3_state_t st;
        uint64_t total = 0;
        ssize_t n;

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "hashing %s", e->path);
        em_blocks_free(&e->blocks);
        XXH3_128bits_reset(&st);
        while ((n = em_read_all(fd, buf, EM_BLOCK_SIZE, err)) > 0) {
                XXH3_128bits_update(&st, buf, (size_t)n);
                total += (uint64_t)n;
                if (blocks && em_blocks_append(&e->blocks, buf, (size_t)n, err) < 0)
                        return -1;
                if ((size_t)n < EM_BLOCK_SIZE)
                        break;
        }
        if (n < 0)
                return em_error_wrap(err, "reading %s", e->path);
        e->size = total; /* what was hashed, even if the file grew meanwhile */
        hash_hex(XXH3_128bits_digest(&st), e->hash);
        if (total < EM_BLOCK_MIN)
                em_blocks_free(&e->blocks);
        return 0;
}

static int hash_file(int dirfd, const char *name, struct em_upper_entry *e, em_error_t *err)
{
        cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", e->path);
        /* Block hashes only where they will be kept: a file that grows
         * past EM_BLOCK_MIN while it is read travels whole. */
        return hash_fd(fd, e, (uint64_t)st.st_size >= EM_BLOCK_MIN, err);
}

struct scan_ctx {
        struct em_upper_manifest *m;
        dev_t dev;
};

static int cmp_inode(const void *a, const void *b)
{
        const struct em_upper_entry *x = *(struct em_upper_entry *const *)a,
                                    *y = *(struct em_upper_entry *const *)b;

        if (x->dev != y->dev)
                return x->dev < y->dev ? -1 : 1;
        if (x->ino != y->ino)
                return x->ino < y->ino ? -1 : 1;
        return strcmp(x->path, y->path);
}

/* After sorting by path: the first path of a multiply linked inode keeps the
 * content, the later ones become hardlinks to it (so a receiver applying in
 * order always finds the link target). */
static int resolve_hardlinks(struct em_upper_manifest *m, em_error_t *err)
{
        cleanup_free struct em_upper_entry **v = calloc(m->n + 1, sizeof(*v));
        size_t n = 0;

        if (v == NULL)
                return em_error_set(err, ENOMEM, "hardlinks");
        for (size_t i = 0; i < m->n; i++)
                if (m->e[i].ino != 0)
                        v[n++] = &m->e[i];
        if (n > 1)
                qsort(v, n, sizeof(*v), cmp_inode);
        for (size_t i = 0, owner = 0; i < n; i++) {
                if (v[i]->dev != v[owner]->dev || v[i]->ino != v[owner]->ino)
                        owner = i; /* first path of a new inode keeps the content */
                if (owner == i)
                        continue;
                v[i]->hardlink = strdup(v[owner]->path);
                if (v[i]->hardlink == NULL)
                        return em_error_set(err, ENOMEM, "hardlinks");
                v[i]->hash[0] = '\0';
                v[i]->size = 0;
                em_blocks_free(&v[i]->blocks);
        }
        return 0;
}

static int scan_dir(struct scan_ctx *c, int dirfd, const char *rel, em_error_t *err);

static int scan_one(struct scan_ctx *c, int dirfd, const char *rel, const char *name,
                    em_error_t *err)
{
        struct em_upper_entry *e;
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return em_error_set(err, errno, "stat %s/%s", rel, name);
        if ((e = manifest_push(c->m, err)) == NULL)
                return -1;
        if (asprintf(&e->path, "%s%s%s", rel, rel[0] ? "/" : "", name) < 0 ||
            strlen(e->path) > EM_UPPER_MAX_PATH)
                return em_error_set(err, ENAMETOOLONG, "path in upper dir");
        e->type = type_of(st.st_mode);
        e->mode = st.st_mode & 07777;
        e->uid = st.st_uid;
        e->gid = st.st_gid;
        e->mtime_sec = st.st_mtim.tv_sec;
        e->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
        if (e->type == 'c' || e->type == 'b')
                e->rdev = st.st_rdev;
        if (read_xattrs(dirfd, name, e, err) < 0)
                return -1;
        if (e->type == 'l') {
                char t[EM_UPPER_MAX_PATH + 1];
                ssize_t n = readlinkat(dirfd, name, t, sizeof(t) - 1);
                if (n < 0 || (size_t)n >= sizeof(t) - 1)
                        return em_error_set(err, n < 0 ? errno : ENAMETOOLONG, "readlink %s",
                                            e->path);
                e->target = strndup(t, (size_t)n);
                e->size = (uint64_t)n;
                return e->target ? 0 : em_error_set(err, ENOMEM, "symlink");
        }
        if (e->type == 'f') {
                if (st.st_nlink > 1) {
                        e->dev = st.st_dev;
                        e->ino = st.st_ino;
                }
                return hash_file(dirfd, name, e, err);
        }
        if (e->type == 'd' && st.st_dev == c->dev) {
                char *sub = strdup(e->path); /* e may move when the array grows */
                int r = sub ? scan_dir(c, dirfd, sub, err) : em_error_set(err, ENOMEM, "scan");
                free(sub);
                return r;
        }
        return 0;
}

static int scan_dir(struct scan_ctx *c, int parent, const char *rel, em_error_t *err)
{
        const char *base = strrchr(rel, '/');
        int fd = openat(parent, rel[0] ? (base ? base + 1 : rel) : ".",
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (d == NULL) {
                if (fd >= 0)
                        close(fd);
                return em_error_set(err, errno, "opening %s", rel[0] ? rel : ".");
        }
        while ((errno = 0, de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                size_t n = c->m->n;
                cleanup_error em_error_t e = NULL;
                if (scan_one(c, dirfd(d), rel, de->d_name, &e) == 0)
                        continue;
                /* Renamed or removed between readdir and its stat, read
                 * or descent (a live round scans a running service: one
                 * that writes n.tmp and renames it every 10 ms): it is
                 * not there, which the next round sees too. */
                if (em_error_status(e) != ENOENT) {
                        em_error_move(err, &e);
                        return -1;
                }
                manifest_truncate(c->m, n);
        }
        return errno ? em_error_set(err, errno, "reading %s", rel) : 0;
}

int em_upper_scan(const char *dir, struct em_upper_manifest *m, em_error_t *err)
{
        cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct scan_ctx c = {.m = m};
        struct stat st;
        int r;

        memset(m, 0, sizeof(*m));
        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening upper dir %s", dir);
        c.dev = st.st_dev;
        r = scan_dir(&c, fd, "", err);
        if (r == 0 && m->n > 1)
                qsort(m->e, m->n, sizeof(*m->e), cmp_entry);
        if (r < 0 || resolve_hardlinks(m, err) < 0) {
                em_upper_manifest_free(m);
                return em_error_wrap(err, "scanning %s", dir);
        }
        return 0;
}

/* ---- JSON ---- */

static char *hex(const uint8_t *p, size_t n)
{
        char *s = malloc(2 * n + 1);

        for (size_t i = 0; s && i < n; i++)
                snprintf(s + 2 * i, 3, "%02x", p[i]);
        if (s)
                s[2 * n] = '\0';
        return s;
}

static int set_blocks(json_t *j, const struct em_upper_entry *e)
{
        cleanup_free char *b = em_blocks_encode(&e->blocks);

        return b ? json_object_set_new(j, "b", json_string(b)) : -1;
}

static json_t *entry_json(const struct em_upper_entry *e, bool with_blocks)
{
        char t[2] = {e->type, 0};
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "p", e->path, "t", t, "m",
                              (json_int_t)e->mode, "u", (json_int_t)e->uid, "g", (json_int_t)e->gid,
                              "s", (json_int_t)e->size, "mt", (json_int_t)e->mtime_sec, "mn",
                              (json_int_t)e->mtime_nsec);

        if (j == NULL)
                return NULL;
        if (e->hash[0])
                json_object_set_new(j, "h", json_string(e->hash));
        if (e->target)
                json_object_set_new(j, "l", json_string(e->target));
        if (e->hardlink)
                json_object_set_new(j, "hl", json_string(e->hardlink));
        if (e->type == 'c' || e->type == 'b')
                json_object_set_new(j, "r", json_integer((json_int_t)e->rdev));
        if (e->opaque)
                json_object_set_new(j, "o", json_integer(1));
        if (with_blocks && e->blocks.n > 0 && set_blocks(j, e) < 0) {
                json_decref(j);
                return NULL;
        }
        if (e->nx > 0) {
                json_t *x = json_object();
                for (size_t i = 0; i < e->nx; i++) {
                        char *v = hex(e->x[i].value, e->x[i].len);
                        json_object_set_new(x, e->x[i].name, json_string(v ? v : ""));
                        free(v);
                }
                json_object_set_new(j, "x", x);
        }
        return j;
}

int em_upper_manifest_to_json(const struct em_upper_manifest *m, bool with_blocks, char **out,
                              size_t *len, em_error_t *err)
{
        cleanup_json json_t *arr = json_array();
        cleanup_json json_t *root = NULL;

        for (size_t i = 0; arr && i < m->n; i++)
                if (json_array_append_new(arr, entry_json(&m->e[i], with_blocks)) < 0)
                        return em_error_set(err, ENOMEM, "manifest JSON");
        root = json_pack("{s:i, s:O}", "version", 1, "entries", arr);
        *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
        if (*out == NULL)
                return em_error_set(err, ENOMEM, "manifest JSON");
        *len = strlen(*out);
        return 0;
}

/* A relative path with only normal components. */
static bool path_ok(const char *p, size_t jlen)
{
        size_t n = strlen(p);

        if (n == 0 || n != jlen || n > EM_UPPER_MAX_PATH || p[0] == '/' || p[n - 1] == '/')
                return false;
        for (const char *c = p; *c;) {
                size_t l = strcspn(c, "/");
                if (l == 0 || l > 255 || (l == 1 && c[0] == '.') ||
                    (l == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c += l;
                if (*c == '/')
                        c++;
        }
        return true;
}

static int get_u(json_t *j, const char *key, uint64_t max, uint64_t *out)
{
        json_t *v = json_object_get(j, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max)
                return -1;
        *out = (uint64_t)json_integer_value(v);
        return 0;
}

static int unhex(const char *s, size_t slen, uint8_t **out, size_t *len)
{
        if (slen % 2 || slen / 2 > EM_UPPER_MAX_XATTR_V || strspn(s, "0123456789abcdef") != slen)
                return -1;
        *len = slen / 2;
        *out = malloc(*len + 1);
        if (*out == NULL)
                return -1;
        for (size_t i = 0; i < *len; i++)
                sscanf(s + 2 * i, "%2hhx", &(*out)[i]);
        return 0;
}

static int xattrs_from_json(json_t *x, struct em_upper_entry *e)
{
        const char *k;
        json_t *v;

        if (x == NULL)
                return 0;
        if (!json_is_object(x) || json_object_size(x) > EM_UPPER_MAX_XATTRS)
                return -1;
        e->x = calloc(json_object_size(x) + 1, sizeof(*e->x));
        if (e->x == NULL)
                return -1;
        json_object_foreach(x, k, v)
        {
                struct em_xattr *a = &e->x[e->nx];
                size_t kl = strlen(k);
                if (kl == 0 || kl > 255 || !json_is_string(v) || overlay_xattr(k) ||
                    (strncmp(k, "trusted.", 8) && strncmp(k, "user.", 5) &&
                     strncmp(k, "security.", 9)))
                        return -1;
                if ((a->name = strdup(k)) == NULL)
                        return -1;
                e->nx++;
                if (unhex(json_string_value(v), json_string_length(v), &a->value, &a->len) < 0)
                        return -1;
        }
        if (e->nx > 1)
                qsort(e->x, e->nx, sizeof(*e->x), cmp_xattr);
        return 0;
}

static int opt_str(json_t *j, const char *key, char **out)
{
        json_t *v = json_object_get(j, key);

        if (v == NULL)
                return 0;
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > EM_UPPER_MAX_PATH ||
            strlen(json_string_value(v)) != json_string_length(v))
                return -1;
        *out = strdup(json_string_value(v));
        return *out ? 0 : -1;
}

/* "b": only on a plain regular file, exactly its size's blocks. */
static int blocks_from_json(json_t *b, struct em_upper_entry *e)
{
        em_error_t err = NULL;

        if (b == NULL)
                return 0;
        if (!json_is_string(b) || e->type != 'f' || e->hardlink ||
            em_blocks_decode(json_string_value(b), json_string_length(b), e->size, &e->blocks,
                             &err) < 0) {
                em_error_free(&err);
                return -1;
        }
        return 0;
}

static int entry_from_json(json_t *j, struct em_upper_entry *e)
{
        json_t *p = json_object_get(j, "p"), *t = json_object_get(j, "t");
        const char *h = json_string_value(json_object_get(j, "h"));
        uint64_t mode, uid, gid, size, mt, mn, rdev = 0;

        if (!json_is_string(p) || !path_ok(json_string_value(p), json_string_length(p)) ||
            !json_is_string(t) || json_string_length(t) != 1 ||
            !strchr("fdlcbps", json_string_value(t)[0]))
                return -1;
        if ((e->path = strdup(json_string_value(p))) == NULL)
                return -1;
        e->type = json_string_value(t)[0];
        if (get_u(j, "m", 07777, &mode) || get_u(j, "u", UINT32_MAX, &uid) ||
            get_u(j, "g", UINT32_MAX, &gid) || get_u(j, "s", INT64_MAX, &size) ||
            get_u(j, "mt", INT64_MAX, &mt) || get_u(j, "mn", 999999999, &mn))
                return -1;
        /* Devices only as overlay whiteouts (char 0/0), as in a layer. */
        if (e->type == 'b' || (e->type == 'c' && get_u(j, "r", 0, &rdev)))
                return -1;
        json_t *o = json_object_get(j, "o");
        if (o != NULL && (e->type != 'd' || !json_is_integer(o) || json_integer_value(o) != 1))
                return -1;
        *e = (struct em_upper_entry){.path = e->path,
                                     .type = e->type,
                                     .mode = (uint32_t)mode,
                                     .uid = (uint32_t)uid,
                                     .gid = (uint32_t)gid,
                                     .size = size,
                                     .mtime_sec = (int64_t)mt,
                                     .mtime_nsec = (uint32_t)mn,
                                     .rdev = rdev,
                                     .opaque = o != NULL};
        if (opt_str(j, "l", &e->target) || opt_str(j, "hl", &e->hardlink) ||
            xattrs_from_json(json_object_get(j, "x"), e))
                return -1;
        if ((e->type == 'l') != (e->target != NULL) || (e->hardlink && e->type != 'f') ||
            (e->hardlink && !path_ok(e->hardlink, strlen(e->hardlink))))
                return -1;
        if (e->type == 'f' && !e->hardlink) {
                if (h == NULL || strlen(h) != 32 || strspn(h, "0123456789abcdef") != 32)
                        return -1;
                memcpy(e->hash, h, 33);
        }
        return blocks_from_json(json_object_get(j, "b"), e);
}

/* Hardlinks must name an earlier regular, non-hardlink entry (binary search). */
static bool hardlink_ok(const struct em_upper_manifest *m, size_t i)
{
        struct em_upper_entry key = {.path = m->e[i].hardlink};
        const struct em_upper_entry *t = bsearch(&key, m->e, i, sizeof(key), cmp_entry);

        return t != NULL && t->type == 'f' && t->hardlink == NULL;
}

/* What layer unpacking refuses too, said in words (entry_from_json then
 * refuses it anyway): device nodes other than 0/0 whiteouts, overlay's
 * xattrs. NULL if none of that. */
static const char *entry_refused(json_t *v)
{
        const char *t = json_string_value(json_object_get(v, "t")), *k;
        json_t *x = json_object_get(v, "x"), *val;

        if (t != NULL && (strcmp(t, "b") == 0 ||
                          (strcmp(t, "c") == 0 && json_integer_value(json_object_get(v, "r")))))
                return "a device node (only 0/0 whiteouts are)";
        if (!json_is_object(x))
                return NULL;
        json_object_foreach(x, k, val)
        {
                if (overlay_xattr(k))
                        return "an overlay xattr (the target sets opacity itself)";
        }
        return NULL;
}

static int manifest_entries(json_t *arr, struct em_upper_manifest *m, em_error_t *err)
{
        size_t i;
        json_t *v;

        if (!json_is_array(arr) || json_array_size(arr) > EM_UPPER_MAX_ENTRIES)
                return em_error_set(err, EPROTO, "manifest: bad \"entries\"");
        m->e = calloc(json_array_size(arr) + 1, sizeof(*m->e));
        if (m->e == NULL)
                return em_error_set(err, ENOMEM, "manifest");
        json_array_foreach(arr, i, v)
        {
                const char *why = json_is_object(v) ? entry_refused(v) : NULL;
                m->n = i + 1;
                if (why != NULL)
                        return em_error_set_code(err, EPERM,
                                                 "manifest entry %zu: %s is not allowed", i, why);
                if (!json_is_object(v) || entry_from_json(v, &m->e[i]) < 0)
                        return em_error_set(err, EPROTO, "manifest entry %zu is invalid", i);
                if (i > 0 && strcmp(m->e[i - 1].path, m->e[i].path) >= 0)
                        return em_error_set(err, EPROTO, "manifest entry %zu is out of order", i);
                if (m->e[i].hardlink && !hardlink_ok(m, i))
                        return em_error_set(err, EPROTO, "manifest entry %zu: bad hardlink", i);
        }
        return 0;
}

int em_upper_manifest_from_json(const char *buf, size_t len, struct em_upper_manifest *m,
                                em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        json_error_t jerr;

        memset(m, 0, sizeof(*m));
        if (len > EM_UPPER_MAX_MANIFEST)
                return em_error_set(err, EMSGSIZE, "manifest of %zu bytes", len);
        j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j) || json_integer_value(json_object_get(j, "version")) != 1)
                return em_error_set(err, EPROTO, "manifest is not a version 1 JSON object");
        if (manifest_entries(json_object_get(j, "entries"), m, err) < 0) {
                em_upper_manifest_free(m);
                return -1;
        }
        return 0;
}

/* ---- diff ---- */

void em_upper_diff_free(struct em_upper_diff *d)
{
        free(d->changed);
        free(d->content);
        em_strv_free(d->deleted);
        memset(d, 0, sizeof(*d));
}

const struct em_upper_entry *em_upper_manifest_find(const struct em_upper_manifest *m,
                                                    const char *path)
{
        struct em_upper_entry key = {.path = (char *)path};

        return m->n ? bsearch(&key, m->e, m->n, sizeof(key), cmp_entry) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
        return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool xattrs_eq(const struct em_upper_entry *a, const struct em_upper_entry *b)
{
        if (a->nx != b->nx)
                return false;
        for (size_t i = 0; i < a->nx; i++)
                if (strcmp(a->x[i].name, b->x[i].name) || a->x[i].len != b->x[i].len ||
                    memcmp(a->x[i].value, b->x[i].value, a->x[i].len))
                        return false;
        return true;
}

static bool meta_eq(const struct em_upper_entry *a, const struct em_upper_entry *b)
{
        return a->type == b->type && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
               a->rdev == b->rdev && str_eq(a->target, b->target) &&
               str_eq(a->hardlink, b->hardlink) && a->opaque == b->opaque && xattrs_eq(a, b) &&
               (a->type == 'd' || (a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec));
}

static bool content_eq(const struct em_upper_entry *a, const struct em_upper_entry *b)
{
        return a->type == b->type && a->size == b->size && strcmp(a->hash, b->hash) == 0;
}

int em_upper_diff(const struct em_upper_manifest *o, const struct em_upper_manifest *n,
                  struct em_upper_diff *d, em_error_t *err)
{
        size_t i = 0, j = 0;

        memset(d, 0, sizeof(*d));
        d->changed = calloc(n->n + 1, sizeof(size_t));
        d->content = calloc(n->n + 1, sizeof(bool));
        d->deleted = calloc(o->n + 1, sizeof(char *));
        if (!d->changed || !d->content || !d->deleted)
                goto oom;
        /* Both are sorted: a merge walk. */
        while (i < o->n || j < n->n) {
                int c = i >= o->n ? 1 : j >= n->n ? -1 : strcmp(o->e[i].path, n->e[j].path);
                if (c < 0) {
                        if ((d->deleted[d->ndeleted++] = strdup(o->e[i++].path)) == NULL)
                                goto oom;
                        continue;
                }
                if (c > 0 || !meta_eq(&o->e[i], &n->e[j]) || !content_eq(&o->e[i], &n->e[j])) {
                        d->content[d->nchanged] = n->e[j].type == 'f' && !n->e[j].hardlink &&
                                                  (c > 0 || !content_eq(&o->e[i], &n->e[j]));
                        d->changed[d->nchanged++] = j;
                }
                if (c == 0)
                        i++;
                j++;
        }
        /* Children before parents, so directories are empty when removed. */
        for (size_t a = 0, b = d->ndeleted; a + 1 < b; a++, b--) {
                char *t = d->deleted[a];
                d->deleted[a] = d->deleted[b - 1];
                d->deleted[b - 1] = t;
        }
        return 0;
oom:
        em_upper_diff_free(d);
        return em_error_set(err, ENOMEM, "diffing manifests");
}

/* ---- apply ---- */

int em_upper_open_root(const char *dir, int *fd, em_error_t *err)
{
        *fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        return *fd < 0 ? em_error_set(err, errno, "opening target upper dir %s", dir) : 0;
}

/* Opens the parent directory of a manifest path inside root, refusing any
 * symlink, magic link or mount crossing on the way; *base points into path. */
static int open_parent(int root_fd, const char *path, const char **base, em_error_t *err)
{
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
        const char *slash = strrchr(path, '/');
        char dir[EM_UPPER_MAX_PATH + 1];
        long fd;

        if (!path_ok(path, strlen(path)))
                return em_error_set(err, EPERM, "refusing path '%s' outside the layer", path);
        *base = slash ? slash + 1 : path;
        snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
        fd = syscall(SYS_openat2, root_fd, dir, &how, sizeof(how));
        if (fd < 0)
                return em_error_set(err, errno, "opening the directory of %s inside the layer",
                                    path);
        return (int)fd;
}

static int remove_at(int dirfd, const char *name, em_error_t *err)
{
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "stat %s", name);
        if (S_ISDIR(st.st_mode))
                return em_rm_rf_at(dirfd, name, err);
        if (unlinkat(dirfd, name, 0) < 0)
                return em_error_set(err, errno, "removing %s", name);
        return 0;
}

int em_upper_apply_delete(int root_fd, const char *path, em_error_t *err)
{
        const char *base;
        cleanup_close int pfd = open_parent(root_fd, path, &base, err);

        if (pfd < 0 && em_error_status(*err) == ENOENT) {
                em_error_free(err); /* already gone */
                return 0;
        }
        if (pfd < 0)
                return -1;
        return remove_at(pfd, base, err) < 0 ? em_error_wrap(err, "deleting %s", path) : 0;
}

/* The xattr calls for an entry: through its pinned descriptor's /proc link
 * (followed: it names that inode and nothing else), or for a symlink the
 * l* calls on its name (they never follow it). */
struct xattr_ops {
        ssize_t (*list)(const char *, char *, size_t);
        int (*remove)(const char *, const char *);
        int (*set)(const char *, const char *, const void *, size_t, int);
};
static const struct xattr_ops xattr_follow = {listxattr, removexattr, setxattr};
static const struct xattr_ops xattr_nofollow = {llistxattr, lremovexattr, lsetxattr};

/* Makes the xattrs of the file at path exactly e's (removing ones it lacks). */
static int sync_xattrs(const char *path, const struct xattr_ops *x, const struct em_upper_entry *e,
                       em_error_t *err)
{
        char list[8192];
        ssize_t n;

        n = x->list(path, list, sizeof(list));
        for (char *p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
                bool keep = strncmp(p, "security.selinux", 16) == 0 ||
                            (e->opaque && strcmp(p, OVL_OPAQUE) == 0);
                for (size_t i = 0; i < e->nx && !keep; i++)
                        keep = strcmp(e->x[i].name, p) == 0;
                if (!keep && x->remove(path, p) < 0 && errno != ENODATA)
                        return em_error_set(err, errno, "removing xattr %s of %s", p, e->path);
        }
        for (size_t i = 0; i < e->nx; i++)
                if (x->set(path, e->x[i].name, e->x[i].value, e->x[i].len, 0) < 0)
                        return em_error_set(err, errno, "setting xattr %s on %s", e->x[i].name,
                                            e->path);
        /* Set by us, from the flag: never a value the peer chose. */
        if (e->opaque && x->set(path, OVL_OPAQUE, "y", 1, 0) < 0)
                return em_error_set(err, errno, "marking %s opaque", e->path);
        return 0;
}

static bool type_is(char type, mode_t m)
{
        switch (type) {
        case 'd':
                return S_ISDIR(m);
        case 'f':
                return S_ISREG(m);
        case 'l':
                return S_ISLNK(m);
        case 'c':
                return S_ISCHR(m);
        case 'b':
                return S_ISBLK(m);
        case 'p':
                return S_ISFIFO(m);
        case 's':
                return S_ISSOCK(m);
        }
        return false;
}

/* The entry we just created or checked, pinned as an O_PATH descriptor that
 * never follows a symlink: whatever is swapped in under its name later,
 * chown, chmod, xattrs and times all reach this inode, and a type that is
 * no longer the entry's is refused. */
static int pin_entry(int dirfd, const char *name, const struct em_upper_entry *e, em_error_t *err)
{
        cleanup_close int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", e->path);
        if (!type_is(e->type, st.st_mode))
                return em_error_set(err, EEXIST, "%s changed type while it was being applied",
                                    e->path);
        return steal_fd(&fd);
}

/* A symlink's own xattrs and times, by name (l* calls, AT_SYMLINK_NOFOLLOW:
 * whatever is under the name, nothing it points to is touched). */
static int set_link_meta(int dirfd, const char *name, const struct em_upper_entry *e,
                         em_error_t *err)
{
        struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
        char path[64 + NAME_MAX];

        fd_path(path, sizeof(path), dirfd, name);
        if (sync_xattrs(path, &xattr_nofollow, e, err) < 0)
                return -1;
        if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return em_error_set(err, errno, "setting times of %s", e->path);
        return 0;
}

/* Owner first (it clears suid and capabilities), then mode, xattrs, times,
 * each through the pinned descriptor, so a symlink swapped in under the
 * name cannot redirect them to another file. */
static int set_meta(int dirfd, const char *name, const struct em_upper_entry *e, em_error_t *err)
{
        struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec}, {e->mtime_sec, e->mtime_nsec}};
        cleanup_close int fd = pin_entry(dirfd, name, e, err);
        char self[64];

        if (fd < 0)
                return -1;
        if (fchownat(fd, "", e->uid, e->gid, AT_EMPTY_PATH) < 0)
                return em_error_set(err, errno, "chown %s", e->path);
        if (e->type == 'l')
                return set_link_meta(dirfd, name, e, err);
        snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        if (chmod(self, e->mode) < 0)
                return em_error_set(err, errno, "chmod %s", e->path);
        if (sync_xattrs(self, &xattr_follow, e, err) < 0)
                return -1;
        if (e->type != 'd' && utimensat(AT_FDCWD, self, ts, 0) < 0)
                return em_error_set(err, errno, "setting times of %s", e->path);
        return 0;
}

static void tmp_name(char *buf, size_t len)
{
        static unsigned counter;

        snprintf(buf, len, ".emtmp-%d-%u", getpid(),
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
}

/* Creates a non-directory, non-regular entry (or a hardlink) under tmp. */
static int create_special(int root_fd, int pfd, const char *tmp, const struct em_upper_entry *e,
                          em_error_t *err)
{
        const char *tbase;
        cleanup_close int tpfd = -1;

        switch (e->type) {
        case 'l':
                return symlinkat(e->target, pfd, tmp) < 0
                           ? em_error_set(err, errno, "symlink %s", e->path)
                           : 0;
        case 'c':
        case 'b':
        case 'p':
        case 's': {
                mode_t t = e->type == 'c'   ? S_IFCHR
                           : e->type == 'b' ? S_IFBLK
                           : e->type == 'p' ? S_IFIFO
                                            : S_IFSOCK;
                return mknodat(pfd, tmp, t | (e->mode & 0777), (dev_t)e->rdev) < 0
                           ? em_error_set(err, errno, "mknod %s", e->path)
                           : 0;
        }
        case 'f':
                tpfd = open_parent(root_fd, e->hardlink, &tbase, err);
                if (tpfd < 0)
                        return -1;
                return linkat(tpfd, tbase, pfd, tmp, 0) < 0
                           ? em_error_set(err, errno, "hardlink %s to %s", e->path, e->hardlink)
                           : 0;
        }
        return em_error_set(err, EINVAL, "type '%c' of %s", e->type, e->path);
}

static int apply_dir(int pfd, const char *base, const struct em_upper_entry *e, em_error_t *err)
{
        struct stat st;

        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
            remove_at(pfd, base, err) < 0)
                return -1;
        if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
                return em_error_set(err, errno, "mkdir %s", e->path);
        return set_meta(pfd, base, e, err);
}

int em_upper_apply_entry(int root_fd, const struct em_upper_entry *e, em_error_t *err)
{
        const char *base;
        cleanup_close int pfd = open_parent(root_fd, e->path, &base, err);
        char tmp[64];
        struct stat st;

        if (pfd < 0)
                return -1;
        if (e->type == 'd')
                return apply_dir(pfd, base, e, err);
        if (e->type == 'f' && !e->hardlink) {
                /* Metadata-only update of an existing file with the same content. */
                if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        return em_error_set(err, ENOENT, "%s: no file to update", e->path);
                return set_meta(pfd, base, e, err);
        }
        tmp_name(tmp, sizeof(tmp));
        if (create_special(root_fd, pfd, tmp, e, err) < 0)
                return -1;
        if ((!e->hardlink && set_meta(pfd, tmp, e, err) < 0) ||
            (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
             remove_at(pfd, base, err) < 0)) {
                unlinkat(pfd, tmp, 0);
                return -1;
        }
        if (renameat(pfd, tmp, pfd, base) < 0) {
                int e2 = errno;
                unlinkat(pfd, tmp, 0);
                return em_error_set(err, e2, "renaming into %s", e->path);
        }
        return 0;
}

struct em_upper_file {
        struct em_upper_entry e; /* shallow copy: path, hash, meta */
        int pfd, fd;
        const char *base;
        char tmp[64];
        uint64_t written;
        XXH3_state_t st;
        bool in_place; /* a block patch of the file already there (no tmp) */
};

void em_upper_file_abort(em_upper_file_t **fp)
{
        em_upper_file_t *f = *fp;

        if (f == NULL)
                return;
        if (f->fd >= 0) {
                close(f->fd);
                if (!f->in_place)
                        unlinkat(f->pfd, f->tmp, 0);
        }
        if (f->pfd >= 0)
                close(f->pfd);
        free(f);
        *fp = NULL;
}

int em_upper_file_begin(int root_fd, const struct em_upper_entry *e, em_upper_file_t **out,
                        em_error_t *err)
{
        em_upper_file_t *f = calloc(1, sizeof(*f));

        if (f == NULL)
                return em_error_set(err, ENOMEM, "file %s", e->path);
        f->fd = -1;
        f->e = *e;
        f->pfd = open_parent(root_fd, e->path, &f->base, err);
        if (f->pfd < 0 || e->type != 'f' || e->hardlink) {
                if (f->pfd >= 0)
                        em_error_set(err, EINVAL, "%s is not a plain regular file", e->path);
                em_upper_file_abort(&f);
                return -1;
        }
        tmp_name(f->tmp, sizeof(f->tmp));
        f->fd = openat(f->pfd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (f->fd < 0) {
                em_error_set(err, errno, "creating %s", e->path);
                em_upper_file_abort(&f);
                return -1;
        }
        XXH3_128bits_reset(&f->st);
        *out = f;
        return 0;
}

int em_upper_file_write(em_upper_file_t *f, const void *buf, size_t len, em_error_t *err)
{
        if (f->written + len > f->e.size)
                return em_error_set(err, EPROTO, "%s: more data than its %" PRIu64 " bytes",
                                    f->e.path, f->e.size);
        if (em_write_all(f->fd, buf, len, err) < 0)
                return em_error_wrap(err, "writing %s", f->e.path);
        XXH3_128bits_update(&f->st, buf, len);
        f->written += len;
        return 0;
}

/* The finished temp file replaces whatever is at its name (a directory
 * too); then the abort that follows leaves it. */
static int rename_into(em_upper_file_t *f, em_error_t *err)
{
        struct stat st;

        if (fstatat(f->pfd, f->base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            remove_at(f->pfd, f->base, err) < 0)
                return -1;
        if (renameat(f->pfd, f->tmp, f->pfd, f->base) < 0)
                return em_error_set(err, errno, "renaming into %s", f->e.path);
        close(f->fd);
        f->fd = -1;
        return 0;
}

int em_upper_file_commit(em_upper_file_t **fp, em_error_t *err)
{
        em_upper_file_t *f = *fp;
        char got[33];
        int ret = -1;

        hash_hex(XXH3_128bits_digest(&f->st), got);
        if (f->written != f->e.size || strcmp(got, f->e.hash) != 0)
                em_error_set(err, EILSEQ, "%s: received content does not match the manifest",
                             f->e.path);
        else if (fsync(f->fd) < 0)
                em_error_set(err, errno, "fsync %s", f->e.path);
        else if (set_meta(f->pfd, f->tmp, &f->e, err) == 0)
                ret = rename_into(f, err);
        em_upper_file_abort(fp);
        return ret;
}

/* The file already at name, opened for writing in place: a regular file
 * with one link only (another link would be changed too); -1 if none. */
static int patch_open(int pfd, const char *name, uint64_t *have)
{
        struct stat st;
        int fd = openat(pfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

        if (fd < 0)
                return -1;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
                close(fd);
                return -1;
        }
        *have = (uint64_t)st.st_size;
        return fd;
}

int em_upper_patch_begin(int root_fd, const struct em_upper_entry *e, em_upper_file_t **out,
                         uint64_t *have, em_error_t *err)
{
        em_upper_file_t *f;
        int fd;

        *have = 0;
        if (em_upper_file_begin(root_fd, e, out, err) < 0)
                return -1;
        f = *out;
        if ((fd = patch_open(f->pfd, f->base, have)) < 0)
                return 0; /* a new file: the temp file begin made */
        close(f->fd);
        unlinkat(f->pfd, f->tmp, 0);
        f->fd = fd;
        f->in_place = true;
        return 0;
}

int em_upper_patch_write(em_upper_file_t *f, uint64_t off, const void *buf, size_t len,
                         em_error_t *err)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(f->fd, p, len, (off_t)off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return em_error_set(err, n < 0 ? errno : EIO, "writing %s", f->e.path);
                p += n;
                off += (uint64_t)n;
                len -= (size_t)n;
        }
        return 0;
}

/* The whole file must now be what e announced. */
static int patch_verify(em_upper_file_t *f, em_error_t *err)
{
        struct em_upper_entry got = {.path = f->e.path};

        if (lseek(f->fd, 0, SEEK_SET) < 0)
                return em_error_set(err, errno, "reading %s", f->e.path);
        if (hash_fd(f->fd, &got, false, err) < 0)
                return -1;
        if (got.size != f->e.size || strcmp(got.hash, f->e.hash) != 0)
                return em_error_set(err, EILSEQ, "%s: patched content does not match the manifest",
                                    f->e.path);
        return 0;
}

int em_upper_patch_commit(em_upper_file_t **fp, bool verify, em_error_t *err)
{
        em_upper_file_t *f = *fp;
        const char *name = f->in_place ? f->base : f->tmp;
        int ret = -1;

        if (ftruncate(f->fd, (off_t)f->e.size) < 0)
                em_error_set(err, errno, "sizing %s", f->e.path);
        else if (verify && patch_verify(f, err) < 0)
                ;
        else if (fsync(f->fd) < 0)
                em_error_set(err, errno, "fsync %s", f->e.path);
        else if (set_meta(f->pfd, name, &f->e, err) == 0)
                ret = f->in_place ? 0 : rename_into(f, err);
        em_upper_file_abort(fp);
        return ret;
}

int em_upper_apply_dir_times(int root_fd, const struct em_upper_manifest *m, em_error_t *err)
{
        /* Deepest first, so setting a child's time does not touch its parent's. */
        for (size_t i = m->n; i-- > 0;) {
                const struct em_upper_entry *e = &m->e[i];
                struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec},
                                         {e->mtime_sec, e->mtime_nsec}};
                const char *base;
                int pfd;

                if (e->type != 'd')
                        continue;
                if ((pfd = open_parent(root_fd, e->path, &base, err)) < 0)
                        return -1;
                if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0) {
                        close(pfd);
                        return em_error_set(err, errno, "setting times of %s", e->path);
                }
                close(pfd);
        }
        return 0;
}
