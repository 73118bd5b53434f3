/* checkpoint/ckpt_refuse: the one check before a checkpoint, on real
 * processes (this test's own, and children of it that tag a page with a
 * real protection key where the CPU has them) and a fake cgroup tree: a
 * protection key user in the tree or only in the cgroup is refused, so
 * is a process of the cgroup outside pid 1's tree, the key first; a
 * container that does not run, or whose cgroup is gone, is not. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/ckpt_refuse.h"
#include "state/state.h"
#include "support/fixture.h"
#include "util/cleanup.h"
#include "util/config.h"

#define CG "/edgemig-t-c"

static char *fs;

static int setup(void **state)
{
        (void)state;
        fs = em_test_tmpdir("ckpt-refuse");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        em_test_rm(fs);
        return 0;
}

/* A child that waits to be killed; with `tag`, once it has a page tagged
 * with a protection key of its own (0 where the CPU has none). */
static pid_t child(int tag)
{
        int p[2];
        char ok = 0;

        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                long k = tag ? syscall(SYS_pkey_alloc, 0, 0) : 0;
                void *m =
                    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                ok = !tag || (k > 0 && syscall(SYS_pkey_mprotect, m, 4096, PROT_READ, k) == 0);
                (void)!write(p[1], &ok, 1);
                pause();
                _exit(0);
        }
        assert_int_equal(read(p[0], &ok, 1), 1);
        close(p[0]);
        close(p[1]);
        if (ok)
                return pid;
        em_test_reap(pid);
        return 0;
}

static void assert_refused(int rc, em_error_t *err, int status, const char *what)
{
        assert_int_equal(rc, -1);
        assert_int_equal(em_error_status(*err), status);
        assert_non_null(strstr(em_error_msg(*err), what));
        em_error_free(err);
}

/* This process as pid 1 with a child: nothing to refuse, its tree listed
 * here or by the caller; without a pid 1 (not running) or without a
 * cgroup, not even a process outside it. */
static void test_none(void **state)
{
        em_error_t err = NULL;
        pid_t c = child(0), self = getpid();

        (void)state;
        pid_t all[] = {self, c};
        em_test_cgroup_procs(fs, CG, all, 2);
        const struct em_ckpt_procs here = {self, NULL, 0}, listed = {self, all, 2};
        assert_int_equal(em_ckpt_refuse_cgroup(fs, CG, "c1", &here, &err), 0);
        assert_int_equal(em_ckpt_refuse_cgroup(fs, CG, "c1", &listed, &err), 0);
        pid_t stray[] = {self, getppid()};
        em_test_cgroup_procs(fs, CG, stray, 2);
        const struct em_ckpt_procs gone = {0, NULL, 0};
        assert_int_equal(em_ckpt_refuse_cgroup(fs, CG, "c1", &gone, &err), 0);
        assert_int_equal(em_ckpt_refuse_cgroup(fs, "/edgemig-t-none", "c1", &here, &err), 0);
        assert_null(err);
        em_test_reap(c);
}

/* This test's parent in the cgroup, as runc exec's child is: refused
 * (after the grace) with the pid and the fix. */
static void test_stray(void **state)
{
        em_error_t err = NULL;
        pid_t self = getpid();
        char want[64];

        (void)state;
        pid_t pids[] = {self, getppid()};
        em_test_cgroup_procs(fs, CG, pids, 2);
        const struct em_ckpt_procs procs = {self, NULL, 0};
        snprintf(want, sizeof(want), "edgemig exec c1 kill %d", (int)getppid());
        assert_refused(em_ckpt_refuse_cgroup(fs, CG, "c1", &procs, &err), &err, EBUSY, want);
}

/* A key user that only the cgroup holds (the caller listed pid 1 alone),
 * and one in the tree that the caller leaves to be listed here. */
