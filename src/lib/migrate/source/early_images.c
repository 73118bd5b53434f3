/* Image files sent while the final dump runs (early_images.h). */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate/common/proto.h"
#include "migrate/source/early_images.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/digest.h"
#include "util/fsutil.h"

struct em_early_images {
        int fd; /* inotify */
        char *dir;
};

/* Per-task images (closed when CRIU is done with that task) and the ones
 * it writes early; never pages-*.img (the page delta carries those),
 * nor what CRIU or runc write or rewrite last. */
static const char *const early_globs[] = {
    "core-*.img", "mm-*.img",         "pagemap-*.img", "fdinfo-*.img",          "fs-*.img",
    "ids-*.img",  "tcp-stream-*.img", "seccomp.img",   "tmpfs-dev-*.tar.gz.img"};

bool em_early_image_name(const char *name)
{
        if (name == NULL || strchr(name, '/') != NULL)
                return false;
        for (size_t i = 0; i < sizeof(early_globs) / sizeof(early_globs[0]); i++)
                if (fnmatch(early_globs[i], name, 0) == 0)
                        return true;
        return false;
}

int em_early_images_watch(const char *dir, struct em_early_images **out, em_error_t *err)
{
        struct em_early_images *w = calloc(1, sizeof(*w));

        *out = NULL;
        if (w == NULL || (w->dir = strdup(dir)) == NULL) {
                free(w);
                return em_error_set(err, ENOMEM, "watching %s", dir);
        }
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0 || inotify_add_watch(w->fd, dir, IN_CLOSE_WRITE | IN_ONLYDIR) < 0) {
                int e = errno;
                em_early_images_free(&w);
                return em_error_set(err, e, "watching %s", dir);
        }
        *out = w;
        return 0;
}

void em_early_images_free(struct em_early_images **w)
{
        if (*w == NULL)
                return;
        if ((*w)->fd >= 0)
                close((*w)->fd);
        free((*w)->dir);
        free(*w);
        *w = NULL;
}

struct pump {
        struct em_early_images *w;
        em_conn_t *c;
        int level;
        json_t *digests;
        uint64_t *raw;
        unsigned *files;
};

static int send_one(struct pump *p, const char *name, em_error_t *err)
{
        cleanup_free char *path = em_path_join(p->w->dir, name);
        char digest[EM_DIGEST_STR_LEN + 1];

        if (!em_early_image_name(name) || json_object_get(p->digests, name) != NULL)
                return 0;
        if (path == NULL)
                return em_error_set(err, ENOMEM, "sending %s", name);
        if (em_sha256_file(path, digest, NULL, err) < 0 ||
            em_proto_send_file(p->c, EM_FRAME_IMAGE_FILE, path, name, p->level, p->raw, err) < 0)
                return em_error_wrap(err, "sending %s during the dump", name);
        json_object_set_new(p->digests, name, json_string(digest));
        (*p->files)++;
        return 0;
}

/* Sends the files of every event waiting. */
static int drain(struct pump *p, em_error_t *err)
{
        char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
            __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;

        while ((n = read(p->w->fd, buf, sizeof(buf))) > 0) {
                for (char *q = buf; q < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)q;
                        if (ev->len > 0 && (ev->mask & IN_CLOSE_WRITE) &&
                            send_one(p, ev->name, err) < 0)
                                return -1;
                        q += sizeof(*ev) + ev->len;
                }
        }
        return n == 0 || errno == EAGAIN || errno == EINTR ? 0
                                                           : em_error_set(err, errno, "inotify");
}

/* Whether child pid has exited, leaving it to be reaped by its owner. */
static bool exited(pid_t pid)
{
        siginfo_t si = {0};

        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
                return true; /* not ours to watch: stop */
        return si.si_pid == pid;
}

int em_early_images_pump(struct em_early_images *w, pid_t pid, int timeout_ms, em_conn_t *c,
                         int level, json_t *digests, uint64_t *raw, unsigned *files,
                         em_error_t *err)
{
        struct pump p = {w, c, level, digests, raw, files};
        int64_t end = em_mono_ms() + timeout_ms;

        if (w == NULL || pid <= 0)
                return 0;
        while (!exited(pid) && em_mono_ms() < end) {
                struct pollfd pfd = {w->fd, POLLIN, 0};
                /* runc's exit is not pollable here: look every 10 ms. */
                if (poll(&pfd, 1, 10) > 0 && drain(&p, err) < 0)
                        return -1;
        }
        return drain(&p, err); /* what closed just before the exit */
}
