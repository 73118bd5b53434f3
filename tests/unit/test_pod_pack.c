/* migrate/common/pod_pack: a pod's checkpoint trees through one tar and
 * back, and the tars a hostile peer may send instead, each refused
 * without writing outside the target directory. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/pod_pack.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

static char *const names[] = {"db", "web", NULL};

static char *tmpdir(void)
{
        char tmpl[] = "/tmp/em-test-podpack.XXXXXX";

        assert_non_null(mkdtemp(tmpl));
        return strdup(tmpl);
}

static void put(const char *dir, const char *rel, const char *text)
{
        cleanup_free char *path = em_path_join(dir, rel);
        cleanup_free char *parent = strdup(path);
        em_error_t err = NULL;

        *strrchr(parent, '/') = '\0';
        assert_int_equal(em_mkdir_p(parent, 0755, &err), 0);
        assert_int_equal(em_write_file_atomic(path, text, strlen(text), 0640, &err), 0);
}

static char *get(const char *dir, const char *rel)
{
        cleanup_free char *path = em_path_join(dir, rel);
        char *data = NULL;
        size_t len = 0;
        em_error_t err = NULL;

        if (em_read_file(path, 1 << 20, &data, &len, &err) < 0) {
                em_error_free(&err);
                return NULL;
        }
        return data;
}

static void rm_dir(const char *dir)
{
        em_error_t err = NULL;

        em_rm_rf(dir, &err);
        em_error_free(&err);
}

static void round_trip(void **state)
{
        cleanup_free char *src = tmpdir(), *dst = tmpdir();
        cleanup_free char *tar = em_path_join(src, "pod.tar");
        cleanup_free char *link = NULL, *a = NULL, *b = NULL, *c = NULL;
        char target[64] = "";
        em_error_t err = NULL;

        (void)state;
        put(src, "db/criu/inventory.img", "inv");
        put(src, "db/upper/data/dump.rdb", "REDIS");
        put(src, "db/container.json", "{}"); /* written by the target, not sent */
        put(src, "web/criu/core-1.img", "core");
        put(src, "web/upper/.keep", "");
        put(src, "web/log", "a line\n");
        link = em_path_join(src, "db/upper/data/l");
        assert_int_equal(symlink("/etc/passwd", link), 0);
        assert_int_equal(em_pod_pack(src, names, true, tar, &err), 0);
        cleanup_close int fd = open(tar, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(em_pod_unpack(fd, dst, names, &err), 0);
        assert_string_equal(a = get(dst, "db/criu/inventory.img"), "inv");
        assert_string_equal(b = get(dst, "db/upper/data/dump.rdb"), "REDIS");
        assert_string_equal(c = get(dst, "web/criu/core-1.img"), "core");
        assert_null(get(dst, "db/container.json"));
        cleanup_free char *wl = get(dst, "web/log");
        assert_string_equal(wl, "a line\n");
        assert_null(get(dst, "db/log")); /* none to send */
        cleanup_free char *dl = em_path_join(dst, "db/upper/data/l");
        assert_true(readlink(dl, target, sizeof(target) - 1) > 0);
        assert_string_equal(target, "/etc/passwd");
        struct stat st;
        cleanup_free char *top = em_path_join(dst, "web");
        assert_int_equal(stat(top, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0711);
        rm_dir(src);
        rm_dir(dst);
}

/* A pre-copied pod's tar (trees false) carries only the logs: its images
 * and writable layers cross as deltas before it. */
static void logs_only(void **state)
{
        cleanup_free char *src = tmpdir(), *dst = tmpdir();
        cleanup_free char *tar = em_path_join(src, "pod.tar");
        em_error_t err = NULL;

        (void)state;
        put(src, "db/criu/inventory.img", "inv");
        put(src, "db/upper/data/dump.rdb", "REDIS");
        put(src, "db/log", "db line\n");
        put(src, "web/criu/core-1.img", "core");
        put(src, "web/upper/.keep", "");
        assert_int_equal(em_pod_pack(src, names, false, tar, &err), 0);
        cleanup_close int fd = open(tar, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(em_pod_unpack(fd, dst, names, &err), 0);
        cleanup_free char *log = get(dst, "db/log");
        assert_string_equal(log, "db line\n");
        cleanup_free char *upper = em_path_join(dst, "db/upper");
        cleanup_free char *criu = em_path_join(dst, "web/criu");
        assert_false(em_path_exists(upper));
        assert_false(em_path_exists(criu));
        rm_dir(src);
        rm_dir(dst);
}

/* One crafted entry (and what comes before it) into a tar file. */
struct fake {
        const char *path;
        unsigned type;
        const char *link; /* symlink target or hardlink */
        dev_t rdev;
        const char *xattr;
};

static void write_tar(const char *path, const struct fake *f, size_t n)
{
        struct archive *w = archive_write_new();

        assert_int_equal(archive_write_set_format_pax_restricted(w), ARCHIVE_OK);
        assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, f[i].path);
                archive_entry_set_filetype(e, f[i].type);
                archive_entry_set_perm(e, f[i].type == AE_IFDIR ? 0755 : 0644);
                archive_entry_set_size(e, f[i].type == AE_IFREG ? 1 : 0);
                if (f[i].type == AE_IFLNK)
                        archive_entry_set_symlink(e, f[i].link);
                else if (f[i].link != NULL)
                        archive_entry_set_hardlink(e, f[i].link);
                archive_entry_set_rdev(e, f[i].rdev);
                if (f[i].xattr != NULL)
                        archive_entry_xattr_add_entry(e, f[i].xattr, "x", 1);
                assert_true(archive_write_header(w, e) >= ARCHIVE_WARN);
                if (f[i].type == AE_IFREG)
                        archive_write_data(w, "X", 1);
                archive_entry_free(e);
        }
        archive_write_close(w);
        archive_write_free(w);
}

