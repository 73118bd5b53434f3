#include "platform/server.h"

#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/features.h"
#include "checkpoint/pod_ckpt.h"
#include "container/restart.h"
#include "platform/control.h"
#include "platform/metrics.h"
#include "migrate/common/journal.h"
#include "migrate/common/outcome.h"
#include "migrate/common/cache_prune.h"
#include "migrate/common/outcome_prune.h"
#include "migrate/common/proto.h"
#include "migrate/common/report.h"
#include "migrate/common/session.h"
#include "migrate/common/resolve.h"
#include "transfer/conn.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/version.h"

struct em_server {
        struct em_server_opts o;
        em_tls_ctx_t *tls; /* NULL: --insecure */
        int lfd;
        int mfd;               /* --metrics-listen, or -1 */
        pid_t metrics_pids[4]; /* children answering scrapes (0: free slot) */
        int64_t start_s;
        em_admission_t *adm;          /* the live session children and the limits */
        struct em_session_cgroup *cg; /* NULL: sessions stay in edgemigd's cgroup */
        struct {
                int64_t since_ms;
                unsigned n[3]; /* refused for connections, per-peer, rate */
        } refused;
        /* The edge agent (registration + heartbeats) runs in its own process. */
        pid_t agent_pid;
        int64_t agent_next_ms;
        volatile sig_atomic_t *stop;
        struct em_restart_monitor *restarts; /* restart policies (container/restart.h) */
        int64_t restarts_next_ms;
        int64_t prune_next_ms; /* outcome records (0: at start) */
        size_t pods_pending;   /* pod checkpoint journals waiting for a runc */
        int64_t pods_next_ms;
};

void em_server_opts_init(struct em_server_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->listen = "0.0.0.0:7878";
        em_admission_limits_init(&o->limits);
        o->cgroup = (struct em_session_cgroup_limits)EM_SESSION_CGROUP_LIMITS_INIT;
        o->cgroup_fs = "/sys/fs/cgroup";
        em_target_opts_init(&o->target);
        em_edge_agent_opts_init(&o->agent);
}

static size_t list_len(const char *const *l)
{
        size_t n = 0;

        while (l != NULL && l[n] != NULL)
                n++;
        return n;
}

/* With an allow-list, the handshake admits peers, controllers and
 * scrapers; what each may ask for is checked on the first frame (a scraper's
 * certificate only reaches /metrics: it is no peer and no controller). */
static const char **handshake_allow(const struct em_server_opts *o)
{
        size_t np = list_len(o->allow_peers), nc = list_len(o->allow_controllers);
        size_t ns = list_len(o->allow_scrapers);
        const char **all = calloc(np + nc + ns + 1, sizeof(char *));

        if (all == NULL)
                return NULL;
        if (np)
                memcpy(all, o->allow_peers, np * sizeof(char *));
        if (nc)
                memcpy(all + np, o->allow_controllers, nc * sizeof(char *));
        if (ns)
                memcpy(all + np + nc, o->allow_scrapers, ns * sizeof(char *));
        return all;
}

static void log_identity(const struct em_server_opts *o, const em_tls_ctx_t *tls)
{
        const char *me = em_tls_ctx_name(tls);

        if (em_tls_ctx_allows_any(tls))
                em_log_warn("mutual TLS as '%s': no --allow-peer, so any certificate signed by "
                            "%s is accepted",
                            me, o->tls_ca);
        for (size_t i = 0; i < list_len(o->allow_peers); i++)
                em_log_info("mutual TLS as '%s': allowing peer '%s'", me, o->allow_peers[i]);
        for (size_t i = 0; i < list_len(o->allow_controllers); i++)
                em_log_info("mutual TLS as '%s': allowing controller '%s' (migrate/prepare "
                            "requests)",
                            me, o->allow_controllers[i]);
}

