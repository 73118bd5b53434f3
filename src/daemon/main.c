/* edgemigd: the per-host daemon that receives migrations. It accepts
 * sessions and serves each in a forked child, so one hostile or broken peer
 * can never take the daemon (or another migration) down, and a migrated
 * container is picked up without any restart. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/features.h"
#include "migrate/control.h"
#include "migrate/journal.h"
#include "migrate/migrate.h"
#include "migrate/proto.h"
#include "migrate/report.h"
#include "platform/edge_agent.h"
#include "transfer/conn.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/json.h"
#include "util/log.h"
#include "util/version.h"

static volatile sig_atomic_t stop_requested;
/* The edge agent (registration + heartbeats) runs in its own process. */
static pid_t agent_pid;
static int64_t agent_next_ms;

static void on_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static const char usage[] =
    "Usage: edgemigd --tls-cert FILE --tls-key FILE --tls-ca FILE [OPTIONS]\n"
    "       edgemigd --insecure [OPTIONS]\n"
    "\n"
    "The edgemig host daemon. One runs per edge host; it receives migrations\n"
    "(`edgemig migrate NAME --to ADDR:PORT` on the source) and restores the\n"
    "containers they carry, without disturbing other containers on this host.\n"
    "Each session is served in its own child process. With --controller it\n"
    "also registers this edge with the platform controller, heartbeats its\n"
    "metrics, and runs the migrations the controller requests\n"
    "(--allow-controller).\n"
    "\n"
    "Options:\n"
    "  --root DIR            state root (default $EDGEMIG_ROOT or /var/lib/edgemig)\n"
    "  --listen ADDR:PORT    address to accept migrations and control requests on\n"
    "                        (default 0.0.0.0:7878)\n"
    "  --tls-cert FILE       this host's certificate (`edgemig ca issue NAME`)\n"
    "  --tls-key FILE        its private key\n"
    "  --tls-ca FILE         the platform CA's certificate (ca.crt). With these\n"
    "                        three, peers must complete mutual TLS 1.3 with a\n"
    "                        certificate signed by this CA before anything else;\n"
    "                        refused attempts are logged with the peer address\n"
    "  --allow-peer NAME     accept only peers whose certificate names NAME (SAN\n"
    "                        DNS/URI or CN); repeatable. Default: any certificate\n"
    "                        signed by the CA (logged as a warning)\n"
    "  --insecure            accept plain, unauthenticated TCP instead of TLS:\n"
    "                        only on a trusted (test) network\n"
    "  --service-cidr A.B.C.D/N\n"
    "                        accept incoming containers only with a service IP in\n"
    "                        this range (repeatable; default 10.88.0.0/16): the\n"
    "                        IP becomes a host route here\n"
    "  --registry HOST:PORT  pull missing image layers from this registry first\n"
    "                        (HTTPS), whatever registry the peer's image name\n"
    "                        names, by the manifest digest the peer sent\n"
    "  --registry-insecure   the registry speaks plain HTTP (loopback)\n"
    "  --io-timeout SECONDS  drop a session whose peer makes no progress for this\n"
    "                        long (default 120); what it staged is rolled back\n"
    "  --route-hook PATH     run `PATH announce SERVICE_IP` after a restore, to\n"
    "                        move the service IP's route to this host (also after\n"
    "                        a controller-requested migration rolls back here)\n"
    "\n"
    "Platform (docs/platform.md):\n"
    "  --controller URL      register with the controller at URL\n"
    "                        (https://HOST:PORT; its certificate must name HOST)\n"
    "                        and heartbeat to it, from a separate process: a\n"
    "                        controller that is down is retried with backoff and\n"
    "                        never delays a session. The client certificate is\n"
    "                        --tls-cert/--tls-key\n"
    "  --edge-name NAME      this edge's name (default: this host's certificate\n"
    "                        name, which is how the controller verifies it)\n"
    "  --location X,Y        its coordinates for the scheduler (default 0,0)\n"
    "  --capacity N          services it accepts (default 4)\n"
    "  --advertise ADDR:PORT address peers and the controller dial (default the\n"
    "                        --listen address, which must then not be a wildcard)\n"
    "  --heartbeat-interval SECONDS\n"
    "                        metrics period (default 5): CPU load, memory,\n"
    "                        running containers, live sessions, measured\n"
    "                        bandwidth to peers\n"
    "  --allow-controller NAME\n"
    "                        accept migrate/prepare requests from a peer whose\n"
    "                        certificate names NAME (repeatable); nobody else,\n"
    "                        peer edges included, may command migrations. The\n"
    "                        migration runs here with this daemon's certificate\n"
    "  --log-level LEVEL     error, warn, info (default) or debug\n"
    "  --log-format FORMAT   text (default) or json\n"
    "  -h, --help            this help\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop accepting and stop the heartbeats; sessions in\n"
    "flight finish or roll back under their own rules.\n"
    "\n"
    "Example (edge h2 of a platform whose controller holds certificate\n"
    "\"controller\"):\n"
    "  edgemigd --listen 10.77.2.2:7878 --tls-ca ca.crt --tls-cert h2.crt \\\n"
    "      --tls-key h2.key --allow-peer h1 --allow-peer h3 \\\n"
    "      --controller https://10.77.100.1:7880 --location 100,0 --capacity 4 \\\n"
    "      --allow-controller controller\n";

