/* delta/lazy_known, source side: the known-pages lists of a frozen task
 * tree, with a real process tree (a zombie in it, or a live task CRIU's
 * images lack). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/criu_img.h"
#include "delta/hashset.h"
#include "delta/lazy_known.h"
#include "support/fixture.h"
#include "util/cleanup.h"

/* A child whose own child either exits and is never reaped (a zombie,
 * as a shell's is when the freeze lands between its child's exit and
 * its wait) or sleeps. Writes that grandchild's pid to ready once it is
 * in the state asked for. */
static pid_t parent_of(bool zombie, int ready[2])
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid > 0)
                return pid;
        pid_t child = fork();
        if (child == 0) {
                if (!zombie)
                        pause();
                _exit(0);
        }
        while (zombie && child > 0 && waitid(P_PID, child, NULL, WEXITED | WNOWAIT) < 0)
                ;
        if (child < 0 || write(ready[1], &child, sizeof(child)) != sizeof(child))
                _exit(1);
        pause();
        _exit(0);
}

/* pagemap-<pid>.img with no entries, as CRIU writes one for a task with
 * no private pages. */
static void put_pagemap(const char *dir, pid_t pid)
{
        struct em_pagemap pm = {.pages_id = 1};
        cleanup_free uint8_t *buf = NULL;
        em_error_t err = NULL;
        char path[4200];
        size_t len = 0;

        assert_int_equal(em_pagemap_encode(&pm, &buf, &len, &err), 0);
        snprintf(path, sizeof(path), "%s/pagemap-%d.img", dir, (int)pid);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static bool exists(const char *dir, pid_t pid)
{
        char path[4200];

        snprintf(path, sizeof(path), "%s/edgemig-known-%d.bin", dir, (int)pid);
        return access(path, F_OK) == 0;
}

/* The tree of root (its child grand) with a pagemap image for root only;
 * the result of em_lazy_known_write on it, *n_known and err set. */
static int write_for(const char *dir, pid_t root, em_error_t *err, uint64_t *n_known)
{
        cleanup_hashset em_hashset_t *known = em_hashset_new();

        assert_non_null(known);
        put_pagemap(dir, root);
        return em_lazy_known_write(dir, root, known, n_known, err);
}

static void end(pid_t root, pid_t grand)
{
        kill(grand, SIGKILL);
        kill(root, SIGKILL);
        /* This test is a subreaper: the orphaned grandchild comes back. */
        waitpid(root, NULL, 0);
        waitpid(grand, NULL, 0);
}

/* A zombie in the frozen tree has no pagemap image (CRIU dumps none for
 * it): the list of the others is still written. */
static void test_zombie(void **state)
{
        char *dir = em_test_tmpdir("lazy-known");
        em_error_t err = NULL;
        uint64_t n = 99;
        int ready[2];
        pid_t grand = 0;

        (void)state;
        assert_int_equal(pipe(ready), 0);
        pid_t root = parent_of(true, ready);
        assert_int_equal(read(ready[0], &grand, sizeof(grand)), sizeof(grand));
        int rc = write_for(dir, root, &err, &n);
        end(root, grand);
        if (rc < 0)
                fail_msg("%s", em_error_msg(err));
        assert_int_equal(n, 0);
        assert_true(exists(dir, root));
        assert_false(exists(dir, grand));
        close(ready[0]);
        close(ready[1]);
        em_test_rm(dir);
}

/* The task list of the lazy work (the known-pages lists and the push,
 * which reads each task's /proc/PID/mem) leaves a zombie out: it has no
 * memory, and its reaping within the window failed the push ("opening
 * /proc/N/mem: No such process"). */
static void test_tasks_without_zombie(void **state)
{
        pid_t host[8], grand = 0;
        long nspid[8];
        size_t n = 0;
        em_error_t err = NULL;
        int ready[2];

        (void)state;
        assert_int_equal(pipe(ready), 0);
        pid_t root = parent_of(true, ready);
        assert_int_equal(read(ready[0], &grand, sizeof(grand)), sizeof(grand));
        int rc = em_lazy_tasks(root, host, nspid, 8, &n, &err);
        end(root, grand);
        if (rc < 0)
                fail_msg("%s", em_error_msg(err));
        assert_int_equal(n, 1);
        assert_int_equal(host[0], root);
        close(ready[0]);
        close(ready[1]);
}

/* A live task whose pagemap image is missing is no zombie: the images do
 * not match the tree, and the list fails. */
static void test_live_without_image(void **state)
{
        char *dir = em_test_tmpdir("lazy-known");
        em_error_t err = NULL;
        uint64_t n = 0;
        int ready[2];
        pid_t grand = 0;
        char want[64];

        (void)state;
        assert_int_equal(pipe(ready), 0);
        pid_t root = parent_of(false, ready);
        assert_int_equal(read(ready[0], &grand, sizeof(grand)), sizeof(grand));
        int rc = write_for(dir, root, &err, &n);
        end(root, grand);
        assert_int_equal(rc, -1);
        snprintf(want, sizeof(want), "pagemap-%d.img", (int)grand);
        assert_non_null(strstr(em_error_msg(err), want));
        em_error_free(&err);
        close(ready[0]);
        close(ready[1]);
        em_test_rm(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_zombie),
            cmocka_unit_test(test_tasks_without_zombie),
            cmocka_unit_test(test_live_without_image),
        };
        /* Reap the grandchildren here, not by a slow PID 1. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                return 1;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
