#include "container/cpu_throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

#define CGROUP_FS         "/sys/fs/cgroup"
#define DEFAULT_PERIOD_US 100000L
#define MIN_QUOTA_US      1000L /* the kernel's floor for a quota */

static int read_text(const char *path, char *buf, size_t len, em_error_t *err)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", path);
        n = read(fd, buf, len - 1);
        if (n < 0)
                return em_error_set(err, errno, "reading %s", path);
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

static int write_text(const char *path, const char *value, em_error_t *err)
{
        cleanup_close int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", path);
        if (write(fd, value, strlen(value)) < 0)
                return em_error_set(err, errno, "writing %s to %s", value, path);
        return 0;
}

/* Reads the period and the cgroup's own quota (-1: none). */
static int read_limit(struct em_cpu_throttle *t, const char *fs, const char *cgroup,
                      em_error_t *err)
{
        char path[4200], buf[64];
        char quota[32] = "";

        if (read_text(t->quota_path, t->saved, sizeof(t->saved), err) < 0)
                return -1;
        if (t->v2) {
                if (sscanf(t->saved, "%31s %ld", quota, &t->period_us) != 2)
                        return em_error_set(err, EINVAL, "unexpected %s: %s", t->quota_path,
                                            t->saved);
                t->saved_quota_us = strcmp(quota, "max") == 0 ? -1 : strtol(quota, NULL, 10);
                return 0;
        }
        snprintf(path, sizeof(path), "%s/cpu%s/cpu.cfs_period_us", fs, cgroup);
        if (read_text(path, buf, sizeof(buf), err) < 0)
                return -1;
        t->period_us = strtol(buf, NULL, 10);
        t->saved_quota_us = strtol(t->saved, NULL, 10);
        return 0;
}

static int locate(struct em_cpu_throttle *t, const char *fs, const char *cgroup, em_error_t *err)
{
        char probe[4096];
        int n;

        snprintf(probe, sizeof(probe), "%s/cpu", fs);
        t->v2 = access(probe, F_OK) != 0;
        if (t->v2)
                n = snprintf(t->quota_path, sizeof(t->quota_path), "%s%s/cpu.max", fs, cgroup);
        else
                n = snprintf(t->quota_path, sizeof(t->quota_path), "%s/cpu%s/cpu.cfs_quota_us", fs,
                             cgroup);
        if (n < 0 || (size_t)n >= sizeof(t->quota_path))
                return em_error_set(err, ENAMETOOLONG, "cgroup path %s", cgroup);
        if (read_limit(t, fs, cgroup, err) < 0)
                return -1;
        if (t->period_us <= 0)
                t->period_us = DEFAULT_PERIOD_US;
        t->active = true;
        return 0;
}

int em_cpu_throttle_set(struct em_cpu_throttle *t, const char *fs, const char *cgroup, int pct,
                        em_error_t *err)
{
        char value[64];
        long quota;

        if (pct < 1 || pct > 100)
                return em_error_set(err, EINVAL, "CPU cap %d %% is not within 1 to 100", pct);
        if (!t->active && locate(t, fs ? fs : CGROUP_FS, cgroup, err) < 0)
                return em_error_wrap(err, "throttling the CPU of %s", cgroup);
        quota = t->period_us * pct / 100;
        if (quota < MIN_QUOTA_US)
                quota = MIN_QUOTA_US;
        if (t->saved_quota_us > 0 && quota > t->saved_quota_us)
                quota = t->saved_quota_us;
        if (t->v2)
                snprintf(value, sizeof(value), "%ld %ld", quota, t->period_us);
        else
                snprintf(value, sizeof(value), "%ld", quota);
        if (write_text(t->quota_path, value, err) < 0)
                return em_error_wrap(err, "throttling the CPU of %s", cgroup);
        t->pct = pct;
        return 0;
}

int em_cpu_throttle_lift(struct em_cpu_throttle *t, em_error_t *err)
{
        em_error_t e = NULL;

        if (!t->active)
                return 0;
        if (write_text(t->quota_path, t->saved, &e) < 0 && em_error_status(e) != ENOENT) {
                em_error_move(err, &e);
                return em_error_wrap(err, "lifting the CPU throttle");
        }
        em_error_free(&e);
        t->active = false;
        t->pct = 0;
        return 0;
}
