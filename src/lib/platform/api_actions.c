#include "platform/api_actions.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/control_client.h"
#include "platform/api_int.h"
#include "transfer/tls_gnutls.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

struct action {
        struct em_api *ctl;
        int64_t id;
        enum em_sched_action kind;
        char cmd[4096], source[EM_SCHED_NAME_MAX], service[EM_SCHED_NAME_MAX];
        char target[EM_SCHED_NAME_MAX], target_addr[256], source_addr[256];
        char session[33]; /* op cancel: the migration's session on the source edge */
        bool cancelled;   /* the edge's report says the migration was cancelled */
};

static void action_finish(struct action *a, bool ok, const char *detail)
{
        cleanup_error em_error_t err = NULL;
        struct em_api *c = a->ctl;

        pthread_mutex_lock(&c->lock);
        c->workers--;
        if (c->store == NULL) { /* em_api_close ran: the last worker frees the api */
                bool last = c->workers == 0;
                pthread_mutex_unlock(&c->lock);
                if (last) {
                        pthread_mutex_destroy(&c->lock);
                        free(c);
                }
                return;
        }
        const struct em_ctl_action rec = {
            em_sched_action_name(a->kind), a->service, NULL, a->source, a->target, NULL, NULL};
        c->store->ops->action_finish(c->store, a->id, &rec,
                                     ok             ? "done"
                                     : a->cancelled ? "cancelled"
                                                    : "failed",
                                     detail, em_now_ms(), &err);
        pthread_mutex_unlock(&c->lock);
        if (err != NULL)
                em_log_error("recording %s of %s: %s", em_sched_action_name(a->kind), a->service,
                             em_error_msg(err));
}

/* A progress object from the edge, reduced to its known fields (an edge
 * may send anything): NULL if it has none of them. */
static json_t *progress_clean(const json_t *p)
{
        static const char *const nums[] = {
            "round",      "elapsed_ms",           "bytes_sent",
            "bytes_left", "rate_bytes_per_s",     "dirty_bytes_per_s",
            "eta_ms",     "expected_downtime_ms", "throttle_pct"};
        const char *phase = em_json_str(p, "phase"), *session = em_json_str(p, "session");
        json_t *out = json_object();

        if (out == NULL || phase == NULL || strlen(phase) > 16 || session == NULL ||
            strlen(session) != 32 || strspn(session, "0123456789abcdef") != 32) {
                json_decref(out);
                return NULL;
        }
        json_object_set_new(out, "event", json_string("progress"));
        json_object_set_new(out, "phase", json_string(phase));
        json_object_set_new(out, "session", json_string(session));
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
                json_t *v = json_object_get(p, nums[i]);
                if (json_is_number(v))
                        json_object_set_new(out, nums[i], json_real(json_number_value(v)));
        }
        return out;
}

/* While the action runs, its history row's detail is the edge's latest
 * progress (GET /migrations shows it); the report replaces it at the end. */
static void action_progress(void *ud, const json_t *p)
{
        struct action *a = ud;
        cleanup_json json_t *clean = progress_clean(p);
        cleanup_free char *text = clean ? json_dumps(clean, JSON_COMPACT) : NULL;
        cleanup_error em_error_t err = NULL;

        if (text == NULL)
                return;
        pthread_mutex_lock(&a->ctl->lock);
        if (a->ctl->store != NULL)
                a->ctl->store->ops->action_progress(a->ctl->store, a->id, text, &err);
        pthread_mutex_unlock(&a->ctl->lock);
}

/* Connects to the source edge's edgemigd over mutual TLS (GnuTLS: the
 * controller's one TLS library, docs/security.md); the edge must present a
 * certificate naming that edge. */
static int connect_edge(const struct action *a, em_conn_t **conn, em_error_t *err)
{
        cleanup_gtls_ctx em_gtls_ctx_t *tls = NULL;
        const char *const edge[] = {a->source, NULL};
        const struct em_api_opts *o = &a->ctl->o;
        struct em_tls_config tc = {o->tls_ca, o->tls_cert, o->tls_key, edge};

        if (o->tls_ca == NULL || o->tls_cert == NULL || o->tls_key == NULL)
                return em_error_set(err, EINVAL,
                                    "control requests need mutual TLS: the controller needs "
                                    "--tls-cert/--tls-key/--tls-ca");
        if (em_gtls_client_new(&tc, &tls, err) < 0)
                return -1;
        if (em_gtls_connect(tls, a->source_addr, 10000, conn, NULL, err) < 0)
                return em_error_wrap(err, "connecting to edgemigd at %s", a->source_addr);
        return 0;
}

