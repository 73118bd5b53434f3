/* The host probes behind `edgemig check`. Each one really exercises the
 * mechanism (mounts an overlay, unshares, dumps and restores a process, arms
 * a debug register, …) instead of trusting config files, and everything that
 * can block runs in a child with a timeout. Probes that fork run their
 * children only briefly and reap them before returning. */
#include "checkpoint/features_probes.h"
#include "checkpoint/kdat.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/subprocess.h"

#define CHILD_TIMEOUT_MS 5000
#define VERSION_TIMEOUT  10000
#define CRIU_TIMEOUT     30000
#define SETUP_HINT       "run scripts/setup"

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
        char *s = NULL;
        va_list ap;

        va_start(ap, f);
        if (vasprintf(&s, f, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

/* ---- helpers: run a function in a child, run a command ---- */

typedef int (*child_fn)(void *arg, char *msg, size_t len);

/* Forks, runs fn in the child (its message travels back through a pipe) and
 * reaps it within timeout_ms. Returns fn's result, or -1 with msg set. The
 * child only makes system calls on memory prepared by the parent. */
static int run_in_child(child_fn fn, void *arg, char *msg, size_t len)
{
        cleanup_close int rd = -1, wr = -1;
        cleanup_pid pid_t pid = 0;
        int p[2], code = -1;
        em_error_t e = NULL;

        msg[0] = '\0';
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
                snprintf(msg, len, "pipe: %s", strerror(errno));
                return -1;
        }
        rd = p[0], wr = p[1];
        pid = fork();
        if (pid < 0) {
                snprintf(msg, len, "fork: %s", strerror(errno));
                return -1;
        }
        if (pid == 0) {
                char buf[512] = "";
                int rc = fn(arg, buf, sizeof(buf));
                (void)!write(wr, buf, strlen(buf));
                _exit(rc == 0 ? 0 : 1);
        }
        em_cleanup_closep(&wr);
        if (em_proc_wait(steal_pid(&pid), CHILD_TIMEOUT_MS, &code, &e) < 0) {
                snprintf(msg, len, "%s", em_error_msg(e));
                em_error_free(&e);
                return -1;
        }
        ssize_t n = read(rd, msg, len - 1);
        msg[n > 0 ? n : 0] = '\0';
        if (code != 0 && msg[0] == '\0')
                snprintf(msg, len, "probe child exited with status %d", code);
        return code == 0 ? 0 : -1;
}

static int run_cmd(const char *const *argv, const char *netns, int timeout_ms,
                   struct em_proc_result *res, em_error_t *err)
{
        struct em_proc_spec spec;

        em_proc_spec_init(&spec, argv);
        spec.netns = netns;
        spec.timeout_ms = timeout_ms;
        spec.log_tail_lines = 5;
        return em_proc_run(&spec, res, err);
}

static void set_owned(struct em_feature *out, enum em_feature_status st, const char *value,
                      char *detail, const char *hint)
{
        em_feature_set(out, st, value, detail, hint);
        free(detail);
}

/* ---- kernel, overlayfs, namespaces, cgroups ---- */

void em_probe_kernel(struct em_probe_ctx *ctx, struct em_feature *out)
{
        struct utsname u;

        if (uname(&u) < 0) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, strerror(errno), "uname failed");
                return;
        }
        bool ok = em_version_cmp(u.release, EM_KERNEL_MIN_VERSION) >= 0;
        em_feature_set(out, ok ? EM_FEATURE_OK : EM_FEATURE_MISSING, u.release, u.version,
                       ok ? NULL : "Linux >= " EM_KERNEL_MIN_VERSION " is required");
}

struct ovl_paths {
        char merged[4096], opts[16384], upper_new[4096], upper_gone[4096];
        char merged_new[4096], merged_gone[4096];
};

