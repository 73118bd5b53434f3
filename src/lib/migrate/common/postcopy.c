/* Post-copy / hybrid final step with CRIU lazy pages; see postcopy.h and
 * docs/postcopy.md for the protocol and the failure rules. */
#include "migrate/common/postcopy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/lazy_fit.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "migrate/common/logsync.h"
#include "migrate/common/proto.h"
#include "migrate/common/session.h"
#include "migrate/common/sysctl_hold.h"
#include "migrate/source/lazy_push.h"
#include "migrate/source/monitor.h"
#include "migrate/source/phases.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/upper_send.h"
#include "delta/lazy_known.h"
#include "delta/lazy_set.h"
#include "migrate/target/lazy_serve.h"
#include "transfer/relay.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

static const struct em_held_sysctl pipe_max = {"/proc/sys/fs/pipe-max-size",
                                               "/run/edgemig/pipe-max-size",
                                               "fs.pipe-max-size (CRIU lazy pages)", 4194304L};
static const struct em_held_sysctl uffd_allow = {
    "/proc/sys/vm/unprivileged_userfaultfd", "/run/edgemig/unprivileged_userfaultfd",
    "vm.unprivileged_userfaultfd (CRIU lazy restore in a user namespace)", 1};
#define READY_MS   30000
#define TICK_MS    1000
#define CONNECT_MS 5000

int em_pipe_max_raise(em_error_t *err)
{
        return em_sysctl_hold(&pipe_max, err);
}

void em_pipe_max_release(void)
{
        em_sysctl_release(&pipe_max);
}

/* CRIU's restorer opens the userfaultfd inside the container's user
 * namespace, where it lacks the CAP_SYS_PTRACE (in the host's) that
 * userfaultfd() asks for while vm.unprivileged_userfaultfd is 0; the fd it
 * gets keeps working after the value goes back. */
static int restore_lazy(const struct em_lazy_target *lt, const struct em_restore_opts *ro,
                        em_error_t *err)
{
        if (em_sysctl_hold(&uffd_allow, err) < 0)
                return -1;
        int rc = em_container_restore_from(lt->cfg, lt->container, lt->spec, lt->images, lt->upper,
                                           ro, err);
        em_sysctl_release(&uffd_allow);
        return rc;
}

/* Waits for the \0 a status fd gets once CRIU is ready; fails on EOF
 * (the child died first) or timeout. */
static int wait_ready(int fd, int timeout_ms, const char *what, em_error_t *err)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        int r = poll(&p, 1, timeout_ms);

        if (r == 0)
                return em_error_set(err, ETIMEDOUT, "%s not ready after %d ms", what, timeout_ms);
        if (r < 0 || read(fd, &c, 1) != 1)
                return em_error_set(err, EIO, "%s exited before it was ready", what);
        return 0;
}

static void kill_group(pid_t pid)
{
        em_error_t e = NULL;

        kill(-pid, SIGKILL);
        em_proc_wait(pid, 5000, NULL, &e);
        em_error_free(&e);
}

/* ---- source ---- */

/* A lazy hand-off the default chose, not the operator, falls back to a
 * plain final dump where CRIU's lazy dump could not start (its page list
 * for a large reservation: checkpoint/lazy_fit.h); the report says so. */
static bool lazy_fits(const struct source *s)
{
        cleanup_error em_error_t e = NULL;

        if (em_lazy_dump_refuse(s->pids, s->npids, s->name, &e) == 0)
                return true;
        em_log_warn("%s; a plain final dump instead", em_error_msg(e));
        em_report_set(s->report, "lazy_refused", json_string(em_error_msg(e)));
        return false;
}

bool em_source_lazy_wanted(const struct source *s)
{
        const char *why;

        if (s->o->mode == EM_MIGRATE_POSTCOPY || s->o->mode == EM_MIGRATE_HYBRID)
                return true; /* refused at the start where it cannot work */
        why = em_json_str(em_report_json(s->report), "stop_reason");
        /* The default: pre-copy that does not converge hands off in hybrid
         * mode instead of freezing for the whole dirty set. */
        if (s->o->mode == EM_MIGRATE_PRECOPY)
                return why != NULL &&
                       strcmp(why, em_stop_reason_name(EM_STOP_NOT_CONVERGING)) == 0 &&
                       s->throttle_pct == 0 && /* --auto-converge throttled instead */
                       s->target_lazy &&       /* else a plain final step, as before */
                       lazy_fits(s);
        if (s->o->mode != EM_MIGRATE_AUTO)
                return false;
        return (why == NULL || strcmp(why, em_stop_reason_name(EM_STOP_FITS_TARGET)) != 0) &&
               lazy_fits(s);
}

