#include "migrate/common/pod_pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

static void archive_freep(struct archive **a)
{
        if (*a != NULL)
                archive_free(*a);
}
#define cleanup_archive __attribute__((cleanup(archive_freep)))

static void entry_freep(struct archive_entry **e)
{
        if (*e != NULL)
                archive_entry_free(*e);
}
#define cleanup_entry __attribute__((cleanup(entry_freep)))

static int archive_fail(struct archive *a, const char *what, em_error_t *err)
{
        int e = archive_errno(a);

        return em_error_set(err, e > 0 ? e : EIO, "%s: %s", what,
                            archive_error_string(a) ? archive_error_string(a) : "libarchive");
}

/* The current entry's bytes, from the disk into the tar. */
static int copy_data(struct archive *disk, struct archive *w, em_error_t *err)
{
        char buf[65536];
        la_ssize_t n;

        while ((n = archive_read_data(disk, buf, sizeof(buf))) > 0)
                if (archive_write_data(w, buf, (size_t)n) != n)
                        return archive_fail(w, "writing the pod's tar", err);
        return n < 0 ? archive_fail(disk, "reading the pod's checkpoint", err) : 0;
}

/* One tree (dir/rel) into w, its paths made relative to dir. */
static int pack_tree(struct archive *w, const char *dir, const char *rel, em_error_t *err)
{
        cleanup_archive struct archive *disk = archive_read_disk_new();
        cleanup_entry struct archive_entry *e = archive_entry_new();
        cleanup_free char *top = em_path_join(dir, rel);
        size_t skip = strlen(dir) + 1;
        int r;

        if (disk == NULL || e == NULL || top == NULL)
                return em_error_set(err, ENOMEM, "packing the pod");
        archive_read_disk_set_symlink_physical(disk);
        if (archive_read_disk_open(disk, top) != ARCHIVE_OK)
                return archive_fail(disk, top, err);
        while ((r = archive_read_next_header2(disk, e)) != ARCHIVE_EOF) {
                if (r < ARCHIVE_WARN)
                        return archive_fail(disk, top, err);
                archive_read_disk_descend(disk);
                const char *p = archive_entry_pathname(e);
                if (p == NULL || strlen(p) < skip || strncmp(p, dir, skip - 1) != 0)
                        return em_error_set(err, EINVAL, "unexpected path under %s", top);
                archive_entry_copy_pathname(e, p + skip);
                if (archive_entry_filetype(e) == AE_IFSOCK)
                        continue;
                if (archive_write_header(w, e) < ARCHIVE_WARN)
                        return archive_fail(w, "writing the pod's tar", err);
                if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0 &&
                    copy_data(disk, w, err) < 0)
                        return -1;
        }
        return 0;
}

int em_pod_pack(const char *dir, char *const *names, bool trees, const char *out, em_error_t *err)
{
        cleanup_archive struct archive *w = archive_write_new();
        static const char *const parts[] = {"criu", "upper", EM_POD_PACK_LOG};
        char rel[PATH_MAX];

        if (w == NULL)
                return em_error_set(err, ENOMEM, "packing the pod");
        if (archive_write_set_format_pax_restricted(w) != ARCHIVE_OK ||
            archive_write_open_filename(w, out) != ARCHIVE_OK)
                return archive_fail(w, out, err);
        for (size_t i = 0; names[i] != NULL; i++) {
                for (size_t k = trees ? 0 : 2; k < 3; k++) {
                        snprintf(rel, sizeof(rel), "%s/%s", names[i], parts[k]);
                        cleanup_free char *full = em_path_join(dir, rel);
                        if (k == 2 && full != NULL && !em_path_exists(full))
                                continue; /* no log */
                        if (pack_tree(w, dir, rel, err) < 0)
                                return em_error_wrap(err, "packing %s", rel);
                }
        }
        if (archive_write_close(w) != ARCHIVE_OK)
                return archive_fail(w, out, err);
        return 0;
}

static bool in_list(char *const *names, const char *s, size_t len)
{
        for (size_t i = 0; names[i] != NULL; i++)
                if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
                        return true;
        return false;
}

static bool is(const char *c, size_t len, const char *word)
{
        return strlen(word) == len && memcmp(c, word, len) == 0;
}

/* <name>/criu or <name>/upper, then plain components; or <name>/log,
 * which must be a regular file (*log). */
static bool path_ok(const char *p, char *const *names, bool *log)
{
        size_t n = 0;

        *log = false;
        if (p == NULL || *p == '\0' || *p == '/' || strlen(p) > EM_POD_PACK_MAX_PATH)
                return false;
        for (const char *c = p; *c != '\0'; n++) {
                const char *end = strchrnul(c, '/');
                size_t len = (size_t)(end - c);
                if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && memcmp(c, "..", 2) == 0))
                        return false;
                if (n == 0 && !in_list(names, c, len))
                        return false;
                if (n == 1 && !is(c, len, "criu") && !is(c, len, "upper") &&
                    !(*log = is(c, len, EM_POD_PACK_LOG) && *end == '\0'))
                        return false;
                /* A directory's name may end in one '/' (as tar writes it). */
                c = *end == '/' ? end + 1 : end;
        }
        return n >= 2;
}

