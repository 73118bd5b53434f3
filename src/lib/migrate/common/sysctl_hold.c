#include "migrate/common/sysctl_hold.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/proc.h"

static long read_long(const char *path)
{
        cleanup_fclose FILE *f = fopen(path, "re");
        long v = -1;

        if (f == NULL || fscanf(f, "%ld", &v) != 1)
                return -1;
        return v;
}

static int write_long(const char *path, long v)
{
        cleanup_fclose FILE *f = fopen(path, "we");

        if (f == NULL || fprintf(f, "%ld\n", v) < 0)
                return -1;
        return fflush(f) == 0 ? 0 : -1;
}

/* The state file holds the original value and the pids of the processes
 * that need the raised one; dead pids (a crashed migration) are pruned,
 * zombies among them, so the value always goes back once no live user
 * remains. *listed counts the pids the file named, dead ones included:
 * while it is not 0 the recorded original is the one to go back to,
 * since the sysctl itself still holds the raised value a crashed user
 * left. */
static size_t read_users(int fd, long *orig, size_t *listed, pid_t *users, size_t max)
{
        char buf[4096] = {0};
        char *p = buf, *end;
        size_t n = 0;

        *orig = -1;
        *listed = 0;
        if (read(fd, buf, sizeof(buf) - 1) <= 0)
                return 0;
        *orig = strtol(p, &end, 10);
        for (p = end; n < max; p = end) {
                long v = strtol(p, &end, 10);
                if (end == p)
                        break;
                (*listed)++;
                if (v > 0 && v <= INT_MAX && em_proc_runs((pid_t)v))
                        users[n++] = (pid_t)v;
        }
        return n;
}

/* Where the state file lives, made if missing. */
static int state_dir(const char *state, em_error_t *err)
{
        cleanup_free char *dir = strdup(state);
        char *slash = dir ? strrchr(dir, '/') : NULL;

        if (dir == NULL)
                return em_error_set(err, ENOMEM, "%s", state);
        if (slash == NULL || slash == dir)
                return 0;
        *slash = '\0';
        return em_mkdir_p(dir, 0755, err);
}

static int adjust(const struct em_held_sysctl *h, bool add, em_error_t *err)
{
        cleanup_close int fd = -1;
        pid_t users[256];
        size_t n, k = 0, listed;
        long orig;
        char buf[4096];
        int len;

        if (state_dir(h->state, err) < 0)
                return -1;
        fd = open(h->state, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || flock(fd, LOCK_EX) < 0)
                return em_error_set(err, errno, "locking %s", h->state);
        n = read_users(fd, &orig, &listed, users, 255);
        if (listed == 0 || orig < 0)
                orig = read_long(h->path);
        for (size_t i = 0; i < n; i++) {
                if (users[i] != getpid())
                        users[k++] = users[i];
        }
        if (add)
                users[k++] = getpid();
        if (k > 0 && orig < h->want && write_long(h->path, h->want) < 0)
                return em_error_set(err, errno, "raising %s to %ld", h->what, h->want);
        if (k == 0 && orig >= 0 && orig < h->want)
                write_long(h->path, orig);
        len = snprintf(buf, sizeof(buf), "%ld", orig);
        for (size_t i = 0; i < k; i++)
                len += snprintf(buf + len, sizeof(buf) - (size_t)len, " %d", (int)users[i]);
        len += snprintf(buf + len, sizeof(buf) - (size_t)len, "\n");
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) < 0)
                return em_error_set(err, errno, "writing %s", h->state);
        return 0;
}

int em_sysctl_hold(const struct em_held_sysctl *h, em_error_t *err)
{
        return adjust(h, true, err);
}

void em_sysctl_release(const struct em_held_sysctl *h)
{
        em_error_t e = NULL;

        if (adjust(h, false, &e) < 0)
                em_log_warn("restoring %s: %s", h->what, em_error_msg(e));
        em_error_free(&e);
}
