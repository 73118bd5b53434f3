#include "checkpoint/kdat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/subprocess.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* One `criu check` fills the cache; it takes about 0.2 s here. */
#define FILL_TIMEOUT_MS 30000

static bool is_tmpfs(const char *dir)
{
        struct statfs st;

        return statfs(dir, &st) == 0 && st.f_type == TMPFS_MAGIC;
}

static int paths(const struct em_kdat_paths *kp, char *link, char *target, em_error_t *err)
{
        if (snprintf(link, PATH_MAX, "%s/%s", kp->run_dir, EM_KDAT_NAME) >= PATH_MAX ||
            snprintf(target, PATH_MAX, "%s/%s", kp->cache_dir, EM_KDAT_NAME) >= PATH_MAX)
                return em_error_set(err, ENAMETOOLONG, "CRIU cache path");
        return 0;
}

bool em_kdat_is_warm(const struct em_kdat_paths *kp)
{
        char link[PATH_MAX], target[PATH_MAX], got[PATH_MAX];
        struct stat st;
        em_error_t e = NULL;

        if (paths(kp, link, target, &e) < 0) {
                em_error_free(&e);
                return false;
        }
        if (is_tmpfs(kp->run_dir))
                return stat(link, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
        ssize_t n = readlink(link, got, sizeof(got) - 1);
        if (n < 0)
                return false;
        got[n] = '\0';
        return strcmp(got, target) == 0 && is_tmpfs(kp->cache_dir) && lstat(target, &st) == 0 &&
               S_ISREG(st.st_mode) && st.st_size > 0;
}

int em_kdat_link(const struct em_kdat_paths *kp, em_error_t *err)
{
        char link[PATH_MAX], target[PATH_MAX], tmp[PATH_MAX + 16];

        if (paths(kp, link, target, err) < 0)
                return -1;
        snprintf(tmp, sizeof(tmp), "%s.edgemig", link);
        unlink(tmp);
        if (symlink(target, tmp) < 0)
                return em_error_set(err, errno, "creating %s", tmp);
        if (rename(tmp, link) < 0) {
                int e = errno;
                unlink(tmp);
                return em_error_set(err, e, "installing %s", link);
        }
        return 0;
}

/* The cache directory as a tmpfs of its own (private to root), so that
 * the cache goes with a reboot, as CRIU wants. */
static int cache_tmpfs(const char *dir, em_error_t *err)
{
        if (em_mkdir_p(dir, 0700, err) < 0)
                return -1;
        if (is_tmpfs(dir))
                return 0;
        if (mount("edgemig-criu", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0700,size=1m") < 0)
                return em_error_set(err, errno, "mounting a tmpfs on %s", dir);
        return 0;
}

/* In the child: a private mount namespace with the cache tmpfs on the run
 * directory, where CRIU saves its cache; then `criu check`. Only
 * async-signal-safe calls after fork. */
static void fill_child(const struct em_kdat_paths *kp)
{
        int null = open("/dev/null", O_RDWR);

        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
                _exit(126);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount(kp->cache_dir, kp->run_dir, NULL, MS_BIND, NULL) < 0)
                _exit(125);
        execlp(kp->criu, kp->criu, "check", (char *)NULL);
        _exit(127);
}

static int fill(const struct em_kdat_paths *kp, em_error_t *err)
{
        char link[PATH_MAX], target[PATH_MAX];
        struct stat st;
        int code = 0;

        if (paths(kp, link, target, err) < 0)
                return -1;
        pid_t pid = fork();
        if (pid < 0)
                return em_error_set(err, errno, "fork");
        if (pid == 0)
                fill_child(kp);
        /* criu check's verdict on optional features does not matter here,
         * only whether it saved its cache. */
        if (em_proc_wait(pid, FILL_TIMEOUT_MS, &code, err) < 0)
                return em_error_wrap(err, "running %s check", kp->criu);
        if (stat(target, &st) < 0 || st.st_size == 0)
                return em_error_set(err, ENOENT,
                                    "%s check (exit status %d) wrote no kernel-feature cache "
                                    "into %s; run it by hand to see why",
                                    kp->criu, code, kp->cache_dir);
        return 0;
}

/* Fills even when a cache file is there: a link gone while its file
 * stayed is CRIU's verdict that the file is stale (another CRIU build
 * unlinks what it cannot read), and `criu check` replaces a stale cache
 * with a fresh one, or keeps a good one. */
static int warm_locked(const struct em_kdat_paths *kp, em_error_t *err)
{
        char link[PATH_MAX], target[PATH_MAX], tmp[PATH_MAX + 8];

        if (em_kdat_is_warm(kp))
                return 0;
        if (paths(kp, link, target, err) < 0 || cache_tmpfs(kp->cache_dir, err) < 0)
                return -1;
        /* CRIU saves through criu.kdat.tmp (O_EXCL): a crashed save's would
         * stop every later one. */
        snprintf(tmp, sizeof(tmp), "%s.tmp", target);
        unlink(tmp);
        if (fill(kp, err) < 0)
                return -1;
        if (em_kdat_link(kp, err) < 0)
                return -1;
        em_log_info("CRIU's kernel-feature cache is %s (a tmpfs), linked from %s", target, link);
        return 0;
}

int em_kdat_warm_at(const struct em_kdat_paths *kp, em_error_t *err)
{
        char lock[PATH_MAX];

        if (em_kdat_is_warm(kp))
                return 0;
        /* CRIU fills its own cache on the first run where /run is a tmpfs. */
        if (is_tmpfs(kp->run_dir))
                return 0;
        if (snprintf(lock, sizeof(lock), "%s.lock", kp->cache_dir) >= (int)sizeof(lock))
                return em_error_set(err, ENAMETOOLONG, "CRIU cache lock");
        cleanup_free char *parent = strdup(kp->cache_dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        if (slash == NULL)
                return em_error_set(err, EINVAL, "CRIU cache directory %s", kp->cache_dir);
        *slash = '\0';
        if (*parent && em_mkdir_p(parent, 0755, err) < 0)
                return -1;
        cleanup_close int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return em_error_set(err, errno, "opening %s", lock);
        if (flock(fd, LOCK_EX) < 0)
                return em_error_set(err, errno, "locking %s", lock);
        if (warm_locked(kp, err) < 0)
                return em_error_wrap(err, "warming CRIU's kernel-feature cache");
        return 0;
}

int em_kdat_warm(const struct em_config *cfg, em_error_t *err)
{
        const struct em_kdat_paths kp = {EM_KDAT_RUN_DIR, EM_KDAT_CACHE_DIR, cfg->criu};

        return em_kdat_warm_at(&kp, err);
}

void em_kdat_warm_quiet(const struct em_config *cfg)
{
        em_error_t e = NULL;

        if (em_kdat_warm(cfg, &e) < 0)
                em_log_warn("%s (CRIU probes the kernel on every run instead)", em_error_msg(e));
        em_error_free(&e);
}