struct lazy_source {
        struct em_checkpoint_opts co;
        char server[INET6_ADDRSTRLEN + 8];
        char addr[INET6_ADDRSTRLEN];
        char netns[40]; /* /proc/self/fd/<nsfd>, for runc */
        int port;
        int nsfd;             /* the page server's private namespace (relayed), or -1 */
        int psfd;             /* our connection to the page server, until the relay takes it */
        em_relay_t *relay;    /* CRIU's page traffic over the session (--lazy-pull) */
        em_lazy_push_t *push; /* or our push and urgent answers over the session */
        struct em_lazy_push_plan plan;
        pid_t root;     /* the frozen container's init (host pid) */
        int64_t t_lazy; /* pages started to flow (push or relay started) */
        pid_t runc;     /* runc checkpoint, serving pages until the target has them all */
        bool frozen;    /* the dump is ready: the container is stopped for good here */
        bool pipe_raised;
};

/* --insecure only: the page server listens on the address the target
 * already reaches us at, on a port free right now, and the target's CRIU
 * connects to it directly, in clear. */
static int pick_public(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        cleanup_close int fd = -1;
        bool v6;

        if (getsockname(em_conn_fd(s->conn), (struct sockaddr *)&ss, &len) < 0)
                return em_error_set(err, errno, "local address of the session");
        v6 = ss.ss_family == AF_INET6;
        if (v6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        else
                ((struct sockaddr_in *)&ss)->sin_port = 0;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 ||
            getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return em_error_set(err, errno, "choosing a page server port");
        if (v6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ls->addr,
                          sizeof(ls->addr));
                ls->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ls->addr,
                          sizeof(ls->addr));
                ls->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
        snprintf(ls->server, sizeof(ls->server), v6 ? "[%s]:%d" : "%s:%d", ls->addr, ls->port);
        em_log_warn("post-copy pages will cross the network in clear (--insecure): CRIU's page "
                    "server on %s",
                    ls->server);
        return 0;
}

/* With mutual TLS, the page server listens on 127.0.0.1 of a network
 * namespace of its own, where no other process of this host can reach it,
 * and its traffic goes through the session connection (transfer/relay.h). */
static int pick_server(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        if (s->o->tls == NULL)
                return pick_public(s, ls, err);
        if (em_relay_netns_new(&ls->nsfd, &ls->port, err) < 0)
                return em_error_wrap(err, "lazy page server");
        snprintf(ls->addr, sizeof(ls->addr), "127.0.0.1");
        snprintf(ls->netns, sizeof(ls->netns), "/proc/self/fd/%d", ls->nsfd);
        snprintf(ls->server, sizeof(ls->server), "127.0.0.1:%d", ls->port);
        return 0;
}

/* A dump that failed before it was ready: runc's own error is the useful
 * one, and CRIU has resumed the container. */
static int lazy_dump_failed(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        em_error_t e = NULL;

        if (s->o->ops->checkpoint_finish(s->cfg, s->name, s->images, &ls->co, ls->runc, 1000, &e) <
            0) {
                em_error_free(err);
                em_error_move(err, &e);
        }
        em_error_free(&e);
        ls->runc = 0;
        return em_error_wrap(err, "lazy checkpoint");
}

