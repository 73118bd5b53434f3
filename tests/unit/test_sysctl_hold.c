/* migrate/common/sysctl_hold: a sysctl held across processes, with a
 * plain file standing in for the /proc/sys one and real processes as its
 * holders: this one, a live child, and a zombie. */
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

#include "migrate/common/sysctl_hold.h"
#include "support/fixture.h"

struct fixture {
        char *dir;
        char value[4200], state[4200];
        struct em_held_sysctl h;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        f->dir = em_test_tmpdir("sysctl-hold");
        snprintf(f->value, sizeof(f->value), "%s/value", f->dir);
        snprintf(f->state, sizeof(f->state), "%s/run/state", f->dir);
        f->h = (struct em_held_sysctl){f->value, f->state, "test.value", 10};
        em_test_put(f->dir, "value", "5\n");
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        em_test_rm(f->dir);
        free(f);
        return 0;
}

static long value_of(const struct fixture *f)
{
        return strtol(em_test_get(f->dir, "value"), NULL, 10);
}

/* The state a crashed holder left: the original 5, the value raised. */
static void left_by(const struct fixture *f, pid_t holder)
{
        char text[64];

        snprintf(text, sizeof(text), "5 %d\n", (int)holder);
        em_test_put(f->dir, "run/state", text);
        em_test_put(f->dir, "value", "10\n");
}

static void test_hold_release(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        char want[64];

        assert_int_equal(em_sysctl_hold(&f->h, &err), 0);
        assert_int_equal(value_of(f), 10);
        snprintf(want, sizeof(want), "5 %d\n", (int)getpid());
        assert_string_equal(em_test_get(f->dir, "run/state"), want);
        em_sysctl_release(&f->h);
        assert_int_equal(value_of(f), 5);
        assert_string_equal(em_test_get(f->dir, "run/state"), "5\n");
}

/* A holder that died without letting go and is not reaped yet (a zombie
 * until its reaper waits: long, under a PID 1 that is no real init)
 * holds nothing: the last live holder puts the value back. */
static void test_zombie_holder(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        pid_t dead = fork();
        if (dead == 0)
                _exit(0);
        assert_true(dead > 0);
        assert_int_equal(waitid(P_PID, dead, NULL, WEXITED | WNOWAIT), 0);
        left_by(f, dead);
        int rc = em_sysctl_hold(&f->h, &err);
        em_sysctl_release(&f->h);
        long v = value_of(f);
        waitpid(dead, NULL, 0);
        assert_int_equal(rc, 0);
        assert_int_equal(v, 5);
        assert_string_equal(em_test_get(f->dir, "run/state"), "5\n");
}

/* A live holder keeps the value raised after this process lets go. */
static void test_live_holder(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        char want[64];

        pid_t live = fork();
        if (live == 0) {
                pause();
                _exit(0);
        }
        assert_true(live > 0);
        left_by(f, live);
        int rc = em_sysctl_hold(&f->h, &err);
        em_sysctl_release(&f->h);
        long v = value_of(f);
        kill(live, SIGKILL);
        waitpid(live, NULL, 0);
        assert_int_equal(rc, 0);
        assert_int_equal(v, 10);
        snprintf(want, sizeof(want), "5 %d\n", (int)live);
        assert_string_equal(em_test_get(f->dir, "run/state"), want);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_hold_release, setup, teardown),
            cmocka_unit_test_setup_teardown(test_zombie_holder, setup, teardown),
            cmocka_unit_test_setup_teardown(test_live_holder, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