/* Mutual TLS with the three files, plain TCP only with --insecure. */
static int tls_setup(const struct em_server_opts *o, em_tls_ctx_t **tls, em_error_t *err)
{
        bool any = o->tls_cert || o->tls_key || o->tls_ca;

        if (o->insecure && (any || o->allow_peers || o->allow_controllers))
                return em_error_set(err, 0,
                                    "--insecure excludes --tls-*, --allow-peer and "
                                    "--allow-controller (control requests need mutual TLS)");
        if (o->insecure)
                return 0;
        if (!o->tls_cert || !o->tls_key || !o->tls_ca)
                return em_error_set(err, 0,
                                    "peers must authenticate: pass --tls-cert FILE --tls-key FILE "
                                    "--tls-ca FILE (mutual TLS; `edgemig ca` makes them), or "
                                    "--insecure for plain TCP on a trusted test network");
        cleanup_free const char **allow = o->allow_peers ? handshake_allow(o) : NULL;
        if (o->allow_peers && allow == NULL)
                return em_error_set(err, ENOMEM, "TLS allow-list");
        struct em_tls_config tc = {o->tls_ca, o->tls_cert, o->tls_key, allow};
        if (em_tls_ctx_new(&tc, true, tls, err) < 0)
                return -1;
        log_identity(o, *tls);
        return 0;
}

/* --controller: the agent's defaults come from the TLS identity and
 * --listen; checked before anything starts. */
static int agent_setup(struct em_server *s, em_error_t *err)
{
        struct em_edge_agent_opts *a = &s->o.agent;

        if (a->controller == NULL)
                return 0;
        a->tls_cert = s->o.tls_cert;
        a->tls_key = s->o.tls_key;
        a->tls_ca = s->o.tls_ca;
        if (a->name == NULL && s->tls != NULL)
                a->name = em_tls_ctx_name(s->tls);
        if (a->advertise == NULL)
                a->advertise = s->o.listen;
        return em_edge_agent_check(a, err);
}

int em_server_new(const struct em_server_opts *o, struct em_server **out, em_error_t *err)
{
        struct em_server *s = calloc(1, sizeof(*s));

        if (s == NULL)
                return em_error_set(err, ENOMEM, "server");
        s->o = *o;
        s->lfd = s->mfd = -1;
        s->start_s = time(NULL);
        if (tls_setup(&s->o, &s->tls, err) < 0 || agent_setup(s, err) < 0 ||
            em_admission_new(&s->o.limits, &s->adm, err) < 0) {
                em_server_free(s);
                return -1;
        }
        *out = s;
        return 0;
}

void em_server_free(struct em_server *s)
{
        if (s == NULL)
                return;
        em_tls_ctx_free(&s->tls);
        em_restart_monitor_free(&s->restarts);
        em_admission_free(&s->adm);
        em_session_cgroup_free(s->cg);
        if (s->lfd >= 0)
                close(s->lfd);
        if (s->mfd >= 0)
                close(s->mfd);
        free(s);
}

void em_server_freep(struct em_server **s)
{
        em_server_free(*s);
        *s = NULL;
}

/* Finishes or rolls back what a dead session (pid; 0: any dead one) left. */
static void recover(const struct em_server *s, const struct em_config *cfg, pid_t pid)
{
        cleanup_error em_error_t err = NULL;

        if (em_migrate_target_recover(cfg, pid, s->o.target.route_hook, &err) < 0)
                em_log_error("recovering sessions: %s", em_error_msg(err));
}

/* True if <root>/outgoing/ holds a session. */
static bool outgoing_left(const struct em_config *cfg)
{
        cleanup_free char *dir = em_path_join(cfg->root, "outgoing");
        cleanup_dir DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *de;

        while (d != NULL && (de = readdir(d)) != NULL)
                if (de->d_name[0] != '.')
                        return true;
        return false;
}

/* At start: outgoing migrations of a crashed `edgemig migrate` (or of a
 * controller request) on this host; one in doubt is settled with its
 * target, as this host (the same certificate in the client role). */