static int lazy_dump(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        cleanup_close int rd = -1, wr = -1;
        int p[2];

        if (pick_server(s, ls, err) < 0 || em_pipe_max_raise(err) < 0)
                return -1;
        ls->pipe_raised = true;
        if (pipe2(p, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "status pipe");
        rd = p[0], wr = p[1];
        em_checkpoint_opts_init(&ls->co);
        ls->co.lazy_pages = true;
        ls->co.page_server = ls->server;
        ls->co.status_fd = wr;
        ls->co.netns = ls->nsfd >= 0 ? ls->netns : NULL;
        em_report_mark(s->report, "source_stopped");
        if (s->o->ops->checkpoint_start(s->cfg, s->name, s->images, &ls->co, &ls->runc, err) < 0)
                return em_error_wrap(err, "lazy checkpoint");
        close(steal_fd(&wr));
        ls->co.status_fd = -1;
        if (wait_ready(rd, READY_MS, "the lazy checkpoint", err) < 0)
                return lazy_dump_failed(s, ls, err);
        ls->frozen = true;
        em_report_mark(s->report, "checkpoint_done");
        if (s->o->ops->checkpoint_ready(s->cfg, s->name, err) < 0)
                return em_error_wrap(err, "lazy checkpoint");
        /* CRIU's page server serves the first connection only: ours. */
        if (ls->nsfd >= 0 &&
            em_relay_netns_connect(ls->nsfd, ls->port, CONNECT_MS, &ls->psfd, err) < 0)
                return em_error_wrap(err, "lazy checkpoint");
        em_log_info("%s frozen; page server on %s%s", s->name, ls->server,
                    ls->nsfd >= 0 ? " (private namespace, relayed over the session)" : "");
        return 0;
}

/* Lists the lazy pages the target holds already (lazy_known.c). Best
 * effort: without the lists those pages simply come lazily. */
static void list_known_pages(struct source *s, struct lazy_source *ls)
{
        cleanup_free char *status = NULL;
        em_error_t e = NULL;
        uint64_t n = 0;
        int pid = 0;
        int64_t t0 = em_mono_ms();

        if (s->o->ops->state(s->cfg, s->name, &status, &pid, &e) < 0 ||
            (ls->root = pid,
             em_lazy_known_write(s->images, pid, em_sync_state_known(s->sync), &n, &e)) < 0) {
                em_log_warn("not listing known lazy pages: %s", em_error_msg(e));
                em_error_free(&e);
                em_lazy_known_remove(s->images);
                return;
        }
        em_report_set(s->report, "lazy_known_pages", json_integer((json_int_t)n));
        em_report_set(s->report, "lazy_known_scan_ms", json_integer(em_mono_ms() - t0));
}

/* Before FINAL: a push that cannot be planned leaves the pages to CRIU's
 * pull through the relay, as with --lazy-pull. */
static bool plan_push(struct source *s, struct lazy_source *ls)
{
        em_error_t e = NULL;

        if (em_lazy_push_plan(s->images, ls->root, em_sync_state_shadow(s->sync), &ls->plan, &e) ==
            0)
                return true;
        em_log_warn("not pushing lazy pages (CRIU's lazy-pages daemon pulls them): %s",
                    em_error_msg(e));
        em_error_free(&e);
        return false;
}

static int send_final_lazy(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        cleanup_json json_t *digests = json_object(), *final = NULL;
        cleanup_container_paths struct em_container_paths p = {0};
        struct em_sync_stats st = {0};
        int level = em_compress_level(&s->o->compress, s->bandwidth, NULL);
        struct em_conn_stats cs;

        list_known_pages(s, ls);
        em_report_phase_begin(s->report, "final");
        em_monitor_phase(s, "final", s->final_estimate);
        em_conn_stats(s->conn, &cs);
        s->phase_wire0 = cs.wire_out;
        if (em_container_paths_init(s->cfg, s->name, &p, err) < 0 ||
            em_sync_send_upper(s->conn, s->sync, p.upper, false, level, &st, err) < 0 ||
            em_sync_send_images(s->conn, s->sync, s->images, level, digests, &st, err) < 0 ||
            em_logsync_send(s->conn, p.log, s->workdir, level, &st.raw_bytes, err) < 0)
                return em_error_wrap(err, "sending the final state");
        bool push = ls->psfd >= 0 && !s->o->lazy_pull && ls->root > 0 && plan_push(s, ls);
        if (ls->psfd >= 0)
                final = json_pack("{s:O, s:{s:b, s:b}}", "files", digests, "lazy", "relay", 1,
                                  "push", push);
        else
                final = json_pack("{s:O, s:{s:s, s:i}}", "files", digests, "lazy", "address",
                                  ls->addr, "port", ls->port);
        if (final == NULL || em_proto_send_json(s->conn, EM_FRAME_FINAL, final, err) < 0)
                return -1;
        /* From now on the target's CRIU asks for pages; with the push we
         * send them before it asks, from the frozen tasks. */
        if (push && em_lazy_push_begin(s->conn, &ls->plan, level, ls->psfd, &ls->push, err) < 0)
                return em_error_wrap(err, "pushing lazy pages");
        if (!push && ls->psfd >= 0 &&
            em_relay_start(s->conn, steal_fd(&ls->psfd), level, &ls->relay, err) < 0)
                return -1;
        em_report_set(s->report, "lazy_relay", json_boolean(ls->relay != NULL || push));
        em_report_set(s->report, "lazy_push", json_boolean(push));
        em_report_mark(s->report, "lazy_start");
        ls->t_lazy = em_mono_ms();
        em_report_set(s->report, "final_pages_sent", json_integer((json_int_t)st.pages_sent));
        em_source_phase_end(s, "final", st.raw_bytes);
        return 0;
}

/* Page bytes that reached the target (pushed or urgent, not counting
 * duplicates; pulled: every lazy page) per second from the moment pages
 * started to flow (before the restore when pushed) to the last one. */
static void lazy_throughput(struct source *s, struct lazy_source *ls, const json_t *j)
{
        const json_t *serve = json_object_get(j, "serve");
        json_int_t bytes = em_json_int(j, "lazy_pages", 0) * 4096;
        int64_t ms = em_mono_ms() - ls->t_lazy;

        if (json_is_object(serve))
                bytes = (em_json_int(serve, "pushed_pages", 0) +
                         em_json_int(serve, "urgent_pages", 0)) *
                        4096;
        em_report_set(s->report, "lazy_delivered_bytes", json_integer(bytes));
        if (ms > 0)
                em_report_set(s->report, "lazy_throughput_bps",
                              json_integer((json_int_t)(bytes * 8000 / ms)));
}

/* The push's figures (the target's in j: "serve"), then CRIU's page
 * server, which served nothing, is told to end. */
static int push_done(struct source *s, struct lazy_source *ls, const json_t *j, uint64_t *out,
                     em_error_t *err)
{
        struct em_lazy_push_stats st;
        const json_t *serve = json_object_get(j, "serve");

        em_lazy_push_stats(ls->push, &st);
        em_lazy_push_free(&ls->push);
        *out = (st.pushed_pages + st.urgent_pages) * 4096;
        em_report_set(s->report, "lazy_pushed_pages", json_integer((json_int_t)st.pushed_pages));
        em_report_set(s->report, "lazy_urgent_pages", json_integer((json_int_t)st.urgent_pages));
        em_report_set(s->report, "lazy_push_ms", json_integer(st.push_ms));
        if (json_is_object(serve))
                em_report_set(s->report, "lazy_serve", json_deep_copy(serve));
        if (em_lazy_push_close_server(ls->psfd, err) < 0)
                return em_error_wrap(err, "post-copy window");
        close(ls->psfd);
        ls->psfd = -1;
        return 0;
}

/* The target has every page. With the relay, its pages came over the
 * session (counted in bytes_wire, compressed), and both directions of the
 * relay have ended before lazy_done (the target waits for that). */
static int lazy_done(struct source *s, struct lazy_source *ls, const json_t *j, em_error_t *err)
{
        uint64_t out = 0, in = 0;

        if (ls->push != NULL && push_done(s, ls, j, &out, err) < 0)
                return -1;
        em_report_mark(s->report, "lazy_done");
        em_report_set(s->report, "degraded_ms", json_integer(em_json_int(j, "degraded_ms", -1)));
        em_report_set(s->report, "lazy_bytes",
                      json_integer(em_json_int(j, "lazy_pages", 0) * 4096));
        lazy_throughput(s, ls, j);
        if (ls->relay != NULL) {
                if (em_relay_wait(ls->relay, CONNECT_MS, err) < 0)
                        return em_error_wrap(err, "post-copy window");
                em_relay_bytes(ls->relay, &out, &in);
                em_relay_free(&ls->relay);
        }
        em_source_phase_end(s, "lazy", out);
        return 0;
}

/* A control frame in the window: while the relay runs it reads the
 * connection (and hands us the rest); after the target's last relayed byte
 * we read directly again. */
static int window_recv(struct source *s, struct lazy_source *ls, uint16_t type, json_t **out,
                       em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        int rc = 0;

        if (ls->relay != NULL)
                rc = em_relay_recv(ls->relay, &f, s->o->io_timeout_ms, err);
        else if (ls->push != NULL)
                rc = em_lazy_push_recv(ls->push, &f, s->o->io_timeout_ms, err);
        if (rc < 0)
                return em_error_wrap(err, "waiting for %s", em_frame_type_name(type));
        if (rc == 0)
                return em_proto_recv_json(s->conn, type, out, err);
        return em_proto_frame_json(&f, type, out, err);
}

/* Between RESTORE_OK and the last page: the target reports progress every
 * second (which keeps our I/O timeout honest) and then lazy_done. */
static int await_last_page(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        cleanup_json json_t *ok = NULL;

        if (window_recv(s, ls, EM_FRAME_RESTORE_OK, &ok, err) < 0)
                return em_error_wrap(err, "target restore");
        em_report_mark(s->report, "target_running");
        em_source_withdraw(s);
        em_report_target_phases(s->report, json_object_get(ok, "timing"));
        em_report_set(s->report, "lazy_known_used",
                      json_integer(em_json_int(ok, "known_pages", 0)));
        em_report_phase_begin(s->report, "lazy");
        em_monitor_phase(s, "lazy", 0);
        for (;;) {
                cleanup_json json_t *j = NULL;
                if (window_recv(s, ls, EM_FRAME_ROUND_END, &j, err) < 0)
                        return em_error_wrap(err, "post-copy window");
                if (json_is_true(json_object_get(j, "lazy_done")))
                        return lazy_done(s, ls, j, err);
        }
}

static int commit_lazy(struct source *s, struct lazy_source *ls, em_error_t *err)
{
        cleanup_json json_t *ack = NULL;
        em_error_t e = NULL;

        /* All pages are out: CRIU's dump ends now and the tasks are gone. */
        if (s->o->ops->checkpoint_finish(s->cfg, s->name, s->images, &ls->co, ls->runc, 30000, &e) <
            0) {
                em_log_warn("lazy checkpoint did not end cleanly: %s", em_error_msg(e));
                em_error_free(&e);
        }
        ls->runc = 0;
        if (em_conn_send(s->conn, EM_FRAME_DONE, 0, 0, "{}", 2, 0, err) < 0)
                return em_error_wrap(err, "committing");
        s->committed = true;
        if (em_proto_recv_json(s->conn, EM_FRAME_DONE, &ack, &e) < 0) {
                em_log_warn("no commit acknowledgement from the target: %s", em_error_msg(e));
                em_error_free(&e);
        }
        if (s->o->ops->remove(s->cfg, s->name, &e) < 0) {
                em_log_warn("removing the migrated-away %s: %s", s->name, em_error_msg(e));
                em_error_free(&e);
        }
        em_report_mark(s->report, "source_cleaned");
        return 0;
}

/* The window failed after the freeze: the memory only lived in our page
 * server, so the service is lost. Leave nothing half-done here. */
static void lose_source(struct source *s, struct lazy_source *ls)
{
        em_error_t e = NULL;

        em_relay_free(&ls->relay);
        em_lazy_push_free(&ls->push);
        if (ls->runc > 0) {
                kill_group(ls->runc);
                ls->runc = 0;
        }
        if (!ls->frozen)
                return;
        em_log_error("post-copy window failed: %s is lost on both hosts", s->name);
        if (em_container_rm(s->cfg, s->name, true, &e) < 0) {
                em_log_error("removing the frozen %s: %s", s->name, em_error_msg(e));
                em_error_free(&e);
        }
        em_report_set(s->report, "lost", json_true());
        em_report_mark(s->report, "source_cleaned");
}

int em_source_final_lazy(struct source *s, em_error_t *err)
{
        struct lazy_source ls = {.nsfd = -1, .psfd = -1};
        int rc;

        em_report_set(s->report, "final_mode", json_string("lazy"));
        rc = lazy_dump(s, &ls, err);
        if (rc == 0)
                rc = send_final_lazy(s, &ls, err);
        if (rc == 0)
                rc = await_last_page(s, &ls, err);
        if (rc == 0)
                rc = commit_lazy(s, &ls, err);
        if (rc < 0) {
                if (ls.frozen && !s->committed)
                        em_error_wrap(err, "service lost in the post-copy window");
                em_proto_send_abort(s->conn, em_error_msg(*err));
                lose_source(s, &ls);
        }
        em_relay_free(&ls.relay);
        em_lazy_push_free(&ls.push);
        em_lazy_push_plan_free(&ls.plan);
        if (ls.psfd >= 0)
                close(ls.psfd);
        if (ls.nsfd >= 0)
                close(ls.nsfd);
        if (ls.pipe_raised)
                em_pipe_max_release();
        return rc;
}

/* ---- target ---- */

struct lazy_target {
        const char *workdir; /* CRIU's, shared by lazy-pages and restore (its socket) */
        pid_t daemon;        /* criu lazy-pages */
        int64_t t_running;
        bool relayed;     /* pages come through the session (FINAL "lazy": {"relay"}) */
        const char *addr; /* else: the source's page server, in clear (--insecure) */
        int port;
        bool push; /* the source pushes; we serve the daemon (FINAL "lazy": {"push"}) */
        em_relay_t *relay;
        em_lazy_serve_t *serve;
};

/* Where criu lazy-pages gets its pages: relayed, one end of a socketpair
 * (--ps-socket), so no port exists on this side at all; else the source's
 * address. */
static void daemon_argv(const struct em_lazy_target *lt, struct lazy_target *w, int psfd,
                        char bufs[3][16], const char *argv[20])
{
        size_t n = 0;

        argv[n++] = lt->cfg->criu;
        argv[n++] = "lazy-pages";
        argv[n++] = "--page-server";
        if (w->relayed) {
                snprintf(bufs[0], 16, "%d", psfd);
                argv[n++] = "--ps-socket";
                argv[n++] = bufs[0];
        } else {
                snprintf(bufs[0], 16, "%d", w->port);
                argv[n++] = "--address";
                argv[n++] = w->addr;
                argv[n++] = "--port";
                argv[n++] = bufs[0];
        }
        const char *rest[] = {"--images-dir", lt->images, "--work-dir", w->workdir,
                              "--status-fd",  bufs[1],    "-o",         "lazy-pages.log",
                              "-v2",          NULL};
        memcpy(argv + n, rest, sizeof(rest));
}

static int spawn_daemon(const struct em_lazy_target *lt, struct lazy_target *w, int psfd,
                        int *ready_fd, const char *log, em_error_t *err)
{
        cleanup_close int wr = -1;
        char bufs[3][16];
        const char *argv[20];
        struct em_proc_spec spec;
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "status pipe");
        *ready_fd = p[0], wr = p[1];
        int keep[3] = {wr, psfd, -1};
        snprintf(bufs[1], 16, "%d", wr);
        daemon_argv(lt, w, psfd, bufs, argv);
        em_proc_spec_init(&spec, argv);
        spec.keep_fds = keep;
        spec.log_path = log;
        if (em_proc_spawn(&spec, &w->daemon, err) < 0)
                return em_error_wrap(err, "starting criu lazy-pages");
        return 0;
}

