#include "checkpoint/runc.h"
#include "checkpoint/ckpt_refuse.h"
#include "checkpoint/redump.h"
#include "checkpoint/kdat.h"
#include "checkpoint/userns_img.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "container/container.h"
#include "container/freezer.h"
#include "container/idmap.h"
#include "container/volume.h"
#include "container/security.h"
#include "container/netns.h"
#include "container/pod.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

#define ERROR_LINES 12

void em_checkpoint_opts_init(struct em_checkpoint_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->tcp_established = true;
        o->file_locks = true;
        o->manage_cgroups_mode = "soft";
        o->status_fd = -1;
}

void em_restore_opts_init(struct em_restore_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->tcp_established = true;
        o->file_locks = true;
        o->manage_cgroups_mode = "soft";
        o->copy_upper = true;
}

/* The lines of a CRIU log that say what went wrong: those with "Error"
 * (CRIU's own marker), or else the tail. */
static char *criu_log_errors(const char *log)
{
        cleanup_free char *text = NULL;
        em_error_t e = NULL;
        size_t len = 0, found = 0;

        if (em_read_file(log, 256u << 20, &text, NULL, &e) < 0) {
                em_error_free(&e);
                return NULL;
        }
        char *out = calloc(1, 16384);
        for (char *line = text; out && line && *line && found < ERROR_LINES;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                if (strstr(line, "Error") && len + strlen(line) + 2 < 16384) {
                        len += (size_t)sprintf(out + len, "%s\n", line);
                        found++;
                }
                line = nl ? nl + 1 : NULL;
        }
        if (out && found == 0) {
                free(out);
                return em_file_tail(log, ERROR_LINES);
        }
        return out;
}

static int criu_failed(const char *log, em_error_t *err)
{
        cleanup_free char *lines = criu_log_errors(log);

        if (lines && *lines)
                em_error_wrap(err, "CRIU log %s says:\n%s\n---", log, lines);
        return -1;
}

struct argvb {
        const char **v;
        size_t n, cap;
};

static void add(struct argvb *b, const char *s)
{
        if (b->n + 1 < b->cap)
                b->v[b->n++] = s;
}

static int runc_criu(const struct em_config *cfg, const struct em_container_paths *p,
                     struct argvb *b, int out_fd, int keep_fd, const char *criu_log,
                     em_error_t *err)
{
        cleanup_free char *log = em_path_join(p->dir, "runc.log");
        struct em_proc_spec spec;
        int keep[2] = {keep_fd, -1};

        if (log == NULL)
                return em_error_set(err, ENOMEM, "runc");
        unlink(log);
        /* argv was built with "--log", NULL placeholder at index 5. */
        b->v[6] = log;
        b->v[b->n] = NULL;
        em_proc_spec_init(&spec, b->v);
        spec.timeout_ms = EM_CRIU_TIMEOUT_MS;
        spec.stdout_fd = out_fd;
        spec.stderr_fd = out_fd;
        spec.keep_fds = keep;
        spec.log_path = log;
        if (em_proc_run(&spec, NULL, err) < 0)
                return criu_failed(criu_log, err);
        return 0;
}

static int argv_start(const struct em_config *cfg, const struct em_container_paths *p,
                      struct argvb *b, const char *verb)
{
        size_t n;

        /* Every CRIU run starts from the kernel-feature cache (kdat.h):
         * microseconds when warm, once per boot otherwise. */
        em_kdat_warm_quiet(cfg);
        b->cap = 40;
        b->v = em_runc_argv(cfg, p, true, b->cap, &n);
        if (b->v == NULL)
                return -1;
        b->cap += n;
        b->n = n; /* runc --root R --criu C */
        add(b, "--log");
        add(b, NULL); /* filled by runc_criu */
        add(b, verb);
        return 0;
}

static void add_common(struct argvb *b, bool tcp, bool locks, const char *cg_mode,
                       const char *images, const char *work)
{
        add(b, "--image-path");
        add(b, images);
        add(b, "--work-path");
        add(b, work);
        if (tcp)
                add(b, "--tcp-established");
        if (locks)
                add(b, "--file-locks");
        if (cg_mode) {
                add(b, "--manage-cgroups-mode");
                add(b, cg_mode);
        }
}