static void recover_outgoing(const struct em_server_opts *o, const struct em_config *cfg)
{
        cleanup_error em_error_t err = NULL;
        cleanup_tls_ctx em_tls_ctx_t *client = NULL;
        struct em_tls_config tc = {o->tls_ca, o->tls_cert, o->tls_key, NULL};
        struct em_resolve_opts ro;

        if (!outgoing_left(cfg))
                return; /* the common case: no client context to build */
        em_resolve_opts_init(&ro);
        if (!o->insecure && em_tls_ctx_new(&tc, false, &client, &err) < 0) {
                em_log_error("recovering outgoing migrations: %s", em_error_msg(err));
                return;
        }
        ro.tls = client;
        ro.route_hook = o->target.route_hook;
        if (em_migrate_source_recover(cfg, &ro, &err) < 0)
                em_log_error("recovering outgoing migrations: %s", em_error_msg(err));
}

/* At start, and when a session dies: pods whose checkpoint (`edgemig pod
 * checkpoint`, a pod migration's final step) died midway run again, and
 * pods whose restore died midway are settled (checkpoint/pod_journal.h),
 * before the sessions' recovery removes their staging and before restart
 * policies look at them. One whose `runc checkpoint` or `runc restore`
 * still runs (the crash came mid-dump or mid-restore; runc may take a
 * minute) is not waited for: edgemigd serves meanwhile, a checkpoint's
 * members stay "migrating" (restart policies and the outgoing session's
 * recovery leave them), a restore's session waits too, and the loop
 * settles it once runc is done. */
static void recover_pods(struct em_server *s, const struct em_config *cfg)
{
        cleanup_error em_error_t err = NULL;

        if (em_pod_checkpoint_recover(cfg, 0, &s->pods_pending, &err) < 0)
                em_log_error("recovering pod checkpoints: %s", em_error_msg(err));
        s->pods_next_ms = em_mono_ms() + 1000;
}

/* Every second while a journal waits for its runc; then the session it
 * belongs to (a pod migration's, outgoing or incoming), which waited for
 * it, is recovered too. */
static void recover_pods_later(struct em_server *s, const struct em_config *cfg)
{
        if (s->pods_pending == 0 || em_mono_ms() < s->pods_next_ms)
                return;
        recover_pods(s, cfg);
        if (s->pods_pending == 0) {
                recover(s, cfg, -1);
                recover_outgoing(&s->o, cfg);
        }
}

/* Restart policies: at start (boot) after recovery, so that a container a
 * migration rolled back is not started twice; then every 2 s. */
static int apply_restarts(struct em_server *s, const struct em_config *cfg, bool boot,
                          em_error_t *err)
{
        int64_t now = em_mono_ms();

        if (s->restarts == NULL) {
                if (em_restart_monitor_new(&s->restarts, err) < 0)
                        return -1;
                em_restart_monitor_set_route_hook(s->restarts, s->o.target.route_hook);
        }
        if (!boot && now < s->restarts_next_ms)
                return 0;
        s->restarts_next_ms = now + 2000;
        return em_restart_monitor_pass(s->restarts, cfg, boot, now, NULL, err);
}

/* Where session cgroups go; a host where they cannot be made (no pids or
 * memory controller, v2 with processes beside edgemigd) serves without,
 * and says so once. */
static void cgroup_setup(struct em_server *s, const char *root)
{
        cleanup_error em_error_t err = NULL;
        cleanup_free char *own = NULL;

        if (s->o.cgroup.pids == 0)
                return;
        if (em_read_file("/proc/self/cgroup", 1 << 16, &own, NULL, &err) < 0 ||
            em_session_cgroup_new(s->o.cgroup_fs, own, root, &s->o.cgroup, &s->cg, &err) < 0) {
                em_log_warn("sessions run without a cgroup of their own (no --session-pids/"
                            "--session-memory limit): %s",
                            em_error_msg(err));
                return;
        }
        if (em_session_cgroup_sweep(s->cg, &err) < 0) {
                em_log_warn("%s", em_error_msg(err));
                em_error_free(&err);
        }
        em_log_info("each session in a cgroup of its own: at most %llu processes, %llu MiB",
                    (unsigned long long)s->o.cgroup.pids,
                    (unsigned long long)(s->o.cgroup.memory >> 20));
}

