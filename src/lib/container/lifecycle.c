/* run / start / stop / restart / kill / rm / ps / inspect / exec / logs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "container/container.h"
#include "container/pod.h"
#include "container/restart.h"
#include "container/volume.h"
#include "container/security.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

#define RUNC_TIMEOUT_MS 60000

/* "a.b.c.d[/len]" → "a.b.c.d". The container always gets it as /32. */
static int parse_ip_opt(const char *opt, char **out, em_error_t *err)
{
        char buf[INET_ADDRSTRLEN + 4];
        struct in_addr a;

        if (strlen(opt) >= sizeof(buf))
                return em_error_set(err, EINVAL, "invalid address '%s'", opt);
        strcpy(buf, opt);
        char *slash = strchr(buf, '/');
        if (slash) {
                char *end;
                long len = strtol(slash + 1, &end, 10);
                if (*end != '\0' || len < 0 || len > 32)
                        return em_error_set(err, EINVAL, "invalid prefix length in '%s'", opt);
                *slash = '\0';
        }
        if (inet_pton(AF_INET, buf, &a) != 1)
                return em_error_set(err, EINVAL, "invalid IPv4 address '%s'", opt);
        *out = strdup(buf);
        return *out ? 0 : em_error_set(err, ENOMEM, "address");
}

static int run_runc(const struct em_config *cfg, const struct em_container_paths *p,
                    const char *const *args, int out_fd, em_error_t *err)
{
        cleanup_free const char **argv = NULL;
        cleanup_free char *log = em_path_join(p->dir, "runc.log");
        struct em_proc_spec spec;
        size_t n, extra = 0;

        while (args[extra])
                extra++;
        if (log == NULL || (argv = em_runc_argv(cfg, p, false, extra + 2, &n)) == NULL)
                return em_error_set(err, ENOMEM, "running runc");
        /* runc's own messages go to a log, not to the container's stdio. */
        argv[n++] = "--log";
        argv[n++] = log;
        for (size_t i = 0; i < extra; i++)
                argv[n++] = args[i];
        unlink(log);
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = RUNC_TIMEOUT_MS;
        spec.stdout_fd = out_fd;
        spec.stderr_fd = out_fd;
        spec.log_path = log;
        return em_proc_run(&spec, NULL, err);
}

static int start_prepared(const struct em_config *cfg, const struct em_container_paths *p,
                          const char *name, int *pid, em_error_t *err)
{
        cleanup_free char *pidfile = em_path_join(p->dir, "pid");
        cleanup_close int wr = -1;

        if (pidfile == NULL)
                return em_error_set(err, ENOMEM, "pid file");
        if (em_logger_start(p->log, &wr, err) < 0 || em_logger_give(wr, p->dir, err) < 0)
                return -1;
        const char *args[] = {"run",        "--detach", "--bundle", p->bundle,
                              "--pid-file", pidfile,    name,       NULL};
        if (run_runc(cfg, p, args, wr, err) < 0)
                return em_error_wrap(err, "starting %s", name);
        return em_read_pid_file(pidfile, pid, err);
}

static json_t *spec_from_rec(const struct em_container_rec *r, em_error_t *err)
{
        json_t *spec = NULL;

        if (em_json_parse(r->spec, strlen(r->spec), "container spec", &spec, err) < 0)
                return NULL;
        json_object_set_new(spec, "ip", r->ip ? json_string(r->ip) : json_null());
        em_security_spec_set_ids(spec, &r->ids);
        return spec;
}

int em_host_service_range(const struct em_config *cfg, char **out, em_error_t *err)
{
        cleanup_free char *path = em_config_path(cfg, EM_NETWORK_CONF);
        cleanup_free char *text = NULL;
        cleanup_json json_t *j = NULL;
        uint32_t net;
        int len;

        *out = NULL;
        if (path == NULL)
                return em_error_set(err, ENOMEM, "network config");
        if (em_read_file(path, 65536, &text, NULL, err) < 0) {
                if (em_error_status(*err) != ENOENT)
                        return -1;
                em_error_free(err);
                return 0;
        }
        if (em_json_parse(text, strlen(text), path, &j, err) < 0)
                return -1;
        const char *range = em_json_str(j, "service_range");
        if (range == NULL)
                return em_error_set(err, EINVAL, "%s: no \"service_range\": \"A.B.C.D/N\"", path);
        if (em_ipv4_cidr_parse(range, &net, &len, err) < 0)
                return em_error_wrap(err, "%s: service_range", path);
        *out = strdup(range);
        return *out ? 0 : em_error_set(err, ENOMEM, "network config");
}

