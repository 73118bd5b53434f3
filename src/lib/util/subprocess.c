#include "util/clock.h"
#include "util/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

extern char **environ;

#define OUT_CAP (8u << 20)
#define ERR_CAP (1u << 20)

void em_proc_spec_init(struct em_proc_spec *spec, const char *const *argv)
{
        memset(spec, 0, sizeof(*spec));
        spec->argv = argv;
        spec->stdin_fd = -1;
        spec->stdout_fd = -1;
        spec->stderr_fd = -1;
}

void em_proc_result_free(struct em_proc_result *r)
{
        if (r == NULL)
                return;
        free(r->out);
        free(r->err);
        r->out = r->err = NULL;
}

static bool env_key_overridden(const char *entry, const char *const *env_add)
{
        size_t klen = strcspn(entry, "=");

        for (const char *const *e = env_add; e && *e; e++) {
                if (strncmp(*e, entry, klen) == 0 && (*e)[klen] == '=')
                        return true;
        }
        return false;
}

/* Builds environ minus overridden keys, plus env_add. Pointers are borrowed. */
static char **build_envp(const char *const *env_add)
{
        size_t n = 0, m = 0, i = 0;

        for (char **e = environ; e && *e; e++)
                n++;
        for (const char *const *e = env_add; e && *e; e++)
                m++;
        char **envp = calloc(n + m + 1, sizeof(char *));
        if (envp == NULL)
                return NULL;
        for (char **e = environ; e && *e; e++) {
                if (!env_key_overridden(*e, env_add))
                        envp[i++] = *e;
        }
        for (const char *const *e = env_add; e && *e; e++)
                envp[i++] = (char *)*e;
        return envp;
}

static int open_devnull(int flags)
{
        return open("/dev/null", flags | O_CLOEXEC);
}

/* Runs in the child: never returns. Reports exec failure through errfd. */
static void child_exec(const struct em_proc_spec *spec, char **envp, int in, int out, int errfd_,
                       int report)
{
        int e;

        setpgid(0, 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (spec->netns != NULL) {
                int nfd = open(spec->netns, O_RDONLY | O_CLOEXEC);
                if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
                        goto fail;
        }
        if (spec->cwd != NULL && chdir(spec->cwd) < 0)
                goto fail;
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd_, 2) < 0)
                goto fail;
        syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
        for (const int *k = spec->keep_fds; k && *k >= 0; k++) {
                int fl = fcntl(*k, F_GETFD);
                if (fl >= 0)
                        fcntl(*k, F_SETFD, fl & ~FD_CLOEXEC);
        }
        fcntl(report, F_SETFD, FD_CLOEXEC);
        execvpe(spec->argv[0], (char *const *)spec->argv, envp);
fail:
        e = errno;
        (void)!write(report, &e, sizeof(e));
        _exit(127);
}

struct spawn_io {
        int out_r, err_r; /* capture pipes' read ends, or -1 */
};

static int spawn_child(const struct em_proc_spec *spec, bool capture, pid_t *pid_out,
                       struct spawn_io *io, em_error_t *err)
{
        cleanup_free char **envp = build_envp(spec->env_add);
        cleanup_close int in = -1, out_w = -1, err_w = -1, out_r = -1, err_r = -1;
        cleanup_close int rep_r = -1, rep_w = -1;
        int p[2];