int em_server_prepare(struct em_server *s, const struct em_config *cfg, em_error_t *err)
{
        cleanup_features struct em_features *f = NULL;

        if (em_features_probe(cfg, true, &f, err) < 0)
                return em_error_wrap(err, "probing host features");
        if (!em_features_can_migrate(f))
                return em_error_set(err, 0,
                                    "this host cannot restore containers; run `edgemig --root %s "
                                    "check` for the reason",
                                    cfg->root);
        s->o.target.lazy_pages = em_features_has(f, "userfaultfd");
        recover_pods(s, cfg); /* first: a pod migration's checkpoint is in its staging */
        recover(s, cfg, 0);   /* sessions of a previous edgemigd that died */
        recover_outgoing(&s->o, cfg);
        cgroup_setup(s, cfg->root);
        return apply_restarts(s, cfg, true, err);
}

static int exit_code(int status)
{
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* wait4: each session's CPU seconds and peak RSS (its own and those of the
 * runc/CRIU it waited for), logged as one JSON object after "rusage=" for
 * benchmarks. */
static void log_session_end(pid_t pid, int code, const struct rusage *ru)
{
        cleanup_json json_t *use = em_rusage_json(ru, NULL);
        cleanup_free char *txt = NULL;

        if (use && json_object_set_new(use, "pid", json_integer(pid)) == 0 &&
            json_object_set_new(use, "status", json_integer(code)) == 0)
                txt = json_dumps(use, JSON_COMPACT);
        if (code == 0)
                em_log_info("session %d finished rusage=%s", (int)pid, txt ? txt : "{}");
        else
                em_log_warn("session %d failed (status %d) rusage=%s", (int)pid, code,
                            txt ? txt : "{}");
}

/* A session its memory cgroup killed (a post-copy window's page store,
 * for one) is named as such: the peer only sees the connection drop. */
static void log_oom(const struct em_server *s, pid_t pid)
{
        cleanup_error em_error_t err = NULL;
        uint64_t n = 0;

        if (s->cg == NULL || em_session_cgroup_oom_kills(s->cg, pid, &n, &err) < 0 || n == 0)
                return;
        em_log_error("session %d: its memory cgroup killed %llu process(es) at the limit of "
                     "%llu MiB; raise edgemigd --session-memory",
                     (int)pid, (unsigned long long)n,
                     (unsigned long long)(s->o.cgroup.memory >> 20));
}

static void cgroup_remove(const struct em_server *s, pid_t pid)
{
        cleanup_error em_error_t err = NULL;

        if (s->cg != NULL && em_session_cgroup_remove(s->cg, pid, &err) < 0)
                em_log_warn("session %d: %s", (int)pid, em_error_msg(err));
}

/* The slot holding pid (0: a free one), or NULL. */
static pid_t *metrics_slot(struct em_server *s, pid_t pid)
{
        for (size_t i = 0; i < sizeof(s->metrics_pids) / sizeof(s->metrics_pids[0]); i++) {
                if (s->metrics_pids[i] == pid)
                        return &s->metrics_pids[i];
        }
        return NULL;
}