/* We are the daemon's page server: pages the source pushes, and urgent
 * requests for the rest. Every page address is checked against the lazy
 * pages of the images as the daemon sees them (after the known pages). */
static int start_serve(const struct em_lazy_target *lt, struct lazy_target *w, int fd,
                       em_error_t *err)
{
        em_lazy_set_t *set = NULL;

        if (em_lazy_set_load(lt->images, &set, err) < 0) {
                close(fd);
                return em_error_wrap(err, "lazy pages");
        }
        if (em_lazy_serve_start(lt->conn, fd, set, w->workdir, &w->serve, err) < 0)
                return em_error_wrap(err, "lazy pages");
        return 0;
}

static int start_lazy_daemon(const struct em_lazy_target *lt, struct lazy_target *w,
                             em_error_t *err)
{
        cleanup_free char *log = em_path_join(w->workdir, "lazy-pages.log");
        cleanup_close int rd = -1, ours = -1, theirs = -1;
        int sv[2];

        if (log == NULL || em_mkdir_p(w->workdir, 0700, err) < 0)
                return em_error_wrap(err, "lazy-pages");
        if (w->relayed) {
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                        return em_error_set(err, errno, "lazy pages socket");
                ours = sv[0], theirs = sv[1];
        }
        if (spawn_daemon(lt, w, theirs, &rd, log, err) < 0)
                return -1;
        if (wait_ready(rd, READY_MS, "criu lazy-pages", err) < 0) {
                cleanup_free char *tail = em_file_tail(log, 8);
                kill_group(w->daemon);
                w->daemon = 0;
                return em_error_wrap(err, "criu lazy-pages (%s): %s", log, tail ? tail : "");
        }
        if (w->push)
                return start_serve(lt, w, steal_fd(&ours), err);
        if (w->relayed && em_relay_start(lt->conn, steal_fd(&ours), 0, &w->relay, err) < 0)
                return em_error_wrap(err, "lazy-pages");
        return 0;
}