/* Child: private mount namespace, so a crash can never leave a mount behind. */
static int ovl_child(void *arg, char *msg, size_t len)
{
        struct ovl_paths *p = arg;
        struct stat st;

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return snprintf(msg, len, "private mount namespace: %s", strerror(errno)), -1;
        if (mount("overlay", p->merged, "overlay", 0, p->opts) < 0)
                return snprintf(msg, len, "mount -t overlay: %s", strerror(errno)), -1;
        int fd = open(p->merged_new, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, "x", 1) != 1)
                return snprintf(msg, len, "writing through overlay: %s", strerror(errno)), -1;
        close(fd);
        if (unlink(p->merged_gone) < 0)
                return snprintf(msg, len, "deleting a lower file: %s", strerror(errno)), -1;
        if (stat(p->upper_new, &st) < 0)
                return snprintf(msg, len, "new file did not reach the upper dir"), -1;
        if (lstat(p->upper_gone, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != 0)
                return snprintf(msg, len, "no 0/0 whiteout in the upper dir"), -1;
        if (umount2(p->merged, 0) < 0)
                return snprintf(msg, len, "umount: %s", strerror(errno)), -1;
        return 0;
}

static int ovl_prepare(const char *base, struct ovl_paths *p)
{
        static const char *const dirs[] = {"lower", "upper", "work", "merged"};
        char path[4096];
        em_error_t e = NULL;

        for (size_t i = 0; i < 4; i++) {
                snprintf(path, sizeof(path), "%s/%s", base, dirs[i]);
                if (em_mkdir_p(path, 0755, &e) < 0) {
                        em_error_free(&e);
                        return -1;
                }
        }
        snprintf(path, sizeof(path), "%s/lower/gone", base);
        if (em_write_file_atomic(path, "x", 1, 0644, &e) < 0) {
                em_error_free(&e);
                return -1;
        }
        snprintf(p->merged, sizeof(p->merged), "%s/merged", base);
        snprintf(p->opts, sizeof(p->opts), "lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work",
                 base, base, base);
        snprintf(p->upper_new, sizeof(p->upper_new), "%s/upper/new", base);
        snprintf(p->upper_gone, sizeof(p->upper_gone), "%s/upper/gone", base);
        snprintf(p->merged_new, sizeof(p->merged_new), "%s/merged/new", base);
        snprintf(p->merged_gone, sizeof(p->merged_gone), "%s/merged/gone", base);
        return 0;
}

void em_probe_overlayfs(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *base = em_path_join(ctx->tmpdir, "ovl");
        cleanup_free struct ovl_paths *p = calloc(1, sizeof(*p));
        char msg[512];

        if (base == NULL || p == NULL || ovl_prepare(base, p) < 0) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, "cannot prepare test dirs",
                               "check that the state root is writable");
                return;
        }
        if (run_in_child(ovl_child, p, msg, sizeof(msg)) < 0) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, msg,
                               "container roots are overlay mounts: load the overlay module "
                               "(modprobe overlay) and keep the state root on ext4/xfs/tmpfs");
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, "mount+whiteout", NULL, NULL);
}

static int unshare_child(void *arg, char *msg, size_t len)
{
        int flag = *(int *)arg;

        if (unshare(flag) < 0)
                return snprintf(msg, len, "unshare: %s", strerror(errno)), -1;
        if (flag == CLONE_NEWPID) {
                /* The first child in a new pid namespace must be its pid 1. */
                pid_t c = fork();
                if (c == 0)
                        _exit(getpid() == 1 ? 0 : 1);
                int st = 0;
                if (c < 0 || waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return snprintf(msg, len, "no pid 1 in the new pid namespace"), -1;
        }
        return 0;
}

static const struct {
        const char *name;
        int flag;
} ns_kinds[] = {{"net", CLONE_NEWNET}, {"mnt", CLONE_NEWNS},  {"pid", CLONE_NEWPID},
                {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"user", CLONE_NEWUSER}};

static bool ns_works(int flag, char *msg, size_t len)
{
        return run_in_child(unshare_child, &flag, msg, len) == 0;
}

void em_probe_namespaces(struct em_probe_ctx *ctx, struct em_feature *out)
{
        char ok[64] = "", bad[128] = "", msg[512], detail[1024] = "";

        for (size_t i = 0; i < 5; i++) { /* user is its own probe */
                bool w = ns_works(ns_kinds[i].flag, msg, sizeof(msg));
                char *dst = w ? ok : bad;
                size_t cap = w ? sizeof(ok) : sizeof(bad);
                snprintf(dst + strlen(dst), cap - strlen(dst), "%s%s", *dst ? " " : "",
                         ns_kinds[i].name);
                if (!w)
                        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                                 "%s: %s; ", ns_kinds[i].name, msg);
        }
        if (bad[0] != '\0') {
                em_feature_set(out, EM_FEATURE_MISSING, bad, detail,
                               "runc needs net, mnt, pid, ipc and uts namespaces: run as root on a "
                               "kernel with CONFIG_NAMESPACES");
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, ok, NULL, NULL);
}

