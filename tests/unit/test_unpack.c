/* Layer unpacking: formats, whiteouts, metadata and hostile layers. Tar
 * archives are generated here with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/unpack.h"
#include "util/fsutil.h"

struct fx {
        char dir[64], canary[96], layers[96], target[128];
        int layers_fd;
        struct em_unpack_stats last; /* of the last unpack */
};

/* A tar being built in memory. */
struct tb {
        struct archive *a;
        char *buf;
        size_t used;
};

#define TB_CAP (8u << 20)

static void tb_begin(struct tb *t)
{
        t->buf = malloc(TB_CAP);
        t->a = archive_write_new();
        archive_write_set_format_pax_restricted(t->a);
        archive_write_set_bytes_in_last_block(t->a, 1);
        assert_int_equal(archive_write_open_memory(t->a, t->buf, TB_CAP, &t->used), ARCHIVE_OK);
}

static struct archive_entry *entry(const char *name, mode_t type, mode_t perm)
{
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, perm);
        archive_entry_set_mtime(e, 1500000000, 0);
        return e;
}

static void tb_put(struct tb *t, struct archive_entry *e, const char *data)
{
        if (data != NULL)
                archive_entry_set_size(e, (la_int64_t)strlen(data));
        assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
        if (data != NULL)
                archive_write_data(t->a, data, strlen(data));
        archive_entry_free(e);
}

static void tb_file(struct tb *t, const char *name, const char *data)
{
        tb_put(t, entry(name, AE_IFREG, 0644), data);
}

static void tb_dir(struct tb *t, const char *name)
{
        tb_put(t, entry(name, AE_IFDIR, 0755), NULL);
}

static void tb_symlink(struct tb *t, const char *name, const char *target)
{
        struct archive_entry *e = entry(name, AE_IFLNK, 0777);
        archive_entry_set_symlink(e, target);
        tb_put(t, e, NULL);
}

static void tb_hardlink(struct tb *t, const char *name, const char *target)
{
        struct archive_entry *e = entry(name, AE_IFREG, 0644);
        archive_entry_set_hardlink(e, target);
        archive_entry_set_size(e, 0);
        tb_put(t, e, NULL);
}

static void tb_dev(struct tb *t, const char *name, mode_t type, unsigned maj, unsigned min)
{
        struct archive_entry *e = entry(name, type, 0600);
        archive_entry_set_rdev(e, makedev(maj, min));
        tb_put(t, e, NULL);
}

static void tb_end(struct tb *t)
{
        assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
        archive_write_free(t->a);
}

/* Wraps raw bytes in gzip or zstd with libarchive's raw writer. */
static char *compress(const char *in, size_t len, enum em_compression c, size_t *out_len)
{
        char *out = malloc(TB_CAP);
        struct archive *a = archive_write_new();

        archive_write_set_format_raw(a);
        if (c == EM_COMP_GZIP)
                archive_write_add_filter_gzip(a);
        else
                archive_write_add_filter_zstd(a);
        archive_write_set_bytes_in_last_block(a, 1);
        assert_int_equal(archive_write_open_memory(a, out, TB_CAP, out_len), ARCHIVE_OK);
        struct archive_entry *e = entry("data", AE_IFREG, 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, in, len), (la_ssize_t)len);
        archive_entry_free(e);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return out;
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_unpack.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->canary, sizeof(f->canary), "%s/canary", f->dir);
        snprintf(f->layers, sizeof(f->layers), "%s/layers", f->dir);
        snprintf(f->target, sizeof(f->target), "%s/target", f->canary);
        assert_int_equal(mkdir(f->canary, 0755), 0);
        assert_int_equal(mkdir(f->layers, 0755), 0);
        int fd = open(f->target, O_WRONLY | O_CREAT, 0644);
        assert_int_equal(write(fd, "orig", 4), 4);
        close(fd);
        f->layers_fd = open(f->layers, O_RDONLY | O_DIRECTORY);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        close(f->layers_fd);
        em_rm_rf(f->dir, &err);
        free(f);
        return 0;
}