/* Kills the restored processes at once: with its page source gone, a
 * faulting process would read zero-filled pages instead of its memory. */
static void kill_restored(const struct em_lazy_target *lt)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *status = NULL;
        em_error_t e = NULL;
        int pid = 0;

        if (em_container_paths_init(lt->cfg, lt->container, &p, &e) == 0 &&
            em_runc_state(lt->cfg, &p, lt->container, &status, &pid, &e) == 0 && pid > 0)
                kill(pid, SIGKILL);
        em_error_free(&e);
}

/* Bytes and syscalls the lazy-pages daemon has read: grows while pages
 * arrive. */
static long long proc_io(pid_t pid)
{
        char path[64], line[128];
        long long v, sum = 0;

        snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
                if (sscanf(line, "rchar: %lld", &v) == 1 || sscanf(line, "syscr: %lld", &v) == 1)
                        sum += v;
        }
        return sum;
}

/* A frame from the source in the window can only be its ABORT (or EOF). */
static int check_source(const struct em_lazy_target *lt, em_error_t *err)
{
        struct pollfd p = {.fd = em_conn_fd(lt->conn), .events = POLLIN};
        cleanup_frame struct em_frame f = {0};

        if (poll(&p, 1, 0) <= 0)
                return 0;
        if (em_proto_recv(lt->conn, &f, err) < 0)
                return em_error_wrap(err, "source");
        return em_error_set(err, EPROTO, "protocol error: %s during the post-copy window",
                            em_frame_type_name(f.hdr.type));
}

