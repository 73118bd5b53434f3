/* The route hook outside migrations: what it is run with, and which address
 * a container's announcement names. The hook is a real shell script that
 * records its arguments. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "container/routehook.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

struct fixture {
        char dir[64];
        char hook[128], log[128];
        struct em_config cfg;
};

static void write_file(const char *path, const char *text, mode_t mode)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char script[512];

        strcpy(f->dir, "/tmp/em-routehook.XXXXXX");
        if (mkdtemp(f->dir) == NULL)
                return -1;
        snprintf(f->hook, sizeof(f->hook), "%s/hook", f->dir);
        snprintf(f->log, sizeof(f->log), "%s/hook.log", f->dir);
        snprintf(script, sizeof(script),
                 "#!/bin/sh\necho \"$1 $2\" >>%s\n[ \"$2\" != 10.9.9.9 ] || exit 3\n", f->log);
        write_file(f->hook, script, 0755);
        f->cfg.root = f->dir;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        em_rm_rf(f->dir, &err);
        em_error_free(&err);
        free(f);
        return 0;
}

static char *read_log(const struct fixture *f)
{
        static char buf[256];
        FILE *in = fopen(f->log, "r");
        size_t n = in ? fread(buf, 1, sizeof(buf) - 1, in) : 0;

        if (in)
                fclose(in);
        buf[n] = '\0';
        return buf;
}

static void add(struct fixture *f, const char *name, const char *ip)
{
        cleanup_state struct em_state *st = NULL;
        struct em_container_rec r = {.name = (char *)name,
                                     .image = "busybox",
                                     .ip = ip ? strdup(ip) : NULL,
                                     .no_ip = ip == NULL,
                                     .spec = "{\"diff_ids\":[]}",
                                     .state = EM_CSTATE_RUNNING};
        em_error_t err = NULL;

        assert_int_equal(em_state_open(f->dir, &st, &err), 0);
        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        free(r.ip);
}

static void test_run_passes_verb_and_ip(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_route_hook_run(f->hook, "announce", "10.66.0.10", &err), 0);
        assert_int_equal(em_route_hook_run(f->hook, "withdraw", "10.66.0.10", &err), 0);
        assert_string_equal(read_log(f), "announce 10.66.0.10\nwithdraw 10.66.0.10\n");
}

static void test_no_hook_runs_nothing(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_route_hook_run(NULL, "announce", "10.66.0.10", &err), 0);
        assert_int_equal(em_route_hook_run("", "announce", "10.66.0.10", &err), 0);
        assert_string_equal(read_log(f), "");
}

/* A hook that fails is an error that names the hook and its arguments. */
static void test_failing_hook(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_route_hook_run(f->hook, "announce", "10.9.9.9", &err), -1);
        assert_non_null(strstr(em_error_msg(err), "announce 10.9.9.9"));
}

static void test_container_ip(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;

        add(f, "redis", "10.66.0.10");
        add(f, "member", NULL);
        assert_int_equal(em_route_hook_container(&f->cfg, f->hook, "announce", "redis", &err), 0);
        /* a container without an address of its own: nothing to announce */
        assert_int_equal(em_route_hook_container(&f->cfg, f->hook, "announce", "member", &err), 0);
        /* no hook: not even the state is read */
        assert_int_equal(em_route_hook_container(&f->cfg, NULL, "withdraw", "absent", &err), 0);
        assert_string_equal(read_log(f), "announce 10.66.0.10\n");
        assert_int_equal(em_route_hook_container(&f->cfg, f->hook, "withdraw", "absent", &err), -1);
        assert_non_null(strstr(em_error_msg(err), "absent"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_run_passes_verb_and_ip, setup, teardown),
            cmocka_unit_test_setup_teardown(test_no_hook_runs_nothing, setup, teardown),
            cmocka_unit_test_setup_teardown(test_failing_hook, setup, teardown),
            cmocka_unit_test_setup_teardown(test_container_ip, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
