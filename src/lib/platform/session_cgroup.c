#include "platform/session_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"

struct em_session_cgroup {
        bool v2;
        char *base[2]; /* pids, memory: edgemigd's own cgroup directories */
        struct em_session_cgroup_limits l;
        char prefix[64]; /* "edgemig-session-<owner tag>-" */
};

/* Lines are "ID:CONTROLLERS:PATH", CONTROLLERS a comma list (empty on v2). */
static bool line_has(const char *ctrls, size_t len, const char *ctrl)
{
        size_t n = strlen(ctrl);

        if (n == 0)
                return len == 0;
        for (const char *p = ctrls; p < ctrls + len;) {
                const char *comma = memchr(p, ',', (size_t)(ctrls + len - p));
                size_t w = comma ? (size_t)(comma - p) : (size_t)(ctrls + len - p);
                if (w == n && memcmp(p, ctrl, n) == 0)
                        return true;
                p += w + 1;
        }
        return false;
}

int em_cgroup_path_of(const char *proc_cgroup, const char *ctrl, char **out, em_error_t *err)
{
        for (const char *l = proc_cgroup; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                const char *c1 = strchr(l, ':'), *end = strchr(l, '\n');
                const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (end == NULL)
                        end = l + strlen(l);
                if (c2 == NULL || c2 > end || c2[1] != '/')
                        continue;
                if (!line_has(c1 + 1, (size_t)(c2 - c1 - 1), ctrl))
                        continue;
                /* The root is "/": keep it empty so that paths join as
                 * <fs>/<ctrl><path>/<name>. */
                size_t len = (size_t)(end - c2 - 1);
                *out = strndup(c2 + 1, len == 1 ? 0 : len);
                return *out ? 0 : em_error_set(err, ENOMEM, "out of memory");
        }
        return em_error_set(err, ENOENT, "no %s%s cgroup in /proc/self/cgroup", ctrl,
                            *ctrl ? "" : "(v2)");
}

static int write_str(const char *dir, const char *file, const char *value, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, file);
        cleanup_close int fd =
            path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "out of memory");
        if (fd < 0 || write(fd, value, strlen(value)) < 0)
                return em_error_set(err, errno, "writing %s to %s", value, path);
        return 0;
}

static int base_dir(const char *fs, const char *proc_cgroup, const char *ctrl, char **out,
                    em_error_t *err)
{
        cleanup_free char *own = NULL;

        if (em_cgroup_path_of(proc_cgroup, ctrl, &own, err) < 0)
                return -1;
        if (asprintf(out, "%s%s%s%s", fs, *ctrl ? "/" : "", ctrl, own) < 0)
                return em_error_set(err, ENOMEM, "out of memory");
        if (!em_path_exists(*out))
                return em_error_set(err, ENOENT, "%s does not exist", *out);
        return 0;
}

/* v2 hands controllers down only where the parent enables them; that fails
 * when the daemon's cgroup holds processes and is not the root. */
static int v2_enable(const char *base, em_error_t *err)
{
        if (write_str(base, "cgroup.subtree_control", "+pids +memory", err) < 0)
                return em_error_wrap(err, "enabling the pids and memory controllers below %s",
                                     base);
        return 0;
}

/* Daemons of different state roots (test beds, or two edgemigd on one
 * host) may share a parent cgroup; the owner's tag in each name keeps one
 * daemon's sweep off another's cgroups (and the processes in them). The
 * root's real path, so that two spellings of one root agree. */
static void set_prefix(struct em_session_cgroup *c, const char *owner)
{
        cleanup_free char *real = realpath(owner, NULL);
        const char *name = real ? real : owner;
        uint8_t h[EM_SHA256_LEN];

        em_sha256_buf_raw(name, strlen(name), h);
        snprintf(c->prefix, sizeof(c->prefix), "edgemig-session-%02x%02x%02x%02x-", h[0], h[1],
                 h[2], h[3]);
}

