#include "checkpoint/pod_member.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/pod_img.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/idmap.h"
#include "container/netns.h"
#include "container/pod.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

#define CGROUP_FS "/sys/fs/cgroup"

/* The v1 controllers runc puts a container in (cpu and cpuacct may be
 * one mount; mkdir through either is the same directory). */
static const char *const controllers[] = {"cpu",     "cpuacct", "cpuset", "memory", "devices",
                                          "freezer", "blkio",   "pids",   "systemd"};

/* CRIU options a member's restore needs inside the pod's user namespace. */
static const char member_criu_conf[] = "unprivileged\nmanage-cgroups=ignore\n";
/* Restore only, taken out again after it (a dump would leave the tasks
 * stopped instead of ending them): see em_pod_member_resume. */
static const char leave_stopped[] = "leave-stopped\n";

/* What a member restore works with: the pod's running infra container. */
struct member_ctx {
        const struct em_config *cfg;
        const char *name;
        struct em_container_paths p;
        int infra_pid;
        uid_t base; /* the pod's first host id: root in its user namespace */
        uint32_t size;
        char *work, *runc_root;
        off_t conf_len; /* criu.conf without leave_stopped */
};

static void ctx_free(struct member_ctx *c)
{
        em_container_paths_free(&c->p);
        free(c->work);
        free(c->runc_root);
}

static int copy_cpuset(const char *dir, const char *file, em_error_t *err)
{
        char parent[256], child[512];
        cleanup_free char *v = NULL;

        snprintf(parent, sizeof(parent), CGROUP_FS "/cpuset/%s", file);
        snprintf(child, sizeof(child), "%s/%s", dir, file);
        if (em_read_file(parent, 4096, &v, NULL, err) < 0)
                return -1;
        if (em_write_file_atomic(child, v, strlen(v), 0644, err) == 0)
                return 0;
        /* cgroupfs files cannot be renamed over: write in place. */
        em_error_free(err);
        cleanup_close int fd = open(child, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || em_write_all(fd, v, strlen(v), err) < 0)
                return em_error_set(err, errno, "writing %s", child);
        return 0;
}

/* Gives dir and the files directly in it to uid (and its group). */
static int chown_flat(const char *dir, uid_t uid, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;

        if (d == NULL || fchown(dirfd(d), uid, uid) < 0)
                return em_error_set(err, errno, "giving %s to host id %u", dir, (unsigned)uid);
        while ((de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.' &&
                    (de->d_name[1] == '\0' || (de->d_name[1] == '.' && de->d_name[2] == '\0')))
                        continue;
                if (fchownat(dirfd(d), de->d_name, uid, uid, AT_SYMLINK_NOFOLLOW) < 0)
                        return em_error_set(err, errno, "giving %s/%s to host id %u", dir,
                                            de->d_name, (unsigned)uid);
        }
        return 0;
}

/* The member's cgroup in every v1 controller, given to the pod's root:
 * runc in the user namespace joins them but cannot make them. */
static int make_cgroups(const struct member_ctx *c, em_error_t *err)
{
        char dir[512], mnt[256];

        for (size_t i = 0; i < sizeof(controllers) / sizeof(controllers[0]); i++) {
                snprintf(mnt, sizeof(mnt), CGROUP_FS "/%s", controllers[i]);
                if (!em_path_exists(mnt))
                        continue;
                snprintf(dir, sizeof(dir), "%s%s", mnt, c->p.cgroup);
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return em_error_set(err, errno, "creating cgroup %s", dir);
                if (strcmp(controllers[i], "cpuset") == 0 &&
                    (copy_cpuset(dir, "cpuset.cpus", err) < 0 ||
                     copy_cpuset(dir, "cpuset.mems", err) < 0))
                        return -1;
                if (chown_flat(dir, c->base, err) < 0)
                        return -1;
        }
        return 0;
}