void em_probe_userns(struct em_probe_ctx *ctx, struct em_feature *out)
{
        char msg[512];

        if (!ns_works(CLONE_NEWUSER, msg, sizeof(msg))) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, msg,
                               "rootless containers impossible; edgemig runs containers as root");
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, "user", NULL, NULL);
}

static bool is_fs(const char *path, long magic)
{
        struct statfs s;
        return statfs(path, &s) == 0 && (long)s.f_type == magic;
}

void em_probe_cgroup(struct em_probe_ctx *ctx, struct em_feature *out)
{
        const char *version;
        bool freezer;

        if (is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC)) {
                version = "v2";
                freezer = true; /* cgroup.freeze, Linux >= 5.2 */
        } else if (is_fs("/sys/fs/cgroup", TMPFS_MAGIC)) {
                version = is_fs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC) ? "v1-hybrid" : "v1";
                freezer = is_fs("/sys/fs/cgroup/freezer", CGROUP_SUPER_MAGIC);
        } else {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, "/sys/fs/cgroup is not mounted",
                               "mount cgroups; runc needs them");
                return;
        }
        em_feature_set(out, freezer ? EM_FEATURE_OK : EM_FEATURE_MISSING, version,
                       freezer ? "freezer: yes" : "freezer: no",
                       freezer ? NULL
                               : "runc checkpoint freezes the container through the freezer "
                                 "cgroup: mount the freezer controller");
}

/* ---- runc and CRIU ---- */

static char *tool_version(const char *bin, const char *prefix, char **errmsg)
{
        const char *argv[] = {bin, "--version", NULL};
        cleanup_proc_result struct em_proc_result res = {0};
        em_error_t e = NULL;

        if (run_cmd(argv, NULL, VERSION_TIMEOUT, &res, &e) < 0) {
                *errmsg = strdup(em_error_msg(e));
                em_error_free(&e);
                return NULL;
        }
        char *v = em_version_from_output(res.out, prefix);
        if (v == NULL)
                *errmsg = fmt("cannot parse `%s --version` output", bin);
        return v;
}

void em_probe_runc(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *errmsg = NULL;
        cleanup_free char *v = tool_version(ctx->cfg->runc, "runc version", &errmsg);

        if (v == NULL) {
                set_owned(out, EM_FEATURE_MISSING, NULL, steal_pointer(&errmsg),
                          "install runc (apt-get install runc; " SETUP_HINT
                          " does) or set EDGEMIG_RUNC");
                return;
        }
        bool ok = em_version_cmp(v, "1.0") >= 0;
        em_feature_set(out, ok ? EM_FEATURE_OK : EM_FEATURE_MISSING, v, ctx->cfg->runc,
                       ok ? NULL : "runc >= 1.0 is required");
}

#define CRIU_HINT                                                                                  \
        SETUP_HINT " to install CRIU >= " EM_CRIU_MIN_VERSION                                      \
                   " into /opt/edgemig/criu, or set EDGEMIG_CRIU (older CRIU cannot dump inet "    \
                   "sockets on Linux >= 6.16)"

void em_probe_criu(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *errmsg = NULL;
        cleanup_free char *v = tool_version(ctx->cfg->criu, "Version:", &errmsg);

        if (v == NULL) {
                set_owned(out, EM_FEATURE_MISSING, NULL, steal_pointer(&errmsg), CRIU_HINT);
                return;
        }
        ctx->criu_ok = em_version_cmp(v, EM_CRIU_MIN_VERSION) >= 0;
        em_feature_set(out, ctx->criu_ok ? EM_FEATURE_OK : EM_FEATURE_MISSING, v, ctx->cfg->criu,
                       ctx->criu_ok ? NULL : CRIU_HINT);
        if (ctx->criu_ok)
                ctx->criu_version = steal_pointer(&v);
}