/* A checkpoint needs a running container; one a migration owns
 * ("migrating") is running too, and marked so that nothing else (a
 * concurrent `ps` reconciling states) touches it meanwhile. */
#define CHECKPOINTABLE (EM_CSTATE_BIT(EM_CSTATE_RUNNING) | EM_CSTATE_BIT(EM_CSTATE_MIGRATING))

static int require_running(struct em_state *st, const char *name, bool whole_pod, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *rec = NULL;

        cleanup_json json_t *spec = NULL;

        if (em_state_container_get(st, name, &rec, err) < 0 ||
            em_json_parse(rec->spec, strlen(rec->spec), "container spec", &spec, err) < 0)
                return -1;
        if (!(CHECKPOINTABLE & EM_CSTATE_BIT(rec->state)))
                return em_error_set(err, EBUSY, "container '%s' is %s, not running", name,
                                    em_cstate_name(rec->state));
        if (em_redump_check(name, rec->pid, err) < 0)
                return -1;
        return whole_pod ? 0 : em_pod_refuse_alone(spec, "checkpointing", err);
}

/* Long enough for a busy container; past it CRIU freezes it itself. */
#define PREFREEZE_TIMEOUT_MS 2000

/* Freezes the container for CRIU (container/freezer.h: saves CRIU's 100 ms
 * polling step). Not fatal: CRIU can still freeze it itself. */
static bool prefreeze(const struct em_container_paths *p)
{
        em_error_t e = NULL;

        if (em_freezer_freeze(NULL, p->cgroup, PREFREEZE_TIMEOUT_MS, &e) == 0)
                return true;
        em_log_warn("%s (CRIU will freeze it instead)", em_error_msg(e));
        em_error_free(&e);
        return false;
}

/* After a failed or --leave-running dump the processes live on: CRIU left
 * them frozen as it found them. */
static void thaw(const struct em_container_paths *p)
{
        em_error_t e = NULL;

        if (em_freezer_thaw(NULL, p->cgroup, &e) < 0) {
                em_log_error("%s: the container stays frozen; `runc resume` thaws it",
                             em_error_msg(e));
                em_error_free(&e);
        }
}

/* argv of `runc checkpoint` into b (b->v owned by the caller). */
static int checkpoint_argv(const struct em_config *cfg, const struct em_container_paths *p,
                           const char *name, const char *images_dir,
                           const struct em_checkpoint_opts *o, struct argvb *b, char *fdbuf,
                           size_t fdlen, em_error_t *err)
{
        const char *work = o->work_dir ? o->work_dir : images_dir;

        if (em_mkdir_p(images_dir, 0700, err) < 0 || em_mkdir_p(work, 0700, err) < 0)
                return -1;
        if (argv_start(cfg, p, b, "checkpoint") < 0)
                return em_error_set(err, ENOMEM, "checkpoint");
        add_common(b, o->tcp_established, o->file_locks, o->manage_cgroups_mode, images_dir, work);
        if (o->leave_running)
                add(b, "--leave-running");
        if (o->parent_path) {
                add(b, "--parent-path");
                add(b, o->parent_path);
        }
        if (o->lazy_pages) {
                add(b, "--lazy-pages");
                if (o->page_server) {
                        add(b, "--page-server");
                        add(b, o->page_server);
                }
        }
        if (o->status_fd >= 0) {
                snprintf(fdbuf, fdlen, "%d", o->status_fd);
                add(b, "--status-fd");
                add(b, fdbuf);
        }
        add(b, name);
        return 0;
}

int em_container_checkpoint(const struct em_config *cfg, const char *name, const char *images_dir,
                            const struct em_checkpoint_opts *o, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_free const char **argv = NULL;
        struct argvb b = {0};
        char fdbuf[16];
        const char *work = o->work_dir ? o->work_dir : images_dir;

        if (em_container_paths_init(cfg, name, &p, err) < 0 ||
            em_state_open(cfg->root, &st, err) < 0 ||
            require_running(st, name, o->whole_pod, err) < 0)
                return -1;
        if (checkpoint_argv(cfg, &p, name, images_dir, o, &b, fdbuf, sizeof(fdbuf), err) < 0)
                return -1;
        argv = b.v;
        cleanup_free char *dump_log = em_path_join(work, "dump.log");
        bool frozen = prefreeze(&p);
        int rc = runc_criu(cfg, &p, &b, -1, o->status_fd, dump_log, err);
        if (frozen && (rc < 0 || o->leave_running))
                thaw(&p);
        if (rc < 0)
                return em_error_wrap(err, "checkpointing %s", name);
        if (o->leave_running)
                return 0;
        return em_state_container_transition(st, name, CHECKPOINTABLE, EM_CSTATE_CHECKPOINTED, 0,
                                             NULL, err);
}

