#include "migrate/common/cache_prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

/* The newest mtime of dir and its entries (not deeper: a volume copy's
 * files change its directory's entries' times as they arrive). */
static time_t last_used(int dfd)
{
        cleanup_dir DIR *d = fdopendir(dup(dfd));
        struct dirent *e;
        struct stat st;
        time_t t = 0;

        if (fstat(dfd, &st) == 0)
                t = st.st_mtime;
        while (d != NULL && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || e->d_name[1] == '.'))
                        continue;
                if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime > t)
                        t = st.st_mtime;
        }
        return t;
}

/* The peers' caches of one container's directory. */
static int prune_container(const char *dir, int64_t max_age_s, time_t now, size_t *pruned,
                           em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *e;

        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", dir);
        while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' || e->d_type != DT_DIR)
                        continue;
                cleanup_close int pfd =
                    openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (pfd < 0 || (int64_t)(now - last_used(pfd)) <= max_age_s)
                        continue;
                cleanup_free char *path = em_path_join(dir, e->d_name);
                cleanup_error em_error_t e2 = NULL;
                if (path == NULL || em_rm_rf(path, &e2) < 0) {
                        em_log_warn("expiring page cache %s: %s", path ? path : dir,
                                    e2 ? em_error_msg(e2) : "out of memory");
                        continue;
                }
                if (pruned != NULL)
                        (*pruned)++;
        }
        rmdir(dir); /* only if no peer's cache is left */
        return 0;
}

int em_pagecache_prune(const char *root, int64_t max_age_s, time_t now, size_t *pruned,
                       em_error_t *err)
{
        cleanup_free char *top = em_path_join(root, "pagecache");
        cleanup_dir DIR *d = top ? opendir(top) : NULL;
        struct dirent *e;

        if (pruned != NULL)
                *pruned = 0;
        if (top == NULL)
                return em_error_set(err, ENOMEM, "page caches");
        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", top);
        while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' || e->d_type != DT_DIR)
                        continue;
                cleanup_free char *dir = em_path_join(top, e->d_name);
                if (dir == NULL)
                        return em_error_set(err, ENOMEM, "page caches");
                if (prune_container(dir, max_age_s, now, pruned, err) < 0)
                        return -1;
        }
        return 0;
}