/* `criu check [--feature NAME]`: 0 when supported; *why gets the output tail. */
static bool criu_check(struct em_probe_ctx *ctx, const char *feature, char **why)
{
        const char *argv[] = {ctx->cfg->criu, "check", feature ? "--feature" : NULL, feature, NULL};
        cleanup_proc_result struct em_proc_result res = {0};
        em_error_t e = NULL;

        if (run_cmd(argv, NULL, CRIU_TIMEOUT, &res, &e) < 0) {
                if (why)
                        *why = strdup(em_error_msg(e));
                em_error_free(&e);
                return false;
        }
        return true;
}

void em_probe_criu_check(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *why = NULL;

        if (!ctx->criu_ok) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, "no usable CRIU", CRIU_HINT);
                return;
        }
        if (!criu_check(ctx, NULL, &why)) {
                set_owned(out, EM_FEATURE_MISSING, NULL, steal_pointer(&why),
                          "CRIU reports missing kernel features; see detail");
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, "looks good", NULL, NULL);
}

/* CRIU keeps its kernel-feature cache (/run/criu.kdat) only on a tmpfs;
 * elsewhere every dump and every restore probes the kernel again, inside
 * the downtime. */
void em_probe_criu_kdat_cache(struct em_probe_ctx *ctx, struct em_feature *out)
{
        struct statfs st;

        (void)ctx;
        if (statfs("/run", &st) < 0) {
                cleanup_free char *d = fmt("statfs /run: %s", strerror(errno));
                em_feature_set(out, EM_FEATURE_WARN, NULL, d,
                               "CRIU keeps its kernel-feature cache in /run, which must be a "
                               "tmpfs");
                return;
        }
        bool ok = st.f_type == TMPFS_MAGIC;
        const struct em_kdat_paths kp = {EM_KDAT_RUN_DIR, EM_KDAT_CACHE_DIR, ctx->cfg->criu};
        if (!ok && em_kdat_is_warm(&kp)) {
                em_feature_set(out, EM_FEATURE_OK, "edgemig's tmpfs", EM_KDAT_CACHE_DIR, NULL);
                return;
        }
        em_feature_set(out, ok ? EM_FEATURE_OK : EM_FEATURE_WARN, ok ? "tmpfs" : "not tmpfs",
                       "/run",
                       ok ? NULL
                          : "CRIU keeps its kernel-feature cache (/run/criu.kdat) only on a "
                            "tmpfs, and edgemig's own (" EM_KDAT_CACHE_DIR ") is not filled "
                            "yet: the first checkpoint or restore fills it (about 0.2 s); "
                            "until then every CRIU run probes the kernel again");
}

void em_probe_tcp_half_closed(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *why = NULL;

        if (!ctx->criu_ok || !criu_check(ctx, "tcp_half_closed", &why)) {
                set_owned(out, EM_FEATURE_MISSING, NULL,
                          ctx->criu_ok ? steal_pointer(&why) : strdup("no usable CRIU"),
                          "half-closed TCP connections cannot be checkpointed");
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, "criu check", NULL, NULL);
}

/* ---- a real CRIU dump and restore ---- */

/* The test process is a fork of this one: the restored copy keeps the same
 * address space, so the parent can read the counter through /proc/PID/mem and
 * see that the restored process is this program and still runs. */
static volatile uint64_t dr_counter;

__attribute__((noreturn)) static void dr_child(void)
{
        struct timespec t = {0, 10 * 1000 * 1000};
        int fd = open("/dev/null", O_RDWR);

        /* CRIU needs stdio that is not a host file or a tty, and its own session. */
        setsid();
        if (fd >= 0) {
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(fd, 2);
        }
        syscall(SYS_close_range, 3, ~0U, 0);
        for (;;) {
                dr_counter++;
                nanosleep(&t, NULL);
        }
}

static int read_counter(pid_t pid, uint64_t *v)
{
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        return pread(fd, v, sizeof(*v), (off_t)(uintptr_t)&dr_counter) == sizeof(*v) ? 0 : -1;
}