struct daemon_opts {
        const char *root, *listen;
        bool insecure;
        const char *tls_cert, *tls_key, *tls_ca;
        const char **allow; /* NULL-terminated --allow-peer names */
        size_t n_allow;
        const char **controllers; /* NULL-terminated --allow-controller names */
        size_t n_controllers;
        const char **handshake_allow; /* the TLS allow-list: peers and controllers */
        struct em_target_opts target;
        struct em_edge_agent_opts agent;
};

/* Appends to a NULL-terminated list sized for argc entries. */
static int list_add(const char ***list, size_t *n, int argc, const char *v)
{
        if (*list == NULL)
                *list = calloc((size_t)argc + 1, sizeof(char *));
        if (*list == NULL)
                return -1;
        (*list)[(*n)++] = v;
        return 0;
}

static int parse_args(int argc, char **argv, struct daemon_opts *o)
{
        static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                             {"listen", required_argument, NULL, 'L'},
                                             {"insecure", no_argument, NULL, 'I'},
                                             {"tls-cert", required_argument, NULL, 'C'},
                                             {"tls-key", required_argument, NULL, 'K'},
                                             {"tls-ca", required_argument, NULL, 'A'},
                                             {"allow-peer", required_argument, NULL, 'P'},
                                             {"registry", required_argument, NULL, 'R'},
                                             {"service-cidr", required_argument, NULL, 'V'},
                                             {"registry-insecure", no_argument, NULL, 'S'},
                                             {"route-hook", required_argument, NULL, 'H'},
                                             {"io-timeout", required_argument, NULL, 'T'},
                                             {"log-level", required_argument, NULL, 'l'},
                                             {"log-format", required_argument, NULL, 'f'},
                                             {"controller", required_argument, NULL, 'c'},
                                             {"edge-name", required_argument, NULL, 'n'},
                                             {"location", required_argument, NULL, 'x'},
                                             {"capacity", required_argument, NULL, 'k'},
                                             {"advertise", required_argument, NULL, 'a'},
                                             {"heartbeat-interval", required_argument, NULL, 'i'},
                                             {"allow-controller", required_argument, NULL, 'O'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        struct em_log_opts lo = EM_LOG_OPTS_INIT;
        char msg[160];
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        o->root = optarg;
                        break;
                case 'L':
                        o->listen = optarg;
                        break;
                case 'I':
                        o->insecure = true;
                        break;
                case 'C':
                        o->tls_cert = optarg;
                        break;
                case 'K':
                        o->tls_key = optarg;
                        break;
                case 'A':
                        o->tls_ca = optarg;
                        break;
                case 'P':
                        if (list_add(&o->allow, &o->n_allow, argc, optarg) < 0)
                                return 2;
                        break;
                case 'O':
                        if (list_add(&o->controllers, &o->n_controllers, argc, optarg) < 0)
                                return 2;
                        break;
                case 'c':
                        o->agent.controller = optarg;
                        break;
                case 'n':
                        o->agent.name = optarg;
                        break;
                case 'x': {
                        cleanup_error em_error_t e = NULL;
                        if (em_edge_location_parse(optarg, &o->agent.x, &o->agent.y, &e) < 0) {
                                fprintf(stderr, "edgemigd: %s\n", em_error_msg(e));
                                return 2;
                        }
                        break;
                }
                case 'k':
                        o->agent.capacity = atoi(optarg);
                        if (o->agent.capacity < 0 ||
                            strspn(optarg, "0123456789") != strlen(optarg)) {
                                fprintf(stderr, "edgemigd: --capacity takes N >= 0\n");
                                return 2;
                        }
                        break;
                case 'a':
                        o->agent.advertise = optarg;
                        break;
                case 'i':
                        o->agent.interval_s = atoi(optarg);
                        if (o->agent.interval_s < 1) {
                                fprintf(stderr,
                                        "edgemigd: --heartbeat-interval takes SECONDS >= 1\n");
                                return 2;
                        }
                        break;
                case 'R':
                        o->target.registry = optarg;
                        if (strchr(optarg, '/') != NULL || *optarg == '\0') {
                                fprintf(stderr, "edgemigd: --registry takes HOST[:PORT], not a "
                                                "URL (HTTPS unless --registry-insecure)\n");
                                return 2;
                        }
                        break;
                case 'V': {
                        cleanup_error em_error_t e = NULL;
                        if (em_policy_add_cidr(&o->target.policy, optarg, &e) < 0) {
                                fprintf(stderr, "edgemigd: --service-cidr: %s\n", em_error_msg(e));
                                return 2;
                        }
                        break;
                }
                case 'S':
                        o->target.registry_insecure = true;
                        break;
                case 'H':
                        o->target.route_hook = optarg;
                        break;
                case 'T':
                        o->target.io_timeout_ms = atoi(optarg) * 1000;
                        if (o->target.io_timeout_ms <= 0) {
                                fprintf(stderr, "edgemigd: --io-timeout takes SECONDS >= 1\n");
                                return 2;
                        }
                        break;
                case 'l':
                case 'f':
                        if (em_log_opt_parse(&lo, c == 'l' ? "log-level" : "log-format", optarg,
                                             msg, sizeof(msg)) < 0) {
                                fprintf(stderr, "edgemigd: %s\n", msg);
                                return 2;
                        }
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        fputs(usage, stderr);
                        return 2;
                }
        }
        em_log_setup(lo.level, lo.json, 2, "edgemigd");
        return 0;
}