int em_session_cgroup_new(const char *fs, const char *proc_cgroup, const char *owner,
                          const struct em_session_cgroup_limits *l, struct em_session_cgroup **out,
                          em_error_t *err)
{
        cleanup_free struct em_session_cgroup *c = calloc(1, sizeof(*c));
        cleanup_free char *v1 = em_path_join(fs, "pids");

        if (c == NULL || v1 == NULL)
                return em_error_set(err, ENOMEM, "out of memory");
        c->l = *l;
        set_prefix(c, owner);
        c->v2 = !em_path_exists(v1);
        int rc;
        if (c->v2) {
                rc = base_dir(fs, proc_cgroup, "", &c->base[0], err);
                if (rc == 0 && (c->base[1] = strdup(c->base[0])) == NULL)
                        rc = em_error_set(err, ENOMEM, "out of memory");
                if (rc == 0)
                        rc = v2_enable(c->base[0], err);
        } else {
                rc = base_dir(fs, proc_cgroup, "pids", &c->base[0], err);
                if (rc == 0)
                        rc = base_dir(fs, proc_cgroup, "memory", &c->base[1], err);
        }
        if (rc < 0) {
                em_session_cgroup_free(steal_pointer(&c));
                return em_error_wrap(err, "session cgroups under %s", fs);
        }
        *out = steal_pointer(&c);
        return 0;
}

void em_session_cgroup_free(struct em_session_cgroup *c)
{
        if (c == NULL)
                return;
        free(c->base[0]);
        free(c->base[1]);
        free(c);
}

int em_session_cgroup_dirs(const struct em_session_cgroup *c, pid_t pid, char *dirs[2],
                           em_error_t *err)
{
        dirs[0] = dirs[1] = NULL;
        for (int i = 0; i < 2; i++)
                if (asprintf(&dirs[i], "%s/%s%d", c->base[i], c->prefix, (int)pid) < 0) {
                        free(dirs[0]);
                        dirs[0] = dirs[1] = NULL;
                        return em_error_set(err, ENOMEM, "out of memory");
                }
        return 0;
}

static void dirs_free(char *(*dirs)[2])
{
        free((*dirs)[0]);
        free((*dirs)[1]);
}

/* A directory left by a daemon that died, for a pid now reused: empty, so
 * rmdir takes it; one with processes in it stays and mkdir fails. */
static int make_dir(const char *dir, em_error_t *err)
{
        if (mkdir(dir, 0755) == 0)
                return 0;
        if (errno == EEXIST && rmdir(dir) == 0 && mkdir(dir, 0755) == 0)
                return 0;
        return em_error_set(err, errno, "creating the session cgroup %s", dir);
}

int em_session_cgroup_enter(const struct em_session_cgroup *c, pid_t pid, em_error_t *err)
{
        __attribute__((cleanup(dirs_free))) char *dirs[2] = {NULL, NULL};
        char pids[32], mem[32], self[32];

        snprintf(pids, sizeof(pids), "%" PRIu64, c->l.pids);
        snprintf(mem, sizeof(mem), "%" PRIu64, c->l.memory);
        snprintf(self, sizeof(self), "%d", (int)pid);
        if (em_session_cgroup_dirs(c, pid, dirs, err) < 0 || make_dir(dirs[0], err) < 0)
                return -1;
        if (!c->v2 && make_dir(dirs[1], err) < 0)
                return -1;
        if (write_str(dirs[0], "pids.max", pids, err) < 0 ||
            write_str(dirs[1], c->v2 ? "memory.max" : "memory.limit_in_bytes", mem, err) < 0 ||
            write_str(dirs[0], "cgroup.procs", self, err) < 0 ||
            (!c->v2 && write_str(dirs[1], "cgroup.procs", self, err) < 0))
                return em_error_wrap(err, "session %d's cgroup", (int)pid);
        return 0;
}