static void remove_cgroups(const struct member_ctx *c)
{
        char dir[512];

        for (size_t i = 0; i < sizeof(controllers) / sizeof(controllers[0]); i++) {
                snprintf(dir, sizeof(dir), CGROUP_FS "/%s%s", controllers[i], c->p.cgroup);
                rmdir(dir); /* gone already, or runc's delete removed it */
        }
}

/* The member's row: created from spec if missing (as `run --pod` makes
 * it: no address of its own), and not running. */
static int member_row(struct em_state *st, const char *name, const json_t *spec, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *old = NULL;
        cleanup_free char *text = json_dumps(spec, JSON_COMPACT);
        em_error_t e = NULL;

        if (text == NULL)
                return em_error_set(err, ENOMEM, "container spec");
        if (em_state_container_get(st, name, &old, &e) == 0)
                return old->state == EM_CSTATE_RUNNING
                           ? em_error_set(err, EBUSY, "container '%s' is running here", name)
                           : 0;
        if (em_error_status(e) != ENOENT) {
                em_error_move(err, &e);
                return -1;
        }
        em_error_free(&e);
        struct em_container_rec rec = {.name = (char *)name,
                                       .image = (char *)em_json_str(spec, "image"),
                                       .image_digest = (char *)em_json_str(spec, "image_digest"),
                                       .spec = text,
                                       .state = EM_CSTATE_CHECKPOINTED,
                                       .no_ip = true};
        if (rec.image == NULL)
                return em_error_set(err, EINVAL, "the checkpoint names no image");
        return em_state_container_insert(st, &rec, NULL, err);
}

/* The pod's infra container, which must run: its pid and ID range. */
static int infra_ctx(struct em_state *st, const json_t *spec, struct member_ctx *c, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *infra = NULL;
        const char *pod = em_json_str(spec, "pod");

        if (pod == NULL || em_pod_spec_is_infra(spec))
                return em_error_set(err, EINVAL, "%s is not a pod member", c->name);
        if (em_pod_check_running(st, pod, err) < 0 ||
            em_state_container_get(st, pod, &infra, err) < 0)
                return -1;
        if (infra->ids.size == 0)
                return em_error_set(err, EINVAL, "pod %s has no user namespace", pod);
        c->infra_pid = infra->pid;
        c->base = infra->ids.base;
        c->size = infra->ids.size;
        return 0;
}

/* The checkpoint's writable layer, owned as the pod's range here is. */
static int install_upper(const struct member_ctx *c, const char *upper,
                         const struct em_idrange *dumped, em_error_t *err)
{
        struct em_idrange here = {c->base, c->size};

        if (upper == NULL)
                return 0;
        if (em_mkdir_p(c->p.dir, 0700, err) < 0 || em_rm_rf(c->p.upper, err) < 0 ||
            em_upper_copy(upper, c->p.upper, err) < 0)
                return -1;
        if (dumped == NULL || dumped->size == 0 || dumped->base == here.base)
                return 0;
        em_log_info("%s moves from ID range %u to %u", c->p.dir, dumped->base, here.base);
        return em_idmap_shift_tree(c->p.upper, dumped, &here, err);
}

/* runc's own state root and CRIU's work directory, owned by the pod's root. */
static int member_dirs(struct member_ctx *c, em_error_t *err)
{
        if (em_rm_rf(c->runc_root, err) < 0 || em_rm_rf(c->work, err) < 0 ||
            em_mkdir_p(c->runc_root, 0700, err) < 0 || em_mkdir_p(c->work, 0700, err) < 0)
                return -1;
        if (chown(c->runc_root, c->base, c->base) < 0 || chown(c->work, c->base, c->base) < 0)
                return em_error_set(err, errno, "giving %s to host id %u", c->p.dir,
                                    (unsigned)c->base);
        return 0;
}