static int send_note(const struct em_lazy_target *lt, bool done, long long a, long long ms,
                     em_error_t *err)
{
        char buf[128];
        int n =
            done ? snprintf(buf, sizeof(buf),
                            "{\"lazy_done\":true,\"lazy_pages\":%lld,\"degraded_ms\":%lld}", a, ms)
                 : snprintf(buf, sizeof(buf), "{\"lazy_progress\":%lld,\"ms\":%lld}", a, ms);

        return em_conn_send(lt->conn, EM_FRAME_ROUND_END, 0, 0, buf, (size_t)n, 0, err);
}

/* lazy_done with what the push delivered and how long faults waited. */
static int send_serve_done(const struct em_lazy_target *lt, struct lazy_target *w, long long pages,
                           long long ms, em_error_t *err)
{
        struct em_lazy_serve_stats st;

        em_lazy_serve_stats(w->serve, &st);
        cleanup_json json_t *j = json_pack(
            "{s:b, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I}}",
            "lazy_done", 1, "lazy_pages", (json_int_t)pages, "degraded_ms", (json_int_t)ms, "serve",
            "pushed_pages", (json_int_t)st.pushed_pages, "urgent_pages",
            (json_int_t)st.urgent_pages, "dup_pages", (json_int_t)st.dup_pages, "served_pages",
            (json_int_t)st.served_pages, "requests", (json_int_t)st.requests, "waited",
            (json_int_t)st.waited, "asks", (json_int_t)st.asks, "asked_again",
            (json_int_t)st.asked_again, "wait_p50_ms", st.wait_p50_ms, "wait_p99_ms",
            st.wait_p99_ms, "wait_max_ms", st.wait_max_ms, "push_done_ms",
            (json_int_t)st.push_done_ms);

        if (j == NULL)
                return em_error_set(err, ENOMEM, "lazy_done");
        return em_proto_send_json(lt->conn, EM_FRAME_ROUND_END, j, err);
}