/* Writes the blob to a file and unpacks it to layers/L. */
static int unpack_buf(struct fx *f, const char *buf, size_t len, enum em_compression c,
                      const char *want, char diff_id[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        char path[128];
        snprintf(path, sizeof(path), "%s/blob", f->dir);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
        struct em_unpack_opts o = {.comp = c, .expected_diff_id = want};
        int rc = em_layer_unpack(fd, &o, f->layers_fd, "L", diff_id, &f->last, err);
        close(fd);
        unlink(path);
        return rc;
}

static int unpack_tb(struct fx *f, struct tb *t, em_error_t *err)
{
        char diff_id[EM_DIGEST_STR_LEN + 1];
        tb_end(t);
        int rc = unpack_buf(f, t->buf, t->used, EM_COMP_NONE, NULL, diff_id, err);
        free(t->buf);
        if (rc < 0 && getenv("TEST_VERBOSE"))
                fprintf(stderr, "unpack: %s\n", em_error_msg(*err));
        return rc;
}

static size_t count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d)) != NULL)
                n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        closedir(d);
        return n;
}

/* After a rejected layer: the error names the entry, nothing outside changed,
 * no partial layer is left, and a good layer unpacks afterwards. */
/* Unpacks t, which must be refused with an error naming needle and leave
 * nothing behind (canary intact, no layer); then the store still works, and
 * is emptied again for the next case. */
static void expect_rejected(struct fx *f, struct tb *in, const char *needle)
{
        em_error_t err = NULL;
        int rc = unpack_tb(f, in, &err);
        struct stat st;
        char buf[8] = {0};
        em_error_t err2 = NULL;
        struct tb t;

        assert_int_equal(rc, -1);
        assert_non_null(err);
        if (strstr(em_error_msg(err), needle) == NULL)
                fail_msg("error '%s' does not name '%s'", em_error_msg(err), needle);
        assert_int_equal(count_entries(f->canary), 1);
        assert_int_equal(lstat(f->target, &st), 0);
        assert_int_equal(st.st_nlink, 1);
        int fd = open(f->target, O_RDONLY);
        assert_int_equal(read(fd, buf, sizeof(buf)), 4);
        close(fd);
        assert_string_equal(buf, "orig");
        assert_int_equal(count_entries(f->layers), 0);
        tb_begin(&t);
        tb_file(&t, "ok", "fine");
        assert_int_equal(unpack_tb(f, &t, &err2), 0);
        assert_int_equal(count_entries(f->layers), 1);
        em_error_free(&err);
        assert_int_equal(em_rm_rf_at(f->layers_fd, "L", &err2), 0);
}

static void test_dotdot(void **state)
{
        struct fx *f = *state;
        struct tb t;

        tb_begin(&t);
        tb_file(&t, "a", "x");
        tb_file(&t, "a/../../../canary/evil", "pwned");
        expect_rejected(f, &t, "entry 'a/../../../canary/evil'");
}

static void test_absolute(void **state)
{
        struct fx *f = *state;
        struct tb t;
        char name[160];

        snprintf(name, sizeof(name), "%s/evil", f->canary);
        tb_begin(&t);
        tb_file(&t, name, "pwned");
        expect_rejected(f, &t, "absolute path");
}

static void test_write_through_symlink(void **state)
{
        struct fx *f = *state;
        struct tb t;

        tb_begin(&t);
        tb_symlink(&t, "ln", f->canary);
        tb_file(&t, "ln/evil", "pwned");
        expect_rejected(f, &t, "entry 'ln/evil': path goes through a");
        tb_begin(&t);
        tb_symlink(&t, "rel", "../../canary");
        tb_dir(&t, "rel/sub");
        expect_rejected(f, &t, "entry 'rel/sub'");
}

static void test_hardlink_outside(void **state)
{
        struct fx *f = *state;
        struct tb t;

        tb_begin(&t);
        tb_hardlink(&t, "hl", "../../canary/target");
        expect_rejected(f, &t, "entry 'hl': hardlink target");
        tb_begin(&t);
        tb_symlink(&t, "s", f->canary);
        tb_hardlink(&t, "h", "s/target");
        expect_rejected(f, &t, "entry 'h': hardlink target 's/target'");
}

/* A debootstrap /dev: device nodes are left out with a warning, the rest of
 * the layer (their directory, files beside them, a 0/0 whiteout) is kept. */