static void reap_children(struct em_server *s, const struct em_config *cfg)
{
        struct rusage ru;
        int status;
        pid_t pid;

        while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
                pid_t *slot = metrics_slot(s, pid);
                if (slot != NULL) {
                        *slot = 0;
                        continue;
                }
                if (pid == s->agent_pid) {
                        em_log_warn("edge agent %d exited (status %d); restarting it in 5 s",
                                    (int)pid, exit_code(status));
                        s->agent_pid = 0;
                        s->agent_next_ms = em_mono_ms() + 5000;
                        continue;
                }
                em_admission_remove(s->adm, pid);
                if (exit_code(status) != 0)
                        log_oom(s, pid);
                cgroup_remove(s, pid);
                log_session_end(pid, exit_code(status), &ru);
                if (exit_code(status) != 0) {
                        /* Its pod restore's journal (a target's) first, as
                         * at start: left, it would refuse every later
                         * restore of the pod here. Journals whose
                         * process lives are locked and left alone. */
                        recover_pods(s, cfg);
                        recover(s, cfg, pid);
                }
        }
}

/* In the child: the TLS handshake runs here, so a slow or hostile peer never
 * stalls the accept loop. A refused attempt is logged with the peer address. */
static int authenticate(em_tls_ctx_t *tls, em_conn_t **conn, char **name)
{
        cleanup_error em_error_t err = NULL;

        if (em_tls_upgrade(tls, conn, 10000, name, &err) < 0) {
                em_log_warn("%s", em_error_msg(err));
                return -1;
        }
        em_log_info("peer %s authenticated as '%s'", em_conn_peer(*conn), *name);
        return 0;
}

/* In the child: CONTROL: the controller asks this edge to migrate or
 * prepare one of its containers (--allow-controller only). */
static int serve_control(const struct em_server_opts *o, const struct em_config *cfg,
                         em_conn_t *conn, const char *peer, const struct em_frame *f)
{
        cleanup_error em_error_t err = NULL;
        struct em_control_server cs = {
            .allow_controllers = o->allow_controllers,
            .tls_cert = o->tls_cert,
            .tls_key = o->tls_key,
            .tls_ca = o->tls_ca,
            .allow_peers = o->allow_peers,
            .route_hook = o->target.route_hook,
            .io_timeout_ms = o->target.io_timeout_ms,
        };

        if (em_control_serve(cfg, conn, peer, f, &cs, &err) < 0) {
                em_log_error("%s", em_error_msg(err));
                return 1;
        }
        return 0;
}

/* In the child: HELLO: an incoming migration, from a peer edge
 * (--allow-peer). The handshake admitted controllers too: they may not push
 * containers. */
static int serve_migration(const struct em_server_opts *o, const struct em_config *cfg,
                           em_conn_t *conn, const char *peer, struct em_frame *f)
{
        cleanup_error em_error_t err = NULL;

        if (peer != NULL && o->allow_peers && !em_control_allowed(peer, o->allow_peers)) {
                em_log_warn("refused session from %s ('%s'): not an allowed peer (--allow-peer)",
                            em_conn_peer(conn), peer);
                em_proto_send_abort(conn, "this certificate may not send migrations here "
                                          "(not an --allow-peer name)");
                return 1;
        }
        /* Held until this child exits: a peer's sessions at once are bounded
         * by its identity, whatever addresses it comes from. */
        cleanup_close int slot = -1;
        if (em_session_peer_slot(cfg, peer, o->limits.max_sessions_per_peer, &slot, &err) < 0) {
                em_log_warn("refused session from %s: %s", em_conn_peer(conn), em_error_msg(err));
                em_proto_send_abort(conn, em_error_msg(err));
                return 1;
        }
        if (em_conn_unrecv(conn, f, &err) < 0) {
                em_log_error("%s", em_error_msg(err));
                return 1;
        }
        em_log_info("session from %s", em_conn_peer(conn));
        if (em_migrate_target_serve(cfg, conn, &o->target, &err) < 0) {
                em_log_error("session from %s: %s", em_conn_peer(conn), em_error_msg(err));
                return 1;
        }
        return 0;
}

/* In the child: OUTCOME: a source asks for, or decides, the outcome of one
 * of its sessions; only the identity that opened the session is answered
 * (migrate/common/outcome.h). */
