/* checkpoint/pkeys: mappings tagged with a memory protection key are
 * found in smaps, and a process that uses one is refused (with its pid,
 * key and the fix) while one without is not, also in a process tree. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/pkeys.h"
#include "util/proc.h"
#include "util/cleanup.h"

/* Two mappings as a Node.js 18 process with wasm shows them (its code
 * space on key 1), and one on the default key. */
static const char smaps_node[] =
    "37332f8dc000-37332fa34000 rwxp 00000000 00:00 0 \n"
    "Size:               1376 kB\n"
    "ProtectionKey:         1\n"
    "VmFlags: rd wr ex mr mw me ac \n"
    "37332fa34000-37332fabe000 ---p 00000000 00:00 0 \n"
    "Size:                552 kB\n"
    "ProtectionKey:         1\n"
    "7efc79d00000-7efc79d28000 r--p 00000000 08:01 123 /lib/libc.so.6\n"
    "ProtectionKey:         0\n";
static const char smaps_plain[] =
    "7efc79d00000-7efc79d28000 r--p 00000000 08:01 123 /lib/libc.so.6\n"
    "Size:                160 kB\n"
    "ProtectionKey:         0\n";
/* No PKU (or another architecture): no ProtectionKey lines at all. */
static const char smaps_nopku[] =
    "7efc79d00000-7efc79d28000 r--p 00000000 08:01 123 /lib/libc.so.6\n"
    "Size:                160 kB\n";

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void scan_text(const char *text, unsigned *maps, int *key)
{
        char path[] = "/tmp/test_pkeys.XXXXXX";
        cleanup_error em_error_t err = NULL;
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        close(fd);
        write_file(path, text);
        assert_int_equal(em_pkeys_scan(path, maps, key, &err), 0);
        unlink(path);
}

static void test_scan(void **state)
{
        unsigned maps;
        int key;

        (void)state;
        scan_text(smaps_node, &maps, &key);
        assert_int_equal(maps, 2);
        assert_int_equal(key, 1);
        scan_text(smaps_plain, &maps, &key);
        assert_int_equal(maps, 0);
        assert_int_equal(key, -1);
        scan_text(smaps_nopku, &maps, &key);
        assert_int_equal(maps, 0);
}

static void test_scan_missing(void **state)
{
        cleanup_error em_error_t err = NULL;
        unsigned maps;
        int key;

        (void)state;
        assert_int_equal(em_pkeys_scan("/nonexistent/smaps", &maps, &key, &err), -1);
        assert_non_null(err);
}

/* This process, before it tags anything, and a pid that does not exist. */
static void test_refuse_none(void **state)
{
        cleanup_error em_error_t err = NULL;
        pid_t pids[] = {getpid(), 0x3fffffff};

        (void)state;
        assert_int_equal(em_pkeys_refuse(pids, 2, "c1", &err), 0);
        assert_null(err);
}

/* An smaps that cannot be opened for want of a file descriptor (no more
 * allowed: EMFILE) leaves the keys unknown: an error naming the process,
 * not a pass. */