/* The bundle, readable by the pod's root, with the member's CRIU options. */
static int open_bundle(struct member_ctx *c, em_error_t *err)
{
        cleanup_free char *conf = em_path_join(c->p.bundle, "criu.conf");
        cleanup_close int fd = -1;

        if (conf == NULL)
                return em_error_set(err, ENOMEM, "bundle");
        fd = open(conf, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || em_write_all(fd, member_criu_conf, sizeof(member_criu_conf) - 1, err) < 0 ||
            (c->conf_len = lseek(fd, 0, SEEK_END)) < 0 ||
            em_write_all(fd, leave_stopped, sizeof(leave_stopped) - 1, err) < 0)
                return em_error_set(err, errno, "writing %s", conf);
        if (chown(c->p.bundle, 0, c->base) < 0 || chmod(c->p.bundle, 0750) < 0)
                return em_error_set(err, errno, "opening %s to host id %u", c->p.bundle,
                                    (unsigned)c->base);
        return 0;
}

/* The member's later dumps (as host root, same criu.conf) end its tasks. */
static int close_bundle(const struct member_ctx *c, em_error_t *err)
{
        cleanup_free char *conf = em_path_join(c->p.bundle, "criu.conf");

        if (conf == NULL)
                return em_error_set(err, ENOMEM, "bundle");
        if (c->conf_len > 0 && truncate(conf, c->conf_len) < 0)
                return em_error_set(err, errno, "truncating %s", conf);
        return 0;
}

/* nsenter (infra's user + net) unshare (mount) runc ... restore NAME. */
static int run_restore(const struct member_ctx *c, const char *images, int log_fd, em_error_t *err)
{
        char user[64], net[64];
        cleanup_free char *pidfile = em_path_join(c->work, "pid");
        cleanup_free char *rlog = em_path_join(c->work, "runc.log");
        cleanup_free char *clog = em_path_join(c->work, "restore.log");

        if (pidfile == NULL || rlog == NULL || clog == NULL)
                return em_error_set(err, ENOMEM, "restore");
        snprintf(user, sizeof(user), "--user=/proc/%d/ns/user", c->infra_pid);
        snprintf(net, sizeof(net), "--net=/proc/%d/ns/net", c->infra_pid);
        const char *argv[] = {"nsenter",
                              user,
                              net,
                              "--",
                              "unshare",
                              "--mount",
                              "--propagation",
                              "private",
                              "--",
                              c->cfg->runc,
                              "--root",
                              c->runc_root,
                              "--criu",
                              c->cfg->criu,
                              "--log",
                              rlog,
                              "restore",
                              "--image-path",
                              images,
                              "--work-path",
                              c->work,
                              "--tcp-established",
                              "--file-locks",
                              "--detach",
                              "--bundle",
                              c->p.bundle,
                              "--pid-file",
                              pidfile,
                              c->name,
                              NULL};
        struct em_proc_spec spec;

        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = EM_CRIU_TIMEOUT_MS;
        spec.stdout_fd = log_fd;
        spec.stderr_fd = log_fd;
        spec.log_path = clog;
        if (em_proc_run(&spec, NULL, err) < 0)
                return -1;
        return 0;
}

static int flush_lock(int infra_pid, em_error_t *err)
{
        char net[64];

        snprintf(net, sizeof(net), "/proc/%d/ns/net", infra_pid);
        return em_netns_flush_criu_lock(net, err);
}

