#include "container/idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fts.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/overlay.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

static int write_map(pid_t pid, const char *which, const struct em_idrange *ids, em_error_t *err)
{
        char path[64], map[64];

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
        int len = snprintf(map, sizeof(map), "0 %u %u\n", ids->base, ids->size);
        cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, map, (size_t)len) != len)
                return em_error_set(err, errno, "writing %s", path);
        return 0;
}

/* Runs in the forked child: only async-signal-safe calls. */
static void userns_child(int ready_w, int done_r)
{
        char c;

        if (unshare(CLONE_NEWUSER) < 0)
                _exit(1);
        if (write(ready_w, "u", 1) != 1)
                _exit(2);
        /* Stay until the parent has opened our namespace (EOF on done_r). */
        while (read(done_r, &c, 1) < 0 && errno == EINTR)
                ;
        _exit(0);
}

static int open_child_ns(pid_t pid, int ready_r, const struct em_idrange *ids, int *fd,
                         em_error_t *err)
{
        char c, path[64];

        if (read(ready_r, &c, 1) != 1)
                return em_error_set(err, 0, "the process creating a user namespace failed");
        if (write_map(pid, "uid_map", ids, err) < 0 || write_map(pid, "gid_map", ids, err) < 0)
                return -1;
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return em_error_set(err, errno, "opening %s", path);
        return 0;
}

int em_userns_open(const struct em_idrange *ids, int *fd, em_error_t *err)
{
        int ready[2], done[2];
        int status;

        if (pipe2(ready, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "pipe");
        if (pipe2(done, O_CLOEXEC) < 0) {
                close(ready[0]);
                close(ready[1]);
                return em_error_set(err, errno, "pipe");
        }
        pid_t pid = fork();
        if (pid == 0) {
                close(ready[0]);
                close(done[1]);
                userns_child(ready[1], done[0]);
        }
        close(ready[1]);
        close(done[0]);
        int rc =
            pid < 0 ? em_error_set(err, errno, "fork") : open_child_ns(pid, ready[0], ids, fd, err);
        close(ready[0]);
        close(done[1]); /* lets the child exit */
        while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return rc < 0 ? em_error_wrap(err, "creating a user namespace for ids %u+%u", ids->base,
                                      ids->size)
                      : 0;
}

int em_idmap_mount(const char *src, const char *dst, int userns_fd, em_error_t *err)
{
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
        cleanup_close int tree =
            (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

        if (tree < 0)
                return em_error_set(err, errno, "cloning the mount of %s", src);
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                return em_error_set(err, errno, "idmapping %s (kernel >= 5.12 required)", src);
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return em_error_set(err, errno, "mounting %s at %s", src, dst);
        return 0;
}

/* Undoes the staging mounts and directories; errors only warn (the overlay
 * holds its own clones, so a leftover costs a mount entry, not safety). */
static void unstage(const char *stage_dir, size_t n)
{
        char path[4096];

        for (size_t i = 0; i < n; i++) {
                snprintf(path, sizeof(path), "%s/%zu", stage_dir, i);
                if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL &&
                    errno != ENOENT)
                        em_log_warn("detaching %s: %s", path, strerror(errno));
                rmdir(path);
        }
        rmdir(stage_dir);
}

static int stage_layers(char *const *lower, size_t n, const char *stage_dir, int userns_fd,
                        char **staged, em_error_t *err)
{
        for (size_t i = 0; i < n; i++) {
                if (asprintf(&staged[i], "%s/%zu", stage_dir, i) < 0) {
                        staged[i] = NULL;
                        return em_error_set(err, ENOMEM, "staging layers");
                }
                if (em_mkdir_p(staged[i], 0700, err) < 0 ||
                    em_idmap_mount(lower[i], staged[i], userns_fd, err) < 0)
                        return -1;
        }
        return 0;
}

int em_idmap_overlay(char *const *lower, size_t n_lower, const char *upper, const char *work,
                     const char *target, const char *stage_dir, const struct em_idrange *ids,
                     em_error_t *err)
{
        cleanup_close int userns = -1;
        cleanup_strv char **staged = calloc(n_lower + 1, sizeof(char *));

        if (staged == NULL)
                return em_error_set(err, ENOMEM, "staging layers");
        unstage(stage_dir, n_lower); /* an earlier attempt's leftovers */
        if (em_userns_open(ids, &userns, err) < 0)
                return -1;
        int rc = stage_layers(lower, n_lower, stage_dir, userns, staged, err);
        if (rc == 0)
                rc = em_overlay_mount(staged, n_lower, upper, work, target, err);
        unstage(stage_dir, n_lower);
        return rc;
}

static bool in_range(uint32_t id, const struct em_idrange *r)
{
        return id >= r->base && (uint64_t)id < (uint64_t)r->base + r->size;
}

static uint32_t shift_id(uint32_t id, const struct em_idrange *from, const struct em_idrange *to)
{
        if (!in_range(id, from) || id - from->base >= to->size)
                return id;
        return to->base + (id - from->base);
}

static int shift_one(const FTSENT *e, const struct em_idrange *from, const struct em_idrange *to,
                     em_error_t *err)
{
        const struct stat *st = e->fts_statp;
        uid_t uid = shift_id(st->st_uid, from, to);
        gid_t gid = shift_id(st->st_gid, from, to);

        if (uid == st->st_uid && gid == st->st_gid)
                return 0;
        if (lchown(e->fts_accpath, uid, gid) < 0)
                return em_error_set(err, errno, "re-owning %s", e->fts_path);
        /* chown clears set-user/group-ID bits: put them back. */
        if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) &&
            chmod(e->fts_accpath, st->st_mode & 07777) < 0)
                return em_error_set(err, errno, "restoring the mode of %s", e->fts_path);
        return 0;
}

