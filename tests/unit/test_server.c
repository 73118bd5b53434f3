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

#include "platform/server.h"
#include "transfer/conn.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fsutil.h"
#include "util/log.h"

static void expect_new_error(struct em_server_opts *o, const char *want)
{
        struct em_server *s = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_server_new(o, &s, &err), -1);
        assert_null(s);
        if (strstr(em_error_msg(err), want) == NULL)
                fail_msg("'%s' lacks '%s'", em_error_msg(err), want);
        em_error_free(&err);
}

static void test_option_checks(void **state)
{
        const char *names[] = {"h1", NULL};
        struct em_server_opts o;

        em_server_opts_init(&o);
        expect_new_error(&o, "peers must authenticate: pass --tls-cert FILE");
        o.tls_cert = "/nonexistent/h.crt";
        expect_new_error(&o, "peers must authenticate");
        o.insecure = true;
        expect_new_error(&o, "--insecure excludes --tls-*");
        o.tls_cert = NULL;
        o.allow_peers = names;
        expect_new_error(&o, "--insecure excludes");
        o.allow_peers = NULL;
        o.agent.controller = "http://127.0.0.1:7880";
        o.agent.name = "h1";
        /* The agent's address defaults to --listen, which is a wildcard. */
        expect_new_error(&o, "--listen 0.0.0.0:7878 is a wildcard: pass --advertise");
}

static volatile sig_atomic_t stop_flag;
static void on_term(int sig)
{
        (void)sig;
        stop_flag = 1;
}

/* The loop serves a connection in a child without dying on a peer that
 * sends nothing, and stops cleanly on SIGTERM. */
static void test_run_and_stop(void **state)
{
        char tmp[] = "/tmp/em-server-test-XXXXXX", listen[32];
        struct em_server_opts o;
        struct em_config cfg;
        em_error_t err = NULL;
        int status;

        assert_non_null(mkdtemp(tmp));
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", 20000 + rand() % 30000);
        em_server_opts_init(&o);
        o.insecure = true;
        o.listen = listen;
        em_log_setup(EM_LOG_ERROR, false, 2, "unit");
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct em_server *s = NULL;
                signal(SIGTERM, on_term);
                if (em_config_init(&cfg, tmp, &err) < 0 || em_server_new(&o, &s, &err) < 0 ||
                    em_server_run(s, &cfg, &stop_flag, &err) < 0)
                        _exit(1);
                em_server_free(s);
                _exit(0);
        }
        em_conn_t *conn = NULL;
        for (int i = 0; i < 100 && em_tcp_connect(listen, 1000, &conn, &err) < 0; i++) {
                em_error_free(&err);
                usleep(20000);
        }
        assert_non_null(conn);
        em_conn_free(&conn);
        kill(pid, SIGTERM);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        em_rm_rf(tmp, NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_option_checks),
            cmocka_unit_test(test_run_and_stop),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
