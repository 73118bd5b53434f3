/* The network hook runc runs: which binary config.json names (the small
 * edgemig-netns-hook next to edgemig, else `edgemig netns-hook`), and the
 * state JSON it reads from runc, which it must refuse when it carries no
 * usable pid (nothing is wired then). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/nethook.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

struct fixture {
        char dir[64];
        char edgemig[128], small[128];
};

static void write_exec(const char *path)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs("#!/bin/sh\nexit 0\n", f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path, 0755), 0);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        strcpy(f->dir, "/tmp/em-nethook.XXXXXX");
        if (mkdtemp(f->dir) == NULL)
                return -1;
        snprintf(f->edgemig, sizeof(f->edgemig), "%s/edgemig", f->dir);
        snprintf(f->small, sizeof(f->small), "%s/" EM_NETHOOK_BIN, f->dir);
        write_exec(f->edgemig);
        setenv("EDGEMIG_BIN", f->edgemig, 1);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        unsetenv("EDGEMIG_BIN");
        em_rm_rf(f->dir, &err);
        em_error_free(&err);
        free(f);
        return 0;
}

static json_t *hook_for(void)
{
        em_error_t err = NULL;
        json_t *hook = NULL;

        assert_int_equal(em_nethook_json("/r/netns/web", "emv1", "10.1.0.5", &hook, &err), 0);
        assert_null(err);
        assert_non_null(hook);
        return hook;
}

static const char *arg(const json_t *hook, size_t i)
{
        return json_string_value(json_array_get(json_object_get(hook, "args"), i));
}

/* The small binary next to edgemig is the one runc runs. */
static void test_small_binary_preferred(void **state)
{
        struct fixture *f = *state;

        write_exec(f->small);
        json_t *hook = hook_for();
        assert_string_equal(json_string_value(json_object_get(hook, "path")), f->small);
        assert_int_equal(json_array_size(json_object_get(hook, "args")), 4);
        assert_string_equal(arg(hook, 0), EM_NETHOOK_BIN);
        assert_string_equal(arg(hook, 1), "/r/netns/web");
        assert_string_equal(arg(hook, 2), "emv1");
        assert_string_equal(arg(hook, 3), "10.1.0.5");
        assert_int_equal(json_integer_value(json_object_get(hook, "timeout")), 30);
        json_decref(hook);
}

/* Without it (or not executable), edgemig itself with the verb. */
static void test_falls_back_to_edgemig(void **state)
{
        struct fixture *f = *state;

        write_exec(f->small);
        assert_int_equal(chmod(f->small, 0644), 0);
        json_t *hook = hook_for();
        assert_string_equal(json_string_value(json_object_get(hook, "path")), f->edgemig);
        assert_int_equal(json_array_size(json_object_get(hook, "args")), 5);
        assert_string_equal(arg(hook, 0), "edgemig");
        assert_string_equal(arg(hook, 1), EM_NETHOOK_VERB);
        assert_string_equal(arg(hook, 4), "10.1.0.5");
        json_decref(hook);
}

static void test_no_edgemig(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        json_t *hook = NULL;

        setenv("EDGEMIG_BIN", f->small, 1); /* does not exist */
        assert_int_equal(em_nethook_json("/r/netns/web", "emv1", "10.1.0.5", &hook, &err), -1);
        assert_null(hook);
        assert_non_null(strstr(em_error_msg(err), "EDGEMIG_BIN"));
        em_error_free(&err);
}

/* runc's state JSON (hostile or broken): refused before anything is
 * touched; the error says what was wrong. */
static void expect_refused(struct fixture *f, const char *state_json, const char *want)
{
        char path[160];
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/state.json", f->dir);
        FILE *s = fopen(path, "w");
        assert_non_null(s);
        fputs(state_json, s);
        assert_int_equal(fclose(s), 0);
        cleanup_close int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(em_nethook_run("/nonexistent/netns", "emv1", "10.1.0.5", fd, &err), -1);
        assert_non_null(err);
        assert_non_null(strstr(em_error_msg(err), want));
        em_error_free(&err);
}

static void test_run_refuses_bad_state(void **state)
{
        struct fixture *f = *state;

        expect_refused(f, "", "container state");
        expect_refused(f, "{\"pid\": ", "container state");
        expect_refused(f, "[1, 2]", "no pid");
        expect_refused(f, "{\"id\": \"web\"}", "no pid");
        expect_refused(f, "{\"pid\": 0}", "no pid");
        expect_refused(f, "{\"pid\": -4}", "no pid");
        expect_refused(f, "{\"pid\": 4294967297}", "no pid");
        expect_refused(f, "{\"pid\": \"1\"}", "no pid");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_small_binary_preferred, setup, teardown),
            cmocka_unit_test_setup_teardown(test_falls_back_to_edgemig, setup, teardown),
            cmocka_unit_test_setup_teardown(test_no_edgemig, setup, teardown),
            cmocka_unit_test_setup_teardown(test_run_refuses_bad_state, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