static int restore_steps(struct member_ctx *c, struct em_state *st, const json_t *spec,
                         const char *images, const char *upper, const struct em_idrange *dumped,
                         int *pid, em_error_t *err)
{
        cleanup_close int wr = -1;
        cleanup_free char *pidfile = em_path_join(c->work, "pid");

        if (pidfile == NULL)
                return em_error_set(err, ENOMEM, "restore");
        if (em_container_release(c->cfg, c->name, err) < 0 ||
            install_upper(c, upper, dumped, err) < 0 || member_dirs(c, err) < 0 ||
            em_container_prepare(c->cfg, c->name, spec, err) < 0 || open_bundle(c, err) < 0 ||
            make_cgroups(c, err) < 0)
                return -1;
        if (em_pod_img_join_ns(images, err) < 0 || chown_flat(images, c->base, err) < 0 ||
            flush_lock(c->infra_pid, err) < 0)
                return -1;
        if (em_logger_start(c->p.log, &wr, err) < 0 || em_logger_give(wr, c->p.dir, err) < 0)
                return -1;
        int rc = run_restore(c, images, wr, err);
        em_error_t e = NULL;
        if (close_bundle(c, &e) < 0 && rc == 0) {
                em_error_move(err, &e);
                return -1;
        }
        em_error_free(&e);
        if (rc < 0 || em_read_pid_file(pidfile, pid, err) < 0)
                return -1;
        return em_state_container_transition(st, c->name,
                                             EM_CSTATE_ANY & ~EM_CSTATE_BIT(EM_CSTATE_RUNNING),
                                             EM_CSTATE_RUNNING, *pid, NULL, err);
}

static int ctx_init(const struct em_config *cfg, const char *name, struct member_ctx *c,
                    em_error_t *err)
{
        c->cfg = cfg;
        c->name = name;
        if (em_container_paths_init(cfg, name, &c->p, err) < 0)
                return -1;
        c->work = em_path_join(c->p.dir, "criu-work");
        c->runc_root = em_path_join(c->p.dir, EM_POD_MEMBER_RUNC_DIR);
        if (c->work == NULL || c->runc_root == NULL)
                return em_error_set(err, ENOMEM, "restore");
        return 0;
}

int em_pod_member_restore(const struct em_config *cfg, const char *name, const json_t *spec,
                          const char *images, const char *upper,
                          const struct em_idrange *dumped_ids, em_error_t *err)
{
        __attribute__((cleanup(ctx_free))) struct member_ctx c = {0};
        cleanup_state struct em_state *st = NULL;
        int pid = 0;

        if (ctx_init(cfg, name, &c, err) < 0 || em_state_open(cfg->root, &st, err) < 0 ||
            member_row(st, name, spec, err) < 0 || infra_ctx(st, spec, &c, err) < 0)
                return em_error_wrap(err, "restoring pod member %s", name);
        if (restore_steps(&c, st, spec, images, upper, dumped_ids, &pid, err) < 0) {
                em_error_t e = NULL;
                flush_lock(c.infra_pid, &e); /* a failed restore leaves CRIU's lock */
                em_error_free(&e);
                em_pod_container_unrestore(cfg, name);
                remove_cgroups(&c);
                return em_error_wrap(err, "restoring pod member %s", name);
        }
        return 0;
}

void em_pod_container_unrestore(const struct em_config *cfg, const char *name)
{
        cleanup_state struct em_state *st = NULL;
        em_error_t e = NULL;

        /* runc delete --force kills what runs. */
        if (em_container_release(cfg, name, &e) < 0)
                em_log_warn("rolling back %s: %s", name, em_error_msg(e));
        em_error_free(&e);
        if (em_state_open(cfg->root, &st, &e) < 0 ||
            em_state_container_transition(st, name, EM_CSTATE_ANY, EM_CSTATE_CHECKPOINTED, 0, NULL,
                                          &e) < 0)
                em_log_warn("rolling back %s: %s", name, em_error_msg(e));
        em_error_free(&e);
}

int em_pod_member_resume(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *procs = NULL, *text = NULL;

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (asprintf(&procs, CGROUP_FS "/freezer%s/cgroup.procs", p.cgroup) < 0)
                return em_error_set(err, ENOMEM, "resuming %s", name);
        if (em_read_file(procs, 16u << 20, &text, NULL, err) < 0)
                return em_error_wrap(err, "resuming pod member %s", name);
        for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
                long pid = strtol(line, NULL, 10);
                /* One that ended meanwhile is no loss: nothing to resume. */
                if (pid > 0 && kill((pid_t)pid, SIGCONT) < 0 && errno != ESRCH)
                        return em_error_set(err, errno, "resuming pid %ld of %s", pid, name);
        }
        return 0;
}
