/* container/logger: the detached log forwarder, and waiting until it has
 * written out what its pipe held, which a migration's source needs before
 * it sends the log. Real forwarders on real pipes. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/container.h"
#include "support/fixture.h"
#include "util/clock.h"

static char *dir;
static char log_path[PATH_MAX];

static int setup(void **state)
{
        (void)state;
        dir = em_test_tmpdir("logger");
        snprintf(log_path, sizeof(log_path), "%s/log", dir);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(dir);
        return 0;
}

static int start(void)
{
        em_error_t err = NULL;
        int wr = -1;

        assert_int_equal(em_logger_start(log_path, &wr, &err), 0);
        assert_null(err);
        return wr;
}

static pid_t scan_for_forwarder(void)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        char link[PATH_MAX], to[PATH_MAX];
        pid_t found = 0;

        assert_non_null(d);
        while (found == 0 && (de = readdir(d)) != NULL) {
                ssize_t n;
                snprintf(link, sizeof(link), "/proc/%s/fd/1", de->d_name);
                n = readlink(link, to, sizeof(to) - 1);
                if (n > 0 && (to[n] = '\0', strcmp(to, log_path) == 0))
                        found = (pid_t)atoi(de->d_name);
        }
        closedir(d);
        return found;
}

/* The forwarder: the process whose stdout is the log (it is detached, so
 * nothing else names it), once it has made it so, which the start does not
 * wait for. */
static pid_t forwarder(void)
{
        int64_t end = em_mono_ms() + 10000;
        pid_t pid;

        while ((pid = scan_for_forwarder()) == 0 && em_mono_ms() < end)
                usleep(1000);
        assert_true(pid > 0);
        return pid;
}

static void *resume_later(void *arg)
{
        usleep(150 * 1000);
        kill(*(pid_t *)arg, SIGCONT);
        return NULL;
}

/* A line still in the pipe when the last writer closed it (the container's
 * processes died in the checkpoint) is in the log once the wait returns,
 * although the forwarder was stopped until after the close. */
static void test_waits_for_the_pipe(void **state)
{
        int wr = start();
        pid_t fw = forwarder();
        pthread_t t;

        (void)state;
        assert_int_equal(kill(fw, SIGSTOP), 0);
        assert_int_equal(write(wr, "last line\n", 10), 10);
        close(wr);
        assert_int_equal(pthread_create(&t, NULL, resume_later, &fw), 0);
        assert_true(em_logger_wait_drained(log_path, 10000));
        /* Read before the join: the join would give the forwarder time. */
        assert_string_equal(em_test_get(dir, "log"), "last line\n");
        pthread_join(t, NULL);
}

/* While a writer holds the pipe the forwarder runs on: the wait gives up
 * after its timeout, not before. */
static void test_times_out_while_written(void **state)
{
        int wr = start();
        int64_t t0 = em_mono_ms();

        (void)state;
        assert_false(em_logger_wait_drained(log_path, 60));
        assert_true(em_mono_ms() - t0 >= 60);
        close(wr);
        assert_true(em_logger_wait_drained(log_path, 10000));
}

/* A container that never logged has no log: nothing to wait for. */
static void test_no_log(void **state)
{
        (void)state;
        assert_true(em_logger_wait_drained(log_path, 0));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_waits_for_the_pipe, setup, teardown),
            cmocka_unit_test_setup_teardown(test_times_out_while_written, setup, teardown),
            cmocka_unit_test_setup_teardown(test_no_log, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