static int create_record(const struct em_config *cfg, struct em_state *st,
                         const struct em_run_opts *o, const struct em_image_info *img,
                         const char *ip, json_t **spec_out, em_error_t *err)
{
        cleanup_json json_t *spec = NULL;
        cleanup_free char *text = NULL, *host_range = NULL;
        const char *subnet = o->subnet ? o->subnet : getenv("EDGEMIG_SUBNET");

        if ((subnet == NULL || *subnet == '\0') && em_host_service_range(cfg, &host_range, err) < 0)
                return -1;
        if (host_range != NULL)
                subnet = host_range;

        if (em_container_spec_new(o, img->name, img->manifest_digest, img->diff_ids, img->n_layers,
                                  img->config, NULL, &spec, err) < 0)
                return -1;
        if ((text = json_dumps(spec, JSON_COMPACT)) == NULL)
                return em_error_set(err, ENOMEM, "container spec");
        struct em_container_rec rec = {.name = (char *)o->name,
                                       .image = img->name,
                                       .image_digest = img->manifest_digest,
                                       .ip = ip ? strdup(ip) : NULL,
                                       .spec = text,
                                       .state = EM_CSTATE_CREATED,
                                       .no_ip = o->pod != NULL};
        int rc = em_state_container_insert(st, &rec, subnet && *subnet ? subnet : NULL, err);
        if (rc == 0 && rec.ip)
                json_object_set_new(spec, "ip", json_string(rec.ip));
        free(rec.ip);
        /* A pod member runs in its pod's ID range (pod.h). */
        if (rc == 0 && o->pod == NULL && em_security_claim_ids(cfg, st, o->name, spec, err) < 0) {
                em_state_container_delete(st, o->name, &(em_error_t){NULL});
                return -1;
        }
        if (rc == 0)
                *spec_out = steal_pointer(&spec);
        return rc;
}

static int check_pod(struct em_state *st, const struct em_run_opts *o, em_error_t *err)
{
        if (o->pod == NULL)
                return 0;
        if (o->ip != NULL || o->pod_infra)
                return em_error_set(err, EINVAL,
                                    "a pod member has its pod's service IP: drop --ip (give it "
                                    "to `edgemig pod create`)");
        return em_pod_check_running(st, o->pod, err);
}

static void undo_run(const struct em_config *cfg, struct em_state *st, const char *name)
{
        em_error_t e = NULL;

        if (em_container_release(cfg, name, &e) < 0 || em_container_remove_files(cfg, name, &e) < 0)
                em_log_warn("cleaning up after a failed run of %s: %s", name, em_error_msg(e));
        em_error_free(&e);
        em_state_container_delete(st, name, &e);
        em_error_free(&e);
}

int em_container_run(const struct em_config *cfg, const struct em_run_opts *o, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_store struct em_store *store = NULL;
        cleanup_image_info struct em_image_info *img = NULL;
        cleanup_state struct em_state *st = NULL;
        cleanup_json json_t *spec = NULL;
        cleanup_free char *ip = NULL;
        int pid = 0;

        if (em_container_paths_init(cfg, o->name, &p, err) < 0)
                return -1;
        if (o->ip && parse_ip_opt(o->ip, &ip, err) < 0)
                return -1;
        enum em_restart policy;
        if (o->restart != NULL && em_restart_parse(o->restart, &policy, err) < 0)
                return -1;
        if (em_store_open(cfg->root, &store, err) < 0 ||
            em_store_image_get(store, o->image, &img, err) < 0)
                return em_error_wrap(err, "running %s", o->name);
        if (em_state_open(cfg->root, &st, err) < 0 || check_pod(st, o, err) < 0 ||
            create_record(cfg, st, o, img, ip, &spec, err) < 0)
                return em_error_wrap(err, "running %s", o->name);
        if (em_path_exists(p.dir)) {
                em_state_container_delete(st, o->name, &(em_error_t){NULL});
                return em_error_set(err, EEXIST, "%s exists; remove it first", p.dir);
        }
        if (em_container_prepare(cfg, o->name, spec, err) < 0 ||
            start_prepared(cfg, &p, o->name, &pid, err) < 0 ||
            em_state_container_transition(st, o->name, EM_CSTATE_BIT(EM_CSTATE_CREATED),
                                          EM_CSTATE_RUNNING, pid, NULL, err) < 0) {
                undo_run(cfg, st, o->name);
                return em_error_wrap(err, "running %s", o->name);
        }
        return 0;
}

