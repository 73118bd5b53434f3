#include "container/overlay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/log.h"

/* The kernel copies at most one page of mount options. */
#define OPTS_MAX 4095

static bool path_ok(const char *p)
{
        /* ',' and ':' separate overlay options and lower dirs. */
        return p[0] == '/' && strpbrk(p, ",:") == NULL;
}

static int build_opts(char *const *lower, size_t n, const char *upper, const char *work, char **out,
                      em_error_t *err)
{
        size_t len = 64 + strlen(upper) + strlen(work);

        for (size_t i = 0; i < n; i++) {
                if (!path_ok(lower[i]))
                        return em_error_set(err, EINVAL, "unusable layer path %s", lower[i]);
                len += strlen(lower[i]) + 1;
        }
        if (!path_ok(upper) || !path_ok(work))
                return em_error_set(err, EINVAL, "unusable upper/work path %s", upper);
        if (len > OPTS_MAX)
                return em_error_set(err, E2BIG,
                                    "%zu layers give overlay options of %zu bytes "
                                    "(the kernel takes %d)",
                                    n, len, OPTS_MAX);
        cleanup_free char *s = malloc(len);
        if (s == NULL)
                return em_error_set(err, ENOMEM, "building overlay options");
        char *p = s + sprintf(s, "lowerdir=");
        for (size_t i = n; i-- > 0;)
                p += sprintf(p, "%s%s", lower[i], i ? ":" : "");
        sprintf(p, ",upperdir=%s,workdir=%s", upper, work);
        *out = steal_pointer(&s);
        return 0;
}

int em_overlay_mount(char *const *lower, size_t n_lower, const char *upper, const char *work,
                     const char *target, em_error_t *err)
{
        cleanup_free char *opts = NULL;

        if (n_lower == 0)
                return em_error_set(err, EINVAL, "an overlay needs at least one layer");
        if (build_opts(lower, n_lower, upper, work, &opts, err) < 0)
                return -1;
        /* No device node or setuid bit from an image or a peer's writable
         * layer takes effect (the container's /dev is its own tmpfs). */
        if (mount("overlay", target, "overlay", MS_NODEV | MS_NOSUID, opts) < 0)
                return em_error_set(err, errno, "mounting overlay at %s", target);
        return 0;
}

bool em_is_mountpoint(const char *path)
{
        struct stat a, b;
        char parent[4096];

        if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
                return false;
        if (stat(path, &a) < 0 || stat(parent, &b) < 0)
                return false;
        return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

int em_overlay_umount(const char *target, em_error_t *err)
{
        if (umount2(target, UMOUNT_NOFOLLOW) == 0)
                return 0;
        if (errno == EINVAL || errno == ENOENT)
                return 0; /* not a mount point (any more) */
        if (errno == EBUSY) {
                em_log_warn("%s is busy, detaching it lazily", target);
                if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
                        return 0;
        }
        return em_error_set(err, errno, "unmounting %s", target);
}