/* The authenticated path: a CONTROL request to the source edge's edgemigd.
 * The history's detail is the migration report it answers with (on
 * failure too), else the error. */
static void action_request(struct action *a)
{
        cleanup_error em_error_t err = NULL;
        cleanup_conn em_conn_t *conn = NULL;
        cleanup_json json_t *reply = NULL;
        cleanup_free char *detail = NULL;
        struct em_control_req req = {
            .op = a->kind == EM_SCHED_PREPARE ? EM_CONTROL_PREPARE : EM_CONTROL_MIGRATE,
            .mode = a->kind == EM_SCHED_PREPARE ? EM_MIGRATE_PREPARE : a->ctl->o.mode,
            .id = a->id,
            .progress = true,
        };

        em_log_info("%s %s: %s (%s) -> %s (%s), control request %lld",
                    em_sched_action_name(a->kind), a->service, a->source, a->source_addr, a->target,
                    a->target_addr, (long long)a->id);
        snprintf(req.service, sizeof(req.service), "%s", a->service);
        snprintf(req.to, sizeof(req.to), "%s", a->target_addr);
        if (req.op == EM_CONTROL_MIGRATE) {
                req.max_rate_bps = a->ctl->o.max_rate_bps;
                req.auto_converge = a->ctl->o.auto_converge;
        }
        int rc = connect_edge(a, &conn, &err);
        if (rc == 0)
                rc = em_control_exchange_progress(conn, &req, a->ctl->o.action_timeout_ms,
                                                  action_progress, a, &reply, &err);
        bool ok = rc == 0 && json_is_true(json_object_get(reply, "ok"));
        json_t *report = json_object_get(reply, "report");
        if (json_is_object(report))
                detail = json_dumps(report, JSON_COMPACT);
        a->cancelled = json_is_true(json_object_get(report, "cancelled"));
        const char *why = rc < 0 ? em_error_msg(err) : em_json_str(reply, "error");
        em_log_info("%s %s -> %s: %s", em_sched_action_name(a->kind), a->service, a->target,
                    ok    ? "done"
                    : why ? why
                          : "failed");
        action_finish(a, ok, detail ? detail : why ? why : "");
}

static void *action_run(void *arg)
{
        cleanup_free struct action *a = arg;
        cleanup_error em_error_t err = NULL;
        cleanup_proc_result struct em_proc_result res = {0};
        const char *argv[] = {a->cmd, a->source, a->service, a->target_addr, NULL};
        struct em_proc_spec spec;

        if (a->cmd[0] == '\0') {
                action_request(a);
                return NULL;
        }
        em_log_info("%s %s: %s -> %s (%s)", em_sched_action_name(a->kind), a->service, a->source,
                    a->target, a->target_addr);
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = a->ctl->o.action_timeout_ms;
        int rc = em_proc_run(&spec, &res, &err);
        const char *detail = rc < 0 ? em_error_msg(err) : (res.out ? res.out : "");
        em_log_info("%s %s -> %s: %s", em_sched_action_name(a->kind), a->service, a->target,
                    rc < 0 ? detail : "done");
        action_finish(a, rc == 0, detail);
        return NULL;
}

int em_api_action_start(struct em_api *c, enum em_sched_action kind, const char *service,
                        const char *user, const char *source, const char *target,
                        const char *reason, em_error_t *err)
{
        const char *cmd = kind == EM_SCHED_MIGRATE ? c->o.migrate_cmd : c->o.prepare_cmd;
        cleanup_free char *addr = NULL, *saddr = NULL;
        cleanup_free struct action *a = calloc(1, sizeof(*a));

        if (a == NULL)
                return em_error_set(err, ENOMEM, "action");
        if (c->store->ops->edge_addr(c->store, target, &addr, err) < 0 ||
            c->store->ops->edge_addr(c->store, source, &saddr, err) < 0)
                return -1;
        if (addr == NULL)
                return em_error_set(err, ENOENT, "edge %s has no address", target);
        /* Without a command: the authenticated request, which needs TLS. */
        bool run = cmd != NULL || (c->o.tls && saddr != NULL);
        const char *skip = saddr == NULL ? "skipped (source edge unknown)"
                                         : "skipped (no --migrate-cmd, and control requests "
                                           "need --tls-*)";
        /* The intent is recorded (and, with replicas, fenced on this one
         * leading) before anything starts. */
        const struct em_ctl_action rec = {
            em_sched_action_name(kind), service, user, source, target, reason,
            run ? "running" : skip};
        if (c->store->ops->action_begin(c->store, &rec, em_now_ms(), &a->id, err) < 0)
                return -1;
        if (!run)
                return 0;
        a->ctl = c;
        a->kind = kind;
        snprintf(a->cmd, sizeof(a->cmd), "%s", cmd ? cmd : "");
        snprintf(a->source_addr, sizeof(a->source_addr), "%s", saddr ? saddr : "");
        snprintf(a->source, sizeof(a->source), "%s", source);
        snprintf(a->service, sizeof(a->service), "%s", service);
        snprintf(a->target, sizeof(a->target), "%s", target);
        snprintf(a->target_addr, sizeof(a->target_addr), "%s", addr);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, action_run, a);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
                em_error_t e2 = NULL;
                c->store->ops->action_finish(c->store, a->id, &rec, "failed",
                                             "the worker thread could not start", em_now_ms(), &e2);
                em_error_free(&e2);
                return em_error_set(err, rc, "starting the %s worker", em_sched_action_name(kind));
        }
        c->workers++;
        steal_pointer(&a);
        return 0;
}

