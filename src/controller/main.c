/* edgemig-controller: the platform's control plane. It parses options and
 * serves the controller's API (platform/api.h: registry, scheduler,
 * prepare/migrate workers) over libmicrohttpd (platform/api_http.h), with
 * mutual TLS (clients need a certificate of the platform CA) unless
 * --insecure; see docs/platform.md. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "platform/api.h"
#include "platform/api_http.h"
#include "transfer/ratelimit.h"
#include "util/cleanup.h"
#include "util/conffile.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/opts.h"
#include "util/version.h"

#include "controller/usage.h"

struct ctl_args {
        struct em_api_opts api;
        const char *listen, *state_dir, *config;
        char *advertise;
        struct em_conffile cf;
        struct em_api_http_tls tls;
        struct em_api_http_limits lim;
        struct em_opt_list admins;
        bool insecure;
        struct em_log_opts lo;
};

static int parse_rate(const char *arg, void *dst, em_error_t *err)
{
        uint64_t v;

        if (em_rate_parse(arg, &v, err) < 0)
                return -1;
        *(unsigned long long *)dst = v;
        return 0;
}

static int parse_mode(const char *arg, void *dst, em_error_t *err)
{
        enum em_migrate_mode *mode = dst;

        if (em_migrate_mode_parse(arg, mode, err) < 0)
                return -1;
        if (*mode == EM_MIGRATE_PREPARE)
                return em_error_set(err, 0, "prepare is not a migration mode");
        return 0;
}

/* Same policy as edgemigd: mutual TLS, or plain HTTP only when asked for;
 * and with TLS, the operators' names (as edgemigd --allow-controller, no
 * silent default: without them nobody could register a service). */
static int check_tls_args(const struct ctl_args *o, em_error_t *err)
{
        bool any = o->tls.cert || o->tls.key || o->tls.ca;

        if (o->insecure && any)
                return em_error_set(err, 0,
                                    "--insecure excludes --tls-cert, --tls-key and --tls-ca");
        if (o->insecure && o->admins.n > 0)
                return em_error_set(err, 0,
                                    "--insecure excludes --admin: plain HTTP has no client "
                                    "identity (anyone may do anything)");
        if (!o->insecure && !any)
                return em_error_set(err, 0,
                                    "clients must authenticate: pass --tls-cert FILE --tls-key "
                                    "FILE --tls-ca FILE (certificates of the platform CA, "
                                    "`edgemig ca`), or --insecure for plain HTTP on a trusted "
                                    "test network");
        if (any && !(o->tls.cert && o->tls.key && o->tls.ca))
                return em_error_set(err, 0, "--tls-cert, --tls-key and --tls-ca go together");
        if (any && o->admins.n == 0)
                return em_error_set(err, 0,
                                    "name the operators' certificates with --admin NAME "
                                    "(repeatable; e.g. `edgemig ca issue admin` and --admin "
                                    "admin): only they may register services and report "
                                    "positions, edges act only for themselves");
        return 0;
}

/* SQLite in --state-dir, or etcd; a replica's id defaults to its URL. */
static int store_args(struct ctl_args *o, em_error_t *err)
{
        if (o->state_dir == NULL && o->api.etcd.endpoints == NULL)
                return em_error_set(err, 0, "--state-dir DIR (SQLite) or --etcd URL is required");
        if (o->api.etcd.id == NULL &&
            asprintf(&o->advertise, "%s://%s", o->insecure ? "http" : "https", o->listen) < 0)
                return em_error_set(err, 0, "out of memory");
        if (o->api.etcd.id == NULL)
                o->api.etcd.id = o->advertise;
        return 0;
}

/* After parsing: checks across options, and the api's view of them. */
static int finish_args(struct ctl_args *o, em_error_t *err)
{
        if (store_args(o, err) < 0)
                return -1;
        for (size_t i = 0; i < o->admins.n; i++)
                if (*o->admins.v[i] == '\0')
                        return em_error_set(err, 0, "--admin: an empty name");
        em_log_setup(o->lo.level, o->lo.json, 2, "edgemig-controller");
        o->api.tls = !o->insecure;
        o->api.tls_cert = o->tls.cert;
        o->api.tls_key = o->tls.key;
        o->api.tls_ca = o->tls.ca;
        o->api.admins = o->admins.v;
        return check_tls_args(o, err);
}

