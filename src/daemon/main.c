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

#include "daemon/usage.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

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
        fputs(help ? edgemigd_usage : "edgemigd " EM_VERSION "\n", stdout);
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