/* Finishes or rolls back what a dead session (pid; 0: any dead one) left. */
static void recover(const struct em_config *cfg, pid_t pid)
{
        cleanup_error em_error_t err = NULL;

        if (em_migrate_target_recover(cfg, pid, &err) < 0)
                em_log_error("recovering sessions: %s", em_error_msg(err));
        /* Outgoing migrations of a crashed `edgemig migrate` on this host. */
        if (pid == 0 && em_migrate_source_recover(cfg, &err) < 0)
                em_log_error("recovering outgoing migrations: %s", em_error_msg(err));
}

static void reap_children(const struct em_config *cfg)
{
        struct rusage ru;
        int status;
        pid_t pid;

        /* wait4: each session's CPU seconds and peak RSS (its own and those of
         * the runc/CRIU it waited for), logged as one JSON object after
         * "rusage=" for benchmarks. */
        while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
                if (pid == agent_pid) {
                        em_log_warn(
                            "edge agent %d exited (status %d); restarting it in 5 s", (int)pid,
                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                        agent_pid = 0;
                        agent_next_ms = em_mono_ms() + 5000;
                        continue;
                }
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                cleanup_json json_t *use = em_rusage_json(&ru, NULL);
                cleanup_free char *txt = NULL;

                if (use && json_object_set_new(use, "pid", json_integer(pid)) == 0 &&
                    json_object_set_new(use, "status", json_integer(code)) == 0)
                        txt = json_dumps(use, JSON_COMPACT);
                if (code == 0) {
                        em_log_info("session %d finished rusage=%s", (int)pid, txt ? txt : "{}");
                        continue;
                }
                em_log_warn("session %d failed (status %d) rusage=%s", (int)pid, code,
                            txt ? txt : "{}");
                recover(cfg, pid);
        }
}