static void refused(const struct fake *f, size_t n, const char *why)
{
        cleanup_free char *dir = tmpdir(), *scratch = tmpdir();
        cleanup_free char *tar = em_path_join(scratch, "t.tar");
        cleanup_free char *escaped = em_path_join(scratch, "escaped");
        em_error_t err = NULL;

        write_tar(tar, f, n);
        cleanup_close int fd = open(tar, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(em_pod_unpack(fd, dir, names, &err), -1);
        assert_non_null(err);
        if (strstr(em_error_msg(err), why) == NULL)
                fail_msg("expected '%s' in '%s'", why, em_error_msg(err));
        em_error_free(&err);
        assert_false(em_path_exists("/tmp/em-podpack-escaped"));
        rm_dir(dir);
        rm_dir(scratch);
}

#define E(p, t)                                                                                    \
        {                                                                                          \
                .path = (p), .type = (t)                                                           \
        }
#define EL(p, t, l)                                                                                \
        {                                                                                          \
                .path = (p), .type = (t), .link = (l)                                              \
        }
#define ED(p, t, d)                                                                                \
        {                                                                                          \
                .path = (p), .type = (t), .rdev = (d)                                              \
        }
#define EX(p, t, x)                                                                                \
        {                                                                                          \
                .path = (p), .type = (t), .xattr = (x)                                             \
        }

#define REFUSED(why, ...)                                                                          \
        do {                                                                                       \
                const struct fake f_[] = {__VA_ARGS__};                                            \
                refused(f_, sizeof(f_) / sizeof(f_[0]), why);                                      \
        } while (0)

static void hostile_paths(void **state)
{
        (void)state;
        REFUSED("not under", E("../../../../tmp/em-podpack-escaped", AE_IFREG));
        REFUSED("not under", E("/tmp/em-podpack-escaped", AE_IFREG));
        REFUSED("not under", E("db/criu/../../../../../tmp/em-podpack-escaped", AE_IFREG));
        REFUSED("not under", E("db/criu/./x", AE_IFREG));
        REFUSED("not under", E("db//criu/x", AE_IFREG));
        REFUSED("not under", E("other/criu/x", AE_IFREG));
        REFUSED("not under", E("db/container.json", AE_IFREG));
        REFUSED("not under", E("pod.json", AE_IFREG));
        REFUSED("not under", E("db/bundle/config.json", AE_IFREG));
        REFUSED("not under", E("db", AE_IFDIR));
        REFUSED("not under", E("", AE_IFREG));
        REFUSED("not under", E("db/log/x", AE_IFREG));
        REFUSED("its type", EL("db/log", AE_IFLNK, "/etc/shadow"));
        REFUSED("not under", E("db/log", AE_IFDIR)); /* tar writes "db/log/" */
}

static void hostile_types(void **state)
{
        (void)state;
        REFUSED("its type", ED("db/upper/sda", AE_IFBLK, makedev(8, 0)));
        REFUSED("its type", ED("db/upper/mem", AE_IFCHR, makedev(1, 1)));
        REFUSED("its type", E("db/upper/x", AE_IFREG), EL("db/upper/y", AE_IFREG, "db/upper/x"));
        REFUSED("overlay", EX("db/upper/x", AE_IFREG, "security.capability"));
        REFUSED("overlay", EX("db/upper/x", AE_IFREG, "trusted.evil"));
}

/* A symlink that points out, then a file through it: never followed. */
static void hostile_symlink(void **state)
{
        (void)state;
        REFUSED("", E("db/upper", AE_IFDIR), EL("db/upper/l", AE_IFLNK, "/tmp"),
                E("db/upper/l/em-podpack-escaped", AE_IFREG));
}

/* A whiteout (0/0 character device) and overlay's xattrs pass. */
static void whiteout_ok(void **state)
{
        cleanup_free char *dir = tmpdir(), *scratch = tmpdir();
        cleanup_free char *tar = em_path_join(scratch, "t.tar");
        const struct fake f[] = {E("db/upper", AE_IFDIR), E("db/upper/gone", AE_IFCHR)};
        em_error_t err = NULL;
        struct stat st;

        (void)state;
        write_tar(tar, f, 2);
        cleanup_close int fd = open(tar, O_RDONLY);
        assert_int_equal(em_pod_unpack(fd, dir, names, &err), 0);
        cleanup_free char *wh = em_path_join(dir, "db/upper/gone");
        assert_int_equal(lstat(wh, &st), 0);
        assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
        rm_dir(dir);
        rm_dir(scratch);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(round_trip),    cmocka_unit_test(hostile_paths),
            cmocka_unit_test(hostile_types), cmocka_unit_test(hostile_symlink),
            cmocka_unit_test(whiteout_ok),   cmocka_unit_test(logs_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