/* Waits for a process that is not our child to exit. */
static bool wait_gone(int pid, int timeout_ms)
{
        cleanup_close int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct pollfd pf = {.fd = pfd, .events = POLLIN};

        if (pfd < 0)
                return errno == ESRCH;
        return poll(&pf, 1, timeout_ms) == 1;
}

static int kill_and_wait(const struct em_config *cfg, const struct em_container_paths *p,
                         const char *name, int timeout_s, em_error_t *err)
{
        cleanup_free char *status = NULL;
        int pid = 0;

        if (em_runc_state(cfg, p, name, &status, &pid, err) < 0)
                return -1;
        if (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0 &&
            strcmp(status, "created") != 0)
                return 0;
        const char *term[] = {"kill", name, "TERM", NULL};
        em_error_t e = NULL;
        if (timeout_s > 0 && run_runc(cfg, p, term, -1, &e) == 0 &&
            wait_gone(pid, timeout_s * 1000))
                return 0;
        em_error_free(&e);
        const char *kill9[] = {"kill", name, "KILL", NULL};
        if (run_runc(cfg, p, kill9, -1, &e) < 0)
                em_error_free(&e); /* it may have exited meanwhile */
        if (!wait_gone(pid, 10000))
                return em_error_set(err, ETIMEDOUT, "%s (pid %d) survived SIGKILL", name, pid);
        return 0;
}

/* start and stop of one container exclude each other (and edgemigd's
 * restart monitor) through a lock on its directory. */
static int lock_container(const struct em_container_paths *p, const char *name, int *fd,
                          em_error_t *err)
{
        *fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (*fd < 0)
                return em_error_set(err, errno, "opening %s", p->dir);
        if (flock(*fd, LOCK_EX | LOCK_NB) < 0)
                return em_error_set(err, EBUSY, "container '%s' is being started or stopped", name);
        return 0;
}

/* What a command on one container starts with: its paths, the state, its
 * record, and its lock held. */
static int open_locked(const struct em_config *cfg, const char *name, struct em_container_paths *p,
                       struct em_state **st, struct em_container_rec **rec, int *lock,
                       em_error_t *err)
{
        if (em_container_paths_init(cfg, name, p, err) < 0 ||
            em_state_open(cfg->root, st, err) < 0 ||
            em_state_container_get(*st, name, rec, err) < 0)
                return -1;
        return lock_container(p, name, lock, err);
}

int em_container_stop(const struct em_config *cfg, const char *name, int timeout_s, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        const unsigned from = EM_CSTATE_BIT(EM_CSTATE_RUNNING) | EM_CSTATE_BIT(EM_CSTATE_CREATED) |
                              EM_CSTATE_BIT(EM_CSTATE_STOPPED);

        cleanup_close int lock = -1;

        if (open_locked(cfg, name, &p, &st, &rec, &lock, err) < 0)
                return -1;
        if (!(from & EM_CSTATE_BIT(rec->state)))
                return em_error_set(err, EBUSY, "container '%s' is %s", name,
                                    em_cstate_name(rec->state));
        if (em_pod_check_infra_idle(st, rec, err) < 0)
                return -1;
        if (kill_and_wait(cfg, &p, name, timeout_s, err) < 0 ||
            em_container_release(cfg, name, err) < 0)
                return em_error_wrap(err, "stopping %s", name);
        if (em_state_container_transition(st, name, from, EM_CSTATE_STOPPED, 0, NULL, err) < 0)
                return -1;
        return em_state_container_set_stopped_by_user(st, name, true, err);
}

static void reconcile(const struct em_config *cfg, struct em_state *st, struct em_container_rec *r);

