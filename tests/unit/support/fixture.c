#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/lazy_fit.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

char *em_test_tmpdir(const char *tag)
{
        char *dir = NULL;

        assert_true(asprintf(&dir, "/tmp/em-test-%s.XXXXXX", tag) > 0);
        assert_non_null(mkdtemp(dir));
        return dir;
}

void em_test_put(const char *dir, const char *rel, const char *text)
{
        cleanup_free char *path = em_path_join(dir, rel);
        em_error_t err = NULL;

        assert_non_null(path);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        assert_int_equal(em_mkdir_p(path, 0755, &err), 0);
        *slash = '/';
        assert_int_equal(em_write_file_atomic(path, text, strlen(text), 0644, &err), 0);
}

void em_test_cgroup_procs(const char *fs, const char *cgroup, const pid_t *pids, size_t n)
{
        char text[1024] = "", rel[256];

        for (size_t i = 0; i < n; i++)
                snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d\n", (int)pids[i]);
        snprintf(rel, sizeof(rel), "freezer%s/cgroup.procs", cgroup);
        em_test_put(fs, rel, text);
}

const char *em_test_get(const char *dir, const char *rel)
{
        static char buf[4096];
        cleanup_free char *path = em_path_join(dir, rel);
        cleanup_fclose FILE *f = fopen(path, "re");

        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        return buf;
}

char *em_test_copy_dir(const char *from, const char *tag)
{
        char *to = em_test_tmpdir(tag);
        cleanup_dir DIR *d = opendir(from);
        struct dirent *de;
        em_error_t err = NULL;

        assert_non_null(d);
        while ((de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.')
                        continue;
                cleanup_free char *src = em_path_join(from, de->d_name);
                cleanup_free char *dst = em_path_join(to, de->d_name);
                cleanup_free char *data = NULL;
                size_t len = 0;
                assert_int_equal(em_read_file(src, 1 << 20, &data, &len, &err), 0);
                assert_int_equal(em_write_file_atomic(dst, data, len, 0644, &err), 0);
        }
        return to;
}

void em_test_rm(char *dir)
{
        em_error_t err = NULL;

        em_rm_rf(dir, &err);
        em_error_free(&err);
        free(dir);
}

/* The reservation's length, or 0 where no bound applies. */
static uint64_t reservation_len(void)
{
        cleanup_free char *mi = NULL, *oc = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_read_file("/proc/meminfo", 1 << 16, &mi, NULL, &err), 0);
        assert_int_equal(em_read_file("/proc/sys/vm/overcommit_memory", 64, &oc, NULL, &err), 0);
        if (atoi(oc) == 1)
                return 0;
        uint64_t len = em_lazy_alloc_limit(mi, atoi(oc)) / 16 * 4096 / 4 * 5;
        return len > (64ULL << 40) ? 0 : len;
}

pid_t em_test_reserving_child(void)
{
        uint64_t len = reservation_len();
        int p[2];
        char c;

        if (len == 0)
                return 0;
        assert_int_equal(pipe(p), 0);
        fflush(NULL); /* the child's exit must not write this one's buffers */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no child */
                void *m =
                    mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
                if (m == MAP_FAILED || write(p[1], "r", 1) != 1)
                        _exit(1);
                pause();
                _exit(0);
        }
        close(p[1]);
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

pid_t em_test_exec_child(char *const argv[])
{
        int p[2];
        char c;
        ssize_t n;

        /* The write end closes at the exec (O_CLOEXEC): EOF says it
         * happened, a byte that it failed. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                execvp(argv[0], argv);
                if (write(p[1], "x", 1) < 0)
                        _exit(126);
                _exit(127);
        }
        close(p[1]);
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
                ;
        close(p[0]);
        assert_int_equal(n, 0);
        return pid;
}

void em_test_reap(pid_t pid)
{
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}
