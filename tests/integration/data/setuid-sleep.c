/* A service that drops privileges itself, as mariadbd does: setgid(1000)
 * and setuid(1000) without an exec, which leaves it non-dumpable; with
 * an argument it sets itself dumpable again (PR_SET_DUMPABLE), as
 * MariaDB's core-file does. Then it sleeps. Built static by
 * 29-checkpoint-setuid.sh and run from a named volume in busybox. */
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        (void)argv;
        if (setgid(1000) != 0 || setuid(1000) != 0)
                return 1;
        if (argc > 1 && prctl(PR_SET_DUMPABLE, 1) != 0)
                return 1;
        for (;;)
                sleep(1);
}