static int serve_outcome(const struct em_server_opts *o, const struct em_config *cfg,
                         em_conn_t *conn, const char *peer, const struct em_frame *f)
{
        cleanup_error em_error_t err = NULL;

        if (em_outcome_serve(cfg, conn, peer, o->target.route_hook, f, &err) < 0) {
                em_log_error("OUTCOME from %s: %s", em_conn_peer(conn), em_error_msg(err));
                return 1;
        }
        return 0;
}

/* In the child: the first frame says what the peer wants. */
static int serve_connection(const struct em_server *s, const struct em_config *cfg, em_conn_t *conn,
                            const char *peer)
{
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0};
        int r = em_conn_recv(conn, &f, &err);

        if (r <= 0) {
                em_log_warn("connection from %s: no request (%s)", em_conn_peer(conn),
                            r == 0 ? "closed" : em_error_msg(err));
                return 1;
        }
        if (f.hdr.type == EM_FRAME_CONTROL)
                return serve_control(&s->o, cfg, conn, peer, &f);
        if (f.hdr.type == EM_FRAME_OUTCOME)
                return serve_outcome(&s->o, cfg, conn, peer, &f);
        return serve_migration(&s->o, cfg, conn, peer, &f);
}

/* In a child: the listening sockets are the parent's. */
static void close_listeners(struct em_server *s)
{
        close(s->lfd);
        if (s->mfd >= 0)
                close(s->mfd);
}

static void agent_child(struct em_server *s, const struct em_config *cfg)
{
        cleanup_error em_error_t err = NULL;

        close_listeners(s);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
                _exit(0);
        int rc = em_edge_agent_run(cfg, &s->o.agent, s->stop, &err);
        if (rc < 0)
                em_log_error("edge agent: %s", em_error_msg(err));
        _exit(rc < 0 ? 1 : 0);
}

static void agent_start(struct em_server *s, const struct em_config *cfg)
{
        pid_t pid;

        if (s->o.agent.controller == NULL || s->agent_pid > 0 || em_mono_ms() < s->agent_next_ms)
                return;
        pid = fork();
        if (pid < 0) {
                em_log_error("starting the edge agent: fork: %s", strerror(errno));
                s->agent_next_ms = em_mono_ms() + 5000;
                return;
        }
        if (pid == 0)
                agent_child(s, cfg);
        s->agent_pid = pid;
}

static void agent_stop(struct em_server *s)
{
        if (s->agent_pid <= 0)
                return;
        kill(s->agent_pid, SIGTERM);
        waitpid(s->agent_pid, NULL, 0);
        s->agent_pid = 0;
}

/* Forks the child that serves conn; returns its pid (the child never
 * returns), 0 if fork failed. */
static pid_t spawn_session(struct em_server *s, const struct em_config *cfg, em_conn_t *conn)
{
        pid_t pid = fork();

        if (pid < 0) {
                em_log_error("fork: %s", strerror(errno));
                return 0;
        }
        if (pid > 0)
                return pid;
        close_listeners(s);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        cleanup_error em_error_t err = NULL;
        if (s->cg != NULL && em_session_cgroup_enter(s->cg, getpid(), &err) < 0) {
                em_log_error("%s; the session is not served", em_error_msg(err));
                _exit(3);
        }
        cleanup_free char *peer = NULL;
        if (s->tls != NULL && authenticate(s->tls, &conn, &peer) < 0)
                _exit(3);
        _exit(serve_connection(s, cfg, conn, peer));
}

/* A flood must not flood the log: refusals are counted and logged at most
 * once a second. */
