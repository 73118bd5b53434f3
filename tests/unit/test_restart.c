/* Restart policies: parsing, the spec field, and which containers come back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/restart.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static void test_parse_and_names(void **state)
{
        cleanup_error em_error_t err = NULL;
        enum em_restart r;

        assert_int_equal(em_restart_parse("on-failure", &r, &err), 0);
        assert_int_equal(r, EM_RESTART_ON_FAILURE);
        assert_string_equal(em_restart_name(EM_RESTART_ALWAYS), "always");
        assert_int_equal(em_restart_parse("unless-stopped", &r, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "use no, on-failure or always"));
        em_error_free(&err);
        assert_int_equal(em_restart_parse(NULL, &r, &err), -1);
}

static void test_of_spec(void **state)
{
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *none = json_object();
        cleanup_json json_t *always = json_pack("{s:s}", "restart", "always");
        cleanup_json json_t *num = json_pack("{s:i}", "restart", 2);
        enum em_restart r = EM_RESTART_ALWAYS;

        assert_int_equal(em_restart_of_spec(none, &r, &err), 0);
        assert_int_equal(r, EM_RESTART_NO);
        assert_int_equal(em_restart_of_spec(always, &r, &err), 0);
        assert_int_equal(r, EM_RESTART_ALWAYS);
        assert_int_equal(em_restart_of_spec(num, &r, &err), -1);
}

static void test_wanted(void **state)
{
        struct em_container_rec died = {.state = EM_CSTATE_RUNNING};
        struct em_container_rec reconciled = {.state = EM_CSTATE_STOPPED};
        struct em_container_rec stopped = {.state = EM_CSTATE_STOPPED, .stopped_by_user = true};
        struct em_container_rec migrating = {.state = EM_CSTATE_MIGRATING};
        struct em_container_rec ckpt = {.state = EM_CSTATE_CHECKPOINTED};
        struct em_container_rec created = {.state = EM_CSTATE_CREATED};

        for (int boot = 0; boot < 2; boot++) {
                assert_false(em_restart_wanted(EM_RESTART_NO, &died, boot));
                assert_true(em_restart_wanted(EM_RESTART_ON_FAILURE, &died, boot));
                assert_true(em_restart_wanted(EM_RESTART_ON_FAILURE, &reconciled, boot));
                assert_false(em_restart_wanted(EM_RESTART_ON_FAILURE, &stopped, boot));
                assert_true(em_restart_wanted(EM_RESTART_ALWAYS, &died, boot));
                assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &migrating, boot));
                assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &ckpt, boot));
                assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &created, boot));
        }
        /* always: a user's stop holds until edgemigd starts again. */
        assert_false(em_restart_wanted(EM_RESTART_ALWAYS, &stopped, false));
        assert_true(em_restart_wanted(EM_RESTART_ALWAYS, &stopped, true));
}

/* A container running (so its record says) under pid, no restart policy. */
static void add_running(struct em_state *st, const char *name, const char *ip, int pid)
{
        struct em_container_rec r = {
            .name = (char *)name, .image = "busybox", .ip = strdup(ip), .spec = "{}"};
        em_error_t err = NULL;

        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        free(r.ip);
        assert_int_equal(em_state_container_transition(st, name, EM_CSTATE_ANY, EM_CSTATE_RUNNING,
                                                       pid, NULL, &err),
                         0);
}

/* A container without a policy whose process ended has its service IP
 * withdrawn by the monitor, once over many passes, also when `ps` marked
 * it stopped first; one whose process runs, or that the user stopped
 * (stop withdrew it), keeps it. */
static void test_ended_is_withdrawn(void **state)
{
        char root[] = "/tmp/test_restart.XXXXXX", hook[64], log[64], *text = NULL;
        struct em_config cfg = {.root = root};
        cleanup_restart_monitor struct em_restart_monitor *m = NULL;
        cleanup_state struct em_state *st = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_non_null(mkdtemp(root));
        snprintf(hook, sizeof(hook), "%s/hook", root);
        snprintf(log, sizeof(log), "%s/hook.log", root);
        FILE *f = fopen(hook, "w");
        assert_non_null(f);
        fprintf(f, "#!/bin/sh\necho \"$1 $2\" >>%s\n", log);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(hook, 0700), 0);
        pid_t gone = fork();
        if (gone == 0)
                _exit(0);
        assert_int_equal(waitpid(gone, NULL, 0), gone);
        assert_int_equal(em_state_open(root, &st, &err), 0);
        add_running(st, "ended", "10.66.9.1", gone);
        add_running(st, "runs", "10.66.9.2", getpid());
        /* Found dead by `ps` (reconciled to stopped), and stopped by the user. */
        add_running(st, "seen", "10.66.9.3", gone);
        add_running(st, "stopped", "10.66.9.4", gone);
        assert_int_equal(em_state_container_transition(st, "seen", EM_CSTATE_ANY, EM_CSTATE_STOPPED,
                                                       0, NULL, &err),
                         0);
        assert_int_equal(em_state_container_transition(st, "stopped", EM_CSTATE_ANY,
                                                       EM_CSTATE_STOPPED, 0, NULL, &err),
                         0);
        assert_int_equal(em_state_container_set_stopped_by_user(st, "stopped", true, &err), 0);
        em_state_close(&st);
        assert_int_equal(em_restart_monitor_new(&m, &err), 0);
        em_restart_monitor_set_route_hook(m, hook);
        for (int i = 0; i < 3; i++)
                assert_int_equal(em_restart_monitor_pass(m, &cfg, i == 0, i * 2000, NULL, &err), 0);
        assert_int_equal(em_read_file(log, 4096, &text, NULL, &err), 0);
        assert_string_equal(text, "withdraw 10.66.9.1\nwithdraw 10.66.9.3\n");
        free(text);
        assert_int_equal(em_rm_rf(root, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_and_names),
            cmocka_unit_test(test_of_spec),
            cmocka_unit_test(test_wanted),
            cmocka_unit_test(test_ended_is_withdrawn),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
