/* util/proc: the tree under a pid, parents first, the innermost pid of a
 * task, whether it has a memory map, and whether it still runs. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/proc.h"

/* A child that forks a grandchild, which sleeps until killed; the child
 * then reaps it and exits. */
static pid_t spawn_two(int ready[2])
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                if (fork() == 0) {
                        (void)!write(ready[1], "g", 1);
                        pause();
                        _exit(0);
                }
                wait(NULL);
                _exit(0);
        }
        return pid;
}

static void test_tree(void **state)
{
        pid_t out[8], small[1];
        int ready[2];
        char c;

        (void)state;
        assert_int_equal(pipe(ready), 0);
        pid_t child = spawn_two(ready);
        assert_int_equal(read(ready[0], &c, 1), 1);
        size_t n = em_proc_tree(child, out, 8);
        assert_int_equal(n, 2);
        assert_int_equal(out[0], child);
        assert_true(out[1] != child && out[1] > 0);
        assert_int_equal(em_proc_tree(child, small, 1), 1); /* bounded */
        assert_int_equal(em_proc_tree(0, out, 8), 0);
        kill(out[1], SIGKILL);
        assert_int_equal(waitpid(child, NULL, 0), child);
        close(ready[0]);
        close(ready[1]);
}

/* A worker thread's fork (Python's subprocess from a thread, Java's
 * ProcessBuilder): the grandchild is listed under the thread's own
 * children, not the main thread's. */
static void *fork_from_thread(void *arg)
{
        int *ready = arg;
        pid_t pid = fork();

        if (pid == 0) {
                /* Gone with the child, even when the test fails. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                pid_t self = getpid();
                (void)!write(ready[1], &self, sizeof(self));
                pause();
                _exit(0);
        }
        /* A thread that ends hands its children to the main thread:
         * stay, so the grandchild is listed under this thread only. */
        for (;;)
                pause();
        return NULL;
}

static void test_tree_thread_child(void **state)
{
        pid_t out[8], grand = 0;
        int ready[2];

        (void)state;
        /* The grandchild, orphaned, comes back here to be reaped. */
        assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        assert_int_equal(pipe(ready), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                pthread_t t;
                if (pthread_create(&t, NULL, fork_from_thread, ready) != 0)
                        _exit(1);
                pause();
                _exit(0);
        }
        assert_int_equal(read(ready[0], &grand, sizeof(grand)), sizeof(grand));
        size_t n = em_proc_tree(child, out, 8);
        kill(grand, SIGKILL);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        waitpid(grand, NULL, 0);
        assert_int_equal(n, 2);
        assert_int_equal(out[1], grand);
        close(ready[0]);
        close(ready[1]);
}

static void test_ns_pid(void **state)
{
        (void)state;
        assert_int_equal(em_proc_ns_pid(getpid()), getpid());
        pid_t gone = fork();
        if (gone == 0)
                _exit(0);
        waitpid(gone, NULL, 0);
        assert_int_equal(em_proc_ns_pid(gone), -1);
}

/* A live process has a memory map; a zombie (exited, not reaped yet) and
 * a reaped one have none. */
static void test_has_mm(void **state)
{
        (void)state;
        assert_true(em_proc_has_mm(getpid()));
        pid_t child = fork();
        if (child == 0)
                _exit(0);
        assert_true(child > 0);
        assert_int_equal(waitid(P_PID, child, NULL, WEXITED | WNOWAIT), 0);
        assert_false(em_proc_has_mm(child));            /* a zombie */
        assert_int_equal(em_proc_ns_pid(child), child); /* still listed */
        waitpid(child, NULL, 0);
        assert_false(em_proc_has_mm(child));
}

/* A live process runs, a zombie and a reaped one do not; and when /proc
 * cannot be opened at all (no descriptor left), a live process is not
 * declared dead: a pod would leave a running member out of its dump. */
static void test_runs(void **state)
{
        struct rlimit old, none = {0, 0};
        pid_t child = fork();
        bool runs;

        (void)state;
        if (child == 0)
                _exit(0);
        assert_true(child > 0);
        assert_int_equal(waitid(P_PID, child, NULL, WEXITED | WNOWAIT), 0);
        assert_false(em_proc_runs(child)); /* a zombie */
        waitpid(child, NULL, 0);
        assert_false(em_proc_runs(child));
        assert_true(em_proc_runs(getpid()));
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        none.rlim_max = old.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
        runs = em_proc_runs(getpid()); /* EMFILE */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_true(runs);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_tree),   cmocka_unit_test(test_tree_thread_child),
            cmocka_unit_test(test_ns_pid), cmocka_unit_test(test_has_mm),
            cmocka_unit_test(test_runs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