static void note_refusal(struct em_server *s, const char *why, int64_t now)
{
        s->refused.n[why[0] == 'c' ? 0 : why[0] == 'p' ? 1 : 2]++;
        if (now - s->refused.since_ms < 1000)
                return;
        em_log_warn("refused %u connections over the limit of %d in all, %u over %d per peer "
                    "address, %u over %d a second (--max-connections, "
                    "--max-connections-per-peer, --accept-rate)",
                    s->refused.n[0], s->o.limits.max_children, s->refused.n[1],
                    s->o.limits.max_per_addr, s->refused.n[2], s->o.limits.rate);
        memset(&s->refused, 0, sizeof(s->refused));
        s->refused.since_ms = now;
}

/* Sessions past the deadline are killed; reaping them rolls back what they
 * staged, as for any session that died. */
static void kill_overdue(struct em_server *s)
{
        const char *peer;
        pid_t pid;

        while ((pid = em_admission_overdue(s->adm, em_mono_ms(), &peer)) > 0) {
                em_log_warn("session %d from %s passed the session deadline of %lld s "
                            "(--session-deadline); killing it",
                            (int)pid, peer, (long long)(s->o.limits.deadline_ms / 1000));
                kill(pid, SIGKILL);
        }
}

static void admit(struct em_server *s, const struct em_config *cfg, em_conn_t *conn)
{
        int64_t now = em_mono_ms();
        const char *why = em_admission_check(s->adm, em_conn_peer(conn), now);
        pid_t pid;

        if (why != NULL) {
                note_refusal(s, why, now); /* the connection is closed unanswered */
                return;
        }
        if ((pid = spawn_session(s, cfg, conn)) > 0)
                em_admission_add(s->adm, pid, em_conn_peer(conn), now);
}

/* Final outcome records older than EM_OUTCOME_KEEP_S, or beyond the newest
 * EM_OUTCOME_KEEP_MAX, go (migrate/common/outcome_prune.h): at start, then
 * hourly. */
static void prune_outcomes(struct em_server *s, const struct em_config *cfg)
{
        cleanup_error em_error_t err = NULL;
        int64_t now = em_mono_ms();
        size_t n = 0;

        if (now < s->prune_next_ms)
                return;
        s->prune_next_ms = now + EM_OUTCOME_PRUNE_EVERY_MS;
        if (em_outcome_prune(cfg->root, EM_OUTCOME_KEEP_S, EM_OUTCOME_KEEP_MAX, time(NULL), &n,
                             &err) < 0)
                em_log_warn("pruning outcome records: %s", em_error_msg(err));
        else if (n > 0)
                em_log_info("pruned %zu final outcome records (over %d days old, or beyond the "
                            "newest %d)",
                            n, EM_OUTCOME_KEEP_S / 86400, EM_OUTCOME_KEEP_MAX);
        em_error_free(&err);
        /* What a prepare left for a migration that never came. */
        if (em_pagecache_prune(cfg->root, EM_PAGECACHE_KEEP_S, time(NULL), &n, &err) < 0)
                em_log_warn("expiring page caches: %s", em_error_msg(err));
        else if (n > 0)
                em_log_info("expired %zu page caches unused for over %d hours", n,
                            EM_PAGECACHE_KEEP_S / 3600);
}

/* In the child: the TLS handshake (any name the handshake admits: peers,
 * controllers, --allow-scraper), then one GET /metrics. */
static void metrics_child(struct em_server *s, const struct em_config *cfg, em_conn_t *conn)
{
        cleanup_error em_error_t err = NULL;
        cleanup_free char *peer = NULL, *body = NULL;
        struct em_metrics_live live = {em_admission_count(s->adm), s->start_s};

        close_listeners(s);
        signal(SIGTERM, SIG_DFL);
        if (s->tls != NULL && em_tls_upgrade(s->tls, &conn, 5000, &peer, &err) < 0) {
                em_log_warn("metrics: %s", em_error_msg(err));
                _exit(3);
        }
        if (em_metrics_render(cfg->root, &live, &body, &err) < 0 ||
            em_metrics_answer(conn, body, 5000, &err) < 0) {
                em_log_warn("metrics request from %s: %s", em_conn_peer(conn), em_error_msg(err));
                em_conn_free(&conn);
                _exit(1);
        }
        em_conn_free(&conn);
        _exit(0);
}