/* What outlives the session (the log forwarder of a container it
 * restored) goes back to edgemigd's own cgroup, so that the session's can
 * go; a pid that exited meanwhile is no error. */
static int move_out(const char *dir, const char *base, em_error_t *err)
{
        cleanup_free char *procs = em_path_join(dir, "cgroup.procs"), *list = NULL;
        char *save = NULL;

        if (procs == NULL)
                return em_error_set(err, ENOMEM, "out of memory");
        if (em_read_file(procs, 1 << 20, &list, NULL, err) < 0)
                return em_error_status(*err) == ENOENT ? (em_error_free(err), 0) : -1;
        for (char *pid = strtok_r(list, "\n", &save); pid; pid = strtok_r(NULL, "\n", &save))
                if (write_str(base, "cgroup.procs", pid, err) < 0) {
                        if (em_error_status(*err) != ESRCH)
                                return -1;
                        em_error_free(err);
                }
        return 0;
}

int em_session_cgroup_remove(const struct em_session_cgroup *c, pid_t pid, em_error_t *err)
{
        __attribute__((cleanup(dirs_free))) char *dirs[2] = {NULL, NULL};

        if (em_session_cgroup_dirs(c, pid, dirs, err) < 0)
                return -1;
        for (int i = 0; i < (c->v2 ? 1 : 2); i++) {
                if (move_out(dirs[i], c->base[i], err) < 0)
                        return em_error_wrap(err, "emptying the session cgroup %s", dirs[i]);
                if (rmdir(dirs[i]) < 0 && errno != ENOENT)
                        return em_error_set(err, errno, "removing the session cgroup %s", dirs[i]);
        }
        return 0;
}

int em_session_cgroup_oom_kills(const struct em_session_cgroup *c, pid_t pid, uint64_t *out,
                                em_error_t *err)
{
        __attribute__((cleanup(dirs_free))) char *dirs[2] = {NULL, NULL};
        cleanup_free char *path = NULL, *text = NULL;
        const char *p;

        if (em_session_cgroup_dirs(c, pid, dirs, err) < 0)
                return -1;
        path = em_path_join(dirs[1], c->v2 ? "memory.events" : "memory.oom_control");
        if (path == NULL)
                return em_error_set(err, ENOMEM, "out of memory");
        if (em_read_file(path, 1 << 16, &text, NULL, err) < 0)
                return -1;
        /* Not "oom_kill_disable" (v1) nor "oom_group_kill" (v2). */
        for (p = text; (p = strstr(p, "oom_kill ")) != NULL && p != text && p[-1] != '\n'; p++) {
        }
        *out = p != NULL ? strtoull(p + strlen("oom_kill "), NULL, 10) : 0;
        return 0;
}

/* The pid of one of this owner's session cgroups, or 0. */
static int owned_pid(const struct em_session_cgroup *c, const char *name)
{
        size_t n = strlen(c->prefix);
        int pid;
        char tail;

        if (strncmp(name, c->prefix, n) != 0 || sscanf(name + n, "%d%c", &pid, &tail) != 1)
                return 0;
        return pid > 0 ? pid : 0;
}

static int sweep_dir(const struct em_session_cgroup *c, int i, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(c->base[i]);
        struct dirent *e;
        int pid;

        if (d == NULL)
                return em_error_set(err, errno, "reading %s", c->base[i]);
        while ((e = readdir(d)) != NULL) {
                if ((pid = owned_pid(c, e->d_name)) == 0 || kill(pid, 0) == 0 || errno != ESRCH)
                        continue;
                if (em_session_cgroup_remove(c, pid, err) < 0)
                        return -1;
        }
        return 0;
}

int em_session_cgroup_sweep(const struct em_session_cgroup *c, em_error_t *err)
{
        for (int i = 0; i < (c->v2 ? 1 : 2); i++)
                if (sweep_dir(c, i, err) < 0)
                        return -1;
        return 0;
}
