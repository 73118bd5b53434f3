/* The platform controller's HTTP/JSON API without the HTTP: edges register
 * and heartbeat, services are registered with their user and edge, users
 * report positions; the scheduler (platform/scheduler.h) decides, and
 * prepares and migrations start in worker threads (platform/api_actions.h).
 * State lives in the registry (platform/registry.h), so a restart loses
 * nothing. The transport (libmicrohttpd, TLS) is platform/api_http.h; this
 * layer takes a parsed request and fills a reply, so tests call it directly.
 * Resources, bodies and access rules: docs/platform.md. */
#ifndef EDGEMIG_PLATFORM_API_H
#define EDGEMIG_PLATFORM_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "migrate/migrate.h"
#include "platform/ctlstore_etcd.h"
#include "platform/scheduler.h"
#include "util/error.h"

struct em_api_opts {
        /* Run `CMD SOURCE_EDGE SERVICE TARGET_ADDR` instead of a control
         * request (test beds, scripts); NULL: the control request. */
        const char *migrate_cmd, *prepare_cmd;
        /* The controller's certificate: its client identity towards edges. */
        const char *tls_cert, *tls_key, *tls_ca;
        bool tls;                  /* clients are authenticated: authorization applies */
        const char *const *admins; /* --admin names, NULL-terminated */
        enum em_migrate_mode mode; /* requested from the edges */
        /* Also asked of the edges (the policy): --max-rate (bit/s, 0: none)
         * and --auto-converge. */
        unsigned long long max_rate_bps;
        bool auto_converge;
        struct em_sched_params params;
        int action_timeout_ms;
        /* etcd.endpoints set: the state is in etcd and replicas elect a
         * leader; else SQLite in the state directory. */
        struct em_ctl_etcd_opts etcd;
};
void em_api_opts_init(struct em_api_opts *o);

struct em_api;

/* Opens the state: (creating) <state_dir>/controller.db, where the actions
 * a previous controller left running are marked interrupted; or, with
 * o->etcd.endpoints, etcd, where this replica joins the election and, once
 * leader, settles what the previous leader left (ctlstore_etcd.h). o's
 * strings must outlive the api. */
int em_api_open(const char *state_dir, const struct em_api_opts *o, struct em_api **out,
                em_error_t *err);
/* Closes the registry; workers still running find it closed and stop. */
void em_api_close(struct em_api *api);

struct em_api_request {
        const char *method, *url;
        const char *const *names; /* the client certificate's names (TLS), NULL-terminated */
        const char *body;         /* NULL before the body is read */
        size_t len;
        bool too_big; /* the body was cut at EM_API_BODY_MAX */
};
#define EM_API_BODY_MAX (64 * 1024)

struct em_api_reply {
        unsigned status;
        json_t *json; /* the body as JSON, or */
        char *text;   /* as text (Prometheus /metrics) */
};
void em_api_reply_clear(struct em_api_reply *r);
/* The body to send: the text, or the JSON serialized; *type its
 * Content-Type. Frees what r held; NULL if out of memory. */
char *em_api_reply_take(struct em_api_reply *r, const char **type);

/* Authorization (platform/authz.h) of an authenticated request. Before the
 * body is read (rq->body NULL) it may answer EM_AUTHZ_NEEDS_BODY; then ask
 * again with the body. On a refusal: -1, logged (with addr) and counted,
 * and a 403 in *r. Without TLS everything is allowed. */
int em_api_authorize(struct em_api *api, const struct em_api_request *rq, const char *addr,
                     struct em_api_reply *r);

/* Counts a request refused for want of a valid client certificate. */
void em_api_count_refused(struct em_api *api);

/* Serves one request: always fills *r (a 500 with the message when the
 * registry fails, logged). */
void em_api_handle(struct em_api *api, const struct em_api_request *rq, struct em_api_reply *r);

#endif