/* Waits until the counter of pid exceeds `above`, up to 2 s. */
static int counter_advances(pid_t pid, uint64_t above, uint64_t *now)
{
        struct timespec t = {0, 5 * 1000 * 1000};

        for (int i = 0; i < 400; i++) {
                if (read_counter(pid, now) < 0)
                        return -1;
                if (*now > above)
                        return 0;
                nanosleep(&t, NULL);
        }
        return -1;
}

static bool same_exe(pid_t pid)
{
        char path[64];
        struct stat a, b;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
        return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
}

static int criu_run(struct em_probe_ctx *ctx, const char *dir, const char *const *args,
                    const char *log, em_error_t *err)
{
        const char *argv[16] = {ctx->cfg->criu};
        cleanup_free char *log_path = em_path_join(dir, log);
        struct em_proc_spec spec;
        size_t n = 1;

        for (; args[n - 1] && n < 15; n++)
                argv[n] = args[n - 1];
        argv[n] = NULL;
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = CRIU_TIMEOUT;
        spec.log_path = log_path;
        spec.log_tail_lines = 12;
        return em_proc_run(&spec, NULL, err);
}

static int dr_dump(struct em_probe_ctx *ctx, const char *dir, pid_t *child, pid_t *dumped,
                   uint64_t *c0, em_error_t *err)
{
        char pidstr[16];

        *child = fork();
        if (*child < 0)
                return em_error_set(err, errno, "fork");
        if (*child == 0)
                dr_child();
        *dumped = *child;
        if (counter_advances(*child, 0, c0) < 0)
                return em_error_set(err, 0, "test process %d did not start", (int)*child);
        snprintf(pidstr, sizeof(pidstr), "%d", (int)*child);
        const char *args[] = {"dump", "-t", pidstr, "-D", dir, "-o", "dump.log", "-v4", NULL};
        if (criu_run(ctx, dir, args, "dump.log", err) < 0)
                return em_error_wrap(err, "criu dump");
        /* CRIU killed it; reap it so its pid is free for the restore. */
        em_cleanup_pidp(child);
        return 0;
}

static int dr_restore(struct em_probe_ctx *ctx, const char *dir, pid_t *restored, em_error_t *err)
{
        cleanup_free char *pidfile = em_path_join(dir, "restore.pid");
        cleanup_free char *buf = NULL;
        int old = 0;

        /* Adopt the restored process when `criu restore -d` exits, to reap it. */
        prctl(PR_GET_CHILD_SUBREAPER, &old);
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        const char *args[] = {"restore",     "-d",  "-D",        dir,     "-o",
                              "restore.log", "-v4", "--pidfile", pidfile, NULL};
        int rc = criu_run(ctx, dir, args, "restore.log", err);
        prctl(PR_SET_CHILD_SUBREAPER, old);
        if (rc < 0)
                return em_error_wrap(err, "criu restore");
        if (em_read_file(pidfile, 64, &buf, NULL, err) < 0)
                return em_error_wrap(err, "criu restore");
        *restored = (pid_t)atoi(buf);
        return *restored > 0 ? 0 : em_error_set(err, 0, "criu restore: bad pid file");
}

static int dump_restore(struct em_probe_ctx *ctx, char **value, em_error_t *err)
{
        cleanup_free char *dir = em_path_join(ctx->tmpdir, "criu");
        cleanup_pid pid_t child = 0, restored = 0;
        pid_t orig = 0;
        uint64_t c0 = 0, c1 = 0;

        if (dir == NULL || em_mkdir_p(dir, 0700, err) < 0)
                return -1;
        if (dr_dump(ctx, dir, &child, &orig, &c0, err) < 0)
                return -1;

        if (dr_restore(ctx, dir, &restored, err) < 0)
                return -1;
        if (restored != orig)
                return em_error_set(err, 0, "restored as pid %d, dumped as %d", (int)restored,
                                    (int)orig);
        if (!same_exe(restored))
                return em_error_set(err, 0, "restored pid %d runs another program", (int)restored);
        if (counter_advances(restored, c0, &c1) < 0)
                return em_error_set(err, 0, "restored pid %d does not run (counter stuck at %llu)",
                                    (int)restored, (unsigned long long)c0);
        *value = fmt("pid %d restored as %d, running", (int)orig, (int)restored);
        return 0;
}

