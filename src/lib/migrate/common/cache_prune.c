#include "migrate/common/cache_prune.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#define NAMES_LOCK ".names.lock"
#define ASIDE      ".expired-"
/* How long a sweep waits for the sessions reserving names (each holds
 * the lock for one mkdir) before it leaves this hour's sweep. */
#define SWEEP_LOCK_MS 2000

/* <root>/pagecache/.names.lock, how (LOCK_SH or LOCK_EX) within
 * timeout_ms (< 0: as long as it takes); EBUSY when it timed out. */
static int names_lock(const char *root, int how, int timeout_ms, int *fd, em_error_t *err)
{
        cleanup_free char *top = em_path_join(root, "pagecache");
        cleanup_free char *path = top ? em_path_join(top, NAMES_LOCK) : NULL;
        cleanup_close int lfd = -1;
        int64_t deadline = em_mono_ms() + timeout_ms;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "page cache lock");
        if (em_mkdir_p(top, 0700, err) < 0)
                return -1;
        if ((lfd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
                return em_error_set(err, errno, "opening %s", path);
        while (flock(lfd, how | (timeout_ms >= 0 ? LOCK_NB : 0)) < 0) {
                int e = errno;
                if (e != EWOULDBLOCK && e != EINTR)
                        return em_error_set(err, e, "locking %s", path);
                if (e == EWOULDBLOCK && em_mono_ms() >= deadline)
                        return em_error_set(err, EBUSY, "%s stays locked", path);
                if (e == EWOULDBLOCK)
                        poll(NULL, 0, 20);
        }
        *fd = steal_fd(&lfd);
        return 0;
}

int em_pagecache_names_lock(const char *root, int *fd, em_error_t *err)
{
        return names_lock(root, LOCK_SH, -1, fd, err);
}

struct sweep {
        const char *root, *top;
        int64_t max_age_s;
        time_t now;
        size_t n;    /* caches moved aside */
        char *aside; /* <top>/.expired-XXXXXX, made for the first */
};

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

/* Whether containers/<name> exists: a container here, or a session that
 * reserved the name and may be using its caches. */
static bool name_held(const struct sweep *s, const char *name)
{
        cleanup_free char *path = NULL;
        struct stat st;

        if (asprintf(&path, "%s/containers/%s", s->root, name) < 0)
                return true; /* kept until the next sweep */
        return lstat(path, &st) == 0 || errno != ENOENT;
}

/* One old cache out of every session's reach: renamed into the aside
 * directory, removed once the lock is released. */
static int move_aside(struct sweep *s, const char *path, em_error_t *err)
{
        cleanup_free char *to = NULL;

        if (s->aside == NULL) {
                cleanup_free char *tmpl = NULL;
                if (asprintf(&tmpl, "%s/" ASIDE "XXXXXX", s->top) < 0)
                        return em_error_set(err, ENOMEM, "page caches");
                if (mkdtemp(tmpl) == NULL)
                        return em_error_set(err, errno, "creating %s", tmpl);
                s->aside = steal_pointer(&tmpl);
        }
        if (asprintf(&to, "%s/%zu", s->aside, s->n) < 0)
                return em_error_set(err, ENOMEM, "page caches");
        if (rename(path, to) < 0)
                return em_error_set(err, errno, "moving %s aside", path);
        s->n++;
        return 0;
}

/* The peers' caches of one container's directory. */
static int prune_container(struct sweep *s, const char *name, em_error_t *err)
{
        cleanup_free char *dir = em_path_join(s->top, name);
        cleanup_dir DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *e;

        if (dir == NULL)
                return em_error_set(err, ENOMEM, "page caches");
        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", dir);
        if (name_held(s, name))
                return 0;
        while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' || e->d_type != DT_DIR)
                        continue;
                cleanup_close int pfd =
                    openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (pfd < 0 || (int64_t)(s->now - last_used(pfd)) <= s->max_age_s)
                        continue;
                cleanup_free char *path = em_path_join(dir, e->d_name);
                cleanup_error em_error_t e2 = NULL;
                if (path == NULL || move_aside(s, path, &e2) < 0)
                        em_log_warn("expiring page cache %s: %s", path ? path : dir,
                                    e2 ? em_error_msg(e2) : "out of memory");
        }
        rmdir(dir); /* only if no peer's cache is left */
        return 0;
}

/* Removes the aside directories: this sweep's, and one a sweep that died
 * left (no session reaches them). */
static void remove_aside(const char *top)
{
        cleanup_dir DIR *d = opendir(top);
        struct dirent *e;

        while (d != NULL && (e = readdir(d)) != NULL) {
                if (strncmp(e->d_name, ASIDE, strlen(ASIDE)) != 0)
                        continue;
                cleanup_free char *path = em_path_join(top, e->d_name);
                cleanup_error em_error_t err = NULL;
                if (path != NULL && em_rm_rf(path, &err) < 0)
                        em_log_warn("expiring page caches: %s", em_error_msg(err));
        }
}

static int sweep_caches(struct sweep *s, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(s->top);
        struct dirent *e;

        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", s->top);
        while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.' || e->d_type != DT_DIR)
                        continue;
                if (prune_container(s, e->d_name, err) < 0)
                        return -1;
        }
        return 0;
}

int em_pagecache_prune(const char *root, int64_t max_age_s, time_t now, size_t *pruned,
                       em_error_t *err)
{
        cleanup_free char *top = em_path_join(root, "pagecache");
        struct sweep s = {.root = root, .top = top, .max_age_s = max_age_s, .now = now};
        cleanup_close int lock = -1;
        int rc;

        if (pruned != NULL)
                *pruned = 0;
        if (top == NULL)
                return em_error_set(err, ENOMEM, "page caches");
        if (!em_path_exists(top))
                return 0;
        remove_aside(top);
        if (names_lock(root, LOCK_EX, SWEEP_LOCK_MS, &lock, err) < 0) {
                if (em_error_status(*err) != EBUSY)
                        return -1;
                em_log_info("page caches not expired this time: %s", em_error_msg(*err));
                em_error_free(err);
                return 0;
        }
        rc = sweep_caches(&s, err);
        em_cleanup_closep(&lock); /* released before the slow removal */
        remove_aside(top);
        free(s.aside);
        if (pruned != NULL)
                *pruned = s.n;
        return rc;
}