static void test_device_nodes_skipped(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        struct tb t;
        struct stat st;
        char p[160];

        tb_begin(&t);
        tb_dir(&t, "dev");
        tb_dev(&t, "dev/mem", AE_IFCHR, 1, 1);
        tb_dev(&t, "dev/null", AE_IFCHR, 1, 3);
        tb_dev(&t, "sda", AE_IFBLK, 8, 0);
        tb_file(&t, "dev/keep", "k");
        tb_file(&t, ".wh.gone", "");
        assert_int_equal(unpack_tb(f, &t, &err), 0);
        assert_int_equal(f->last.skipped_devices, 3);
        assert_int_equal(f->last.entries, 6);
        snprintf(p, sizeof(p), "%s/L/dev/mem", f->layers);
        assert_int_equal(lstat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/L/dev/null", f->layers);
        assert_int_equal(lstat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/L/sda", f->layers);
        assert_int_equal(lstat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/L/dev/keep", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        snprintf(p, sizeof(p), "%s/L/gone", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_rdev, makedev(0, 0));
}

/* Skipping devices does not open a way out: a device entry whose path
 * escapes is still refused, as is one below a symlink to outside. */
static void test_device_nodes_escape_refused(void **state)
{
        struct fx *f = *state;
        struct tb t;

        tb_begin(&t);
        tb_dev(&t, "../../canary/null", AE_IFCHR, 1, 3);
        expect_rejected(f, &t, "entry '../../canary/null'");
        tb_begin(&t);
        tb_symlink(&t, "dev", f->canary);
        tb_dev(&t, "dev/sda", AE_IFBLK, 8, 0);
        expect_rejected(f, &t, "entry 'dev/sda': path goes through a");
}

static void test_oversized_names(void **state)
{
        struct fx *f = *state;
        struct tb t;
        char comp[300], path[5000];

        memset(comp, 'c', sizeof(comp) - 1);
        comp[sizeof(comp) - 1] = '\0';
        tb_begin(&t);
        tb_file(&t, comp, "x");
        expect_rejected(f, &t, "component of 299 bytes (max 255)");
        for (size_t i = 0; i + 2 < sizeof(path); i += 2)
                path[i] = 'd', path[i + 1] = '/';
        path[sizeof(path) - 2] = 'f', path[sizeof(path) - 1] = '\0';
        tb_begin(&t);
        tb_file(&t, path, "x");
        expect_rejected(f, &t, "name too long");
}

static void test_replaces_symlink_instead_of_following(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        struct tb t;
        struct stat st;
        char p[160];

        tb_begin(&t);
        tb_symlink(&t, "f", f->target);
        tb_file(&t, "f", "new");
        assert_int_equal(unpack_tb(f, &t, &err), 0);
        snprintf(p, sizeof(p), "%s/L/f", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_size, 3);
        assert_int_equal(lstat(f->target, &st), 0);
        assert_int_equal(st.st_size, 4);
}

static void test_whiteouts(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        struct tb t;
        struct stat st;
        char p[160], v[8] = {0};

        tb_begin(&t);
        tb_file(&t, ".wh.gone", "");
        tb_dir(&t, "d");
        tb_file(&t, "d/.wh..wh..opq", "");
        tb_file(&t, "d/x", "x");
        tb_file(&t, "e/.wh.sub", "");
        assert_int_equal(unpack_tb(f, &t, &err), 0);
        snprintf(p, sizeof(p), "%s/L/gone", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(0, 0));
        snprintf(p, sizeof(p), "%s/L/e/sub", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        snprintf(p, sizeof(p), "%s/L/.wh.gone", f->layers);
        assert_int_equal(lstat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/L/d/.wh..wh..opq", f->layers);
        assert_int_equal(lstat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/L/d", f->layers);
        assert_int_equal(lgetxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
        assert_int_equal(v[0], 'y');
}

static void test_metadata_preserved(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        struct tb t;
        struct stat st;
        char p[160], v[8] = {0};

        tb_begin(&t);
        struct archive_entry *e = entry("m", AE_IFREG, 04750);
        archive_entry_set_uid(e, 1234);
        archive_entry_set_gid(e, 5678);
        archive_entry_set_mtime(e, 1000000, 500);
        archive_entry_xattr_add_entry(e, "user.k", "v", 1);
        archive_entry_xattr_add_entry(e, "trusted.overlay.redirect", "/etc", 4);
        tb_put(&t, e, "data");
        e = entry("dd", AE_IFDIR, 0710);
        archive_entry_set_mtime(e, 2000000, 0);
        tb_put(&t, e, NULL);
        tb_file(&t, "dd/child", "c");
        tb_hardlink(&t, "dd/hl", "m");
        assert_int_equal(unpack_tb(f, &t, &err), 0);
        snprintf(p, sizeof(p), "%s/L/m", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_uid, 1234);
        assert_int_equal(st.st_gid, 5678);
        assert_int_equal(st.st_mode & 07777, 04750);
        assert_int_equal(st.st_mtim.tv_sec, 1000000);
        assert_int_equal(st.st_nlink, 2);
        assert_int_equal(lgetxattr(p, "user.k", v, sizeof(v)), 1);
        assert_int_equal(lgetxattr(p, "trusted.overlay.redirect", v, sizeof(v)), -1);
        snprintf(p, sizeof(p), "%s/L/dd", f->layers);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_mtim.tv_sec, 2000000);
        assert_int_equal(st.st_mode & 07777, 0710);
}

static void test_compressions_and_diff_id(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        struct tb t;
        char want[EM_DIGEST_STR_LEN + 1], got[EM_DIGEST_STR_LEN + 1];
        size_t zlen;

        tb_begin(&t);
        tb_dir(&t, "./");
        tb_file(&t, "./etc/hello", "hello world\n");
        tb_end(&t);
        em_sha256_buf(t.buf, t.used, want);
        enum em_compression cs[] = {EM_COMP_NONE, EM_COMP_GZIP, EM_COMP_ZSTD};
        for (size_t i = 0; i < 3; i++) {
                char *z = cs[i] == EM_COMP_NONE ? NULL : compress(t.buf, t.used, cs[i], &zlen);
                assert_int_equal(
                    unpack_buf(f, z ? z : t.buf, z ? zlen : t.used, cs[i], want, got, &err), 0);
                assert_string_equal(got, want);
                free(z);
                assert_int_equal(em_rm_rf_at(f->layers_fd, "L", &err), 0);
        }
        /* Declared gzip, is plain tar: refused before anything is written. */
        assert_int_equal(unpack_buf(f, t.buf, t.used, EM_COMP_GZIP, NULL, got, &err), -1);
        em_error_free(&err);
        /* Wrong diff-id: the unpacked tree is removed again. */
        assert_int_equal(unpack_buf(f, t.buf, t.used, EM_COMP_NONE,
                                    "sha256:0000000000000000000000000000000000000000000000000000"
                                    "000000000000",
                                    got, &err),
                         -1);
        assert_non_null(strstr(em_error_msg(err), "diff-id mismatch"));
        em_error_free(&err);
        assert_int_equal(count_entries(f->layers), 0);
        free(t.buf);
}

static void test_tarpath_clean(void **state)
{
        static const struct {
                const char *in, *out;
        } ok[] = {{"a", "a"},       {"./a//b/", "a/b"},     {"./", ""},        {".", ""},
                  {"a/./b", "a/b"}, {"..a/b..", "..a/b.."}, {".wh.x", ".wh.x"}};
        static const char *bad[] = {"", "/", "/etc/passwd", "..", "a/../b", "a/..", "../x"};
        char out[4096];
        em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                assert_int_equal(em_tarpath_clean(ok[i].in, out, sizeof(out), &err), 0);
                assert_string_equal(out, ok[i].out);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(em_tarpath_clean(bad[i], out, sizeof(out), &err), -1);
                em_error_free(&err);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_tarpath_clean),
            cmocka_unit_test_setup_teardown(test_dotdot, setup, teardown),
            cmocka_unit_test_setup_teardown(test_absolute, setup, teardown),
            cmocka_unit_test_setup_teardown(test_write_through_symlink, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hardlink_outside, setup, teardown),
            cmocka_unit_test_setup_teardown(test_device_nodes_skipped, setup, teardown),
            cmocka_unit_test_setup_teardown(test_device_nodes_escape_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oversized_names, setup, teardown),
            cmocka_unit_test_setup_teardown(test_replaces_symlink_instead_of_following, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_metadata_preserved, setup, teardown),
            cmocka_unit_test_setup_teardown(test_compressions_and_diff_id, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