void em_probe_dump_restore(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *value = NULL;
        em_error_t e = NULL;

        if (!ctx->criu_ok) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, "no usable CRIU", CRIU_HINT);
                return;
        }
        if (dump_restore(ctx, &value, &e) < 0) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, em_error_msg(e),
                               "CRIU cannot checkpoint/restore a plain process here; see the "
                               "log tail in detail");
                em_error_free(&e);
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, "ok", value, NULL);
}

/* ---- hardware breakpoints under ptrace ---- */

#if defined(__x86_64__)
__attribute__((noinline)) static void hwbp_target(void)
{
        __asm__ volatile("" ::: "memory");
}

/* Returns 1 if the breakpoint trapped, 0 if the child ran past it. */
static int hwbp_fires(char *msg, size_t len)
{
        cleanup_pid pid_t pid = fork();
        int st = 0;

        if (pid < 0)
                return snprintf(msg, len, "fork: %s", strerror(errno)), -1;
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
                        _exit(2);
                raise(SIGSTOP);
                hwbp_target();
                _exit(0);
        }
        if (waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st))
                return snprintf(msg, len, "child did not stop for ptrace"), -1;
        size_t dr = offsetof(struct user, u_debugreg);
        if (ptrace(PTRACE_POKEUSER, pid, (void *)dr, (void *)(uintptr_t)hwbp_target) < 0 ||
            ptrace(PTRACE_POKEUSER, pid, (void *)(dr + 7 * sizeof(long)), (void *)1L) < 0)
                return snprintf(msg, len, "setting DR0/DR7: %s", strerror(errno)), -1;
        if (ptrace(PTRACE_CONT, pid, NULL, NULL) < 0)
                return snprintf(msg, len, "PTRACE_CONT: %s", strerror(errno)), -1;
        for (int i = 0; i < 200; i++) { /* 1 s */
                pid_t r = waitpid(pid, &st, WNOHANG);
                if (r == pid && WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP)
                        return 1;
                if (r == pid && (WIFEXITED(st) || WIFSIGNALED(st))) {
                        pid = 0; /* already reaped */
                        return 0;
                }
                usleep(5000);
        }
        return 0;
}
#endif

void em_probe_hw_breakpoints(struct em_probe_ctx *ctx, struct em_feature *out)
{
#if defined(__x86_64__)
        char msg[256] = "";
        int r = hwbp_fires(msg, sizeof(msg));

        if (r == 1) {
                em_feature_set(out, EM_FEATURE_OK, "fire", NULL, NULL);
                return;
        }
        em_feature_set(out, EM_FEATURE_MISSING, r == 0 ? "do not fire" : NULL,
                       r == 0 ? "DR0 execute breakpoint armed via PTRACE_POKEUSER did not trap"
                              : msg,
                       "do not fire under ptrace here; CRIU " EM_CRIU_MIN_VERSION
                       " detects this itself (older CRIU would need CRIU_FAULT=130)");
#else
        em_feature_set(out, EM_FEATURE_MISSING, NULL, "only probed on x86_64",
                       "CRIU >= " EM_CRIU_MIN_VERSION " detects this itself");
#endif
}

/* ---- memory tracking: soft-dirty, userfaultfd ---- */

#define PM_SOFT_DIRTY (1ULL << 55)

/* Clears soft-dirty bits, dirties one page and reads its pagemap entry. */
static int soft_dirty_kernel(char *msg, size_t len)
{
        long pg = sysconf(_SC_PAGESIZE);
        volatile char *page =
            mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t ent = 0;
        int ret = -1;

        if (page == MAP_FAILED)
                return snprintf(msg, len, "mmap: %s", strerror(errno)), -1;
        page[0] = 1;
        int cfd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
        int pfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (cfd < 0 || pfd < 0 || write(cfd, "4", 1) != 1) {
                snprintf(msg, len, "clear_refs: %s", strerror(errno));
        } else {
                page[0] = 2;
                off_t off = (off_t)((uintptr_t)page / (uintptr_t)pg) * 8;
                if (pread(pfd, &ent, sizeof(ent), off) != sizeof(ent))
                        snprintf(msg, len, "pagemap: %s", strerror(errno));
                else
                        ret = (ent & PM_SOFT_DIRTY) ? 1 : 0;
        }
        if (cfd >= 0)
                close(cfd);
        if (pfd >= 0)
                close(pfd);
        munmap((void *)page, (size_t)pg);
        return ret;
}

