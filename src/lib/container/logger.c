/* The log forwarder: container stdio must be a pipe (CRIU cannot dump an fd
 * on a host file, and runc re-attaches pipes on restore), so a detached,
 * double-forked process reads the pipe and appends to the log file. It exits
 * at EOF, i.e. when every holder of the write end — the container's
 * processes — is gone; after a restore, a new forwarder is started on the
 * new pipe that runc hands to the restored process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/container.h"
#include "util/cleanup.h"
#include "util/clock.h"

/* Runs in the grandchild: only async-signal-safe calls. */
static void forward(int in, int out)
{
        char buf[65536];

        for (;;) {
                ssize_t n = read(in, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        _exit(0);
                for (ssize_t off = 0; off < n;) {
                        ssize_t w = write(out, buf + off, (size_t)(n - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                break; /* disk full: drop, keep draining */
                        off += w;
                }
        }
}

static void logger_child(int rd, int logfd)
{
        setsid();
        if (fork() != 0)
                _exit(0);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull < 0 || dup2(rd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(devnull, 2) < 0)
                _exit(1);
        syscall(SYS_close_range, 3, ~0U, 0);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        prctl(PR_SET_NAME, "edgemig-logger", 0, 0, 0);
        forward(0, 1);
}

int em_logger_start(const char *log_path, int *write_fd, em_error_t *err)
{
        cleanup_close int logfd = -1, rd = -1, wr = -1;
        int p[2], status;

        logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (logfd < 0)
                return em_error_set(err, errno, "opening log %s", log_path);
        /* Held by the forwarder's copy of this description until it exits,
         * after its last write: em_logger_wait_drained waits for that. */
        if (flock(logfd, LOCK_SH) < 0)
                return em_error_set(err, errno, "locking log %s", log_path);
        if (pipe2(p, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "creating the log pipe");
        rd = p[0];
        wr = p[1];
        pid_t pid = fork();
        if (pid < 0)
                return em_error_set(err, errno, "starting the log forwarder");
        if (pid == 0) {
                close(wr);
                logger_child(rd, logfd);
                _exit(1);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return em_error_set(err, 0, "the log forwarder failed to start");
        *write_fd = steal_fd(&wr);
        return 0;
}

int em_logger_give(int write_fd, const char *dir, em_error_t *err)
{
        struct stat st;

        if (stat(dir, &st) < 0)
                return em_error_set(err, errno, "stat %s", dir);
        if (st.st_gid == 0)
                return 0;
        if (fchown(write_fd, (uid_t)st.st_gid, st.st_gid) < 0)
                return em_error_set(err, errno, "giving the log pipe to the container's root");
        return 0;
}

bool em_logger_wait_drained(const char *log_path, int timeout_ms)
{
        cleanup_close int fd = open(log_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        int64_t end = em_mono_ms() + timeout_ms;

        if (fd < 0)
                return true; /* no log, nothing to drain */
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return false;
                if (em_mono_ms() >= end)
                        return false;
                usleep(1000);
        }
        return true;
}
