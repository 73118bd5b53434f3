/* edgemigd: the per-host daemon that receives migrations. It parses its
 * options and runs the edge's server (platform/server.h): sessions are served
 * in forked children, and with --controller an edge agent process registers
 * and heartbeats. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/target/policy.h"
#include "platform/server.h"
#include "util/cleanup.h"
#include "util/conffile.h"
#include "util/config.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/opts.h"
#include "util/version.h"

static volatile sig_atomic_t stop_requested;

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
    "  --config FILE         read options from FILE first, one `key = value` a line\n"
    "                        named after the long options (default\n"
    "                        " EM_CONF_EDGEMIGD " if it exists; `none`:\n"
    "                        no file); the command line wins\n"
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
    "  --metrics-listen ADDR:PORT\n"
    "                        serve Prometheus GET /metrics here, behind the same\n"
    "                        mutual TLS (plain HTTP with --insecure): migrations\n"
    "                        by result, handoff/downtime histograms, bytes,\n"
    "                        sessions in flight, build info (docs/deploy.md)\n"
    "  --allow-scraper NAME  with --allow-peer: a certificate name that may also\n"
    "                        connect, for /metrics only; repeatable\n"
    "  --service-cidr A.B.C.D/N\n"
    "                        accept incoming containers only with a service IP in\n"
    "                        this range (repeatable; default 10.66.0.0/16): the\n"
    "                        IP becomes a host route here\n"
    "  --registry HOST:PORT  pull missing image layers from this registry first\n"
    "                        (HTTPS), whatever registry the peer's image name\n"
    "                        names, by the manifest digest the peer sent\n"
    "  --registry-http       the registry speaks plain HTTP (a loopback one)\n"
    "  --registry-tls-verify BOOL\n"
    "                        verify the registry's certificate (default true)\n"
    "  --registry-ca FILE    CA bundle for the registry (default: /etc/edgemig/\n"
    "                        certs.d/HOST:PORT/ca.crt if present, else the system's)\n"
    "  --registry-auth FILE  credentials (containers-auth.json or Docker config.json;\n"
    "                        default /etc/edgemig/auth.json, then Docker's)\n"
    "  --io-timeout DURATION drop a session whose peer makes no progress for this\n"
    "                        long (default 120; seconds, or with ms, s, m or h);\n"
    "                        what it staged is rolled back\n"
    "  --route-hook PATH     run `PATH announce SERVICE_IP` after a restore, to\n"
    "                        move the service IP's route to this host (also after\n"
    "                        a controller-requested migration rolls back here),\n"
    "                        and `PATH withdraw SERVICE_IP` when a restored copy\n"
    "                        is aborted here or one that left is dropped\n"
    "                        (packaged: /usr/lib/edgemig/route-hook)\n"
    "\n"
    "Limits (a peer, authenticated or not, may be hostile):\n"
    "  --max-connections N   connections served at once, sessions included\n"
    "                        (default 64); more are closed at once, unanswered\n"
    "  --max-connections-per-peer N\n"
    "                        of them from one peer address (default 8)\n"
    "  --max-sessions-per-peer N\n"
    "                        migrations from one peer identity at once, from any\n"
    "                        address (default 4)\n"
    "  --accept-rate N       new connections served a second, in bursts of up to\n"
    "                        twice that (default 20); the rest are closed\n"
    "  --session-deadline DURATION\n"
    "                        kill a session older than this, rolling back what it\n"
    "                        staged (default 1 h; seconds, or with ms, s, m or h;\n"
    "                        0: none)\n"
    "  --session-quota SIZE  what one session may stage: bytes received plus\n"
    "                        pages rebuilt (default 16G; K, M, G suffixes)\n"
    "  --session-pids N      each session runs in a cgroup of its own with at most\n"
    "                        N processes (default 1024; 0: no session cgroups)\n"
    "  --session-memory SIZE ...and at most SIZE of memory (default 4G); restored\n"
    "                        containers run in their own cgroups, not in it\n"
    "  --max-memory SIZE     refuse an incoming container whose memory limit is\n"
    "                        above SIZE (default: this host's memory)\n"
    "  --max-cpus N          the same for its cpus (default: this host's CPUs)\n"
    "\n"
    "Platform (docs/platform.md):\n"
    "  --controller URL[,URL...]\n"
    "                        register with the controller at URL\n"
    "                        (https://HOST:PORT; its certificate must name HOST;\n"
    "                        replicas: each URL, the next tried while one does\n"
    "                        not answer)\n"
    "                        and heartbeat to it, from a separate process: a\n"
    "                        controller that is down is retried with backoff and\n"
    "                        never delays a session. The client certificate is\n"
    "                        --tls-cert/--tls-key\n"
    "  --attachment NAME=HOST:PORT\n"
    "                        a users' attachment point (a cell, an access\n"
    "                        point's gateway) this edge measures its RTT to\n"
    "                        (one TCP connect a heartbeat) and reports; the\n"
    "                        controller schedules by RTT when a report names\n"
    "                        it (repeatable)\n"
    "  --edge-name NAME      this edge's name (default: this host's certificate\n"
    "                        name, which is how the controller verifies it)\n"
    "  --location X,Y        its coordinates for the scheduler (default 0,0)\n"
    "  --capacity N          services it accepts (default 4, 0 to 100000)\n"
    "  --advertise ADDR:PORT address peers and the controller dial (default the\n"
    "                        --listen address, which must then not be a wildcard)\n"
    "  --heartbeat-interval DURATION\n"
    "                        metrics period (default 5 s; seconds, or with s, m or\n"
    "                        h, whole seconds): CPU load, memory,\n"
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
    "  --version             print the version\n"
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

struct daemon_args {
        struct em_server_opts s;
        const char *root, *config;
        struct em_conffile cf;
        struct em_opt_list allow, controllers, attachments, scrapers;
        struct em_log_opts lo;
};

static int parse_registry(const char *arg, void *dst, em_error_t *err)
{
        if (strchr(arg, '/') != NULL || *arg == '\0')
                return em_error_set(err, 0,
                                    "takes HOST[:PORT], not a URL (HTTPS unless "
                                    "--registry-http)");
        *(const char **)dst = arg;
        return 0;
}

static int parse_cidr(const char *arg, void *dst, em_error_t *err)
{
        return em_policy_add_cidr(dst, arg, err);
}

static int parse_location(const char *arg, void *dst, em_error_t *err)
{
        struct em_edge_agent_opts *a = dst;

        return em_edge_location_parse(arg, &a->x, &a->y, err);
}

static int print_help(bool help)
{
        fputs(help ? usage : "edgemigd " EM_VERSION "\n", stdout);
        return -1;
}

/* Prints a parse error or an unexpected operand; true if there was one. */
static bool usage_error(const char *operand, em_error_t *err)
{
        if (operand != NULL)
                em_error_set(err, 0, "unexpected argument '%s'", operand);
        if (*err == NULL)
                return false;
        fprintf(stderr, "edgemigd: %s; see 'edgemigd --help'\n", em_error_msg(*err));
        return true;
}