int em_container_checkpoint_start(const struct em_config *cfg, const char *name,
                                  const char *images_dir, const struct em_checkpoint_opts *o,
                                  pid_t *pid, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_free const char **argv = NULL;
        cleanup_free char *log = NULL;
        struct em_proc_spec spec;
        struct argvb b = {0};
        char fdbuf[16];
        int keep[2] = {o->status_fd, -1};

        if (em_container_paths_init(cfg, name, &p, err) < 0 ||
            em_state_open(cfg->root, &st, err) < 0 ||
            require_running(st, name, o->whole_pod, err) < 0)
                return -1;
        if (checkpoint_argv(cfg, &p, name, images_dir, o, &b, fdbuf, sizeof(fdbuf), err) < 0)
                return -1;
        argv = b.v;
        log = em_path_join(p.dir, "runc.log");
        if (log == NULL)
                return em_error_set(err, ENOMEM, "checkpoint");
        unlink(log);
        b.v[6] = log;
        b.v[b.n] = NULL;
        em_proc_spec_init(&spec, b.v);
        spec.keep_fds = keep;
        spec.netns = o->netns;
        bool frozen = prefreeze(&p);
        if (em_proc_spawn(&spec, pid, err) < 0) {
                if (frozen)
                        thaw(&p);
                return em_error_wrap(err, "checkpointing %s", name);
        }
        return 0;
}

int em_container_checkpoint_finish(const struct em_config *cfg, const char *name,
                                   const char *images_dir, const struct em_checkpoint_opts *o,
                                   pid_t pid, int timeout_ms, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *dump_log =
            em_path_join(o->work_dir ? o->work_dir : images_dir, "dump.log");
        int code = 0;

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (em_proc_wait(pid, timeout_ms, &code, err) < 0) {
                thaw(&p); /* whatever CRIU left alive runs on */
                return em_error_wrap(err, "checkpointing %s", name);
        }
        if (code != 0) {
                thaw(&p);
                em_error_set(err, EIO, "runc checkpoint of %s exited with status %d", name, code);
                return criu_failed(dump_log, err);
        }
        return 0;
}

int em_container_checkpoint_ready(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;

        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        return em_state_container_transition(st, name, CHECKPOINTABLE, EM_CSTATE_CHECKPOINTED, 0,
                                             NULL, err);
}

int em_container_spec_get(const struct em_config *cfg, const char *name, json_t **out,
                          em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        json_t *spec = NULL;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0)
                return -1;
        if (em_json_parse(rec->spec, strlen(rec->spec), "container spec", &spec, err) < 0)
                return -1;
        json_object_set_new(spec, "ip", rec->ip ? json_string(rec->ip) : json_null());
        em_security_spec_set_ids(spec, &rec->ids);
        *out = spec;
        return 0;
}

int em_upper_copy(const char *src, const char *dst, em_error_t *err)
{
        /* GNU cp -a keeps owners, modes, times, all xattrs (trusted.* as
         * root: overlay opaque dirs) and device nodes (0/0 whiteouts). */
        const char *argv[] = {"cp", "-a", "--no-target-directory", src, dst, NULL};
        struct em_proc_spec spec;

        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = EM_CRIU_TIMEOUT_MS;
        if (em_proc_run(&spec, NULL, err) < 0)
                return em_error_wrap(err, "copying %s to %s", src, dst);
        return 0;
}