/* 1 once criu lazy-pages exited 0 (every page is here), 0 while it runs. */
static int daemon_state(struct lazy_target *w, em_error_t *err)
{
        int status;

        if (w->daemon == 0)
                return 1;
        if (waitpid(w->daemon, &status, WNOHANG) != w->daemon)
                return 0;
        w->daemon = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 1;
        return em_error_set(err, EIO, "criu lazy-pages failed (status 0x%x)", status);
}

/* 1 once the relay has ended both ways (nothing more can come). A frame
 * from the source in the window can only be its ABORT (or a protocol
 * error). Not relayed: the source's frames come on the connection. */
static int source_state(const struct em_lazy_target *lt, struct lazy_target *w, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        int rc;

        if (w->serve != NULL)
                rc = em_lazy_serve_recv(w->serve, &f, 0, err);
        else if (w->relay == NULL)
                return check_source(lt, err) < 0 ? -1 : 1;
        else
                rc = em_relay_poll(w->relay, &f, err);
        /* The page server's errors name their side (the source, or criu
         * lazy-pages) themselves. */
        if (rc < 0)
                return w->serve != NULL ? -1 : em_error_wrap(err, "source");
        if (rc == 0)
                return w->serve ? em_lazy_serve_finished(w->serve, err)
                                : em_relay_finished(w->relay, err);
        if (em_proto_frame_check(&f, err) < 0)
                return em_error_wrap(err, "source");
        return em_error_set(err, EPROTO, "protocol error: %s during the post-copy window",
                            em_frame_type_name(f.hdr.type));
}

/* What grows while pages arrive: the relayed bytes, or what the daemon has
 * read from its own connection. */
static long long progress(struct lazy_target *w)
{
        uint64_t out = 0, in = 0;

        if (w->serve != NULL)
                return (long long)em_lazy_serve_progress(w->serve);
        if (w->relay == NULL)
                return w->daemon > 0 ? proc_io(w->daemon) : 0;
        em_relay_bytes(w->relay, &out, &in);
        return (long long)(out + in);
}

static void wait_event(const struct em_lazy_target *lt, struct lazy_target *w, int pidfd)
{
        struct pollfd p[3];
        nfds_t n = 0;

        if (w->serve != NULL)
                p[n++] = (struct pollfd){.fd = em_lazy_serve_event_fd(w->serve), .events = POLLIN};
        else if (w->relay != NULL)
                p[n++] = (struct pollfd){.fd = em_relay_event_fd(w->relay), .events = POLLIN};
        else
                p[n++] = (struct pollfd){.fd = em_conn_fd(lt->conn), .events = POLLIN};
        /* Wakes us the moment the daemon exits: degraded_ms is exact. */
        if (w->daemon > 0 && pidfd >= 0)
                p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        poll(p, n, TICK_MS);
}

/* Nothing moved for the I/O timeout. With the push, say which side
 * stalled: a daemon with every request answered that asks for nothing
 * more has stopped fetching (the source owes nothing then). */
static int window_stalled(struct lazy_target *w, int timeout_ms, em_error_t *err)
{
        int64_t idle = w->serve != NULL ? em_lazy_serve_daemon_idle_ms(w->serve) : -1;

        if (idle < 0)
                return em_error_set(err, ETIMEDOUT, "no page arrived for %d ms", timeout_ms);
        return em_error_set(err, ETIMEDOUT,
                            "criu lazy-pages stalled: it asked for nothing for %lld ms with every "
                            "request answered, yet has not finished (docs/postcopy.md, \"Known "
                            "problems\")",
                            (long long)idle);
}

/* Until criu lazy-pages exited 0 and the relay ended: 0 then. */
static int watch_window(const struct em_lazy_target *lt, struct lazy_target *w, em_error_t *err)
{
        long long last = -1, io;
        int64_t last_change = em_mono_ms();
        cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, w->daemon, 0);

        for (;;) {
                int d = daemon_state(w, err), src = d < 0 ? -1 : source_state(lt, w, err);
                if (d < 0 || src < 0)
                        return -1;
                if (d == 1 && src == 1)
                        return 0;
                io = progress(w);
                if (io != last) {
                        last = io;
                        last_change = em_mono_ms();
                } else if (em_mono_ms() - last_change > lt->io_timeout_ms) {
                        return window_stalled(w, lt->io_timeout_ms, err);
                }
                if (send_note(lt, false, io, (long long)(em_mono_ms() - w->t_running), err) < 0)
                        return -1;
                wait_event(lt, w, pidfd);
        }
}

