/* container/memusage: smaps_rollup parsing, and memory that several
 * processes share counted once over them. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/memusage.h"
#include "util/cleanup.h"

#define MIB (1024 * 1024)

static const char rollup[] = "55d0e3a5e000-7ffd9a9d6000 ---p 00000000 00:00 0  [rollup]\n"
                             "Rss:                1740 kB\n"
                             "Pss:                 191 kB\n"
                             "Pss_Dirty:           112 kB\n"
                             "Pss_Anon:            112 kB\n"
                             "Pss_File:             79 kB\n"
                             "Pss_Shmem:             8 kB\n"
                             "Shared_Clean:       1584 kB\n"
                             "Swap:                 16 kB\n"
                             "SwapPss:               4 kB\n"
                             "Locked:                0 kB\n";

static void test_parse(void **state)
{
        struct em_memusage m;
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_memusage_parse(rollup, &m, &err), 0);
        assert_int_equal(m.resident, 191 * 1024);
        assert_int_equal(m.dumped, (112 + 8 + 4) * 1024);
}

static void test_parse_old_kernel(void **state)
{
        struct em_memusage m;
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_memusage_parse("Rss: 10 kB\nPss: 5 kB\nPss_Dirty: 4 kB\n", &m, &err),
                         -1);
        assert_int_equal(em_error_status(err), EPROTO);
        assert_non_null(strstr(em_error_msg(err), "no Pss_Anon: line"));
        em_error_free(&err);
        /* Pss_Dirty is not Pss. */
        assert_int_equal(
            em_memusage_parse("Pss_Dirty: 4 kB\nPss_Anon: 1 kB\nPss_Shmem: 0 kB\n", &m, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "no Pss: line"));
}

/* 16 MiB of shared anonymous memory that a parent and 3 children all
 * touched: each one's RssShmem is 16 MiB, the sum of their shares is
 * 16 MiB (plus their own pages), not 64. */
static void test_shared_counted_once(void **state)
{
        const size_t len = 16 * MIB;
        struct em_memusage sum = {0}, self = {0};
        cleanup_error em_error_t err = NULL;
        pid_t kids[3];
        int ready[2], hold[2];
        char c;

        (void)state;
        volatile uint8_t *mem =
            mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(mem != MAP_FAILED);
        memset((void *)mem, 0x5a, len);
        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(hold), 0);
        for (int k = 0; k < 3; k++) {
                kids[k] = fork();
                assert_true(kids[k] >= 0);
                if (kids[k] == 0) {
                        unsigned x = 0;
                        close(hold[1]); /* its EOF is the signal to exit */
                        for (size_t i = 0; i < len; i += 4096)
                                x += mem[i];
                        if (write(ready[1], &x, 1) != 1 || read(hold[0], &c, 1) < 0)
                                _exit(1);
                        _exit(0);
                }
        }
        for (int k = 0; k < 3; k++)
                assert_int_equal(read(ready[0], &c, 1), 1);
        assert_int_equal(em_memusage_add_pid(getpid(), &self, &err), 0);
        sum = self;
        for (int k = 0; k < 3; k++)
                assert_int_equal(em_memusage_add_pid(kids[k], &sum, &err), 0);
        close(hold[1]);
        for (int k = 0; k < 3; k++)
                waitpid(kids[k], NULL, 0);
        assert_true(self.dumped < len);
        assert_true(sum.dumped >= len);
        /* Counted per process it would be 64 MiB; the slack is the four
         * processes' own pages (more than 1 MiB each under ASan). */
        assert_true(sum.dumped < len + len / 2);
        munmap((void *)mem, len);
        assert_int_equal(em_memusage_add_pid(999999999, &sum, &err), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_parse_old_kernel),
            cmocka_unit_test(test_shared_counted_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
