/* container/procs: which processes of a cgroup do not descend from the
 * container's pid 1 (those `edgemig exec` started), the ones a checkpoint
 * would not take. Real processes, a fake cgroup tree. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/procs.h"
#include "support/fixture.h"

static char *fs;

static int setup(void **state)
{
        (void)state;
        fs = em_test_tmpdir("procs");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(fs);
        return 0;
}

/* A v1 freezer hierarchy with cgroup /edgemig-t-c listing pids. */
static void procs(const pid_t *pids, size_t n)
{
        char text[256] = "";

        for (size_t i = 0; i < n; i++)
                snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d\n", (int)pids[i]);
        em_test_put(fs, "freezer/edgemig-t-c/cgroup.procs", text);
}

static pid_t sleeper(void)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        return pid;
}

static pid_t gone_pid(void)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(0);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
        return pid;
}

static void test_descends(void **state)
{
        pid_t child = sleeper();

        (void)state;
        assert_int_equal(em_proc_descends(child, getpid()), 1);
        assert_int_equal(em_proc_descends(getpid(), getpid()), 1);
        assert_int_equal(em_proc_descends(getpid(), child), 0);
        assert_int_equal(em_proc_descends(getppid(), getpid()), 0);
        assert_int_equal(em_proc_descends(gone_pid(), getpid()), -1);
        em_test_reap(child);
}

/* init = this process: its child is in its tree, its parent (as runc
 * exec's child is, outside the container) is not, and one that exited
 * since the list was read is no stray. */
static void test_stray(void **state)
{
        em_error_t err = NULL;
        pid_t child = sleeper(), stray = 1;

        (void)state;
        pid_t none[] = {getpid(), child, gone_pid()};
        procs(none, 3);
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-c", getpid(), &stray, &err), 0);
        assert_int_equal(stray, 0);
        pid_t one[] = {getpid(), child, getppid()};
        procs(one, 3);
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-c", getpid(), &stray, &err), 0);
        assert_int_equal(stray, getppid());
        /* No such cgroup: nothing to refuse. */
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-gone", getpid(), &stray, &err), 0);
        assert_int_equal(stray, 0);
        em_test_reap(child);
}

/* A short `edgemig exec` (a health check) that ends within the grace is
 * no stray: SIGCHLD ignored, so it is gone, not a zombie, once it ends. */
static void test_stray_transient(void **state)
{
        em_error_t err = NULL;
        pid_t init = sleeper(), stray = 1;

        (void)state;
        signal(SIGCHLD, SIG_IGN);
        pid_t brief = fork();
        assert_true(brief >= 0);
        if (brief == 0) {
                usleep(50 * 1000);
                _exit(0);
        }
        pid_t list[] = {init, brief};
        procs(list, 2);
        int rc = em_cgroup_stray(fs, "/edgemig-t-c", init, &stray, &err);
        kill(init, SIGKILL);
        signal(SIGCHLD, SIG_DFL);
        assert_int_equal(rc, 0);
        assert_int_equal(stray, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_descends),
            cmocka_unit_test_setup_teardown(test_stray, setup, teardown),
            cmocka_unit_test_setup_teardown(test_stray_transient, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
