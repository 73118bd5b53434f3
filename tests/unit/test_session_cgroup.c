/* Session cgroups on a fake cgroup tree: the daemon's own cgroup from
 * /proc/self/cgroup text, the session's directories under it, its limits
 * and cgroup.procs, and removal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/session_cgroup.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

static const char v1_self[] = "9:name=systemd:/\n"
                              "8:pids:/edgemigd.service\n"
                              "4:memory:/process_api/434a\n"
                              "2:cpu,cpuacct:/\n"
                              "0::/\n";

static void test_path_of(void **state)
{
        (void)state;
        cleanup_error em_error_t err = NULL;
        char *p = NULL;

        assert_int_equal(em_cgroup_path_of(v1_self, "pids", &p, &err), 0);
        assert_string_equal(p, "/edgemigd.service");
        free(p);
        assert_int_equal(em_cgroup_path_of(v1_self, "memory", &p, &err), 0);
        assert_string_equal(p, "/process_api/434a");
        free(p);
        /* A comma list, and the root kept empty so that paths join. */
        assert_int_equal(em_cgroup_path_of(v1_self, "cpuacct", &p, &err), 0);
        assert_string_equal(p, "");
        free(p);
        assert_int_equal(em_cgroup_path_of(v1_self, "", &p, &err), 0);
        assert_string_equal(p, "");
        free(p);
        assert_int_equal(em_cgroup_path_of("0::/system.slice/edgemigd.service", "", &p, &err), 0);
        assert_string_equal(p, "/system.slice/edgemigd.service");
        free(p);
        /* "cpu" is not "cpuacct"'s prefix match; absent and garbage lines. */
        assert_int_equal(em_cgroup_path_of("2:cpuacct:/x\n", "cpu", &p, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        assert_int_equal(em_cgroup_path_of("garbage\n8:pids\n8:pids:rel\n", "pids", &p, &err), -1);
        em_error_free(&err);
}

static char *read_str(const char *dir, const char *file)
{
        cleanup_free char *path = em_path_join(dir, file);
        char *s = NULL;

        assert_int_equal(em_read_file(path, 4096, &s, NULL, NULL), 0);
        return s;
}

static void mk(const char *root, const char *rel)
{
        cleanup_free char *p = em_path_join(root, rel);
        assert_int_equal(em_mkdir_p(p, 0755, NULL), 0);
}

/* A fake tree is a plain directory: the limit files it gets are ordinary
 * files, removed here before the session directory is. */
static void unlink_files(const char *dir)
{
        const char *files[] = {"pids.max",     "memory.limit_in_bytes", "memory.max",
                               "cgroup.procs", "memory.events",         "memory.oom_control"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                cleanup_free char *p = em_path_join(dir, files[i]);
                unlink(p);
        }
}

/* The kernel's count of processes the limit killed. */
static void put_oom(const char *dir, const char *name, const char *text)
{
        cleanup_free char *p = em_path_join(dir, name);
        assert_int_equal(em_write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

/* dir is <parent>/edgemig-session-<8 hex>-<pid>. */
static bool is_session_dir(const char *dir, const char *parent, int pid)
{
        char want[64];
        const char *p = strstr(dir, parent), *name;

        snprintf(want, sizeof(want), "-%d", pid);
        if (p == NULL || strncmp(p + strlen(parent), "/edgemig-session-", 17) != 0)
                return false;
        name = p + strlen(parent) + 17;
        return strspn(name, "0123456789abcdef") == 8 && strcmp(name + 8, want) == 0;
}

static void test_v1_session(void **state)
{
        (void)state;
        char tmpl[] = "/tmp/test-sessioncg-XXXXXX";
        const char *fs = mkdtemp(tmpl);
        const struct em_session_cgroup_limits l = {.pids = 64, .memory = 256ULL << 20};
        cleanup_error em_error_t err = NULL;
        struct em_session_cgroup *c = NULL;
        char *dirs[2];

        assert_non_null(fs);
        mk(fs, "pids/edgemigd.service");
        /* The daemon's memory cgroup is missing: refused, named. */
        assert_int_equal(em_session_cgroup_new(fs, v1_self, "/var/lib/edgemig", &l, &c, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "memory/process_api/434a"));
        em_error_free(&err);
        mk(fs, "memory/process_api/434a");
        assert_int_equal(em_session_cgroup_new(fs, v1_self, "/var/lib/edgemig", &l, &c, &err), 0);
        assert_int_equal(em_session_cgroup_dirs(c, 4242, dirs, &err), 0);
        assert_true(is_session_dir(dirs[0], "/pids/edgemigd.service", 4242));
        assert_true(is_session_dir(dirs[1], "/memory/process_api/434a", 4242));

        assert_int_equal(em_session_cgroup_enter(c, 4242, &err), 0);
        cleanup_free char *pids = read_str(dirs[0], "pids.max");
        cleanup_free char *mem = read_str(dirs[1], "memory.limit_in_bytes");
        cleanup_free char *p0 = read_str(dirs[0], "cgroup.procs");
        cleanup_free char *p1 = read_str(dirs[1], "cgroup.procs");
        assert_string_equal(pids, "64");
        assert_string_equal(mem, "268435456");
        assert_string_equal(p0, "4242");
        assert_string_equal(p1, "4242");
        uint64_t kills = 9;
        assert_int_equal(em_session_cgroup_oom_kills(c, 4242, &kills, &err), -1); /* none yet */
        em_error_free(&err);
        put_oom(dirs[1], "memory.oom_control", "oom_kill_disable 1\nunder_oom 0\noom_kill 2\n");
        assert_int_equal(em_session_cgroup_oom_kills(c, 4242, &kills, &err), 0);
        assert_int_equal(kills, 2);

        /* What is left in it goes back to the daemon's cgroup; a fake tree's
         * directory is not empty then (a real one would be). */
        assert_int_equal(em_session_cgroup_remove(c, 4242, &err), -1);
        em_error_free(&err);
        cleanup_free char *back = read_str(fs, "pids/edgemigd.service/cgroup.procs");
        assert_string_equal(back, "4242");
        unlink_files(dirs[0]);
        unlink_files(dirs[1]);
        assert_int_equal(em_session_cgroup_remove(c, 4242, &err), 0);
        assert_false(em_path_exists(dirs[0]));
        assert_false(em_path_exists(dirs[1]));
        /* Gone already: fine. A stale empty directory is taken over. */
        assert_int_equal(em_session_cgroup_remove(c, 4242, &err), 0);
        assert_int_equal(mkdir(dirs[0], 0755), 0);
        assert_int_equal(em_session_cgroup_enter(c, 4242, &err), 0);
        free(dirs[0]);
        free(dirs[1]);
        em_session_cgroup_free(c);
        assert_int_equal(em_rm_rf(fs, NULL), 0);
}

static void test_v2_session(void **state)
{
        (void)state;
        char tmpl[] = "/tmp/test-sessioncg-XXXXXX";
        const char *fs = mkdtemp(tmpl);
        const struct em_session_cgroup_limits l = {.pids = 10, .memory = 1ULL << 30};
        cleanup_error em_error_t err = NULL;
        struct em_session_cgroup *c = NULL;
        char *dirs[2];

        assert_non_null(fs);
        mk(fs, "system.slice/edgemigd.service");
        assert_int_equal(em_session_cgroup_new(fs, "0::/system.slice/edgemigd.service\n",
                                               "/var/lib/edgemig", &l, &c, &err),
                         0);
        assert_int_equal(em_session_cgroup_dirs(c, 7, dirs, &err), 0);
        assert_string_equal(dirs[0], dirs[1]);
        cleanup_free char *sub =
            read_str(fs, "system.slice/edgemigd.service/cgroup.subtree_control");
        assert_string_equal(sub, "+pids +memory");
        assert_int_equal(em_session_cgroup_enter(c, 7, &err), 0);
        cleanup_free char *mem = read_str(dirs[0], "memory.max");
        cleanup_free char *pids = read_str(dirs[0], "pids.max");
        assert_string_equal(mem, "1073741824");
        assert_string_equal(pids, "10");
        uint64_t kills = 9;
        put_oom(dirs[0], "memory.events", "low 0\nhigh 0\nmax 7\noom 0\noom_kill 0\n");
        assert_int_equal(em_session_cgroup_oom_kills(c, 7, &kills, &err), 0);
        assert_int_equal(kills, 0);
        put_oom(dirs[0], "memory.events", "oom 1\noom_group_kill 3\noom_kill 1\n");
        assert_int_equal(em_session_cgroup_oom_kills(c, 7, &kills, &err), 0);
        assert_int_equal(kills, 1);
        unlink_files(dirs[0]);
        assert_int_equal(em_session_cgroup_remove(c, 7, &err), 0);
        assert_false(em_path_exists(dirs[0]));
        free(dirs[0]);
        free(dirs[1]);
        em_session_cgroup_free(c);
        assert_int_equal(em_rm_rf(fs, NULL), 0);
}

static bool dir_of(const struct em_session_cgroup *c, int pid, int i, bool make)
{
        char *dirs[2];
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_session_cgroup_dirs(c, pid, dirs, &err), 0);
        if (make)
                assert_int_equal(em_mkdir_p(dirs[i], 0755, NULL), 0);
        bool there = em_path_exists(dirs[i]);
        free(dirs[0]);
        free(dirs[1]);
        return there;
}

/* What a daemon that died left: the cgroup of a session that is gone is
 * removed, a live one and other names are kept. Daemons of another state
 * root sharing the parent cgroup (parallel test beds) keep theirs, stale
 * or not: each daemon sweeps only what its own root owns. */
static void test_sweep(void **state)
{
        (void)state;
        char tmpl[] = "/tmp/test-sessioncg-XXXXXX";
        const char *fs = mkdtemp(tmpl);
        const struct em_session_cgroup_limits l = EM_SESSION_CGROUP_LIMITS_INIT;
        const char *self = "8:pids:/\n4:memory:/a\n";
        cleanup_error em_error_t err = NULL;
        struct em_session_cgroup *a = NULL, *b = NULL;
        const int dead = 99999999, live = (int)getpid();

        assert_non_null(fs);
        mk(fs, "pids/edgemig-session-99999999");
        mk(fs, "memory/a");
        assert_int_equal(em_session_cgroup_new(fs, self, "/srv/bed-a", &l, &a, &err), 0);
        assert_int_equal(em_session_cgroup_new(fs, self, "/srv/bed-b", &l, &b, &err), 0);
        dir_of(a, dead, 0, true);
        dir_of(a, dead, 1, true);
        dir_of(a, live, 0, true);
        dir_of(b, dead, 0, true);
        cleanup_free char *odd = em_path_join(fs, "pids/edgemig-session-99999999");
        assert_int_equal(em_session_cgroup_sweep(b, &err), 0);
        assert_false(dir_of(b, dead, 0, false));
        assert_true(dir_of(a, dead, 0, false));
        assert_true(dir_of(a, dead, 1, false));
        assert_int_equal(em_session_cgroup_sweep(a, &err), 0);
        assert_false(dir_of(a, dead, 0, false));
        assert_false(dir_of(a, dead, 1, false));
        assert_true(dir_of(a, live, 0, false));
        assert_true(em_path_exists(odd)); /* no owner's tag: nobody's to sweep */
        em_session_cgroup_free(a);
        em_session_cgroup_free(b);
        assert_int_equal(em_rm_rf(fs, NULL), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_path_of),
            cmocka_unit_test(test_v1_session),
            cmocka_unit_test(test_v2_session),
            cmocka_unit_test(test_sweep),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