void em_probe_soft_dirty(struct em_probe_ctx *ctx, struct em_feature *out)
{
        char msg[256] = "";
        int k = soft_dirty_kernel(msg, sizeof(msg));
        bool c = ctx->criu_ok && criu_check(ctx, "mem_dirty_track", NULL);
        cleanup_free char *detail =
            fmt("pagemap bit 55 after clear_refs+write: %s; criu check mem_dirty_track: %s",
                k == 1   ? "set"
                : k == 0 ? "not set"
                         : msg,
                c ? "ok" : "fails");

        em_feature_set(out, k == 1 ? EM_FEATURE_OK : EM_FEATURE_MISSING, k == 1 ? "yes" : "no",
                       detail,
                       k == 1 ? NULL
                              : "CRIU pre-dump impossible; edgemig uses its own page-content "
                                "delta instead");
}

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static bool uffd_api_ok(int fd)
{
        struct uffdio_api api = {.api = UFFD_API, .features = 0};
        return fd >= 0 && ioctl(fd, UFFDIO_API, &api) == 0;
}

/* Which way of getting a userfaultfd works, or NULL. */
static const char *uffd_source(char *msg, size_t len)
{
        int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        bool ok = uffd_api_ok(fd);
        snprintf(msg, len, "userfaultfd(2): %s", ok ? "ok" : strerror(errno));
        if (fd >= 0)
                close(fd);
        if (ok)
                return "syscall";
        cleanup_close int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        fd = dev >= 0 ? ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK) : -1;
        ok = uffd_api_ok(fd);
        if (fd >= 0)
                close(fd);
        return ok ? "/dev/userfaultfd" : NULL;
}

void em_probe_userfaultfd(struct em_probe_ctx *ctx, struct em_feature *out)
{
        char msg[256];
        const char *src = uffd_source(msg, sizeof(msg));
        bool noncoop = ctx->criu_ok && criu_check(ctx, "uffd-noncoop", NULL);
        cleanup_free char *detail =
            fmt("%s; criu check uffd-noncoop: %s", msg, noncoop ? "ok" : "fails");

        if (src == NULL || !noncoop) {
                em_feature_set(out, EM_FEATURE_MISSING, src, detail,
                               "lazy pages (post-copy) impossible; edgemig uses pre-copy only");
                return;
        }
        em_feature_set(out, EM_FEATURE_OK, src, detail, NULL);
}

void em_probe_pipe_max_size(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *buf = NULL;
        em_error_t e = NULL;

        if (em_read_file("/proc/sys/fs/pipe-max-size", 64, &buf, NULL, &e) < 0) {
                em_feature_set(out, EM_FEATURE_MISSING, NULL, em_error_msg(e), NULL);
                em_error_free(&e);
                return;
        }
        buf[strcspn(buf, "\n")] = '\0';
        bool ok = strtoull(buf, NULL, 10) >= EM_LAZY_PIPE_SIZE;
        em_feature_set(out, ok ? EM_FEATURE_OK : EM_FEATURE_WARN, buf, "fs.pipe-max-size",
                       ok ? NULL
                          : "lazy pages need it raised: sysctl -w fs.pipe-max-size=4194304 "
                            "(CRIU's page server asks for a 3.35 MB pipe, which fails without "
                            "CAP_SYS_RESOURCE)");
}

/* CRIU dumps the connection-tracking table of the container's network
 * namespace in every dump, with the tasks frozen; the kernel answers that
 * by walking its one hash for all namespaces, bucket by bucket: about
 * 20 ms for 262,144 buckets here (what a 24 GiB host gets by default),
 * 0.5 ms for 16,384 (docs/evaluation.md, "Where the downtime goes"). */
bool em_conntrack_hash_large(unsigned long buckets)
{
        return buckets > EM_CONNTRACK_HASH_WARN;
}

