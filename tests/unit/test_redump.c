/* checkpoint/redump: which processes CRIU could not checkpoint again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/redump.h"

/* Only a process in a user namespace of its own, not host root, whose
 * /proc/PID/ns belongs to host root: non-dumpable with its memory map in
 * the initial namespace (restored by CRIU). */
static void test_refused(void **state)
{
        (void)state;
        assert_true(em_redump_refused(0, 1640956904, true));
        /* Before a restore: the ns dir belongs to the container's root. */
        assert_false(em_redump_refused(1640955904, 1640956904, true));
        /* Dumpable: its own uid owns it. */
        assert_false(em_redump_refused(1640956904, 1640956904, true));
        /* Root, or the host's namespace (CRIU holds every capability there). */
        assert_false(em_redump_refused(0, 0, true));
        assert_false(em_redump_refused(0, 100, false));
}

/* This process tree (the host's namespace) is never refused. */
static void test_check_self(void **state)
{
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_redump_check("self", getpid(), &err), 0);
        assert_int_equal(em_redump_check("none", 0, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_check_self),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
