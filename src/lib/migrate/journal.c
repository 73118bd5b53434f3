#include "migrate/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/runc.h"
#include "container/container.h"
#include "util/json.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

int em_journal_write(const char *dir, const char *name, const char *container, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, name), *line = NULL;
        int n = asprintf(&line, "%s %d\n", container, (int)getpid());

        if (path == NULL || n < 0)
                return em_error_set(err, ENOMEM, "journal");
        return em_write_file_atomic(path, line, (size_t)n, 0600, err);
}

int em_journal_own(const char *dir, const char *container, int *lock_fd, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, "owner");
        cleanup_close int fd = -1;

        if (em_journal_write(dir, "owner", container, err) < 0)
                return -1;
        fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return em_error_set(err, errno ? errno : ENOMEM, "locking the journal in %s", dir);
        *lock_fd = steal_fd(&fd);
        return 0;
}

/* True while the session that owns dir holds its lock: a pid can be a
 * zombie or reused, an flock dies with the process that held it. */
static bool owner_alive(const char *dir)
{
        cleanup_free char *path = em_path_join(dir, "owner");
        cleanup_close int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

        if (fd < 0)
                return false;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                flock(fd, LOCK_UN);
                return false;
        }
        return errno == EWOULDBLOCK;
}

static int read_owner(const char *dir, char *name, size_t len, pid_t *pid)
{
        cleanup_free char *path = em_path_join(dir, "owner"), *buf = NULL;
        em_error_t e = NULL;
        int p = 0;

        if (path == NULL || em_read_file(path, 4096, &buf, NULL, &e) < 0) {
                em_error_free(&e);
                return -1;
        }
        char *sp = strchr(buf, ' ');
        if (sp == NULL || (size_t)(sp - buf) >= len)
                return -1;
        memcpy(name, buf, (size_t)(sp - buf));
        name[sp - buf] = '\0';
        p = atoi(sp + 1);
        if (!em_container_name_valid(name))
                return -1;
        *pid = p;
        return 0;
}

static bool marker(const char *dir, const char *name)
{
        cleanup_free char *p = em_path_join(dir, name);
        return p && em_path_exists(p);
}

static void recover_one(const struct em_config *cfg, const char *dir, const char *container)
{
        em_error_t e = NULL;

        if (marker(dir, "committed")) {
                em_log_info("recovery: %s was committed; keeping it", container);
        } else if (marker(dir, "restoring")) {
                em_log_warn("recovery: %s was restored but never committed; removing it "
                            "(the source keeps or restores its own copy)",
                            container);
                if (em_container_rm(cfg, container, true, &e) < 0 && em_error_status(e) != ENOENT)
                        em_log_error("recovery: removing %s: %s", container, em_error_msg(e));
                em_error_free(&e);
        }
        if (em_rm_rf(dir, &e) < 0) {
                em_log_error("recovery: %s", em_error_msg(e));
                em_error_free(&e);
        }
}

/* Calls fn for every session under <root>/<sub>/ whose process is gone
 * (and, if pid is not 0, that belonged to pid). name is NULL when the
 * journal is unreadable. Returns how many fn handled, or -1 if any failed. */
typedef int (*session_fn)(const struct em_config *cfg, const char *dir, const char *name,
                          em_error_t *err);

static int for_each_dead_session(const struct em_config *cfg, const char *sub, pid_t pid,
                                 session_fn fn, em_error_t *err)
{
        cleanup_free char *base = em_path_join(cfg->root, sub);
        cleanup_dir DIR *d = base ? opendir(base) : NULL;
        struct dirent *de;
        int n = 0, rc = 0;

        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", base);
        while ((de = readdir(d)) != NULL) {
                char name[EM_NAME_MAX + 1];
                pid_t owner = 0;
                em_error_t e = NULL;
                if (de->d_name[0] == '.')
                        continue;
                cleanup_free char *dir = em_path_join(base, de->d_name);
                if (dir == NULL)
                        return em_error_set(err, ENOMEM, "recovery");
                bool known = read_owner(dir, name, sizeof(name), &owner) == 0;
                if ((pid && owner != pid) || owner_alive(dir))
                        continue;
                em_log_info("recovering migration session %s/%s", sub, de->d_name);
                if (fn(cfg, dir, known ? name : NULL, &e) < 0) {
                        em_log_error("%s", em_error_msg(e));
                        em_error_free(&e);
                        rc = -1;
                        continue;
                }
                n++;
        }
        if (rc < 0)
                return em_error_set(err, EIO, "some migrations could not be recovered (see log)");
        return n;
}

static int recover_incoming(const struct em_config *cfg, const char *dir, const char *name,
                            em_error_t *err)
{
        (void)err;
        recover_one(cfg, dir, name ? name : "?");
        return 0;
}

int em_migrate_target_recover(const struct em_config *cfg, pid_t pid, em_error_t *err)
{
        return for_each_dead_session(cfg, "incoming", pid, recover_incoming, err);
}

/* An outgoing session whose edgemig process died: if the container was
 * checkpointed here and never committed to the target, restore it here; if
 * it was committed, the target owns it: drop our copy. */
/* The migration died before its checkpoint: the container still runs here,
 * marked "migrating"; hand it back. */
static void release_migrating(const struct em_config *cfg, const char *container)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t e = NULL;

        if (em_state_open(cfg->root, &st, &e) < 0 ||
            em_state_container_get(st, container, &rec, &e) < 0 ||
            (rec->state == EM_CSTATE_MIGRATING &&
             em_state_container_transition(st, container, EM_CSTATE_BIT(EM_CSTATE_MIGRATING),
                                           EM_CSTATE_RUNNING, rec->pid, NULL, &e) < 0))
                em_log_warn("recovery: %s", em_error_msg(e));
        em_error_free(&e);
}

static int recover_outgoing(const struct em_config *cfg, const char *dir, const char *container,
                            em_error_t *err)
{
        if (container == NULL) /* not a session we understand: leave it */
                return 0;
        if (marker(dir, "committed")) {
                em_log_info("recovery: %s was handed over; removing the local copy", container);
                if (em_container_rm(cfg, container, true, err) < 0 &&
                    em_error_status(*err) != ENOENT)
                        return -1;
                em_error_free(err);
        } else if (marker(dir, "checkpointed")) {
                cleanup_free char *spec_path = em_path_join(dir, "spec.json");
                cleanup_free char *images = em_path_join(dir, "images");
                cleanup_json json_t *spec = NULL;
                struct em_restore_opts ro;

                em_log_warn("recovery: restoring %s here (its migration never completed)",
                            container);
                em_restore_opts_init(&ro);
                ro.copy_upper = true;
                if (spec_path == NULL || images == NULL ||
                    em_json_load_file(spec_path, 16u << 20, &spec, err) < 0 ||
                    em_container_restore_from(cfg, container, spec, images, NULL, &ro, err) < 0)
                        return em_error_wrap(err, "recovering %s (checkpoint kept in %s)",
                                             container, dir);
        } else {
                release_migrating(cfg, container);
        }
        return em_rm_rf(dir, err);
}

int em_migrate_source_recover(const struct em_config *cfg, em_error_t *err)
{
        return for_each_dead_session(cfg, "outgoing", 0, recover_outgoing, err);
}