void em_probe_conntrack_hash(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_free char *buf = NULL;
        em_error_t e = NULL;

        (void)ctx;
        if (em_read_file(EM_CONNTRACK_HASHSIZE, 64, &buf, NULL, &e) < 0) {
                /* No conntrack module: nothing to walk. */
                em_feature_set(out, EM_FEATURE_OK, "not loaded", EM_CONNTRACK_HASHSIZE, NULL);
                em_error_free(&e);
                return;
        }
        buf[strcspn(buf, "\n")] = '\0';
        bool large = em_conntrack_hash_large(strtoul(buf, NULL, 10));
        em_feature_set(out, large ? EM_FEATURE_WARN : EM_FEATURE_OK, buf, EM_CONNTRACK_HASHSIZE,
                       large ? "every CRIU dump walks the whole connection-tracking hash with "
                               "the container frozen (about 20 ms at 262144 buckets); on a "
                               "host that tracks few connections, echo 16384 > "
                               "/sys/module/nf_conntrack/parameters/hashsize (and options "
                               "nf_conntrack hashsize=16384 in /etc/modprobe.d) shortens the "
                               "downtime"
                             : NULL);
}

/* ---- network: TCP repair, tbf ---- */

void em_probe_tcp_repair(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_close int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int on = 1, off = 0;

        if (s < 0 || setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) < 0) {
                cleanup_free char *d = fmt("setsockopt(TCP_REPAIR): %s", strerror(errno));
                em_feature_set(out, EM_FEATURE_MISSING, NULL, d,
                               "TCP connections cannot survive a migration "
                               "(--tcp-established needs TCP_REPAIR and CAP_NET_ADMIN)");
                return;
        }
        (void)setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
        em_feature_set(out, EM_FEATURE_OK, "TCP_REPAIR", NULL, NULL);
}

/* A child that sits in a fresh network namespace until killed. */
static int netns_holder(pid_t *pid, em_error_t *err)
{
        int p[2];
        char c = 0;

        if (pipe2(p, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "pipe");
        *pid = fork();
        if (*pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
                (void)!write(p[1], &c, 1);
                for (;;)
                        pause();
        }
        close(p[1]);
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        bool ready = *pid > 0 && poll(&pf, 1, CHILD_TIMEOUT_MS) == 1 && read(p[0], &c, 1) == 1;
        close(p[0]);
        if (*pid < 0)
                return em_error_set(err, errno, "fork");
        return ready && c == 'y' ? 0 : em_error_set(err, 0, "cannot create a network namespace");
}

static int tbf_in_netns(const char *ns, em_error_t *err)
{
        static const char *const cmds[][16] = {
            {"ip", "link", "add", "emchk0", "type", "veth", "peer", "name", "emchk1", NULL},
            {"ip", "link", "set", "emchk0", "up", NULL},
            {"tc", "qdisc", "add", "dev", "emchk0", "root", "tbf", "rate", "10mbit", "burst",
             "32kbit", "latency", "50ms", NULL},
        };
        cleanup_proc_result struct em_proc_result res = {0};

        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                if (run_cmd(cmds[i], ns, VERSION_TIMEOUT, NULL, err) < 0)
                        return -1;
        }
        const char *show[] = {"tc", "qdisc", "show", "dev", "emchk0", NULL};
        if (run_cmd(show, ns, VERSION_TIMEOUT, &res, err) < 0)
                return -1;
        if (strstr(res.out, "tbf") == NULL)
                return em_error_set(err, 0, "tbf qdisc not listed: %s", res.out);
        const char *del[] = {"tc", "qdisc", "del", "dev", "emchk0", "root", NULL};
        return run_cmd(del, ns, VERSION_TIMEOUT, NULL, err);
}

void em_probe_tc_tbf(struct em_probe_ctx *ctx, struct em_feature *out)
{
        cleanup_pid pid_t holder = 0;
        char ns[64];
        em_error_t e = NULL;

        if (netns_holder(&holder, &e) == 0) {
                snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)holder);
                if (tbf_in_netns(ns, &e) == 0) {
                        em_feature_set(out, EM_FEATURE_OK, "tbf", "veth in a throwaway netns",
                                       NULL);
                        return;
                }
        }
        em_feature_set(out, EM_FEATURE_MISSING, NULL, em_error_msg(e),
                       "link shaping for tests and benchmarks impossible: install iproute2 and "
                       "enable sch_tbf and veth");
        em_error_free(&e);
}
