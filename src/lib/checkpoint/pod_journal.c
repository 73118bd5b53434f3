#include "checkpoint/pod_journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "container/container.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define JOURNAL_DIR "pod-checkpoints"
/* More containers than any pod has: a bound on what recovery reads. */
#define NAMES_MAX 1024

static char *journal_path(const struct em_config *cfg, const char *pod)
{
        cleanup_free char *base = em_path_join(cfg->root, JOURNAL_DIR);
        char leaf[EM_NAME_MAX + 8];

        snprintf(leaf, sizeof(leaf), "%s.json", pod);
        return base ? em_path_join(base, leaf) : NULL;
}

static char *journal_text(const char *pod, const char *dir, char *const *names, const char *op)
{
        char abs[PATH_MAX];
        cleanup_json json_t *j = NULL;

        /* Recovery runs elsewhere (edgemigd): the directory as an absolute path. */
        if (realpath(dir, abs) == NULL)
                return NULL;
        j = json_pack("{s:i, s:s, s:s, s:s, s:[]}", "format", EM_POD_JOURNAL_FORMAT, "op", op,
                      "pod", pod, "dir", abs, "names");
        for (size_t i = 0; j != NULL && names[i] != NULL; i++)
                json_array_append_new(json_object_get(j, "names"), json_string(names[i]));
        return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* As the migration journal's owner file: written and locked before it is
 * linked into place, so nobody sees it unlocked while its writer lives,
 * and linkat never replaces a journal a crash left. */
static int journal_begin(const struct em_config *cfg, const char *pod, const char *dir,
                         char *const *names, const char *op, int *lock_fd, em_error_t *err)
{
        cleanup_free char *base = em_path_join(cfg->root, JOURNAL_DIR);
        cleanup_free char *path = journal_path(cfg, pod), *text = journal_text(pod, dir, names, op);
        cleanup_close int fd = -1;
        char self[64];

        if (base == NULL || path == NULL || text == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "journalling pod %s", pod);
        if (em_mkdir_p(base, 0700, err) < 0)
                return -1;
        fd = open(base, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return em_error_set(err, errno, "locking a journal in %s", base);
        if (em_write_all(fd, text, strlen(text), err) < 0 || fsync(fd) < 0)
                return em_error_wrap(err, "writing the journal of pod %s", pod);
        snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
                return em_error_set(err, errno,
                                    errno == EEXIST ? "pod %s has a checkpoint or restore in "
                                                      "flight or one a crash left (%s): "
                                                      "`edgemig recover` settles it"
                                                    : "creating the journal of pod %s (%s)",
                                    pod, path);
        if (em_fsync_dir(base, err) < 0)
                return -1;
        *lock_fd = steal_fd(&fd);
        return 0;
}

int em_pod_journal_begin(const struct em_config *cfg, const char *pod, const char *dir,
                         char *const *names, int *lock_fd, em_error_t *err)
{
        return journal_begin(cfg, pod, dir, names, "checkpoint", lock_fd, err);
}

int em_pod_journal_begin_restore(const struct em_config *cfg, const char *pod, const char *dir,
                                 char *const *names, int *lock_fd, em_error_t *err)
{
        return journal_begin(cfg, pod, dir, names, "restore", lock_fd, err);
}

void em_pod_journal_end(const struct em_config *cfg, const char *pod, int *lock_fd)
{
        cleanup_free char *path = journal_path(cfg, pod);

        if (path != NULL && unlink(path) < 0)
                em_log_warn("removing the journal %s: %s", path, strerror(errno));
        if (*lock_fd >= 0)
                close(*lock_fd);
        *lock_fd = -1;
}

/* The journal's names, checked: they become paths and container names. */
static int journal_names(const json_t *j, const char *pod, char ***out, size_t *n, em_error_t *err)
{
        const json_t *a = json_object_get(j, "names");
        size_t len = json_array_size(a);
        cleanup_strv char **v = NULL;

        if (!json_is_array(a) || len == 0 || len > NAMES_MAX ||
            (v = calloc(len + 1, sizeof(char *))) == NULL)
                return em_error_set(err, EINVAL, "no valid list of names");
        for (size_t i = 0; i < len; i++) {
                const char *name = json_string_value(json_array_get(a, i));
                if (name == NULL || !em_container_name_valid(name) ||
                    (i + 1 == len) != (strcmp(name, pod) == 0))
                        return em_error_set(err, EINVAL, "invalid name at %zu", i);
                if ((v[i] = strdup(name)) == NULL)
                        return em_error_set(err, ENOMEM, "journal");
        }
        *out = steal_pointer(&v);
        *n = len;
        return 0;
}

/* True if cmdline (NUL-separated args) is a `runc ... --log LOG ...
 * checkpoint|restore ...` with LOG one of logs: checkpoint.c and runc.c
 * give runc the container's own log, a pod member's restore
 * (pod_member.c) the one in its CRIU work directory. */
static bool is_runc_of(const char *cmd, size_t len, char *const logs[2])
{
        bool log_next = false, has_log = false, verb = false;

        for (size_t i = 0; i < len; i += strlen(cmd + i) + 1) {
                const char *a = cmd + i;
                has_log =
                    has_log || (log_next && (strcmp(a, logs[0]) == 0 || strcmp(a, logs[1]) == 0));
                log_next = strcmp(a, "--log") == 0;
                verb = verb || strcmp(a, "checkpoint") == 0 || strcmp(a, "restore") == 0;
        }
        return has_log && verb;
}

/* True if cmd is such a runc of one of names under this root. */
static bool runc_of_names(const struct em_config *cfg, char **names, size_t n, const char *cmd,
                          size_t len)
{
        for (size_t i = 0; i < n; i++) {
                char own[PATH_MAX], member[PATH_MAX];
                char *const logs[2] = {own, member};
                snprintf(own, sizeof(own), "%s/containers/%s/runc.log", cfg->root, names[i]);
                snprintf(member, sizeof(member), "%s/containers/%s/criu-work/runc.log", cfg->root,
                         names[i]);
                if (is_runc_of(cmd, len, logs))
                        return true;
        }
        return false;
}

/* True while a `runc checkpoint` or `runc restore` of one of names under
 * this root runs: a checkpoint or restore killed midway leaves its runc
 * going on alone (in its own process group), and only its outcome says
 * whether that container was dumped (and stopped), runs on, or came
 * back: a roll-back before it is done could see a member come back after
 * it. */
static bool runc_busy(const struct em_config *cfg, char **names, size_t n)
{
        cleanup_dir DIR *d = opendir("/proc");
        struct dirent *de;

        while (d != NULL && (de = readdir(d)) != NULL) {
                char path[64];
                cleanup_free char *cmd = NULL;
                cleanup_error em_error_t e = NULL;
                size_t len = 0;
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%.20s/cmdline", de->d_name);
                if (em_read_file(path, 1u << 16, &cmd, &len, &e) < 0 || len == 0)
                        continue;
                cmd[len - 1] = '\0';
                if (runc_of_names(cfg, names, n, cmd, len))
                        return true;
        }
        return false;
}

/* Waits up to wait_ms for such a runc; EBUSY if it still runs then. */
static int wait_runc(const struct em_config *cfg, const char *pod, char **names, size_t n,
                     int wait_ms, em_error_t *err)
{
        for (int waited = 0; runc_busy(cfg, names, n); waited += 100) {
                if (waited >= wait_ms)
                        return em_error_set(err, EBUSY,
                                            "runc still checkpoints or restores a container of "
                                            "pod %s after %d s; run `edgemig recover` once it is "
                                            "done",
                                            pod, wait_ms / 1000);
                if (waited == 0)
                        em_log_info("recovery: waiting for runc to finish with a container of "
                                    "pod %s",
                                    pod);
                usleep(100 * 1000);
        }
        return 0;
}

static int settle(const struct em_config *cfg, const char *path, const struct em_pod_recovery *rec,
                  int wait_ms, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        cleanup_strv char **names = NULL;
        cleanup_free char *done = NULL;
        size_t n = 0;

        if (em_json_load_file(path, 1u << 20, &j, err) < 0)
                return -1;
        const char *pod = em_json_str(j, "pod"), *dir = em_json_str(j, "dir");
        if (em_json_int(j, "format", 0) != EM_POD_JOURNAL_FORMAT || pod == NULL ||
            !em_container_name_valid(pod) || dir == NULL || dir[0] != '/')
                return em_error_set(err, EINVAL, "%s: not a pod checkpoint journal", path);
        if (journal_names(j, pod, &names, &n, err) < 0)
                return em_error_wrap(err, "%s", path);
        /* Written by the format's first version without "op": a checkpoint. */
        if (strcmp(em_json_str(j, "op") ?: "checkpoint", "restore") == 0) {
                if (wait_runc(cfg, pod, names, n, wait_ms, err) < 0)
                        return -1;
                em_log_warn("recovery: pod %s's restore from %s never completed; settling it", pod,
                            dir);
                if (rec->restore(cfg, dir, names, n, err) < 0)
                        return em_error_wrap(err, "recovering pod %s (journal %s kept for a retry)",
                                             pod, path);
                return 0;
        }
        if ((done = em_path_join(dir, "pod.json")) == NULL)
                return em_error_set(err, ENOMEM, "recovery");
        if (em_path_exists(done)) {
                em_log_info("recovery: pod %s's checkpoint in %s had completed", pod, dir);
                return 0;
        }
        if (wait_runc(cfg, pod, names, n, wait_ms, err) < 0)
                return -1;
        em_log_warn("recovery: pod %s's checkpoint into %s never completed; bringing the pod "
                    "back here",
                    pod, dir);
        if (rec->checkpoint(cfg, dir, names, n, err) < 0)
                return em_error_wrap(err, "recovering pod %s (journal %s kept for a retry)", pod,
                                     path);
        return 0;
}

static bool is_journal(const char *name)
{
        size_t len = strlen(name);

        return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* One journal: left alone while its process holds the lock; recovery
 * holds it meanwhile, so a second recovery leaves it too. A runc still
 * checkpointing or restoring with wait_ms 0 leaves it too (0), counted
 * in *pending. */
static int recover_one(const struct em_config *cfg, const char *path,
                       const struct em_pod_recovery *rec, int wait_ms, size_t *pending,
                       em_error_t *err)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? 0 : em_error_set(err, errno, "locking %s", path);
        if (!em_path_exists(path)) /* settled by the one that held it before us */
                return 0;
        if (settle(cfg, path, rec, wait_ms, err) < 0) {
                *pending += em_error_status(*err) == EBUSY;
                if (wait_ms > 0 || em_error_status(*err) != EBUSY)
                        return -1;
                em_log_info("recovery: runc still checkpoints or restores a container of %s; "
                            "settled once it is done",
                            path);
                em_error_free(err);
                return 0;
        }
        if (unlink(path) < 0)
                return em_error_set(err, errno, "removing %s", path);
        return 1;
}

bool em_pod_journal_exists(const struct em_config *cfg, const char *pod)
{
        cleanup_free char *path = journal_path(cfg, pod);

        return path != NULL && em_path_exists(path);
}

struct journal_walk {
        const struct em_config *cfg;
        const struct em_pod_recovery *rec;
        int wait_ms;
        size_t *pending;
};

static int journal_entry(const char *path, const char *name, void *ud, em_error_t *err)
{
        const struct journal_walk *w = ud;
        int r;

        if (!is_journal(name))
                return 0;
        if ((r = recover_one(w->cfg, path, w->rec, w->wait_ms, w->pending, err)) < 0)
                return em_error_wrap(err, "recovery");
        return r;
}

int em_pod_journal_recover(const struct em_config *cfg, const struct em_pod_recovery *rec,
                           int wait_ms, size_t *pending, em_error_t *err)
{
        cleanup_free char *base = em_path_join(cfg->root, JOURNAL_DIR);
        size_t left = 0;
        struct journal_walk w = {cfg, rec, wait_ms, pending ? pending : &left};

        *w.pending = 0;
        if (base == NULL)
                return em_error_set(err, ENOMEM, "recovery");
        return em_dir_each(base, journal_entry, &w, "pod checkpoint(s) or restore(s)", err);
}