int em_lazy_final_check(const em_conn_t *conn, const json_t *final, em_error_t *err)
{
        const json_t *lazy = json_object_get(final, "lazy");

        if (lazy == NULL || json_is_true(json_object_get(lazy, "relay")) || !em_tls_conn(conn))
                return 0;
        return em_error_set(
            err, EACCES,
            "plaintext lazy pages refused: the source asked this mutually authenticated "
            "session to fetch memory from its page server in clear; only `edgemig migrate "
            "--insecure` to an `edgemigd --insecure` may do that (update the source's "
            "edgemig, which relays pages over the session)");
}

/* FINAL's "lazy": {"relay": true} (pages through this session), or the
 * source's page server address (pages in clear, only on a plain session:
 * em_lazy_final_check). */
static int parse_lazy(const struct em_lazy_target *lt, const json_t *final, struct lazy_target *w,
                      em_error_t *err)
{
        const json_t *lazy = json_object_get(final, "lazy");
        unsigned char buf[sizeof(struct in6_addr)];

        if (em_lazy_final_check(lt->conn, final, err) < 0)
                return -1;
        if (json_is_true(json_object_get(lazy, "relay"))) {
                w->relayed = true;
                w->push = json_is_true(json_object_get(lazy, "push"));
                return 0;
        }
        w->addr = em_json_str(lazy, "address");
        w->port = (int)em_json_int(lazy, "port", 0);
        if (w->addr == NULL || w->port <= 0 || w->port > 65535 ||
            (inet_pton(AF_INET, w->addr, buf) != 1 && inet_pton(AF_INET6, w->addr, buf) != 1))
                return em_error_set(err, EPROTO, "protocol error: bad lazy page server address");
        return 0;
}

static int restore_and_watch(const struct em_lazy_target *lt, const json_t *final,
                             struct lazy_target *w, em_error_t *err)
{
        struct em_restore_opts ro;
        const char *ip = em_json_str(lt->spec, "ip");
        uint64_t known = 0, lazy = 0;
        int64_t t0 = em_mono_ms();

        if (parse_lazy(lt, final, w, err) < 0)
                return -1;
        if (em_lazy_known_apply(lt->images, lt->cache_dir, &known, err) < 0 ||
            em_lazy_pages_count(lt->images, &lazy, err) < 0 || start_lazy_daemon(lt, w, err) < 0)
                return -1;
        em_restore_opts_init(&ro);
        ro.lazy_pages = true;
        ro.work_dir = w->workdir;
        cleanup_free char *log = em_path_join(lt->staging, EM_LOGSYNC_NAME);
        ro.prior_log = log != NULL && em_path_exists(log) ? log : NULL;
        if (restore_lazy(lt, &ro, err) < 0)
                return em_error_wrap(err, "restoring %s with lazy pages", lt->container);
        *lt->restored = true;
        w->t_running = em_mono_ms();
        json_int_t restore_ms = w->t_running - t0;
        em_log_info("session %s: %s running, pages follow %s%s", lt->session, lt->container,
                    w->relayed ? "over the session" : "in clear from ", w->relayed ? "" : w->addr);
        if (ip != NULL && em_session_route_hook(lt->route_hook, "announce", ip, err) < 0)
                return -1;
        cleanup_json json_t *ok =
            json_pack("{s:b, s:b, s:I, s:{s:I, s:I}}", "ok", 1, "lazy", 1, "known_pages",
                      (json_int_t)known, "timing", "restore_ms", restore_ms, "route_ms",
                      (json_int_t)(em_mono_ms() - w->t_running));
        if (em_proto_send_json(lt->conn, EM_FRAME_RESTORE_OK, ok, err) < 0 ||
            watch_window(lt, w, err) < 0)
                return -1;
        long long ms = em_mono_ms() - w->t_running;
        em_log_info("session %s: last page of %s arrived after %lld ms", lt->session, lt->container,
                    ms);
        if (w->serve != NULL)
                return send_serve_done(lt, w, (long long)lazy, ms, err);
        return send_note(lt, true, (long long)lazy, ms, err);
}

int em_target_restore_lazy(const struct em_lazy_target *lt, const json_t *final, em_error_t *err)
{
        cleanup_free char *work = em_path_join(lt->staging, "lazy-work");
        struct lazy_target w = {.workdir = work};
        int rc;

        if (work == NULL)
                return em_error_set(err, ENOMEM, "post-copy");
        if (em_pipe_max_raise(err) < 0)
                return -1;
        rc = restore_and_watch(lt, final, &w, err);
        if (rc < 0) {
                if (*lt->restored)
                        kill_restored(lt);
                if (w.daemon > 0)
                        kill_group(w.daemon);
                em_error_wrap(err, "post-copy window");
        }
        em_relay_free(&w.relay);
        em_lazy_serve_free(&w.serve);
        em_pipe_max_release();
        return rc;
}