static int start_locked(const struct em_config *cfg, struct em_state *st,
                        const struct em_container_paths *p, const struct em_container_rec *rec,
                        em_error_t *err)
{
        const unsigned from = EM_CSTATE_BIT(EM_CSTATE_STOPPED) | EM_CSTATE_BIT(EM_CSTATE_CREATED);
        cleanup_json json_t *spec = spec_from_rec(rec, err);
        em_error_t e = NULL;
        int pid = 0;

        if (spec == NULL)
                return -1;
        if (!(from & EM_CSTATE_BIT(rec->state)))
                return em_error_set(err, EBUSY, "container '%s' is %s", rec->name,
                                    em_cstate_name(rec->state));
        /* A process that died left runc state, the mount and the netns. */
        if (em_container_release(cfg, rec->name, err) < 0)
                return -1;
        if (em_container_prepare(cfg, rec->name, spec, err) == 0 &&
            start_prepared(cfg, p, rec->name, &pid, err) == 0 &&
            em_state_container_transition(st, rec->name, from, EM_CSTATE_RUNNING, pid, NULL, err) ==
                0)
                return 0;
        if (em_container_release(cfg, rec->name, &e) < 0)
                em_log_warn("cleaning up after a failed start of %s: %s", rec->name,
                            em_error_msg(e));
        em_error_free(&e);
        return -1;
}

int em_container_start(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        cleanup_close int lock = -1;

        if (open_locked(cfg, name, &p, &st, &rec, &lock, err) < 0)
                return -1;
        reconcile(cfg, st, rec);
        if (rec->state == EM_CSTATE_RUNNING)
                return em_error_set(err, EBUSY, "container '%s' is already running", name);
        if (em_pod_check_infra_idle(st, rec, err) < 0)
                return -1;
        if (start_locked(cfg, st, &p, rec, err) < 0)
                return em_error_wrap(err, "starting %s", name);
        return 0;
}

int em_container_restart(const struct em_config *cfg, const char *name, int timeout_s,
                         em_error_t *err)
{
        if (em_container_stop(cfg, name, timeout_s, err) < 0)
                return em_error_wrap(err, "restarting %s", name);
        return em_container_start(cfg, name, err);
}

int em_signal_parse(const char *s, int *out, em_error_t *err)
{
        const char *n = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
        char *end;
        long v = strtol(s, &end, 10);

        if (*s != '\0' && *end == '\0' && v >= 1 && v <= SIGRTMAX) {
                *out = (int)v;
                return 0;
        }
        for (int i = 1; i < SIGRTMIN; i++) {
                const char *abbrev = sigabbrev_np(i);
                if (abbrev != NULL && strcasecmp(abbrev, n) == 0) {
                        *out = i;
                        return 0;
                }
        }
        return em_error_set(err, EINVAL, "unknown signal '%s' (a name such as TERM or a number)",
                            s);
}

int em_container_kill(const struct em_config *cfg, const char *name, const char *sig,
                      em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        char num[16];
        int signo;

        if (em_signal_parse(sig, &signo, err) < 0 ||
            em_container_paths_init(cfg, name, &p, err) < 0 ||
            em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0)
                return -1;
        reconcile(cfg, st, rec);
        if (rec->state != EM_CSTATE_RUNNING)
                return em_error_set(err, EBUSY, "container '%s' is %s, not running", name,
                                    em_cstate_name(rec->state));
        snprintf(num, sizeof(num), "%d", signo);
        const char *args[] = {"kill", name, num, NULL};
        if (run_runc(cfg, &p, args, -1, err) < 0)
                return em_error_wrap(err, "sending signal %d to %s", signo, name);
        return 0;
}

/* A pod's infra container goes last, with `pod rm`. */
static int check_rm_pod(struct em_state *st, const struct em_container_rec *rec, em_error_t *err)
{
        cleanup_strv char **members = NULL;
        int infra = em_pod_rec_is_infra(rec, err);

        if (infra <= 0)
                return infra;
        if (em_pod_members(st, rec->name, false, &members, err) < 0)
                return -1;
        if (members[0] != NULL)
                return em_error_set(err, EBUSY,
                                    "'%s' is a pod with members: remove it with `edgemig pod rm "
                                    "[--force] %s`",
                                    rec->name, rec->name);
        return 0;
}