int em_idmap_shift_tree(const char *dir, const struct em_idrange *from, const struct em_idrange *to,
                        em_error_t *err)
{
        char *const roots[] = {(char *)dir, NULL};
        FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, NULL);
        FTSENT *e;
        int rc = 0;

        if (fts == NULL)
                return em_error_set(err, errno, "walking %s", dir);
        while (rc == 0 && (e = fts_read(fts)) != NULL) {
                if (e->fts_info == FTS_DP)
                        continue;
                if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR || e->fts_info == FTS_NS)
                        rc = em_error_set(err, e->fts_errno, "walking %s", e->fts_path);
                else
                        rc = shift_one(e, from, to, err);
        }
        fts_close(fts);
        if (rc < 0)
                return em_error_wrap(err, "moving %s from ids %u+%u to %u+%u", dir, from->base,
                                     from->size, to->base, to->size);
        return 0;
}

static int grant_one(int fd, const char *what, gid_t gid, mode_t add, em_error_t *err)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return em_error_set(err, errno, "stat %s", what);
        if (st.st_gid != gid && fchown(fd, (uid_t)-1, gid) < 0)
                return em_error_set(err, errno, "chgrp %s", what);
        if ((st.st_mode & add) != add && fchmod(fd, (st.st_mode & 07777) | add) < 0)
                return em_error_set(err, errno, "chmod %s", what);
        return 0;
}

int em_idmap_grant_dir(const char *dir, gid_t gid, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;

        if (d == NULL)
                return em_error_set(err, errno, "opening %s", dir);
        if (grant_one(dirfd(d), dir, gid, S_IRGRP | S_IXGRP, err) < 0)
                return -1;
        while ((de = readdir(d)) != NULL) {
                if (de->d_type != DT_REG)
                        continue;
                cleanup_close int fd =
                    openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return em_error_set(err, errno, "opening %s/%s", dir, de->d_name);
                if (grant_one(fd, de->d_name, gid, S_IRGRP, err) < 0)
                        return -1;
        }
        return 0;
}