/* Asks the source edge to cancel the migration (op cancel) and logs the
 * answer; the migration's own worker records its outcome. */
static void *cancel_run(void *arg)
{
        cleanup_free struct action *a = arg;
        cleanup_error em_error_t err = NULL;
        cleanup_conn em_conn_t *conn = NULL;
        cleanup_json json_t *reply = NULL;
        struct em_control_req req = {.op = EM_CONTROL_CANCEL, .id = a->id};

        memcpy(req.session, a->session, sizeof(req.session));
        int rc = connect_edge(a, &conn, &err);
        if (rc == 0)
                rc = em_control_exchange(conn, &req, a->ctl->o.action_timeout_ms, &reply, &err);
        em_log_info("cancel of migration %lld (%s on %s): %s", (long long)a->id, a->session,
                    a->source,
                    rc < 0 ? em_error_msg(err)
                    : json_is_true(json_object_get(reply, "ok"))
                        ? "cancelled"
                        : em_json_str(reply, "error") ?: "refused");
        pthread_mutex_lock(&a->ctl->lock);
        a->ctl->workers--;
        bool last = a->ctl->store == NULL && a->ctl->workers == 0;
        pthread_mutex_unlock(&a->ctl->lock);
        if (last) {
                pthread_mutex_destroy(&a->ctl->lock);
                free(a->ctl);
        }
        return NULL;
}

/* The running migration id's source edge and session (from its progress). */
static int cancel_target(struct em_api *c, int64_t id, struct action *a, em_error_t *err)
{
        cleanup_json json_t *row = NULL, *progress = NULL;

        if (c->store->ops->migration_get(c->store, id, &row, err) < 0)
                return -1;
        const char *status = em_json_str(row, "status"), *detail = em_json_str(row, "detail");
        const char *addr = em_json_str(row, "addr"), *source = em_json_str(row, "source");
        if (row == NULL)
                return em_error_set(err, ENOENT, "no migration %lld", (long long)id);
        if (status == NULL || strcmp(status, "running") != 0 || source == NULL || addr == NULL)
                return em_error_set(err, EALREADY, "migration %lld is not running (%s)",
                                    (long long)id, status ? status : "?");
        progress = detail ? json_loads(detail, 0, NULL) : NULL;
        const char *session = em_json_str(progress, "session");
        if (session == NULL || strlen(session) != 32)
                return em_error_set(err, EAGAIN,
                                    "migration %lld has not reported its session yet; retry "
                                    "in a second",
                                    (long long)id);
        memcpy(a->session, session, 33);
        snprintf(a->source, sizeof(a->source), "%s", source);
        snprintf(a->source_addr, sizeof(a->source_addr), "%s", addr);
        return 0;
}

int em_api_cancel_start(struct em_api *c, int64_t id, em_error_t *err)
{
        cleanup_free struct action *a = calloc(1, sizeof(*a));
        pthread_attr_t attr;
        pthread_t t;

        if (a == NULL)
                return em_error_set(err, ENOMEM, "cancel");
        if (cancel_target(c, id, a, err) < 0)
                return -1;
        if (!c->o.tls)
                return em_error_set(err, EINVAL, "cancelling needs control requests (--tls-*)");
        a->ctl = c;
        a->id = id;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, cancel_run, a);
        pthread_attr_destroy(&attr);
        if (rc != 0)
                return em_error_set(err, rc, "starting the cancel worker");
        c->workers++;
        steal_pointer(&a);
        return 0;
}
