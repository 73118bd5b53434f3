#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

static int setup_dir(void **state)
{
        char *dir = strdup("/tmp/em-fsutil-XXXXXX");
        if (mkdtemp(dir) == NULL)
                return -1;
        *state = dir;
        return 0;
}

static int teardown_dir(void **state)
{
        em_error_t err = NULL;
        int rc = em_rm_rf(*state, &err);
        em_error_free(&err);
        free(*state);
        return rc;
}

static char *p(void **state, const char *rel)
{
        return em_path_join(*state, rel);
}

static void write_file(const char *path, const char *s)
{
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
        close(fd);
}

static void test_atomic_write(void **state)
{
        char *f = p(state, "a.txt");
        em_error_t err = NULL;
        assert_int_equal(em_write_file_atomic(f, "one", 3, 0600, &err), 0);
        assert_int_equal(em_write_file_atomic(f, "second", 6, 0640, &err), 0);
        char *buf = NULL;
        size_t len = 0;
        assert_int_equal(em_read_file(f, 100, &buf, &len, &err), 0);
        assert_int_equal(len, 6);
        assert_string_equal(buf, "second");
        free(buf);
        struct stat st;
        assert_int_equal(stat(f, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        /* No temp files left behind. */
        int n = 0;
        DIR *d = opendir(*state);
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n, 1);
        /* Into a missing directory: fails with context, leaves nothing. */
        char *bad = p(state, "nodir/x");
        assert_int_equal(em_write_file_atomic(bad, "x", 1, 0644, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_non_null(strstr(em_error_msg(err), bad));
        em_error_free(&err);
        free(bad);
        free(f);
}

static void test_read_file_limits(void **state)
{
        char *f = p(state, "big");
        char *content = malloc(10001);
        memset(content, 'x', 10000);
        content[10000] = '\0';
        write_file(f, content);
        em_error_t err = NULL;
        char *buf = NULL;
        size_t len = 0;
        /* Exactly at the limit is allowed, one byte less is not. */
        assert_int_equal(em_read_file(f, 10000, &buf, &len, &err), 0);
        assert_int_equal(len, 10000);
        assert_int_equal(buf[10000], '\0');
        free(buf);
        buf = NULL;
        assert_int_equal(em_read_file(f, 9999, &buf, &len, &err), -1);
        assert_int_equal(em_error_status(err), EFBIG);
        assert_null(buf);
        em_error_free(&err);
        assert_int_equal(em_read_file(f, 4096, &buf, &len, &err), -1);
        em_error_free(&err);
        /* Exactly at a power-of-two limit (the read buffer's growth steps). */
        content[4096] = '\0';
        write_file(f, content);
        assert_int_equal(em_read_file(f, 4096, &buf, &len, &err), 0);
        assert_int_equal(len, 4096);
        free(buf);
        write_file(f, "");
        assert_int_equal(em_read_file(f, 0, &buf, &len, &err), 0);
        assert_int_equal(len, 0);
        free(buf);
        write_file(f, "abcd");
        assert_int_equal(em_read_file(f, 4, &buf, NULL, &err), 0);
        assert_string_equal(buf, "abcd");
        free(buf);
        assert_int_equal(em_read_file(f, 3, &buf, NULL, &err), -1);
        em_error_free(&err);
        free(content);
        free(f);
}

static void test_mkdir_p(void **state)
{
        char *deep = p(state, "a/b/c/d");
        em_error_t err = NULL;
        assert_int_equal(em_mkdir_p(deep, 0755, &err), 0);
        struct stat st;
        assert_int_equal(stat(deep, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(em_mkdir_p(deep, 0755, &err), 0); /* idempotent */
        char *trail = p(state, "t/u/");
        assert_int_equal(em_mkdir_p(trail, 0755, &err), 0);
        /* A file in the way is an error, not success. */
        char *file = p(state, "file");
        write_file(file, "x");
        assert_int_equal(em_mkdir_p(file, 0755, &err), -1);
        assert_int_equal(em_error_status(err), ENOTDIR);
        em_error_free(&err);
        char *under = p(state, "file/sub");
        assert_int_equal(em_mkdir_p(under, 0755, &err), -1);
        em_error_free(&err);
        free(deep), free(trail), free(file), free(under);
}

static void test_rm_rf_no_follow(void **state)
{
        em_error_t err = NULL;
        char *outside = p(state, "outside");
        char *precious = p(state, "outside/precious");
        char *tree = p(state, "tree/sub/deeper");
        assert_int_equal(em_mkdir_p(outside, 0755, &err), 0);
        write_file(precious, "keep me");
        assert_int_equal(em_mkdir_p(tree, 0755, &err), 0);
        char *f = p(state, "tree/sub/deeper/f");
        write_file(f, "x");
        char *l1 = p(state, "tree/link-dir"), *l2 = p(state, "tree/sub/link-file");
        assert_int_equal(symlink(outside, l1), 0);
        assert_int_equal(symlink(precious, l2), 0);
        char *root = p(state, "tree");
        assert_int_equal(em_rm_rf(root, &err), 0);
        assert_false(em_path_exists(root));
        assert_true(em_path_exists(precious));
        /* A symlink given as the root is removed, not its target. */
        char *top = p(state, "toplink");
        assert_int_equal(symlink(outside, top), 0);
        assert_int_equal(em_rm_rf(top, &err), 0);
        assert_false(em_path_exists(top));
        assert_true(em_path_exists(precious));
        /* Missing path is fine. */
        assert_int_equal(em_rm_rf(root, &err), 0);
        free(outside), free(precious), free(tree), free(f), free(l1), free(l2), free(root);
        free(top);
}

/* A bind mount on the same file system must stop the removal (as root). */
static void test_rm_rf_bind_mount(void **state)
{
        em_error_t err = NULL;
        char *src = p(state, "bsrc"), *keep = p(state, "bsrc/keep");
        char *mnt = p(state, "btree/mnt"), *root = p(state, "btree");
        assert_int_equal(em_mkdir_p(src, 0755, &err), 0);
        assert_int_equal(em_mkdir_p(mnt, 0755, &err), 0);
        write_file(keep, "x");
        if (mount(src, mnt, NULL, MS_BIND, NULL) < 0) {
                skip();
        }
        int rc = em_rm_rf(root, &err);
        umount2(mnt, MNT_DETACH);
        assert_int_equal(rc, -1);
        assert_int_equal(em_error_status(err), EBUSY);
        em_error_free(&err);
        assert_true(em_path_exists(keep));
        free(src), free(keep), free(mnt), free(root);
}

static void test_path_join(void **state)
{
        char *a = em_path_join("/x/", "/y"), *b = em_path_join("/x", "y");
        assert_string_equal(a, "/x/y");
        assert_string_equal(b, "/x/y");
        free(a), free(b);
}

static void test_read_write_all(void **state)
{
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        em_error_t err = NULL;
        assert_int_equal(em_write_all(fds[1], "hello", 5, &err), 0);
        close(fds[1]);
        char buf[16];
        assert_int_equal(em_read_all(fds[0], buf, sizeof(buf), &err), 5);
        close(fds[0]);
        assert_int_equal(em_write_all(fds[1], "x", 1, &err), -1);
        assert_int_equal(em_error_status(err), EBADF);
        em_error_free(&err);
}

/* Inside or not, by real paths: symlinks, "..", paths not created yet. */
static bool within(const char *path, const char *dir)
{
        em_error_t err = NULL;
        bool w = false;

        assert_int_equal(em_path_within(path, dir, &w, &err), 0);
        return w;
}

static void test_path_within(void **state)
{
        cleanup_free char *root = p(state, "root");
        cleanup_free char *pki = p(state, "root/pki");
        cleanup_free char *link = p(state, "link");
        cleanup_free char *via = p(state, "link/pki/new");
        cleanup_free char *up = p(state, "root/none/../../root2");
        cleanup_free char *down = p(state, "other/x/../../root/ca");
        cleanup_free char *sib = p(state, "root2");

        assert_int_equal(mkdir(root, 0700), 0);
        assert_int_equal(symlink(root, link), 0);
        assert_true(within(root, root));
        assert_true(within(pki, root));
        assert_true(within(via, root)); /* through a symlink, not yet created */
        assert_true(within(down, root));
        assert_false(within(up, root));
        assert_false(within(sib, root)); /* a common prefix is not enough */
        assert_false(within("/etc/edgemig/ca", root));
        assert_true(within("relative/x", "."));
}

static off_t tail_of(const char *text, size_t len, uint64_t lines)
{
        char path[] = "/tmp/test_fsutil_tail.XXXXXX";
        int fd = mkstemp(path);
        em_error_t err = NULL;
        off_t off = -1;

        assert_true(fd >= 0);
        unlink(path);
        assert_int_equal(em_write_all(fd, text, len, &err), 0);
        assert_int_equal(em_tail_offset(fd, lines, &off, &err), 0);
        close(fd);
        return off;
}

static void test_tail_offset(void **state)
{
        const char *t = "one\ntwo\nthree\n";
        const char *u = "one\ntwo\nthree"; /* no final newline */

        assert_int_equal(tail_of(t, strlen(t), 1), 8);
        assert_int_equal(tail_of(t, strlen(t), 2), 4);
        assert_int_equal(tail_of(t, strlen(t), 3), 0);
        assert_int_equal(tail_of(t, strlen(t), 10), 0);
        assert_int_equal(tail_of(t, strlen(t), 0), (off_t)strlen(t));
        assert_int_equal(tail_of(u, strlen(u), 1), 8);
        assert_int_equal(tail_of(u, strlen(u), 3), 0);
        assert_int_equal(tail_of("", 0, 5), 0);
        assert_int_equal(tail_of("\n\n", 2, 1), 1);
        /* Lines across the 64 KiB blocks it reads backwards. */
        size_t big = 200000;
        char *b = malloc(big);
        memset(b, 'x', big);
        b[50000] = '\n';
        b[big - 1] = '\n';
        assert_int_equal(tail_of(b, big, 1), 50001);
        assert_int_equal(tail_of(b, big, 2), 0);
        free(b);
}

static bool ends_img(const char *name)
{
        size_t l = strlen(name);
        return l > 4 && strcmp(name + l - 4, ".img") == 0;
}

static void test_dir_names_at(void **state)
{
        const char *names[] = {"b.img", "a.img", "c.txt"};
        cleanup_close int dfd = open(*state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_strv char **all = NULL, **imgs = NULL, **again = NULL;
        char **none = NULL;
        em_error_t err = NULL;

        assert_true(dfd >= 0);
        for (size_t i = 0; i < 3; i++)
                close(openat(dfd, names[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
        assert_int_equal(em_dir_names_at(dfd, NULL, 3, "d", &all, &err), 0);
        assert_string_equal(all[0], "a.img");
        assert_string_equal(all[2], "c.txt");
        assert_null(all[3]);
        assert_int_equal(em_dir_names_at(dfd, ends_img, 3, "d", &imgs, &err), 0);
        assert_string_equal(imgs[1], "b.img");
        assert_null(imgs[2]);
        /* dirfd was read to its end by the first listing. */
        assert_int_equal(em_dir_names_at(dfd, NULL, 3, "d", &again, &err), 0);
        assert_string_equal(again[2], "c.txt");
        assert_int_equal(em_dir_names_at(dfd, NULL, 2, "d", &none, &err), -1);
        assert_int_equal(em_error_status(err), E2BIG);
        assert_null(none);
        em_error_free(&err);
}

/* Each entry's fn: "bad" fails, "skip" is left (0), the others count 1;
 * every name it saw is recorded. */
static int visit(const char *path, const char *name, void *ud, em_error_t *err)
{
        char *seen = ud;

        assert_non_null(strstr(path, name));
        strcat(seen, name);
        strcat(seen, " ");
        if (strcmp(name, "bad") == 0)
                return em_error_set(err, EIO, "bad entry");
        return strcmp(name, "skip") != 0;
}

/* Recovery's walk: dot names are not visited, a failing entry does not
 * stop the others and fails the walk, naming how many; a missing
 * directory holds nothing. */
static void test_dir_each(void **state)
{
        cleanup_free char *gone = p(state, "gone");
        char seen[256] = "";
        em_error_t err = NULL;
        const char *names[] = {"a", "b", "skip", ".hidden"};

        for (size_t i = 0; i < 4; i++) {
                cleanup_free char *f = p(state, names[i]);
                write_file(f, "x");
        }
        assert_int_equal(em_dir_each(*state, visit, seen, "things", &err), 2);
        assert_null(err);
        assert_null(strstr(seen, ".hidden"));
        assert_non_null(strstr(seen, "skip "));
        cleanup_free char *bad = p(state, "bad");
        write_file(bad, "x");
        seen[0] = '\0';
        assert_int_equal(em_dir_each(*state, visit, seen, "things", &err), -1);
        assert_int_equal(em_error_status(err), EIO);
        assert_non_null(strstr(em_error_msg(err), "1 things could not be recovered (see log)"));
        assert_non_null(strstr(seen, "a "));
        assert_non_null(strstr(seen, "b "));
        em_error_free(&err);
        assert_int_equal(em_dir_each(gone, visit, seen, "things", &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_atomic_write, setup_dir, teardown_dir),
            cmocka_unit_test_setup_teardown(test_read_file_limits, setup_dir, teardown_dir),
            cmocka_unit_test_setup_teardown(test_mkdir_p, setup_dir, teardown_dir),
            cmocka_unit_test_setup_teardown(test_rm_rf_no_follow, setup_dir, teardown_dir),
            cmocka_unit_test_setup_teardown(test_rm_rf_bind_mount, setup_dir, teardown_dir),
            cmocka_unit_test(test_path_join),
            cmocka_unit_test_setup_teardown(test_path_within, setup_dir, teardown_dir),
            cmocka_unit_test(test_read_write_all),
            cmocka_unit_test(test_tail_offset),
            cmocka_unit_test_setup_teardown(test_dir_names_at, setup_dir, teardown_dir),
            cmocka_unit_test_setup_teardown(test_dir_each, setup_dir, teardown_dir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
