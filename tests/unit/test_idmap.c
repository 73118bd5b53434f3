#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/idmap.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

static char dir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(dir, "/tmp/test_idmap.XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state)
{
        em_error_t err = NULL;
        (void)state;
        em_rm_rf(dir, &err);
        return 0;
}

static char *at(const char *rel)
{
        static char buf[4][256];
        static int i;
        i = (i + 1) % 4;
        snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, rel);
        return buf[i];
}

static void owner(const char *rel, uid_t *u, gid_t *g, mode_t *m)
{
        struct stat st;
        assert_int_equal(lstat(at(rel), &st), 0);
        *u = st.st_uid;
        *g = st.st_gid;
        if (m)
                *m = st.st_mode & 07777;
}

static void test_shift_tree(void **state)
{
        const struct em_idrange from = {100000, 65536}, to = {300000 - 300000 % 65536, 65536};
        em_error_t err = NULL;
        uid_t u;
        gid_t g;
        mode_t m;
        (void)state;

        if (geteuid() != 0)
                skip();
        assert_int_equal(mkdir(at("d"), 0755), 0);
        close(open(at("d/f"), O_CREAT | O_WRONLY, 0644));
        close(open(at("suid"), O_CREAT | O_WRONLY, 04755));
        assert_int_equal(chmod(at("suid"), 04755), 0);
        assert_int_equal(symlink("d/f", at("link")), 0);
        assert_int_equal(mknod(at("wh"), S_IFCHR | 0, makedev(0, 0)), 0);
        close(open(at("alien"), O_CREAT | O_WRONLY, 0644));
        assert_int_equal(lchown(dir, 100000, 100000), 0);
        assert_int_equal(lchown(at("d"), 100000, 100000), 0);
        assert_int_equal(lchown(at("d/f"), 101000, 101001), 0);
        assert_int_equal(lchown(at("suid"), 100000, 100000), 0);
        assert_int_equal(chmod(at("suid"), 04755), 0);
        assert_int_equal(lchown(at("link"), 100033, 100034), 0);
        assert_int_equal(lchown(at("alien"), 42, 42), 0);

        assert_int_equal(em_idmap_shift_tree(dir, &from, &to, &err), 0);
        owner("", &u, &g, NULL);
        assert_int_equal(u, to.base);
        owner("d/f", &u, &g, NULL);
        assert_int_equal(u, to.base + 1000);
        assert_int_equal(g, to.base + 1001);
        owner("suid", &u, &g, &m);
        assert_int_equal(u, to.base);
        assert_int_equal(m, 04755); /* chown cleared it; put back */
        owner("link", &u, &g, NULL);
        assert_int_equal(u, to.base + 33);
        owner("wh", &u, &g, NULL);
        assert_int_equal(u, 0); /* outside the range: kept */
        owner("alien", &u, &g, NULL);
        assert_int_equal(u, 42);
}

static void test_grant_dir(void **state)
{
        em_error_t err = NULL;
        uid_t u;
        gid_t g;
        mode_t m;
        (void)state;

        if (geteuid() != 0)
                skip();
        close(open(at("pages-1.img"), O_CREAT | O_WRONLY, 0600));
        assert_int_equal(mkdir(at("sub"), 0700), 0);
        assert_int_equal(chmod(dir, 0700), 0);
        assert_int_equal(em_idmap_grant_dir(dir, 123456, &err), 0);
        owner("pages-1.img", &u, &g, &m);
        assert_int_equal(g, 123456);
        assert_int_equal(m, 0640);
        owner("", &u, &g, &m);
        assert_int_equal(m, 0750);
        owner("sub", &u, &g, &m);
        assert_int_equal(m, 0700); /* only the files directly in dir */
        assert_int_equal(em_idmap_grant_dir(at("missing"), 1, &err), -1);
        em_error_free(&err);
}

static void test_userns_open(void **state)
{
        const struct em_idrange ids = {200000 - 200000 % 65536, 65536};
        em_error_t err = NULL;
        int fd = -1;
        char path[64], map[128] = {0};
        (void)state;

        if (geteuid() != 0)
                skip();
        assert_int_equal(em_userns_open(&ids, &fd, &err), 0);
        /* The namespace outlives its creator: enter it from a child. */
        pid_t pid = fork();
        if (pid == 0) {
                if (setns(fd, 0) < 0)
                        _exit(1);
                int m = open("/proc/self/uid_map", O_RDONLY);
                ssize_t n = read(m, map, sizeof(map) - 1);
                _exit(n > 0 && strstr(map, "196608") ? 0 : 2);
        }
        int status;
        waitpid(pid, &status, 0);
        snprintf(path, sizeof(path), "%d", WEXITSTATUS(status));
        assert_string_equal(path, "0");
        close(fd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_shift_tree, setup, teardown),
            cmocka_unit_test_setup_teardown(test_grant_dir, setup, teardown),
            cmocka_unit_test(test_userns_open),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