int em_container_rm(const struct em_config *cfg, const char *name, bool force, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0 || check_rm_pod(st, rec, err) < 0)
                return -1;
        if (rec->state == EM_CSTATE_RUNNING || rec->state == EM_CSTATE_MIGRATING) {
                if (!force)
                        return em_error_set(err, EBUSY,
                                            "container '%s' is %s (stop it or use "
                                            "--force)",
                                            name, em_cstate_name(rec->state));
                if (rec->state == EM_CSTATE_MIGRATING)
                        em_log_warn("removing %s while a migration owns it", name);
                em_state_container_transition(st, name, EM_CSTATE_ANY, EM_CSTATE_STOPPED, rec->pid,
                                              NULL, &(em_error_t){NULL});
                if (em_container_stop(cfg, name, 0, err) < 0)
                        return -1;
        }
        if (em_container_release(cfg, name, err) < 0 ||
            em_container_remove_files(cfg, name, err) < 0)
                return em_error_wrap(err, "removing %s", name);
        return em_state_container_delete(st, name, err);
}

int em_container_rm_migrated(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;

        cleanup_json json_t *spec = NULL;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0 ||
            (spec = spec_from_rec(rec, err)) == NULL || em_container_rm(cfg, name, true, err) < 0)
                return -1;
        /* Its named volumes moved with it. */
        if (em_volumes_release(cfg, spec, err) < 0)
                return em_error_wrap(err, "removing the volumes of %s", name);
        if (rec->ip != NULL && em_state_ip_reserve(st, rec->ip, name, err) < 0)
                return em_error_wrap(err, "keeping %s reserved for %s", rec->ip, name);
        return 0;
}

static json_t *rec_json(const struct em_config *cfg, const struct em_container_rec *r)
{
        cleanup_container_paths struct em_container_paths p = {0};
        em_error_t e = NULL;
        json_t *spec = spec_from_rec(r, &e);

        em_error_free(&e);
        if (em_container_paths_init(cfg, r->name, &p, &e) < 0) {
                em_error_free(&e);
                json_decref(spec);
                return NULL;
        }
        return json_pack("{s:s, s:s, s:s, s:s?, s:s, s:i, s:i, s:I, s:I, s:I, s:o*, "
                         "s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:s}",
                         "name", r->name, "image", r->image, "image_digest", r->image_digest, "ip",
                         r->ip, "state", em_cstate_name(r->state), "pid", r->pid, "exit_code",
                         r->exit_code, "created_at", (json_int_t)r->created_at, "started_at",
                         (json_int_t)r->started_at, "finished_at", (json_int_t)r->finished_at,
                         "spec", spec, "paths", "dir", p.dir, "upper", p.upper, "rootfs", p.rootfs,
                         "bundle", p.bundle, "log", p.log, "netns", p.netns, "host_veth",
                         p.host_veth, "cgroup", p.cgroup);
}

/* A container whose process died on its own is "stopped" (its runtime
 * resources stay until stop or rm). */
static void reconcile(const struct em_config *cfg, struct em_state *st, struct em_container_rec *r)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *status = NULL;
        em_error_t e = NULL;
        int pid;

        if (r->state != EM_CSTATE_RUNNING || em_container_paths_init(cfg, r->name, &p, &e) < 0 ||
            em_runc_state(cfg, &p, r->name, &status, &pid, &e) < 0) {
                em_error_free(&e);
                return;
        }
        if (strcmp(status, "running") == 0 || strcmp(status, "paused") == 0)
                return;
        if (em_state_container_transition(st, r->name, EM_CSTATE_BIT(EM_CSTATE_RUNNING),
                                          EM_CSTATE_STOPPED, 0, NULL, &e) == 0)
                r->state = EM_CSTATE_STOPPED;
        em_error_free(&e);
}

int em_container_list(const struct em_config *cfg, json_t **out, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        struct em_container_rec **recs = NULL;
        size_t n = 0;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_list(st, &recs, &n, err) < 0)
                return -1;
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
                reconcile(cfg, st, recs[i]);
                json_array_append_new(arr, rec_json(cfg, recs[i]));
        }
        em_container_rec_list_free(&recs, n);
        if (arr == NULL)
                return em_error_set(err, ENOMEM, "listing containers");
        *out = arr;
        return 0;
}