/* A fresh CREATED row for name from spec; an old row must not be running. */
static int claim_record(const struct em_config *cfg, struct em_state *st, const char *name,
                        json_t *spec, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *old = NULL;
        cleanup_free char *text = json_dumps(spec, JSON_COMPACT);
        em_error_t e = NULL;

        if (text == NULL)
                return em_error_set(err, ENOMEM, "container spec");
        if (em_state_container_get(st, name, &old, &e) == 0) {
                if (old->state == EM_CSTATE_RUNNING)
                        return em_error_set(err, EBUSY, "container '%s' is running here", name);
                if (em_state_container_delete(st, name, err) < 0)
                        return -1;
        } else if (em_error_status(e) != ENOENT) {
                em_error_move(err, &e);
                return -1;
        }
        em_error_free(&e);
        const char *ip = em_json_str(spec, "ip");
        if (ip == NULL)
                return em_error_set(err, EINVAL, "the checkpoint has no service IP");
        struct em_container_rec rec = {.name = (char *)name,
                                       .image = (char *)em_json_str(spec, "image"),
                                       .image_digest = (char *)em_json_str(spec, "image_digest"),
                                       .ip = (char *)ip,
                                       .spec = text,
                                       .state = EM_CSTATE_CREATED};
        if (rec.image == NULL)
                return em_error_set(err, EINVAL, "the checkpoint names no image");
        if (em_state_container_insert(st, &rec, NULL, err) < 0)
                return -1;
        /* The checkpoint's processes and files carry the range they were
         * dumped with: keep it where this host can. */
        return em_security_claim_ids(cfg, st, name, spec, err);
}

static int install_upper(const struct em_container_paths *p, const char *upper_dir, bool copy,
                         em_error_t *err)
{
        char real[PATH_MAX];

        if (upper_dir == NULL || (realpath(upper_dir, real) && strcmp(real, p->upper) == 0))
                return 0;
        if (em_mkdir_p(p->dir, 0700, err) < 0 || em_rm_rf(p->upper, err) < 0)
                return -1;
        if (!copy && rename(upper_dir, p->upper) == 0)
                return 0;
        return em_upper_copy(upper_dir, p->upper, err);
}

static int runc_restore(const struct em_config *cfg, const struct em_container_paths *p,
                        const char *name, const char *images, const char *work,
                        const struct em_restore_opts *o, int *pid, em_error_t *err)
{
        cleanup_free const char **argv = NULL;
        cleanup_free char *pidfile = em_path_join(p->dir, "pid");
        cleanup_free char *log = em_path_join(work, "restore.log");
        cleanup_close int wr = -1;
        struct argvb b = {0};

        if (pidfile == NULL || log == NULL || argv_start(cfg, p, &b, "restore") < 0)
                return em_error_set(err, ENOMEM, "restore");
        argv = b.v;
        add_common(&b, o->tcp_established, o->file_locks, o->manage_cgroups_mode, images, work);
        add(&b, "--detach");
        add(&b, "--bundle");
        add(&b, p->bundle);
        add(&b, "--pid-file");
        add(&b, pidfile);
        if (o->lazy_pages)
                add(&b, "--lazy-pages");
        add(&b, name);
        unlink(pidfile);
        /* runc maps the dumped stdio pipes onto its own stdio: a new pipe to
         * a new log forwarder. */
        if (em_logger_start(p->log, &wr, err) < 0 || em_logger_give(wr, p->dir, err) < 0 ||
            runc_criu(cfg, p, &b, wr, -1, log, err) < 0)
                return -1;
        return em_read_pid_file(pidfile, pid, err);
}

static void restore_rollback(const struct em_config *cfg, struct em_state *st,
                             const struct em_container_paths *p, const char *name)
{
        em_error_t e = NULL;

        if (em_path_exists(p->netns))
                em_netns_flush_criu_lock(p->netns, &e);
        em_error_free(&e);
        if (em_container_release(cfg, name, &e) < 0)
                em_log_warn("cleaning up after a failed restore of %s: %s", name, em_error_msg(e));
        em_error_free(&e);
        em_state_container_transition(st, name, EM_CSTATE_ANY, EM_CSTATE_CHECKPOINTED, 0, NULL, &e);
        em_error_free(&e);
}

/* Renames prior (same file system: staging is under the root) over the
 * container's log, which the restore's log forwarder then appends to. */
