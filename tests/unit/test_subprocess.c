#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/cleanup.h"
#include "util/subprocess.h"

static long long ms_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* No child of ours is left, not even a zombie. */
static void assert_no_children(void)
{
        errno = 0;
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

/* True once pid is gone or a zombie (of someone else), within 2 s. */
static bool dies(pid_t pid)
{
        for (int i = 0; i < 400; i++) {
                char path[64], buf[512] = "";
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
                FILE *f = fopen(path, "r");
                if (f == NULL)
                        return true;
                bool got = fgets(buf, sizeof(buf), f) != NULL;
                fclose(f);
                char *rp = strrchr(buf, ')');
                if (got && rp && (rp[2] == 'Z' || rp[2] == 'X'))
                        return true;
                usleep(5000);
        }
        return false;
}

static int run(const char *const *argv, struct em_proc_spec *spec, struct em_proc_result *res,
               em_error_t *err)
{
        struct em_proc_spec s;
        if (spec == NULL) {
                em_proc_spec_init(&s, argv);
                spec = &s;
        }
        return em_proc_run(spec, res, err);
}

static void test_exit_codes_and_capture(void **state)
{
        const char *ok[] = {"sh", "-c", "echo out; echo err >&2", NULL};
        const char *bad[] = {"sh", "-c", "echo why >&2; exit 3", NULL};
        const char *sig[] = {"sh", "-c", "kill -TERM $$", NULL};
        struct em_proc_result res = {0};
        em_error_t err = NULL;

        assert_int_equal(run(ok, NULL, &res, &err), 0);
        assert_null(err);
        assert_int_equal(res.exit_code, 0);
        assert_string_equal(res.out, "out\n");
        assert_string_equal(res.err, "err\n");
        em_proc_result_free(&res);
        assert_int_equal(run(bad, NULL, &res, &err), -1);
        assert_int_equal(res.exit_code, 3);
        assert_false(res.timed_out);
        assert_non_null(strstr(em_error_msg(err), "exited with status 3"));
        assert_non_null(strstr(em_error_msg(err), "why"));
        em_error_free(&err);
        em_proc_result_free(&res);
        assert_int_equal(run(sig, NULL, &res, &err), -1);
        assert_int_equal(res.exit_code, 128 + SIGTERM);
        assert_non_null(strstr(em_error_msg(err), "signal 15"));
        em_error_free(&err);
        em_proc_result_free(&res);
        assert_no_children();
}

static void test_env_and_cwd(void **state)
{
        const char *argv[] = {"sh", "-c", "echo $EMT_FOO $EMT_BAR; env | grep -c ^EMT_FOO=; pwd",
                              NULL};
        const char *env[] = {"EMT_FOO=new", "EMT_BAR=1", NULL};
        struct em_proc_spec spec;
        struct em_proc_result res = {0};
        em_error_t err = NULL;
        char dir[] = "/tmp/em-sub-XXXXXX";

        assert_non_null(mkdtemp(dir));
        setenv("EMT_FOO", "orig", 1);
        em_proc_spec_init(&spec, argv);
        spec.env_add = env;
        spec.cwd = dir;
        assert_int_equal(em_proc_run(&spec, &res, &err), 0);
        char expect[128];
        snprintf(expect, sizeof(expect), "new 1\n1\n%s\n", dir);
        assert_string_equal(res.out, expect);
        em_proc_result_free(&res);
        unsetenv("EMT_FOO");
        rmdir(dir);
        /* A missing cwd is an error naming the binary. */
        spec.cwd = "/nonexistent-em-dir";
        assert_int_equal(em_proc_run(&spec, &res, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        assert_no_children();
}

static void test_timeout_kills_and_reaps(void **state)
{
        const char *argv[] = {"sleep", "10", NULL};
        struct em_proc_spec spec;
        struct em_proc_result res = {0};
        em_error_t err = NULL;

        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = 200;
        long long t0 = ms_now();
        assert_int_equal(em_proc_run(&spec, &res, &err), -1);
        long long took = ms_now() - t0;
        assert_true(took >= 190 && took < 2000);
        assert_true(res.timed_out);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        assert_non_null(strstr(em_error_msg(err), "timed out after 200 ms"));
        em_error_free(&err);
        em_proc_result_free(&res);
        assert_no_children();
}

static void test_timeout_kills_process_group(void **state)
{
        const char *argv[] = {"sh", "-c", "sleep 30 & echo $!; wait", NULL};
        struct em_proc_spec spec;
        struct em_proc_result res = {0};
        em_error_t err = NULL;

        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = 300;
        assert_int_equal(em_proc_run(&spec, &res, &err), -1);
        assert_true(res.timed_out);
        pid_t grandchild = (pid_t)atoi(res.out);
        assert_true(grandchild > 0);
        assert_true(dies(grandchild));
        em_error_free(&err);
        em_proc_result_free(&res);
        assert_no_children();
}

/* A background grandchild holding stdout must not turn success into a timeout. */
static void test_daemonized_grandchild(void **state)
{
        const char *argv[] = {"sh", "-c", "sleep 5 & echo $$", NULL};
        struct em_proc_spec spec;
        struct em_proc_result res = {0};
        em_error_t err = NULL;

        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = 3000;
        long long t0 = ms_now();
        assert_int_equal(em_proc_run(&spec, &res, &err), 0);
        assert_true(ms_now() - t0 < 1500);
        assert_false(res.timed_out);
        pid_t pgid = (pid_t)atoi(res.out);
        assert_true(pgid > 0);
        kill(-pgid, SIGKILL); /* the orphaned sleep */
        em_proc_result_free(&res);
        assert_no_children();
}

static void test_log_tail_in_error(void **state)
{
        char path[] = "/tmp/em-sub-log-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        for (int i = 1; i <= 30; i++)
                dprintf(fd, "log line %d\n", i);
        close(fd);
        const char *argv[] = {"sh", "-c", "exit 1", NULL};
        struct em_proc_spec spec;
        em_error_t err = NULL;

        em_proc_spec_init(&spec, argv);
        spec.log_path = path;
        spec.log_tail_lines = 3;
        assert_int_equal(em_proc_run(&spec, NULL, &err), -1);
        const char *m = em_error_msg(err);
        assert_non_null(strstr(m, path));
        assert_non_null(strstr(m, "log line 28\nlog line 29\nlog line 30"));
        assert_null(strstr(m, "log line 27"));
        em_error_free(&err);
        unlink(path);
        assert_no_children();
}

static void test_cannot_exec_names_binary(void **state)
{
        const char *argv[] = {"/nonexistent/em-no-such-tool", "x", NULL};
        const char *argv2[] = {"em-no-such-tool-in-path", NULL};
        em_error_t err = NULL;
        pid_t pid = 0;

        assert_int_equal(run(argv, NULL, NULL, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_non_null(strstr(em_error_msg(err), "cannot execute /nonexistent/em-no-such-tool"));
        em_error_free(&err);
        struct em_proc_spec spec;
        em_proc_spec_init(&spec, argv2);
        assert_int_equal(em_proc_spawn(&spec, &pid, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "em-no-such-tool-in-path"));
        em_error_free(&err);
        assert_no_children();
}

static void test_cleanup_pid_on_early_return(void **state)
{
        const char *argv[] = {"sleep", "30", NULL};
        struct em_proc_spec spec;
        em_error_t err = NULL;
        pid_t seen = 0;

        em_proc_spec_init(&spec, argv);
        {
                cleanup_pid pid_t pid = 0;
                assert_int_equal(em_proc_spawn(&spec, &pid, &err), 0);
                seen = pid;
                assert_int_equal(kill(seen, 0), 0);
        }
        assert_int_equal(kill(seen, 0), -1);
        assert_int_equal(errno, ESRCH); /* killed and reaped, not a zombie */
        assert_no_children();
}

static void test_wait_timeout_and_stdin(void **state)
{
        const char *argv[] = {"sleep", "10", NULL};
        const char *cat[] = {"cat", NULL};
        struct em_proc_spec spec;
        struct em_proc_result res = {0};
        em_error_t err = NULL;
        pid_t pid = 0;
        int code = -1;

        em_proc_spec_init(&spec, argv);
        assert_int_equal(em_proc_spawn(&spec, &pid, &err), 0);
        long long t0 = ms_now();
        assert_int_equal(em_proc_wait(pid, 150, &code, &err), -1);
        assert_true(ms_now() - t0 < 1500);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        assert_no_children();
        int p[2];
        assert_int_equal(pipe(p), 0);
        assert_int_equal(write(p[1], "piped", 5), 5);
        close(p[1]);
        em_proc_spec_init(&spec, cat);
        spec.stdin_fd = p[0];
        assert_int_equal(em_proc_run(&spec, &res, &err), 0);
        close(p[0]);
        assert_string_equal(res.out, "piped");
        em_proc_result_free(&res);
        assert_no_children();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exit_codes_and_capture),
            cmocka_unit_test(test_env_and_cwd),
            cmocka_unit_test(test_timeout_kills_and_reaps),
            cmocka_unit_test(test_timeout_kills_process_group),
            cmocka_unit_test(test_daemonized_grandchild),
            cmocka_unit_test(test_log_tail_in_error),
            cmocka_unit_test(test_cannot_exec_names_binary),
            cmocka_unit_test(test_cleanup_pid_on_early_return),
            cmocka_unit_test(test_wait_timeout_and_stdin),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