static void test_pkeys(void **state)
{
        em_error_t err = NULL;
        pid_t self = getpid(), c = child(1);
        char want[64];

        (void)state;
        if (c == 0)
                skip();
        snprintf(want, sizeof(want), "process %d uses memory protection key", (int)c);
        pid_t pids[] = {self, c};
        em_test_cgroup_procs(fs, CG, pids, 2);
        const struct em_ckpt_procs only_init = {self, pids, 1};
        assert_refused(em_ckpt_refuse_cgroup(fs, CG, "c1", &only_init, &err), &err, EOPNOTSUPP,
                       want);
        const struct em_ckpt_procs tree = {self, NULL, 0};
        assert_refused(em_ckpt_refuse_cgroup(fs, "/edgemig-t-none", "c1", &tree, &err), &err,
                       EOPNOTSUPP, want);
        em_test_reap(c);
}

/* A key user that is also outside pid 1's tree: the key is named (and
 * no grace is waited for). */
static void test_pkeys_first(void **state)
{
        em_error_t err = NULL;
        pid_t init = child(0), c = child(1);

        (void)state;
        if (c == 0) {
                em_test_reap(init);
                skip();
        }
        pid_t pids[] = {init, c};
        em_test_cgroup_procs(fs, CG, pids, 2);
        const struct em_ckpt_procs procs = {init, NULL, 0};
        assert_refused(em_ckpt_refuse_cgroup(fs, CG, "c1", &procs, &err), &err, EOPNOTSUPP,
                       "--no-wasm-memory-protection-keys");
        em_test_reap(c);
        em_test_reap(init);
}

/* A cgroup that cannot be listed is an error that says whose. */
static void test_unreadable(void **state)
{
        em_error_t err = NULL;
        const struct em_ckpt_procs procs = {getpid(), NULL, 0};

        (void)state;
        em_test_put(fs, "freezer" CG "/cgroup.procs/x", "");
        assert_int_equal(em_ckpt_refuse_cgroup(fs, CG, "c1", &procs, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "listing the processes of c1"));
        em_error_free(&err);
}

static void insert(struct em_state *st, const char *name, const char *ip, int pid)
{
        em_error_t err = NULL;
        struct em_container_rec r = {
            .name = (char *)name, .image = "busybox", .ip = strdup(ip), .spec = "{}"};

        assert_int_equal(em_state_container_insert(st, &r, NULL, &err), 0);
        free(r.ip);
        if (pid > 0)
                assert_int_equal(em_state_container_transition(st, name, EM_CSTATE_ANY,
                                                               EM_CSTATE_RUNNING, pid, NULL, &err),
                                 0);
}

/* By the state's pids: one that does not run and one that runs without
 * keys have nothing to refuse, one whose tree holds a key user is
 * refused (where the CPU has keys); a name with no row is an error. */
static void test_recorded(void **state)
{
        struct em_config cfg = {0};
        cleanup_state struct em_state *st = NULL;
        em_error_t err = NULL;
        pid_t plain = child(0), keys = child(1);

        (void)state;
        assert_int_equal(em_config_init(&cfg, fs, &err), 0);
        assert_int_equal(em_state_open(cfg.root, &st, &err), 0);
        insert(st, "idle", "10.66.1.2", 0);
        insert(st, "plain", "10.66.1.3", (int)plain);
        const char *ok[] = {"idle", "plain"}, *none[] = {"plain", "none"};
        assert_int_equal(em_ckpt_refuse_recorded(&cfg, ok, 2, &err), 0);
        assert_refused(em_ckpt_refuse_recorded(&cfg, none, 2, &err), &err, ENOENT, "none");
        if (keys > 0) {
                insert(st, "keys", "10.66.1.4", (int)keys);
                const char *all[] = {"idle", "plain", "keys"};
                assert_refused(em_ckpt_refuse_recorded(&cfg, all, 3, &err), &err, EOPNOTSUPP,
                               "keys:");
                em_test_reap(keys);
        }
        em_config_free(&cfg);
        em_test_reap(plain);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_none, setup, teardown),
            cmocka_unit_test_setup_teardown(test_stray, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pkeys, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pkeys_first, setup, teardown),
            cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
            cmocka_unit_test_setup_teardown(test_recorded, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