/* Returns 0 to serve, 1 after --help/--version, -1 on a controller_usage error. */
static int parse_args(int argc, char **argv, struct ctl_args *o, em_error_t *err)
{
        struct em_sched_params *p = &o->api.params;
        const struct em_opt table[] = {
            EM_OPT_STRING("config", 0, &o->config),
            EM_OPT_STRING("listen", 0, &o->listen),
            EM_OPT_STRING("state-dir", 0, &o->state_dir),
            EM_OPT_STRING("etcd", 0, &o->api.etcd.endpoints),
            EM_OPT_STRING("etcd-ca", 0, &o->api.etcd.ca),
            EM_OPT_STRING("etcd-cert", 0, &o->api.etcd.cert),
            EM_OPT_STRING("etcd-key", 0, &o->api.etcd.key),
            EM_OPT_STRING("advertise", 0, &o->api.etcd.id),
            EM_OPT_DURATION("leader-ttl", 0, &o->api.etcd.leader_ttl_s, EM_OPT_S, EM_OPT_S, 2,
                            3600),
            EM_OPT_DURATION("edge-ttl", 0, &o->api.etcd.edge_ttl_s, EM_OPT_S, EM_OPT_S, 2, 86400),
            EM_OPT_STRING("migrate-cmd", 0, &o->api.migrate_cmd),
            EM_OPT_STRING("prepare-cmd", 0, &o->api.prepare_cmd),
            EM_OPT_DOUBLE("margin", 0, &p->margin, 0, 1000000000),
            EM_OPT_DOUBLE("rtt-margin", 0, &p->rtt_margin_ms, 0, 60000),
            EM_OPT_DURATION("dwell-ms", 0, &p->dwell_ms, EM_OPT_MS, EM_OPT_MS, 0, INT64_MAX),
            EM_OPT_INT("approach-reports", 0, &p->approach_reports, 0, 1000000),
            EM_OPT_DOUBLE("prepare-radius", 0, &p->prepare_radius, 0, 1000000000),
            EM_OPT_DURATION("action-timeout", 0, &o->api.action_timeout_ms, EM_OPT_S, EM_OPT_MS,
                            1000, INT_MAX),
            EM_OPT_DOUBLE("dwell-per-handoff", 0, &p->dwell_per_handoff, 0, 1000000),
            EM_OPT_DURATION("dwell-max-ms", 0, &p->dwell_max_ms, EM_OPT_MS, EM_OPT_MS, 0,
                            INT64_MAX),
            EM_OPT_DURATION("prepare-lead-ms", 0, &p->prepare_lead_ms, EM_OPT_MS, EM_OPT_MS, 0,
                            INT64_MAX),
            EM_OPT_LOG(&o->lo),
            EM_OPT_STRING("tls-cert", 0, &o->tls.cert),
            EM_OPT_STRING("tls-key", 0, &o->tls.key),
            EM_OPT_STRING("tls-ca", 0, &o->tls.ca),
            EM_OPT_FLAG("insecure", 0, &o->insecure),
            EM_OPT_CALL("mode", 0, &o->api.mode, parse_mode),
            EM_OPT_CALL("max-rate", 0, &o->api.max_rate_bps, parse_rate),
            EM_OPT_FLAG("auto-converge", 0, &o->api.auto_converge),
            EM_OPT_LIST("admin", 0, &o->admins),
            EM_OPT_INT("max-connections", 0, &o->lim.max_connections, 1, 65536),
            EM_OPT_INT("max-connections-per-peer", 0, &o->lim.per_ip, 1, 65536),
            EM_OPT_DURATION("connection-timeout", 0, &o->lim.timeout_s, EM_OPT_S, EM_OPT_S, 1,
                            86400),
            EM_OPT_SIZE("connection-memory", 0, &o->lim.conn_memory, 8192, 16 << 20),
            EM_OPT_INT("threads", 0, &o->lim.threads, 1, 64),
            EM_OPT_END,
        };
        int first,
            r = em_opts_parse_config(table, EM_CONF_CONTROLLER, argc, argv, 0, &first, &o->cf, err);

        if (r == EM_OPTS_HELP || r == EM_OPTS_VERSION)
                fputs(r == EM_OPTS_HELP ? controller_usage : "edgemig-controller " EM_VERSION "\n",
                      stdout);
        if (r != EM_OPTS_OK)
                return r < 0 ? -1 : 1;
        if (first < argc)
                return em_error_set(err, 0, "unexpected argument '%s'", argv[first]);
        return finish_args(o, err);
}

/* Serves until SIGTERM/SIGINT (blocked in every thread, taken here). */
static int serve(const struct ctl_args *o, const sigset_t *set, em_error_t *err)
{
        struct em_api *api = NULL;
        struct em_api_http *http = NULL;
        int sig;

        if (em_api_open(o->state_dir, &o->api, &api, err) < 0)
                return -1;
        if (em_api_http_start(api, o->listen, o->insecure ? NULL : &o->tls, &o->lim, &http, err) <
            0) {
                em_api_close(api);
                return -1;
        }
        em_log_info("ready: listening on %s://%s%s", o->insecure ? "http" : "https", o->listen,
                    o->insecure ? " (INSECURE: no client authentication)" : " (mutual TLS)");
        for (size_t i = 0; i < o->admins.n; i++)
                em_log_info("admin: certificates named %s may act as operators", o->admins.v[i]);
        if (em_notify_ready(NULL, "serving the API", err) < 0) {
                em_log_warn("%s", em_error_msg(*err));
                em_error_free(err);
        }
        sigwait(set, &sig);
        em_log_info("signal %d: stopping (actions in flight finish under edgemigd's rules)", sig);
        em_api_http_stop(http);
        em_api_close(api);
        return 0;
}

int main(int argc, char **argv)
{
        struct ctl_args o = {
            .listen = "127.0.0.1:7880", .lim = EM_API_HTTP_LIMITS_INIT, .lo = EM_LOG_OPTS_INIT};
        cleanup_free char *advertise = NULL;
        cleanup_error em_error_t err = NULL;
        sigset_t set;

        em_log_setup(EM_LOG_INFO, false, 2, "edgemig-controller");
        em_api_opts_init(&o.api);
        int rc = parse_args(argc, argv, &o, &err);
        advertise = o.advertise;
        if (rc != 0) {
                if (rc < 0)
                        fprintf(stderr, "edgemig-controller: %s; see --help\n", em_error_msg(err));
                em_opt_list_free(&o.admins);
                em_conffile_free(&o.cf);
                return rc < 0 ? 2 : 0;
        }
        /* Workers inherit this mask; only serve() takes SIGTERM/SIGINT. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        rc = serve(&o, &set, &err);
        if (rc < 0)
                fprintf(stderr, "edgemig-controller: %s\n", em_error_msg(err));
        em_opt_list_free(&o.admins);
        em_conffile_free(&o.cf);
        return rc < 0 ? 1 : 0;
}