int em_container_inspect(const struct em_config *cfg, const char *name, json_t **out,
                         em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0)
                return -1;
        reconcile(cfg, st, rec);
        *out = rec_json(cfg, rec);
        return *out ? 0 : em_error_set(err, ENOMEM, "inspecting %s", name);
}

int em_container_exec(const struct em_config *cfg, const char *name, const char *const *argv,
                      int in_fd, int out_fd, int err_fd, int *exit_code, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free const char **full = NULL;
        cleanup_pid pid_t pid = 0;
        struct em_proc_spec spec;
        size_t n, extra = 0;

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        while (argv[extra])
                extra++;
        if ((full = em_runc_argv(cfg, &p, false, extra + 2, &n)) == NULL)
                return em_error_set(err, ENOMEM, "exec");
        full[n++] = "exec";
        full[n++] = name;
        for (size_t i = 0; i < extra; i++)
                full[n++] = argv[i];
        em_proc_spec_init(&spec, full);
        spec.stdin_fd = in_fd;
        spec.stdout_fd = out_fd;
        spec.stderr_fd = err_fd;
        if (em_proc_spawn(&spec, &pid, err) < 0)
                return -1;
        return em_proc_wait(steal_pid(&pid), 0, exit_code, err);
}

static int copy_available(int in, int out, em_error_t *err)
{
        char buf[65536];
        ssize_t r;

        while ((r = read(in, buf, sizeof(buf))) != 0) {
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return em_error_set(err, errno, "reading the log");
                if (em_write_all(out, buf, (size_t)r, err) < 0)
                        return -1;
        }
        return 0;
}

static bool still_running(const struct em_config *cfg, const char *name)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t e = NULL;

        bool ok = em_state_open(cfg->root, &st, &e) == 0 &&
                  em_state_container_get(st, name, &rec, &e) == 0;
        em_error_free(&e);
        if (ok)
                reconcile(cfg, st, rec);
        return ok && (rec->state == EM_CSTATE_RUNNING || rec->state == EM_CSTATE_MIGRATING);
}

int em_container_logs(const struct em_config *cfg, const char *name, bool follow, int64_t tail,
                      int out_fd, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_close int fd = -1;
        off_t start = 0;

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if ((fd = open(p.log, O_RDONLY | O_CLOEXEC)) < 0)
                return em_error_set(err, errno, "opening the log of %s", name);
        if (tail >= 0 && em_tail_offset(fd, (uint64_t)tail, &start, err) < 0)
                return em_error_wrap(err, "the log of %s", name);
        if (lseek(fd, start, SEEK_SET) < 0)
                return em_error_set(err, errno, "the log of %s", name);
        for (int tick = 0;; tick++) {
                if (copy_available(fd, out_fd, err) < 0)
                        return -1;
                if (!follow || (tick % 5 == 0 && !still_running(cfg, name)))
                        break;
                nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
        }
        return copy_available(fd, out_fd, err);
}

static void add_unique(json_t *set, json_t *ids)
{
        size_t i;
        json_t *v;

        json_array_foreach(ids, i, v)
        {
                if (json_is_string(v))
                        json_object_set_new(set, json_string_value(v), json_true());
        }
}

int em_container_layers_in_use(const struct em_config *cfg, char ***out, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_json json_t *set = json_object();
        struct em_container_rec **recs = NULL;
        size_t n = 0;

        if (set == NULL)
                return em_error_set(err, ENOMEM, "layers in use");
        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_list(st, &recs, &n, err) < 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                cleanup_json json_t *spec = NULL;
                em_error_t e = NULL;
                if (em_json_parse(recs[i]->spec, strlen(recs[i]->spec), "spec", &spec, &e) == 0)
                        add_unique(set, json_object_get(spec, "diff_ids"));
                em_error_free(&e);
        }
        em_container_rec_list_free(&recs, n);
        char **v = calloc(json_object_size(set) + 1, sizeof(char *));
        const char *key;
        json_t *val;
        size_t k = 0;
        if (v == NULL)
                return em_error_set(err, ENOMEM, "layers in use");
        json_object_foreach(set, key, val) v[k++] = strdup(key);
        *out = v;
        return 0;
}