        if (envp == NULL)
                return em_error_set(err, ENOMEM, "running %s", spec->argv[0]);
        in = spec->stdin_fd >= 0 ? dup(spec->stdin_fd) : open_devnull(O_RDONLY);
        if (spec->stdout_fd >= 0)
                out_w = dup(spec->stdout_fd);
        else if (capture && pipe2(p, O_CLOEXEC) == 0)
                out_r = p[0], out_w = p[1];
        else
                out_w = open_devnull(O_WRONLY);
        if (spec->stderr_fd >= 0)
                err_w = dup(spec->stderr_fd);
        else if (capture && pipe2(p, O_CLOEXEC) == 0)
                err_r = p[0], err_w = p[1];
        else
                err_w = open_devnull(O_WRONLY);
        if (in < 0 || out_w < 0 || err_w < 0 || pipe2(p, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "setting up stdio for %s", spec->argv[0]);
        rep_r = p[0], rep_w = p[1];

        pid_t pid = fork();
        if (pid < 0)
                return em_error_set(err, errno, "fork for %s", spec->argv[0]);
        if (pid == 0)
                child_exec(spec, envp, in, out_w, err_w, rep_w);
        em_cleanup_closep(&rep_w);
        int child_errno = 0;
        ssize_t r;
        do
                r = read(rep_r, &child_errno, sizeof(child_errno));
        while (r < 0 && errno == EINTR);
        if (r == (ssize_t)sizeof(child_errno)) {
                em_cleanup_pidp(&pid);
                return em_error_set(err, child_errno, "cannot execute %s", spec->argv[0]);
        }
        *pid_out = pid;
        io->out_r = steal_fd(&out_r);
        io->err_r = steal_fd(&err_r);
        return 0;
}

int em_proc_spawn(const struct em_proc_spec *spec, pid_t *pid, em_error_t *err)
{
        struct spawn_io io;

        return spawn_child(spec, false, pid, &io, err);
}

static int pidfd_open_(pid_t pid)
{
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void kill_group(pid_t pid)
{
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
}

static void decode_status(int status, int *exit_code)
{
        if (WIFEXITED(status))
                *exit_code = WEXITSTATUS(status);
        else
                *exit_code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int reap(pid_t pid, int *exit_code, em_error_t *err)
{
        int status;

        while (waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR)
                        return em_error_set(err, errno, "waitpid %d", (int)pid);
        }
        decode_status(status, exit_code);
        return 0;
}

static int timeout_kill(pid_t pid, int timeout_ms, em_error_t *err)
{
        int code;

        kill_group(pid);
        reap(pid, &code, err);
        return em_error_set(err, ETIMEDOUT, "process %d did not finish within %d ms", (int)pid,
                            timeout_ms);
}

/* Without a pidfd (old kernel, fd limit): WNOHANG polling. Returns 1 once
 * reaped (code set), 0 on timeout, -1 if waitpid fails. */
static int poll_reap(pid_t pid, int timeout_ms, int *code, em_error_t *err)
{
        long long deadline = em_mono_ms() + timeout_ms;
        int status;

        do {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        decode_status(status, code);
                        return 1;
                }
                if (r < 0 && errno != EINTR)
                        return em_error_set(err, errno, "waitpid %d", (int)pid);
                usleep(2000);
        } while (em_mono_ms() < deadline);
        return 0;
}

int em_proc_wait(pid_t pid, int timeout_ms, int *exit_code, em_error_t *err)
{
        cleanup_close int pfd = pidfd_open_(pid);
        int code = 0;

        if (pfd >= 0 && timeout_ms > 0) {
                struct pollfd p = {.fd = pfd, .events = POLLIN};
                long long deadline = em_mono_ms() + timeout_ms;
                int r;
                do
                        r = poll(&p, 1, em_ms_left(deadline));
                while (r < 0 && errno == EINTR);
                if (r == 0)
                        return timeout_kill(pid, timeout_ms, err);
        } else if (timeout_ms > 0) {
                int r = poll_reap(pid, timeout_ms, &code, err);
                if (r <= 0)
                        return r < 0 ? -1 : timeout_kill(pid, timeout_ms, err);
                if (exit_code)
                        *exit_code = code;
                return 0;
        }
        if (reap(pid, &code, err) < 0)
                return -1;
        if (exit_code)
                *exit_code = code;
        return 0;
}

struct capbuf {
        char *data;
        size_t len, cap;
        bool keep_tail; /* keep the last cap bytes rather than the first */
};

static void capbuf_add(struct capbuf *b, const char *src, size_t n)
{
        if (b->data == NULL) {
                b->data = malloc(b->cap + 1);
                if (b->data == NULL)
                        return;
        }
        if (n >= b->cap && b->keep_tail) {
                memcpy(b->data, src + n - b->cap, b->cap);
                b->len = b->cap;
        } else if (b->len + n > b->cap && b->keep_tail) {
                size_t drop = b->len + n - b->cap;
                memmove(b->data, b->data + drop, b->len - drop);
                b->len -= drop;
                memcpy(b->data + b->len, src, n);
                b->len += n;
        } else {
                size_t take = b->len + n > b->cap ? b->cap - b->len : n;
                memcpy(b->data + b->len, src, take);
                b->len += take;
        }
        b->data[b->len] = '\0';
}

static void pump_read(int *fd, struct capbuf *b, char *chunk, size_t len)
{
        ssize_t n = read(*fd, chunk, len);

        if (n > 0)
                capbuf_add(b, chunk, (size_t)n);
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                em_cleanup_closep(fd);
}

/* Reads what is already in the pipes without waiting for writers that
 * outlive the child (a daemonized grandchild keeps them open). */
static void drain_now(int *fds, struct capbuf *bufs, char *chunk, size_t len)
{
        for (int i = 0; i < 2; i++) {
                if (fds[i] < 0)
                        continue;
                int fl = fcntl(fds[i], F_GETFL);
                fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
                while (fds[i] >= 0) {
                        size_t before = bufs[i].len;
                        pump_read(&fds[i], &bufs[i], chunk, len);
                        if (fds[i] >= 0 && bufs[i].len == before && errno == EAGAIN)
                                break;
                }
        }
}

/* Drains the capture pipes until both close, the child exits (pidfd readable),
 * or the deadline passes (returns 1). */
static int pump_output(int *fds, struct capbuf *bufs, int pidfd, long long deadline)
{
        char chunk[16384];

        while (fds[0] >= 0 || fds[1] >= 0) {
                struct pollfd p[3] = {{.fd = fds[0], .events = POLLIN},
                                      {.fd = fds[1], .events = POLLIN},
                                      {.fd = pidfd, .events = POLLIN}};
                int wait = deadline ? (int)(deadline - em_mono_ms()) : -1;
                if (deadline && wait <= 0)
                        return 1;
                int r = poll(p, 3, wait);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r == 0)
                        return 1;
                for (int i = 0; i < 2; i++) {
                        if (fds[i] >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                pump_read(&fds[i], &bufs[i], chunk, sizeof(chunk));
                }
                if (pidfd >= 0 && (p[2].revents & POLLIN)) {
                        drain_now(fds, bufs, chunk, sizeof(chunk));
                        return 0;
                }
        }
        return 0;
}

static char *tail_lines(const char *text, size_t lines)
{
        size_t len = strlen(text);
        while (len > 0 && text[len - 1] == '\n')
                len--;
        size_t start = len, seen = 0;
        while (start > 0) {
                if (text[start - 1] == '\n' && ++seen == lines)
                        break;
                start--;
        }
        return strndup(text + start, len - start);
}

char *em_file_tail(const char *path, size_t lines)
{
        cleanup_free char *buf = NULL;
        em_error_t e = NULL;

        if (path == NULL || em_read_file(path, 64u << 20, &buf, NULL, &e) < 0) {
                em_error_free(&e);
                return NULL;
        }
        return tail_lines(buf, lines);
}

static int report_failure(const struct em_proc_spec *spec, const struct capbuf *errbuf, int code,
                          bool timed_out, em_error_t *err)
{
        size_t lines = spec->log_tail_lines ? spec->log_tail_lines : 20;
        cleanup_free char *etail = errbuf->data ? tail_lines(errbuf->data, lines) : NULL;
        cleanup_free char *ltail = em_file_tail(spec->log_path, lines);
        cleanup_free char *what = NULL;

        if (timed_out) {
                if (asprintf(&what, "timed out after %d ms and was killed", spec->timeout_ms) < 0)
                        what = NULL;
        } else if (asprintf(&what, code > 128 ? "was killed by signal %d" : "exited with status %d",
                            code > 128 ? code - 128 : code) < 0) {
                what = NULL;
        }
        bool has_e = etail && *etail, has_l = ltail && *ltail;
        return em_error_set(err, timed_out ? ETIMEDOUT : 0, "%s %s%s%s%s%s%s%s", spec->argv[0],
                            what ? what : "failed", has_e ? "\n--- stderr ---\n" : "",
                            has_e ? etail : "", has_l ? "\n--- " : "", has_l ? spec->log_path : "",
                            has_l ? " ---\n" : "", has_l ? ltail : "");
}

int em_proc_run(const struct em_proc_spec *spec, struct em_proc_result *result, em_error_t *err)
{
        struct capbuf bufs[2] = {{NULL, 0, OUT_CAP, false}, {NULL, 0, ERR_CAP, true}};
        struct spawn_io io = {-1, -1};
        cleanup_pid pid_t pid = 0;
        int code = 0, rc = 0;
        bool timed_out = false;

        if (spawn_child(spec, true, &pid, &io, err) < 0)
                return -1;
        long long deadline = spec->timeout_ms > 0 ? em_mono_ms() + spec->timeout_ms : 0;
        int fds[2] = {io.out_r, io.err_r};
        cleanup_close int pidfd = pidfd_open_(pid);
        if (pump_output(fds, bufs, pidfd, deadline) == 1) {
                timed_out = true;
                kill_group(pid);
        }
        em_cleanup_closep(&fds[0]);
        em_cleanup_closep(&fds[1]);
        int remaining = deadline ? (int)(deadline - em_mono_ms()) : 0;
        if (!timed_out && deadline && remaining <= 0)
                remaining = 1;
        em_error_t werr = NULL;
        if (em_proc_wait(steal_pid(&pid), timed_out ? 0 : remaining, &code, &werr) < 0) {
                timed_out = timed_out || em_error_status(werr) == ETIMEDOUT;
                em_error_free(&werr);
        }
        if (timed_out || code != 0)
                rc = report_failure(spec, &bufs[1], code, timed_out, err);
        if (result) {
                result->exit_code = code;
                result->timed_out = timed_out;
                result->out = bufs[0].data ? bufs[0].data : strdup("");
                result->err = bufs[1].data ? bufs[1].data : strdup("");
        } else {
                free(bufs[0].data);
                free(bufs[1].data);
        }
        return rc;
}