static void test_refuse_unreadable(void **state)
{
        cleanup_error em_error_t err = NULL;
        pid_t self = getpid();
        struct rlimit old, low;
        char want[64];

        (void)state;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        int next = dup(0);
        assert_true(next >= 0);
        close(next);
        low = (struct rlimit){(rlim_t)next, old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        int rc = em_pkeys_refuse(&self, 1, "c1", &err);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_int_equal(rc, -1);
        assert_int_equal(em_error_status(err), EMFILE);
        snprintf(want, sizeof(want), "c1: checking process %d for protection keys", (int)self);
        assert_non_null(strstr(em_error_msg(err), want));
}

/* A page of this process tagged with a new key (*pk), or NULL where
 * protection keys are missing. */
static void *tagged_page(long *pk)
{
        *pk = syscall(SYS_pkey_alloc, 0, 0);
        if (*pk < 0)
                return NULL;
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        assert_int_equal(syscall(SYS_pkey_mprotect, p, 4096, PROT_READ | PROT_WRITE, *pk), 0);
        return p;
}

/* A real key on a real mapping of this process (where the CPU and kernel
 * have protection keys; elsewhere pkey_alloc fails and this is skipped). */
static void test_refuse_real_key(void **state)
{
        cleanup_error em_error_t err = NULL;
        pid_t self = getpid();
        long pk;
        void *p = tagged_page(&pk);

        (void)state;
        if (p == NULL)
                skip();
        assert_int_equal(em_pkeys_refuse(&self, 1, "c1", &err), -1);
        assert_int_equal(em_error_status(err), EOPNOTSUPP);
        assert_non_null(strstr(em_error_msg(err), "--no-wasm-memory-protection-keys"));
        char want[64];
        snprintf(want, sizeof(want), "process %d uses memory protection key %ld", (int)self, pk);
        assert_non_null(strstr(em_error_msg(err), want));
        munmap(p, 4096);
        syscall(SYS_pkey_free, pk);
}

/* A process whose key a scan of the same list already saw is not scanned
 * again (the cgroup after the tree); any other pid in the list still is. */
static void test_refuse_except(void **state)
{
        cleanup_error em_error_t err = NULL;
        pid_t self = getpid(), other = 0x3fffffff;
        long pk;
        void *p = tagged_page(&pk);

        (void)state;
        if (p == NULL)
                skip();
        assert_int_equal(em_pkeys_refuse_except(&self, 1, &self, 1, "c1", &err), 0);
        assert_null(err);
        assert_int_equal(em_pkeys_refuse_except(&self, 1, &other, 1, "c1", &err), -1);
        assert_int_equal(em_error_status(err), EOPNOTSUPP);
        em_error_free(&err);
        assert_int_equal(em_pkeys_refuse_except(&self, 1, NULL, 0, "c1", &err), -1);
        munmap(p, 4096);
        syscall(SYS_pkey_free, pk);
}

/* What the checks before a checkpoint do for a container's tree
 * (checkpoint/ckpt_refuse.c), from this process down. */
static int refuse_tree(em_error_t *err)
{
        static pid_t pids[EM_PROC_TREE_MAX];

        return em_pkeys_refuse(pids, em_proc_tree(getpid(), pids, EM_PROC_TREE_MAX), "c1", err);
}

/* A child of this process tags a page: the tree from this process is
 * refused, naming the child; once it is gone, the tree is not. */
static void test_refuse_tree_child(void **state)
{
        cleanup_error em_error_t err = NULL;
        int p[2];
        char c = 0, want[64];

        (void)state;
        long pk = syscall(SYS_pkey_alloc, 0, 0);
        if (pk < 0)
                skip();
        syscall(SYS_pkey_free, pk);
        assert_int_equal(refuse_tree(&err), 0);
        assert_int_equal(pipe(p), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                long k = syscall(SYS_pkey_alloc, 0, 0);
                void *m =
                    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                c = k >= 0 && syscall(SYS_pkey_mprotect, m, 4096, PROT_READ, k) == 0;
                (void)!write(p[1], &c, 1);
                pause();
                _exit(0);
        }
        assert_int_equal(read(p[0], &c, 1), 1);
        assert_int_equal(c, 1);
        assert_int_equal(refuse_tree(&err), -1);
        assert_int_equal(em_error_status(err), EOPNOTSUPP);
        snprintf(want, sizeof(want), "process %d uses", (int)child);
        assert_non_null(strstr(em_error_msg(err), want));
        em_error_free(&err);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        close(p[0]);
        close(p[1]);
        assert_int_equal(refuse_tree(&err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_scan),
            cmocka_unit_test(test_scan_missing),
            cmocka_unit_test(test_refuse_none),
            cmocka_unit_test(test_refuse_unreadable),
            cmocka_unit_test(test_refuse_real_key),
            cmocka_unit_test(test_refuse_except),
            cmocka_unit_test(test_refuse_tree_child),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
