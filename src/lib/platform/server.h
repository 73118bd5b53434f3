/* The edge's server, as edgemigd runs it: accept connections and serve each
 * in a forked child (so one hostile or broken peer can never take the daemon
 * or another migration down), reap the children and recover what a failed
 * one left, and keep the edge agent process (registration and heartbeats)
 * alive. It lives in platform/ because it ties the migration target
 * (migrate/) to the edge agent (platform/edge_agent.h). */
#ifndef EDGEMIG_PLATFORM_SERVER_H
#define EDGEMIG_PLATFORM_SERVER_H

#include <signal.h>
#include <stdbool.h>

#include "migrate/migrate.h"
#include "platform/admission.h"
#include "platform/edge_agent.h"
#include "platform/session_cgroup.h"
#include "transfer/tls.h"
#include "util/config.h"
#include "util/error.h"

struct em_server_opts {
        const char *listen; /* ADDR:PORT */
        bool insecure;      /* plain TCP instead of mutual TLS */
        const char *tls_cert, *tls_key, *tls_ca;
        const char *const *allow_peers;       /* NULL-terminated or NULL: any peer */
        const char *const *allow_controllers; /* NULL-terminated or NULL: none */
        const char *metrics_listen;           /* ADDR:PORT of /metrics, or NULL: none */
        const char *const *allow_scrapers;    /* with allow_peers: names that may scrape too */
        struct em_target_opts target;
        struct em_edge_agent_opts agent;        /* agent.controller NULL: no agent */
        const char *notify_socket;              /* systemd's (util/notify.h), NULL: none */
        struct em_admission_limits limits;      /* connections, rate, session deadline */
        struct em_session_cgroup_limits cgroup; /* each session child's (pids 0: none) */
        const char *cgroup_fs;                  /* default /sys/fs/cgroup */
};
void em_server_opts_init(struct em_server_opts *o);

struct em_server;

/* Checks the options (TLS files or --insecure, agent settings) and builds
 * the TLS context; errors name the option to fix. */
int em_server_new(const struct em_server_opts *o, struct em_server **out, em_error_t *err);
void em_server_free(struct em_server *s);
#define cleanup_server __attribute__((cleanup(em_server_freep)))
void em_server_freep(struct em_server **s);

/* Probes (or loads the cached) host features, so that handshakes answer at
 * once and a host that cannot restore refuses to serve; then finishes or
 * rolls back the sessions of a previous daemon that died, and starts the
 * containers whose restart policy asks for it (container/restart.h; the
 * serving loop keeps applying them every 2 s). */
int em_server_prepare(struct em_server *s, const struct em_config *cfg, em_error_t *err);

/* Listens on o->listen and serves until *stop is set (by a signal handler);
 * then stops the agent and reaps the children. */
int em_server_run(struct em_server *s, const struct em_config *cfg, volatile sig_atomic_t *stop,
                  em_error_t *err);

#endif