static void finish_args(struct daemon_args *a)
{
        a->s.allow_peers = a->allow.v;
        a->s.allow_controllers = a->controllers.v;
        a->s.allow_scrapers = a->scrapers.v;
        a->s.agent.attachments = a->attachments.v;
        em_log_setup(a->lo.level, a->lo.json, 2, "edgemigd");
}

/* Returns -1 to exit with status 0 (--help, --version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct daemon_args *a)
{
        struct em_server_opts *s = &a->s;
        struct em_registry_opts *ro = &s->target.registry_opts;
        const struct em_opt table[] = {
            EM_OPT_STRING("config", 0, &a->config),
            EM_OPT_STRING("root", 0, &a->root),
            EM_OPT_STRING("listen", 0, &s->listen),
            EM_OPT_FLAG("insecure", 0, &s->insecure),
            EM_OPT_STRING("tls-cert", 0, &s->tls_cert),
            EM_OPT_STRING("tls-key", 0, &s->tls_key),
            EM_OPT_STRING("tls-ca", 0, &s->tls_ca),
            EM_OPT_LIST("allow-peer", 0, &a->allow),
            EM_OPT_CALL("registry", 0, &s->target.registry, parse_registry),
            EM_OPT_CALL("service-cidr", 0, &s->target.policy, parse_cidr),
            EM_OPT_FLAG("registry-http", 0, &ro->plain_http),
            EM_OPT_CALL("registry-tls-verify", 0, &ro->tls_no_verify, em_opt_bool_not),
            EM_OPT_STRING("registry-ca", 0, &ro->ca_file),
            EM_OPT_STRING("registry-auth", 0, &ro->auth_file),
            EM_OPT_STRING("route-hook", 0, &s->target.route_hook),
            EM_OPT_INT("max-connections", 0, &s->limits.max_children, 1, 100000),
            EM_OPT_INT("max-connections-per-peer", 0, &s->limits.max_per_addr, 1, 100000),
            EM_OPT_INT("accept-rate", 0, &s->limits.rate, 1, 100000),
            EM_OPT_INT("max-sessions-per-peer", 0, &s->limits.max_sessions_per_peer, 1, 100000),
            EM_OPT_DURATION("session-deadline", 0, &s->limits.deadline_ms, EM_OPT_S, EM_OPT_MS, 0,
                            INT64_MAX / 2),
            EM_OPT_SIZE("session-quota", 0, &s->target.quota_bytes, 1 << 20, INT64_MAX),
            EM_OPT_INT("session-pids", 0, &s->cgroup.pids, 0, 4194304),
            EM_OPT_SIZE("session-memory", 0, &s->cgroup.memory, 16 << 20, INT64_MAX),
            EM_OPT_SIZE("max-memory", 0, &s->target.policy.max_memory, 0, INT64_MAX),
            EM_OPT_DOUBLE("max-cpus", 0, &s->target.policy.max_cpus, 0, 4096),
            EM_OPT_DURATION("io-timeout", 0, &s->target.io_timeout_ms, EM_OPT_S, EM_OPT_MS, 1,
                            INT_MAX),
            EM_OPT_LOG(&a->lo),
            EM_OPT_STRING("controller", 0, &s->agent.controller),
            EM_OPT_STRING("edge-name", 0, &s->agent.name),
            EM_OPT_CALL("location", 0, &s->agent, parse_location),
            EM_OPT_INT("capacity", 0, &s->agent.capacity, 0, 100000),
            EM_OPT_STRING("advertise", 0, &s->agent.advertise),
            EM_OPT_DURATION("heartbeat-interval", 0, &s->agent.interval_s, EM_OPT_S, EM_OPT_S, 1,
                            86400),
            EM_OPT_LIST("allow-controller", 0, &a->controllers),
            EM_OPT_STRING("metrics-listen", 0, &s->metrics_listen),
            EM_OPT_LIST("allow-scraper", 0, &a->scrapers),
            EM_OPT_LIST("attachment", 0, &a->attachments),
            EM_OPT_END,
        };
        cleanup_error em_error_t err = NULL;
        int first,
            r = em_opts_parse_config(table, EM_CONF_EDGEMIGD, argc, argv, 0, &first, &a->cf, &err);

        if (r == EM_OPTS_HELP || r == EM_OPTS_VERSION)
                return print_help(r == EM_OPTS_HELP);
        if (usage_error(r == 0 && first < argc ? argv[first] : NULL, &err))
                return 2;
        finish_args(a);
        return 0;
}

static int serve(struct daemon_args *a)
{
        cleanup_error em_error_t err = NULL;
        struct em_server *srv = NULL;
        struct em_config cfg;
        int rc = 1;

        if (em_server_new(&a->s, &srv, &err) < 0) {
                fprintf(stderr, "edgemigd: %s\n", em_error_msg(err));
                return 2;
        }
        if (em_config_init(&cfg, a->root, &err) < 0) {
                em_log_error("%s", em_error_msg(err));
                em_server_free(srv);
                return 1;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        if (em_server_prepare(srv, &cfg, &err) < 0 ||
            em_server_run(srv, &cfg, &stop_requested, &err) < 0)
                em_log_error("%s", em_error_msg(err));
        else
                rc = 0;
        em_server_free(srv);
        em_config_free(&cfg);
        return rc;
}

int main(int argc, char **argv)
{
        struct daemon_args a = {.lo = EM_LOG_OPTS_INIT};
        cleanup_free char *notify = em_notify_take(); /* before runc can see it */
        int rc;

        em_server_opts_init(&a.s);
        a.s.notify_socket = notify;
        rc = parse_args(argc, argv, &a);
        if (rc == 0)
                rc = serve(&a);
        em_opt_list_free(&a.allow);
        em_opt_list_free(&a.controllers);
        em_opt_list_free(&a.attachments);
        em_opt_list_free(&a.scrapers);
        em_conffile_free(&a.cf);
        return rc < 0 ? 0 : rc;
}