static bool type_ok(struct archive_entry *e)
{
        switch (archive_entry_filetype(e)) {
        case AE_IFREG:
        case AE_IFDIR:
        case AE_IFLNK:
        case AE_IFIFO:
                return true;
        case AE_IFCHR: /* an overlay whiteout, nothing else */
                return archive_entry_rdev(e) == 0;
        default:
                return false;
        }
}

static bool xattrs_ok(struct archive_entry *e)
{
        const char *name;
        const void *v;
        size_t len;

        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &v, &len) == ARCHIVE_OK)
                if (name == NULL || (strncmp(name, "trusted.overlay.", 16) != 0 &&
                                     strncmp(name, "user.overlay.", 13) != 0))
                        return false;
        return true;
}

static int check_entry(struct archive_entry *e, char *const *names, em_error_t *err)
{
        const char *p = archive_entry_pathname(e);
        bool log;

        if (!path_ok(p, names, &log))
                return em_error_set(err, EPERM,
                                    "refusing pod tar entry '%.200s': not under a "
                                    "member's criu/ or upper/, nor its log",
                                    p ? p : "(none)");
        if (archive_entry_hardlink(e) != NULL || !type_ok(e) ||
            (log && archive_entry_filetype(e) != AE_IFREG))
                return em_error_set(err, EPERM, "refusing pod tar entry '%.200s': its type", p);
        if (!xattrs_ok(e))
                return em_error_set(err, EPERM,
                                    "refusing pod tar entry '%.200s': an xattr other than "
                                    "overlay's",
                                    p);
        return 0;
}

static int copy_out(struct archive *a, struct archive *w, em_error_t *err)
{
        const void *buf;
        size_t len;
        la_int64_t off;
        int r;

        while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
                if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN)
                        return archive_fail(w, "extracting the pod's tar", err);
        return r == ARCHIVE_EOF ? 0 : archive_fail(a, "reading the pod's tar", err);
}

static int make_tops(const char *dir, char *const *names, em_error_t *err)
{
        for (size_t i = 0; names[i] != NULL; i++) {
                cleanup_free char *d = em_path_join(dir, names[i]);
                if (d == NULL)
                        return em_error_set(err, ENOMEM, "unpacking the pod");
                /* The pod's root restores the members from here. */
                if ((mkdir(d, 0711) < 0 && errno != EEXIST) || chmod(d, 0711) < 0)
                        return em_error_set(err, errno, "creating %s", d);
        }
        return 0;
}

static struct archive *disk_writer(void)
{
        struct archive *w = archive_write_disk_new();

        if (w != NULL)
                archive_write_disk_set_options(
                    w, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                           ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                           ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_NO_OVERWRITE);
        return w;
}

int em_pod_unpack(int fd, const char *dir, char *const *names, em_error_t *err)
{
        cleanup_archive struct archive *a = archive_read_new();
        cleanup_archive struct archive *w = disk_writer();
        cleanup_free char *real = realpath(dir, NULL);
        struct archive_entry *e;
        size_t n = 0;
        int r;

        if (a == NULL || w == NULL || real == NULL)
                return em_error_set(err, real ? ENOMEM : errno, "unpacking the pod into %s", dir);
        if (make_tops(real, names, err) < 0)
                return -1;
        archive_read_support_format_tar(a);
        if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK)
                return archive_fail(a, "reading the pod's tar", err);
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                if (++n > EM_POD_PACK_MAX_ENTRIES)
                        return em_error_set(err, E2BIG, "the pod's tar has over %u entries",
                                            EM_POD_PACK_MAX_ENTRIES);
                if (check_entry(e, names, err) < 0)
                        return -1;
                cleanup_free char *full = em_path_join(real, archive_entry_pathname(e));
                if (full == NULL)
                        return em_error_set(err, ENOMEM, "unpacking the pod");
                archive_entry_copy_pathname(e, full);
                if (archive_write_header(w, e) < ARCHIVE_WARN ||
                    (archive_entry_size(e) > 0 && copy_out(a, w, err) < 0) ||
                    archive_write_finish_entry(w) < ARCHIVE_WARN)
                        return *err ? -1 : archive_fail(w, "extracting the pod's tar", err);
        }
        if (r != ARCHIVE_EOF)
                return archive_fail(a, "reading the pod's tar", err);
        if (archive_write_close(w) != ARCHIVE_OK)
                return archive_fail(w, "extracting the pod's tar", err);
        return 0;
}