static int install_log(const struct em_container_paths *p, const char *prior, em_error_t *err)
{
        if (prior == NULL)
                return 0;
        if (em_mkdir_p(p->dir, 0700, err) < 0)
                return -1;
        if (rename(prior, p->log) < 0)
                return em_error_set(err, errno, "installing the log %s as %s", prior, p->log);
        return 0;
}

static struct em_idrange spec_ids(const json_t *spec)
{
        json_t *u = json_object_get(spec, "userns");
        long long base = em_json_int(u, "base", -1), size = em_json_int(u, "size", -1);

        if (base < 0 || base > UINT32_MAX || size <= 0 || size > UINT32_MAX)
                return (struct em_idrange){0, 0};
        return (struct em_idrange){(uint32_t)base, (uint32_t)size};
}

/* The checkpoint's files carry the range it was dumped with (spec_in);
 * the container restores with the range this host gave it (spec). Before
 * the overlay is mounted: its layers must not change under it. */
static int shift_upper(const struct em_config *cfg, const struct em_container_paths *p,
                       const json_t *spec_in, const json_t *spec, em_error_t *err)
{
        struct em_idrange from = spec_ids(spec_in), to = spec_ids(spec);

        if (to.size == 0 || from.size == 0 || from.base == to.base || !em_path_exists(p->upper))
                return 0;
        em_log_info("%s moves from ID range %u to %u", p->dir, from.base, to.base);
        if (em_idmap_shift_tree(p->upper, &from, &to, err) < 0)
                return -1;
        /* Its named volumes came with it, owned as its writable layer is. */
        for (size_t i = 0; i < json_array_size(json_object_get(spec, "mounts")); i++) {
                const char *name = em_spec_volume(spec, i);
                cleanup_free char *dir = name ? em_volume_path(cfg, name) : NULL;
                if (dir != NULL && em_path_exists(dir) &&
                    em_idmap_shift_tree(dir, &from, &to, err) < 0)
                        return em_error_wrap(err, "volume %s", name);
        }
        return 0;
}

/* The images name the user namespace CRIU creates: it must be this
 * host's range for the container (rewritten if the checkpoint came with
 * another), and the restored tasks, inside it, must be able to read them. */
static int fit_images(const json_t *spec_in, const json_t *spec, const char *images,
                      const char *work, em_error_t *err)
{
        struct em_idrange from = spec_ids(spec_in), to = spec_ids(spec);

        if (to.size == 0)
                return 0;
        if (em_userns_img_remap(images, from.size ? &from : &to, &to, err) < 0)
                return -1;
        if (em_idmap_grant_dir(images, to.base, err) < 0 ||
            em_idmap_grant_dir(work, to.base, err) < 0)
                return em_error_wrap(err, "opening the images to user namespace %u", to.base);
        return 0;
}

int em_container_restore_from(const struct em_config *cfg, const char *name, const json_t *spec_in,
                              const char *images_dir, const char *upper_dir,
                              const struct em_restore_opts *o, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_json json_t *spec = json_deep_copy(spec_in);
        cleanup_free char *work_default = NULL;
        int pid = 0;

        if (spec == NULL)
                return em_error_set(err, ENOMEM, "restore");
        json_object_set_new(spec, "name", json_string(name));
        if (em_container_paths_init(cfg, name, &p, err) < 0 ||
            em_state_open(cfg->root, &st, err) < 0 || claim_record(cfg, st, name, spec, err) < 0)
                return em_error_wrap(err, "restoring %s", name);
        work_default = em_path_join(p.dir, "criu-work");
        const char *work = o->work_dir ? o->work_dir : work_default;
        int64_t t0 = em_mono_ms(), t1 = 0;
        if ((!o->net_ready && em_container_release(cfg, name, err) < 0) ||
            install_upper(&p, upper_dir, o->copy_upper, err) < 0 ||
            install_log(&p, o->prior_log, err) < 0 ||
            shift_upper(cfg, &p, spec_in, spec, err) < 0 ||
            em_container_prepare_with(cfg, name, spec, o->net_ready, err) < 0 ||
            em_mkdir_p(work, 0700, err) < 0 ||
            fit_images(spec_in, spec, images_dir, work, err) < 0 ||
            (t1 = em_mono_ms(), runc_restore(cfg, &p, name, images_dir, work, o, &pid, err)) < 0 ||
            em_state_container_transition(st, name, EM_CSTATE_BIT(EM_CSTATE_CREATED),
                                          EM_CSTATE_RUNNING, pid, NULL, err) < 0) {
                restore_rollback(cfg, st, &p, name);
                return em_error_wrap(err, "restoring %s", name);
        }
        em_log_debug("restored %s: set-up %lld ms, runc restore %lld ms", name,
                     (long long)(t1 - t0), (long long)(em_mono_ms() - t1));
        return 0;
}

