/* checkpoint/lazy_fit: the private pages CRIU's lazy dump sizes its page
 * list from, read from a maps file (reserved PROT_NONE ranges counted,
 * shared mappings and [vsyscall] not); the largest allocation the kernel
 * grants under each overcommit mode; a real process that reserves more
 * address space than this host's limit is refused, naming pre-copy, and
 * a small one is not. And the migration's choice (migrate/common/postcopy.h):
 * the default's lazy hand-off (auto) falls back to a plain final dump for
 * such a process and says why in the report. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/lazy_fit.h"
#include "migrate/common/postcopy.h"
#include "migrate/source/phases.h"
#include "migrate/source/source.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "support/fixture.h"

/* 8 TiB reserved as MariaDB does, a small private file mapping, a shared
 * one and [vsyscall]. */
static const char maps[] = "55d0c0000000-55d0c0001000 r--p 00000000 08:01 12 /usr/sbin/mariadbd\n"
                           "770000000000-7f0000000000 ---p 00000000 00:00 0 \n"
                           "7f0000000000-7f0000100000 rw-s 00000000 00:01 7 /dev/shm/x\n"
                           "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";

static void test_private_pages(void **state)
{
        char path[] = "/tmp/test_lazy_fit.XXXXXX";
        cleanup_error em_error_t err = NULL;
        uint64_t pages = 0;
        int fd = mkstemp(path);

        (void)state;
        assert_true(fd >= 0);
        assert_int_equal(em_write_all(fd, maps, strlen(maps), &err), 0);
        close(fd);
        assert_int_equal(em_lazy_private_pages(path, &pages, &err), 0);
        assert_true(pages == (1ULL << 31) + 1); /* 8 TiB and one page */
        unlink(path);
        assert_int_equal(em_lazy_private_pages(path, &pages, &err), -1);
}

static void test_alloc_limit(void **state)
{
        const char *mi = "MemTotal:       24731400 kB\nSwapTotal:          1000 kB\n"
                         "CommitLimit:    12365700 kB\nCommitted_AS:    365700 kB\n";

        (void)state;
        assert_true(em_lazy_alloc_limit(mi, 0) == 24732400ULL * 1024);
        assert_true(em_lazy_alloc_limit(mi, 1) == UINT64_MAX);
        assert_true(em_lazy_alloc_limit(mi, 2) == 12000000ULL * 1024);
        assert_true(em_lazy_alloc_limit("CommitLimit: 1 kB\nCommitted_AS: 9 kB\n", 2) == 0);
}

/* A small process: not this one, whose sanitizer shadow (SAN=1) is a
 * reservation of many TiB itself. */
static pid_t small_child(void)
{
        char *argv[] = {"sleep", "60", NULL};

        return em_test_exec_child(argv);
}

static void test_refuse(void **state)
{
        cleanup_error em_error_t err = NULL;
        pid_t small = small_child(), child = em_test_reserving_child();

        (void)state;
        assert_int_equal(em_lazy_dump_refuse(&small, 1, "c1", &err), 0);
        em_test_reap(small);
        if (child == 0)
                skip();
        assert_int_equal(em_lazy_dump_refuse(&child, 1, "c1", &err), -1);
        assert_int_equal(em_error_status(err), EOPNOTSUPP);
        assert_non_null(strstr(em_error_msg(err), "--mode precopy"));
        assert_non_null(strstr(em_error_msg(err), "c1: CRIU's lazy dump"));
        em_test_reap(child);
}

/* auto would hand off lazily (pre-copy stopped on its budget): for a
 * small process it does, for the reserving one it falls back, in the report. */
static void test_auto_falls_back(void **state)
{
        struct em_migrate_opts o;
        struct source s = {0};
        pid_t small = small_child(), child = em_test_reserving_child();

        (void)state;
        em_migrate_opts_init(&o);
        o.mode = EM_MIGRATE_AUTO;
        s.o = &o;
        s.name = "c1";
        s.report = em_report_new("id", "c1", "auto", "t");
        em_report_set(s.report, "stop_reason", json_string("round-budget"));
        s.pids = &small;
        s.npids = 1;
        assert_true(em_source_lazy_wanted(&s));
        assert_null(json_object_get(em_report_json(s.report), "lazy_refused"));
        em_test_reap(small);
        if (child == 0) {
                em_report_free(&s.report);
                skip();
        }
        s.pids = &child;
        assert_false(em_source_lazy_wanted(&s));
        assert_non_null(
            strstr(json_string_value(json_object_get(em_report_json(s.report), "lazy_refused")),
                   "--mode precopy"));
        /* What the operator asked for is refused at the start instead. */
        o.mode = EM_MIGRATE_POSTCOPY;
        assert_true(em_source_lazy_wanted(&s));
        em_test_reap(child);
        em_report_free(&s.report);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_private_pages),
            cmocka_unit_test(test_alloc_limit),
            cmocka_unit_test(test_refuse),
            cmocka_unit_test(test_auto_falls_back),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
