/* container/procs: which processes of a cgroup do not descend from the
 * container's pid 1 (those `edgemig exec` started), the ones a checkpoint
 * would not take. Real processes, a fake cgroup tree. */
#include <errno.h>
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
        em_test_cgroup_procs(fs, "/edgemig-t-c", none, 3);
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-c", getpid(), none, 3, &stray, &err), 0);
        assert_int_equal(stray, 0);
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-c", getpid(), NULL, 0, &stray, &err), 0);
        assert_int_equal(stray, 0);
        pid_t one[] = {getpid(), child, getppid()};
        em_test_cgroup_procs(fs, "/edgemig-t-c", one, 3);
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-c", getpid(), one, 3, &stray, &err), 0);
        assert_int_equal(stray, getppid());
        /* The cgroup gone since the list was read: nothing to refuse. */
        assert_int_equal(em_cgroup_stray(fs, "/edgemig-t-gone", getpid(), one, 3, &stray, &err), 0);
        assert_int_equal(stray, 0);
        em_test_reap(child);
}

/* The refusal names the process by its pid in the container's pid
 * namespace (here, this process's) and the command that ends it. */
static void test_stray_refuse(void **state)
{
        em_error_t err = NULL;
        char want[64];

        (void)state;
        assert_int_equal(em_container_stray_refuse("c1", 0, &err), 0);
        assert_int_equal(em_container_stray_refuse("c1", gone_pid(), &err), 0);
        assert_null(err);
        assert_int_equal(em_container_stray_refuse("c1", getpid(), &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        snprintf(want, sizeof(want), "edgemig exec c1 kill %d", (int)getpid());
        assert_non_null(strstr(em_error_msg(err), want));
        assert_non_null(strstr(em_error_msg(err), "not a descendant of its pid 1"));
        em_error_free(&err);
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
        em_test_cgroup_procs(fs, "/edgemig-t-c", list, 2);
        int rc = em_cgroup_stray(fs, "/edgemig-t-c", init, list, 2, &stray, &err);
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
            cmocka_unit_test(test_stray_refuse),
            cmocka_unit_test_setup_teardown(test_stray_transient, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
