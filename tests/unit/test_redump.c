/* checkpoint/redump: which processes CRIU could not checkpoint again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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

/* In a user namespace of its own as its root (host uid 200000), made
 * dumpable again after the uid change; then a child that exits and is
 * never reaped. Writes a byte to ready once the zombie exists. */
static void userns_parent_of_zombie(int go, int ready)
{
        char c;

        if (unshare(CLONE_NEWUSER) < 0 || write(ready, "u", 1) != 1 || read(go, &c, 1) != 1 ||
            setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0)
                _exit(1);
        pid_t child = fork();
        if (child == 0)
                _exit(0);
        while (child > 0 && waitid(P_PID, child, NULL, WEXITED | WNOWAIT) < 0)
                ;
        if (write(ready, "z", 1) != 1)
                _exit(1);
        pause();
        _exit(0);
}

static void write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

/* A zombie has no memory map, so procfs gives its ns dir to host root
 * although its uid is the container's: no refusal (integration test
 * 34-postcopy failed on a shell's unreaped child). */
static void test_check_zombie(void **state)
{
        int go[2], ready[2];
        char path[64], c;
        em_error_t err = NULL;
        (void)state;

        if (geteuid() != 0)
                skip();
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
                close(go[1]);
                close(ready[0]);
                userns_parent_of_zombie(go[0], ready[1]);
        }
        /* Only the child holds these ends: its early exit (no user
         * namespaces here) reads as end of file, not as a hang. */
        close(go[0]);
        close(ready[1]);
        if (read(ready[0], &c, 1) != 1) {
                waitpid(pid, NULL, 0);
                skip();
        }
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
        write_file(path, "0 200000 1\n");
        snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
        write_file(path, "deny\n");
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
        write_file(path, "0 200000 1\n");
        assert_int_equal(write(go[1], "g", 1), 1);
        bool zombie = read(ready[0], &c, 1) == 1 && c == 'z';
        int rc = zombie ? em_redump_check("zombie", pid, &err) : 0;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(go[1]);
        close(ready[0]);
        assert_true(zombie);
        if (rc < 0)
                fail_msg("refused: %s", em_error_msg(err));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_check_self),
            cmocka_unit_test(test_check_zombie),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