/* In the child: serve one session and exit. */
static int serve_session(const struct em_config *cfg, em_conn_t *conn,
                         const struct em_target_opts *to)
{
        cleanup_error em_error_t err = NULL;

        em_log_info("session from %s", em_conn_peer(conn));
        if (em_migrate_target_serve(cfg, conn, to, &err) < 0) {
                em_log_error("session from %s: %s", em_conn_peer(conn), em_error_msg(err));
                return 1;
        }
        return 0;
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

/* In the child: the first frame says what the peer wants. HELLO: an
 * incoming migration, from a peer edge (--allow-peer). CONTROL: the
 * controller asks this edge to migrate or prepare one of its containers
 * (--allow-controller only). */
static int serve_connection(const struct em_config *cfg, em_conn_t *conn, const char *peer,
                            const struct daemon_opts *o)
{
        cleanup_error em_error_t err = NULL;
        cleanup_frame struct em_frame f = {0};
        int r = em_conn_recv(conn, &f, &err);

        if (r <= 0) {
                em_log_warn("connection from %s: no request (%s)", em_conn_peer(conn),
                            r == 0 ? "closed" : em_error_msg(err));
                return 1;
        }
        if (f.hdr.type == EM_FRAME_CONTROL) {
                struct em_control_server cs = {
                    .allow_controllers = o->controllers,
                    .tls_cert = o->tls_cert,
                    .tls_key = o->tls_key,
                    .tls_ca = o->tls_ca,
                    .allow_peers = o->allow,
                    .route_hook = o->target.route_hook,
                    .io_timeout_ms = o->target.io_timeout_ms,
                };
                if (em_control_serve(cfg, conn, peer, &f, &cs, &err) < 0) {
                        em_log_error("%s", em_error_msg(err));
                        return 1;
                }
                return 0;
        }
        /* The handshake admitted controllers too: they may not push containers. */
        if (peer != NULL && o->n_allow > 0 && !em_control_allowed(peer, o->allow)) {
                em_log_warn("refused session from %s ('%s'): not an allowed peer (--allow-peer)",
                            em_conn_peer(conn), peer);
                em_proto_send_abort(conn, "this certificate may not send migrations here "
                                          "(not an --allow-peer name)");
                return 1;
        }
        if (em_conn_unrecv(conn, &f, &err) < 0) {
                em_log_error("%s", em_error_msg(err));
                return 1;
        }
        return serve_session(cfg, conn, &o->target);
}

static void agent_start(const struct em_config *cfg, const struct daemon_opts *o, int lfd)
{
        pid_t pid;

        if (o->agent.controller == NULL || agent_pid > 0 || em_mono_ms() < agent_next_ms)
                return;
        pid = fork();
        if (pid < 0) {
                em_log_error("starting the edge agent: fork: %s", strerror(errno));
                agent_next_ms = em_mono_ms() + 5000;
                return;
        }
        if (pid == 0) {
                cleanup_error em_error_t err = NULL;
                close(lfd);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() == 1)
                        _exit(0);
                int rc = em_edge_agent_run(cfg, &o->agent, &stop_requested, &err);
                if (rc < 0)
                        em_log_error("edge agent: %s", em_error_msg(err));
                _exit(rc < 0 ? 1 : 0);
        }
        agent_pid = pid;
}

static void agent_stop(void)
{
        if (agent_pid <= 0)
                return;
        kill(agent_pid, SIGTERM);
        waitpid(agent_pid, NULL, 0);
        agent_pid = 0;
}

static int accept_loop(const struct em_config *cfg, int lfd, const struct daemon_opts *o,
                       em_tls_ctx_t *tls)
{
        while (!stop_requested) {
                cleanup_error em_error_t err = NULL;
                cleanup_conn em_conn_t *conn = NULL;

                reap_children(cfg);
                agent_start(cfg, o, lfd);
                if (em_tcp_accept(lfd, 500, &conn, &err) < 0) {
                        if (em_error_status(err) == ETIMEDOUT || em_error_status(err) == EINTR)
                                continue;
                        em_log_warn("accept: %s", em_error_msg(err));
                        continue;
                }
                pid_t pid = fork();
                if (pid < 0) {
                        em_log_error("fork: %s", strerror(errno));
                        continue;
                }
                if (pid == 0) {
                        close(lfd);
                        signal(SIGTERM, SIG_DFL);
                        signal(SIGINT, SIG_DFL);
                        cleanup_free char *peer = NULL;
                        if (tls != NULL && authenticate(tls, &conn, &peer) < 0)
                                _exit(3);
                        _exit(serve_connection(cfg, conn, peer, o));
                }
        }
        return 0;
}

