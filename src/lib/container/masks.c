#include "container/masks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#include "container/bundle.h"
#include "container/overlay.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

bool em_masks_ready(const char *dir)
{
        struct statfs st;

        return statfs(dir, &st) == 0 && st.f_type == TMPFS_MAGIC && (st.f_flags & ST_RDONLY);
}

static int mount_mask(const char *dir, em_error_t *err)
{
        struct statfs st;

        /* A writable tmpfs there is someone else's: masking with it would
         * let one container write what another sees. */
        if (statfs(dir, &st) == 0 && st.f_type == TMPFS_MAGIC && em_is_mountpoint(dir))
                return em_error_set(err, EEXIST,
                                    "%s is a writable tmpfs; unmount it (edgemig mounts an empty "
                                    "read-only one there)",
                                    dir);
        /* Read-only from the start: nothing can ever be written into it.
         * Only that flag: CRIU remounts each bind with the dumped mask's
         * flags (ro, relatime), which fails with EPERM where that would
         * drop a flag the bind carries from here (nosuid, nodev, noexec;
         * pointless anyway on an empty file system). */
        if (mount("edgemig-mask", dir, "tmpfs", MS_RDONLY, "mode=0555,size=4k") < 0)
                return em_error_set(err, errno, "mounting a read-only tmpfs on %s", dir);
        return 0;
}

/* Checked and mounted under a lock on dir itself: two bundles written at
 * once (parallel restores after a boot) would otherwise both mount, or one
 * would take the other's fresh mask for someone else's tmpfs. */
static int mount_locked(const char *dir, em_error_t *err)
{
        cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "opening %s", dir);
        if (flock(fd, LOCK_EX) < 0)
                return em_error_set(err, errno, "locking %s", dir);
        return em_masks_ready(dir) ? 0 : mount_mask(dir, err);
}

int em_masks_mount_at(const char *dir, em_error_t *err)
{
        if (em_masks_ready(dir))
                return 0;
        if (em_mkdir_p(dir, 0755, err) < 0)
                return em_error_wrap(err, "the masks' directory");
        return mount_locked(dir, err);
}

bool em_masks_key_of(const char *key, const char *mountpoint)
{
        size_t n = strlen(EM_MASK_KEY_PREFIX);

        return mountpoint[0] == '/' && strncmp(key, EM_MASK_KEY_PREFIX, n) == 0 &&
               strcmp(key + n, mountpoint) == 0;
}

/* runc masks a directory with a tmpfs and a file with a bind of
 * /dev/null, which it names to CRIU itself (its key must stay). /proc
 * and /sys show the container what they show the host here. */
static bool is_dir(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *em_masks_criu_conf(const char *dir)
{
        cleanup_free char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (f == NULL)
                return NULL;
        /* Every key maps to dir: a peer's kernel may have a directory
         * where this one has none. */
        for (const char *const *p = em_bundle_masked_paths(); *p; p++) {
                if (is_dir(*p))
                        fprintf(f, "external mnt[%s]:%s%s\n", *p, EM_MASK_KEY_PREFIX, *p);
                fprintf(f, "external mnt[%s%s]:%s\n", EM_MASK_KEY_PREFIX, *p, dir);
        }
        if (fclose(f) != 0)
                return NULL;
        return steal_pointer(&buf);
}
