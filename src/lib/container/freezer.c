#include "container/freezer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#define CGROUP_FS "/sys/fs/cgroup"

/* Where to write the state and where to read it back. */
struct freezer {
        char control[4096]; /* freezer.state (v1) or cgroup.freeze (v2) */
        char status[4096];  /* freezer.state (v1) or cgroup.events (v2) */
        bool v2;
};

static int locate(const char *fs, const char *cgroup, struct freezer *f, em_error_t *err)
{
        char probe[4096];
        int n;

        fs = fs ? fs : CGROUP_FS;
        snprintf(probe, sizeof(probe), "%s/freezer", fs);
        f->v2 = access(probe, F_OK) != 0;
        if (f->v2) {
                n = snprintf(f->control, sizeof(f->control), "%s%s/cgroup.freeze", fs, cgroup);
                snprintf(f->status, sizeof(f->status), "%s%s/cgroup.events", fs, cgroup);
        } else {
                n = snprintf(f->control, sizeof(f->control), "%s/freezer%s/freezer.state", fs,
                             cgroup);
                snprintf(f->status, sizeof(f->status), "%s", f->control);
        }
        if (n < 0 || (size_t)n >= sizeof(f->control))
                return em_error_set(err, ENAMETOOLONG, "cgroup path %s", cgroup);
        return 0;
}

static int write_state(const char *path, const char *value, em_error_t *err)
{
        cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", path);
        if (write(fd, value, strlen(value)) < 0)
                return em_error_set(err, errno, "writing %s to %s", value, path);
        return 0;
}

/* 1 when every task is frozen, 0 while freezing, -1 on error. */
static int is_frozen(const struct freezer *f, em_error_t *err)
{
        char buf[512];
        cleanup_close int fd = open(f->status, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", f->status);
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return em_error_set(err, errno, "reading %s", f->status);
        buf[n] = '\0';
        if (f->v2)
                return strstr(buf, "frozen 1") != NULL;
        return strncmp(buf, "FROZEN", 6) == 0;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {0, ms * 1000000L};
        nanosleep(&ts, NULL);
}

int em_freezer_freeze(const char *fs, const char *cgroup, int timeout_ms, em_error_t *err)
{
        struct freezer f;
        int64_t deadline = em_mono_ms() + timeout_ms;
        const char *frozen;

        if (locate(fs, cgroup, &f, err) < 0)
                return -1;
        frozen = f.v2 ? "1" : "FROZEN";
        for (unsigned i = 0;; i++) {
                /* A v1 freezer can stay FREEZING while tasks fork; writing
                 * FROZEN again picks the new ones up. */
                if (i % 10 == 0 && write_state(f.control, frozen, err) < 0)
                        return em_error_wrap(err, "freezing %s", cgroup);
                int r = is_frozen(&f, err);
                if (r < 0)
                        break;
                if (r == 1)
                        return 0;
                if (em_mono_ms() >= deadline) {
                        em_error_set(err, ETIMEDOUT, "still not frozen after %d ms", timeout_ms);
                        break;
                }
                sleep_ms(1);
        }
        em_error_t e = NULL;
        if (em_freezer_thaw(fs, cgroup, &e) < 0)
                em_log_error("%s (after a failed freeze)", em_error_msg(e));
        em_error_free(&e);
        return em_error_wrap(err, "freezing %s", cgroup);
}

int em_freezer_thaw(const char *fs, const char *cgroup, em_error_t *err)
{
        struct freezer f;
        em_error_t e = NULL;

        if (locate(fs, cgroup, &f, err) < 0)
                return -1;
        if (write_state(f.control, f.v2 ? "0" : "THAWED", &e) == 0)
                return 0;
        if (em_error_status(e) == ENOENT) {
                em_error_free(&e);
                return 0;
        }
        em_error_move(err, &e);
        return em_error_wrap(err, "thawing %s", cgroup);
}

/* Nested cgroups below a container's are few and shallow; a bound keeps a
 * hostile tree from recursing without end. */
#define PROCS_DEPTH 8

static int procs_of(const char *dir, int depth, pid_t *out, size_t max, size_t *n, em_error_t *err);

static int procs_below(const char *dir, int depth, pid_t *out, size_t max, size_t *n,
                       em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *e;

        if (d == NULL && errno == ENOENT && depth > 0)
                return 0; /* removed since its parent was read */
        if (d == NULL)
                return em_error_set(err, errno, "opening %s", dir);
        while ((e = readdir(d)) != NULL) {
                char sub[4096];
                if (e->d_type != DT_DIR || e->d_name[0] == '.')
                        continue;
                if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub))
                        return em_error_set(err, ENAMETOOLONG, "cgroup %s/%s", dir, e->d_name);
                if (procs_of(sub, depth + 1, out, max, n, err) < 0)
                        return -1;
        }
        return 0;
}

static int procs_of(const char *dir, int depth, pid_t *out, size_t max, size_t *n, em_error_t *err)
{
        char path[4096];
        cleanup_free char *text = NULL;
        char *save = NULL;

        if (depth > PROCS_DEPTH)
                return 0;
        snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
        cleanup_error em_error_t e = NULL;
        if (em_read_file(path, 16u << 20, &text, NULL, &e) < 0) {
                /* A cgroup below the container's that its last process
                 * left and something removed while the walk went on:
                 * nothing in it to list. The container's own is ENOENT. */
                if (em_error_status(e) == ENOENT && depth > 0)
                        return 0;
                em_error_move(err, &e);
                return -1;
        }
        for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
                long pid = strtol(l, NULL, 10);
                if (pid <= 0)
                        continue;
                /* A list cut short would leave processes out of every check
                 * and of pre-copy without a word: the caller grows instead. */
                if (*n >= max)
                        return em_error_set(err, E2BIG, "more than %zu processes", max);
                out[(*n)++] = (pid_t)pid;
        }
        return procs_below(dir, depth, out, max, n, err);
}

int em_freezer_procs(const char *fs, const char *cgroup, pid_t *out, size_t max, size_t *n,
                     em_error_t *err)
{
        struct freezer f;
        char *slash;

        *n = 0;
        if (locate(fs, cgroup, &f, err) < 0)
                return -1;
        /* The cgroup's directory: where its control file is. */
        if ((slash = strrchr(f.control, '/')) != NULL)
                *slash = '\0';
        if (procs_of(f.control, 0, out, max, n, err) < 0)
                return em_error_wrap(err, "listing the processes of cgroup %s", cgroup);
        return 0;
}

/* Twice the room each time the list did not fit: a container's processes
 * are bounded by its pids.max (at most 32768 by policy), the machine's by
 * pid_max; the bound here only stops a runaway. */
#define PROCS_ALL_MAX ((size_t)1 << 22)

int em_freezer_procs_all(const char *fs, const char *cgroup, pid_t **out, size_t *n,
                         em_error_t *err)
{
        size_t max = 1024;

        *out = NULL;
        *n = 0;
        for (;;) {
                cleanup_free pid_t *pids = calloc(max, sizeof(pid_t));
                cleanup_error em_error_t e = NULL;
                if (pids == NULL)
                        return em_error_set(err, ENOMEM, "listing the processes of %s", cgroup);
                if (em_freezer_procs(fs, cgroup, pids, max, n, &e) == 0) {
                        *out = steal_pointer(&pids);
                        return 0;
                }
                if (em_error_status(e) != E2BIG || max >= PROCS_ALL_MAX) {
                        *n = 0;
                        em_error_move(err, &e);
                        return -1;
                }
                max *= 2;
        }
}