/* At most four scrapes at a time (each child gives up after 10 s); one
 * more is closed unanswered. */
static void serve_metrics(struct em_server *s, const struct em_config *cfg)
{
        cleanup_error em_error_t err = NULL;
        cleanup_conn em_conn_t *conn = NULL;
        pid_t pid, *slot;

        reap_children(s, cfg);
        if (em_tcp_accept(s->mfd, 1, &conn, &err) < 0 || (slot = metrics_slot(s, 0)) == NULL)
                return;
        if ((pid = fork()) == 0)
                metrics_child(s, cfg, steal_pointer(&conn));
        if (pid < 0)
                em_log_warn("metrics: fork: %s", strerror(errno));
        *slot = pid > 0 ? pid : 0;
}

/* Waits up to 500 ms for either listener; true when a migration connection
 * is waiting (a scrape is served here). */
static bool wait_listeners(struct em_server *s, const struct em_config *cfg)
{
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN}, {.fd = s->mfd, .events = POLLIN}};

        if (poll(p, s->mfd >= 0 ? 2 : 1, 500) <= 0)
                return false;
        if (s->mfd >= 0 && (p[1].revents & POLLIN))
                serve_metrics(s, cfg);
        return (p[0].revents & POLLIN) != 0;
}

static void accept_loop(struct em_server *s, const struct em_config *cfg)
{
        while (!*s->stop) {
                cleanup_error em_error_t err = NULL;
                cleanup_conn em_conn_t *conn = NULL;

                reap_children(s, cfg);
                kill_overdue(s);
                prune_outcomes(s, cfg);
                recover_pods_later(s, cfg);
                agent_start(s, cfg);
                if (apply_restarts(s, cfg, false, &err) < 0) {
                        em_log_warn("%s", em_error_msg(err));
                        em_error_free(&err);
                }
                if (!wait_listeners(s, cfg))
                        continue;
                if (em_tcp_accept(s->lfd, 1, &conn, &err) < 0) {
                        if (em_error_status(err) != ETIMEDOUT && em_error_status(err) != EINTR)
                                em_log_warn("accept: %s", em_error_msg(err));
                        continue;
                }
                admit(s, cfg, conn);
        }
}

/* Type=notify: systemd starts the units that need this edge now. */
static void notify_ready(const struct em_server *s)
{
        cleanup_error em_error_t err = NULL;
        cleanup_free char *status = NULL;

        if (asprintf(&status, "listening on %s", s->o.listen) < 0 ||
            em_notify_ready(s->o.notify_socket, status ? status : "ready", &err) < 0)
                em_log_warn("%s", err ? em_error_msg(err) : "notifying systemd: out of memory");
}

int em_server_run(struct em_server *s, const struct em_config *cfg, volatile sig_atomic_t *stop,
                  em_error_t *err)
{
        s->stop = stop;
        signal(SIGPIPE, SIG_IGN);
        if (em_tcp_listen(s->o.listen, 16, &s->lfd, err) < 0)
                return em_error_wrap(err, "listening on %s", s->o.listen);
        if (s->o.metrics_listen != NULL && em_tcp_listen(s->o.metrics_listen, 4, &s->mfd, err) < 0)
                return em_error_wrap(err, "listening on %s (--metrics-listen)",
                                     s->o.metrics_listen);
        if (s->tls == NULL)
                em_log_warn("accepting unauthenticated plain TCP (--insecure)");
        em_log_info("edgemigd %s ready (root %s, listen %s)", EM_VERSION, cfg->root, s->o.listen);
        notify_ready(s);
        accept_loop(s, cfg);
        close(s->lfd);
        s->lfd = -1;
        em_log_info("edgemigd stopping");
        agent_stop(s);
        reap_children(s, cfg);
        return 0;
}