static char *sub(const char *dir, const char *name)
{
        return em_path_join(dir, name);
}

static int dir_usable(const char *dir, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;

        if (d == NULL)
                return errno == ENOENT ? em_mkdir_p(dir, 0700, err)
                                       : em_error_set(err, errno, "opening %s", dir);
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        return em_error_set(err, EEXIST, "%s is not empty", dir);
        }
        return 0;
}

int em_checkpoint_save(const struct em_config *cfg, const char *name, const char *dir,
                       const struct em_checkpoint_opts *o, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_json json_t *spec = NULL;
        cleanup_free char *criu = sub(dir, "criu"), *upper = sub(dir, "upper");
        cleanup_free char *meta = sub(dir, "container.json");

        if (criu == NULL || upper == NULL || meta == NULL)
                return em_error_set(err, ENOMEM, "checkpoint");
        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        /* Before anything is frozen or written: its restore would kill
         * the service (ckpt_refuse.h). A pod's checkpoint checked them all. */
        if (!o->whole_pod && em_ckpt_refuse_recorded(cfg, &name, 1, err) < 0)
                return em_error_wrap(err, "not checkpointing %s (it keeps running)", name);
        if (dir_usable(dir, err) < 0 || em_container_spec_get(cfg, name, &spec, err) < 0)
                return -1;
        json_object_set_new(spec, "format", json_integer(EM_CHECKPOINT_FORMAT));
        json_object_set_new(spec, "checkpointed_at", json_integer((json_int_t)time(NULL)));
        if (em_json_write_fast(meta, spec, err) < 0 ||
            em_container_checkpoint(cfg, name, criu, o, err) < 0)
                return -1;
        if (em_upper_copy(p.upper, upper, err) < 0)
                return em_error_wrap(err, "%s is checkpointed but its files are not in %s", name,
                                     dir);
        if (o->leave_running)
                return 0;
        /* The dump is complete: drop the netns (with CRIU's lock rules) and mounts. */
        return em_container_release(cfg, name, err);
}

int em_checkpoint_load(const struct em_config *cfg, const char *dir, const char *name_override,
                       const struct em_restore_opts *o, em_error_t *err)
{
        cleanup_free char *criu = sub(dir, "criu"), *upper = sub(dir, "upper");
        cleanup_free char *meta = sub(dir, "container.json");
        cleanup_json json_t *spec = NULL;

        if (criu == NULL || upper == NULL || meta == NULL)
                return em_error_set(err, ENOMEM, "restore");
        if (em_json_load_file(meta, 16u << 20, &spec, err) < 0)
                return em_error_wrap(err, "%s is not an edgemig checkpoint", dir);
        if (em_json_int(spec, "format", 0) != EM_CHECKPOINT_FORMAT)
                return em_error_set(err, EPROTO, "%s: unsupported checkpoint format %lld", meta,
                                    em_json_int(spec, "format", 0));
        const char *name = name_override ? name_override : em_json_str(spec, "name");
        if (name == NULL || !em_container_name_valid(name))
                return em_error_set(err, EINVAL, "%s: missing or invalid container name", meta);
        /* A pod's containers restore together (pod_ckpt.h): a member alone
         * has no namespaces to go into. */
        if (em_pod_refuse_alone(spec, "restoring", err) < 0)
                return em_error_wrap(err,
                                     "%s is part of a pod's checkpoint (`edgemig pod "
                                     "restore` of its parent directory)",
                                     dir);
        /* Describe the checkpoint, not the container: a migration's policy
         * check would refuse a spec carrying them. */
        json_object_del(spec, "format");
        json_object_del(spec, "checkpointed_at");
        return em_container_restore_from(cfg, name, spec, criu, upper, o, err);
}