/* Mutual TLS with the three files, plain TCP only with --insecure. */
static int tls_setup(struct daemon_opts *o, em_tls_ctx_t **tls)
{
        cleanup_error em_error_t err = NULL;
        bool any = o->tls_cert || o->tls_key || o->tls_ca;

        if (o->insecure && (any || o->allow || o->controllers)) {
                fprintf(stderr, "edgemigd: --insecure excludes --tls-*, --allow-peer and "
                                "--allow-controller (control requests need mutual TLS)\n");
                return -1;
        }
        /* With an allow-list, the handshake admits peers and controllers;
         * what each may ask for is checked on the first frame. */
        if (o->n_allow > 0) {
                o->handshake_allow = calloc(o->n_allow + o->n_controllers + 1, sizeof(char *));
                if (o->handshake_allow == NULL)
                        return -1;
                memcpy(o->handshake_allow, o->allow, o->n_allow * sizeof(char *));
                if (o->n_controllers)
                        memcpy(o->handshake_allow + o->n_allow, o->controllers,
                               o->n_controllers * sizeof(char *));
        }
        struct em_tls_config tc = {o->tls_ca, o->tls_cert, o->tls_key, o->handshake_allow};
        if (o->insecure)
                return 0;
        if (!o->tls_cert || !o->tls_key || !o->tls_ca) {
                fprintf(stderr, "edgemigd: peers must authenticate: pass --tls-cert FILE "
                                "--tls-key FILE --tls-ca FILE (mutual TLS; `edgemig ca` makes "
                                "them), or --insecure for plain TCP on a trusted test network\n");
                return -1;
        }
        if (em_tls_ctx_new(&tc, true, tls, &err) < 0) {
                fprintf(stderr, "edgemigd: %s\n", em_error_msg(err));
                return -1;
        }
        if (em_tls_ctx_allows_any(*tls))
                em_log_warn("mutual TLS as '%s': no --allow-peer, so any certificate signed by "
                            "%s is accepted",
                            em_tls_ctx_name(*tls), o->tls_ca);
        for (size_t i = 0; i < o->n_allow; i++)
                em_log_info("mutual TLS as '%s': allowing peer '%s'", em_tls_ctx_name(*tls),
                            o->allow[i]);
        for (size_t i = 0; i < o->n_controllers; i++)
                em_log_info("mutual TLS as '%s': allowing controller '%s' (migrate/prepare "
                            "requests)",
                            em_tls_ctx_name(*tls), o->controllers[i]);
        return 0;
}

/* --controller: the agent's defaults come from the TLS identity and
 * --listen; checked before anything starts. */
static int agent_setup(struct daemon_opts *o, const em_tls_ctx_t *tls)
{
        cleanup_error em_error_t err = NULL;
        struct em_edge_agent_opts *a = &o->agent;

        if (a->controller == NULL)
                return 0;
        a->tls_cert = o->tls_cert;
        a->tls_key = o->tls_key;
        a->tls_ca = o->tls_ca;
        if (a->name == NULL && tls != NULL)
                a->name = em_tls_ctx_name(tls);
        if (a->advertise == NULL)
                a->advertise = o->listen;
        if (em_edge_agent_check(a, &err) < 0) {
                fprintf(stderr, "edgemigd: %s\n", em_error_msg(err));
                return -1;
        }
        return 0;
}

static void opts_free(struct daemon_opts *o)
{
        free(o->allow);
        free(o->controllers);
        free(o->handshake_allow);
}

/* Probes (or loads the cached) host features before any session, so that
 * handshakes answer at once and a host that cannot restore refuses to serve. */
static int probe_host(const struct em_config *cfg)
{
        cleanup_features struct em_features *f = NULL;
        cleanup_error em_error_t err = NULL;

        if (em_features_probe(cfg, true, &f, &err) < 0) {
                em_log_error("probing host features: %s", em_error_msg(err));
                return -1;
        }
        if (!em_features_can_migrate(f)) {
                em_log_error("this host cannot restore containers; run `edgemig --root %s check` "
                             "for the reason",
                             cfg->root);
                return -1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct daemon_opts o = {.listen = "0.0.0.0:7878"};
        cleanup_error em_error_t err = NULL;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        struct em_config cfg;
        int lfd = -1, rc;

        em_target_opts_init(&o.target);
        em_edge_agent_opts_init(&o.agent);
        rc = parse_args(argc, argv, &o);
        if (rc != 0) {
                opts_free(&o);
                return rc == 1 ? 0 : rc;
        }
        if (tls_setup(&o, &tls) < 0 || agent_setup(&o, tls) < 0) {
                opts_free(&o);
                return 2;
        }
        if (em_config_init(&cfg, o.root, &err) < 0) {
                em_log_error("%s", em_error_msg(err));
                opts_free(&o);
                return 1;
        }
        if (probe_host(&cfg) < 0) {
                em_config_free(&cfg);
                opts_free(&o);
                return 1;
        }
        recover(&cfg, 0); /* sessions of a previous edgemigd that died */
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        if (em_tcp_listen(o.listen, 16, &lfd, &err) < 0) {
                em_log_error("listening on %s: %s", o.listen, em_error_msg(err));
                em_config_free(&cfg);
                opts_free(&o);
                return 1;
        }
        if (tls == NULL)
                em_log_warn("accepting unauthenticated plain TCP (--insecure)");
        em_log_info("edgemigd %s ready (root %s, listen %s)", EM_VERSION, cfg.root, o.listen);
        accept_loop(&cfg, lfd, &o, tls);
        close(lfd);
        em_log_info("edgemigd stopping");
        agent_stop();
        reap_children(&cfg);
        em_config_free(&cfg);
        opts_free(&o);
        return 0;
}
