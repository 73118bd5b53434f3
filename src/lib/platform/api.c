#include "platform/api.h"
#include "platform/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "platform/api_actions.h"
#include "platform/api_int.h"
#include "platform/authz.h"
#include "platform/ctlstore_etcd.h"
#include "platform/ctlstore_sqlite.h"
#include "platform/election.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/log.h"

void em_api_opts_init(struct em_api_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->mode = EM_MIGRATE_PRECOPY;
        o->action_timeout_ms = 300000;
        o->etcd.leader_ttl_s = 2;
        o->etcd.edge_ttl_s = EM_CTL_EDGE_TTL_S;
        em_sched_params_default(&o->params);
}

static bool valid_name(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n >= EM_SCHED_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
                      (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
                        return false;
        return true;
}

static void reply_error(struct em_api_reply *r, unsigned status, const char *msg)
{
        r->status = status;
        r->json = json_pack("{s:s}", "error", msg);
}

static void reply_json(struct em_api_reply *r, unsigned status, json_t *j)
{
        r->status = status;
        r->json = j;
}

static double num(const json_t *o, const char *k, double fallback)
{
        json_t *v = json_object_get(o, k);
        return json_is_number(v) ? json_number_value(v) : fallback;
}

/* ---- handlers (called with the lock held) ---- */

static int post_edge(struct em_api *c, const json_t *b, struct em_api_reply *r, em_error_t *err)
{
        const char *name = em_json_str(b, "name"), *addr = em_json_str(b, "addr");
        long long cap = em_json_int(b, "capacity", -1);

        if (!valid_name(name) || addr == NULL || cap < 0 ||
            !json_is_number(json_object_get(b, "x")) || !json_is_number(json_object_get(b, "y"))) {
                reply_error(r, 400, "need name, addr, x, y, capacity >= 0");
                return 0;
        }
        if (c->store->ops->edge_register(c->store, b, em_now_ms(), err) < 0)
                return -1;
        em_log_info("edge %s registered at %s (%g, %g), capacity %lld", name, addr, num(b, "x", 0),
                    num(b, "y", 0), cap);
        reply_json(r, 201, json_pack("{s:s}", "name", name));
        return 0;
}

/* RTTs an edge measured to attachment points (edge_agent.h): names and
 * bounded numbers only, from a peer that may send anything. */
static bool valid_rtts(const json_t *rtts)
{
        const char *k;
        json_t *v;

        if (rtts == NULL || json_is_null(rtts))
                return true;
        if (!json_is_object(rtts) || json_object_size(rtts) > 256)
                return false;
        json_object_foreach((json_t *)rtts, k, v)
        {
                if (!valid_name(k) || !json_is_number(v) || !(json_number_value(v) > 0) ||
                    json_number_value(v) >= 60000)
                        return false;
        }
        return true;
}

/* Each edge's RTT to the attachment point the user reports (0: none). */
static int fill_rtts(struct em_api *c, const char *attach, struct em_sched_edge *edges, size_t n,
                     em_error_t *err)
{
        cleanup_json json_t *rows = NULL;
        size_t i;
        json_t *row;

        if (attach == NULL || c->store->ops->list(c->store, EM_CTL_EDGES, &rows, err) < 0)
                return attach == NULL ? 0 : -1;
        json_array_foreach(rows, i, row)
        {
                json_t *v = json_object_get(json_object_get(row, "rtts"), attach);
                const char *name = em_json_str(row, "name");
                for (size_t k = 0; k < n && name != NULL && json_is_number(v); k++)
                        if (strcmp(edges[k].name, name) == 0)
                                edges[k].rtt_ms = json_number_value(v);
        }
        return 0;
}

/* "containers" is a count or the list of container names running there; a
 * list also tells where each service really is (after an interrupted move).
 * The body edgemigd sends is described in platform/edge_agent.h. */
static int post_heartbeat(struct em_api *c, const char *edge, const json_t *b,
                          struct em_api_reply *r, em_error_t *err)
{
        json_t *cts = json_object_get(b, "containers"), *peers = json_object_get(b, "peers");
        json_t *rtts = json_object_get(b, "rtts");
        long long n =
            json_is_array(cts) ? (long long)json_array_size(cts) : em_json_int(b, "containers", 0);

        for (size_t i = 0; i < json_array_size(cts); i++) {
                if (!valid_name(json_string_value(json_array_get(cts, i)))) {
                        reply_error(r, 400, "containers: a count or an array of names");
                        return 0;
                }
        }
        if (peers != NULL && !json_is_object(peers)) {
                reply_error(r, 400, "peers: an object {\"ADDR:PORT\": {\"mbps\": M}}");
                return 0;
        }
        if (!valid_rtts(rtts)) {
                reply_error(r, 400,
                            "rtts: an object {\"ATTACHMENT\": MS} (at most 256, 0 < MS < 60000)");
                return 0;
        }
        cleanup_json json_t *hb = json_pack(
            "{s:I, s:I, s:f, s:I, s:I, s:f, s:f, s:I, s:O?, s:O?, s:O?}", "load",
            (json_int_t)em_json_int(b, "load", n), "containers", (json_int_t)n, "cpu",
            num(b, "cpu", 0), "mem_bytes", (json_int_t)em_json_int(b, "mem_bytes", 0),
            "active_migrations", (json_int_t)em_json_int(b, "active_migrations", 0),
            "bandwidth_mbps", num(b, "bandwidth_mbps", 0), "load1", num(b, "load1", 0),
            "mem_available_bytes", (json_int_t)em_json_int(b, "mem_available_bytes", 0),
            "container_names", json_is_array(cts) ? cts : NULL, "peers", peers, "rtts", rtts);
        if (hb == NULL)
                return em_error_set(err, ENOMEM, "heartbeat");
        int rc = c->store->ops->edge_heartbeat(c->store, edge, hb, em_now_ms(), err);
        if (rc < 0)
                return -1;
        if (rc == 0) {
                reply_error(r, 404, "no such edge");
                return 0;
        }
        reply_json(r, 200, json_pack("{s:s}", "name", edge));
        return 0;
}

static int post_service(struct em_api *c, const json_t *b, struct em_api_reply *r, em_error_t *err)
{
        const char *name = em_json_str(b, "name"), *user = em_json_str(b, "user");
        const char *edge = em_json_str(b, "edge"), *ip = em_json_str(b, "ip");
        cleanup_json json_t *rows = NULL;

        if (!valid_name(name) || !valid_name(user) || !valid_name(edge)) {
                reply_error(r, 400, "need name, user, edge (and ip)");
                return 0;
        }
        int rc = c->store->ops->service_register(c->store, name, user, edge, ip, em_now_ms(), err);
        if (rc < 0)
                return -1;
        if (rc == 0) {
                reply_error(r, 404, "no such edge");
                return 0;
        }
        reply_json(r, 201, json_pack("{s:s}", "name", name));
        return 0;
}

/* Runs the scheduler on a position report and starts what it decides. While
 * the service is busy (a prepare or migration running) the decision's effect
 * on the user's memory is undone, so it is taken again on the next report. */
static int post_position(struct em_api *c, const char *user, const json_t *b,
                         struct em_api_reply *r, em_error_t *err)
{
        cleanup_json json_t *svc = NULL;
        cleanup_free struct em_sched_edge *edges = NULL;
        struct em_sched_user u, before;
        struct em_sched_decision d;
        size_t n = 0;
        int64_t now = em_now_ms();

        if (!json_is_number(json_object_get(b, "x")) || !json_is_number(json_object_get(b, "y"))) {
                reply_error(r, 400, "need x and y");
                return 0;
        }
        double x = num(b, "x", 0), y = num(b, "y", 0);
        const char *attach = em_json_str(b, "attach");
        if (json_object_get(b, "attach") != NULL && !valid_name(attach)) {
                reply_error(r, 400, "attach: the name of the user's attachment point");
                return 0;
        }
        if (c->store->ops->load_user(c->store, user, &u, err) < 0 ||
            c->store->ops->load_edges(c->store, &edges, &n, err) < 0 ||
            fill_rtts(c, attach, edges, n, err) < 0 ||
            c->store->ops->user_service(c->store, user, &svc, err) < 0)
                return -1;
        json_t *s = svc;
        const char *service = em_json_str(s, "name");
        bool busy = em_json_int(s, "busy", 0) != 0;
        snprintf(u.serving, sizeof(u.serving), "%s", service ? em_json_str(s, "edge") : "");
        if (c->store->ops->handoff_bytes(c->store, service, &u.handoff_bytes, err) < 0)
                return -1;
        before = u;
        if (em_sched_decide(&c->o.params, edges, n, &u, x, y, now, &d, err) < 0) {
                reply_error(r, 400, em_error_msg(*err));
                em_error_free(err);
                return 0;
        }
        c->reports++;
        c->decisions[d.action]++;
        bool deferred = busy && d.action != EM_SCHED_STAY;
        if (deferred) {
                snprintf(u.candidate, sizeof(u.candidate), "%s", before.candidate);
                snprintf(u.prepared, sizeof(u.prepared), "%s", before.prepared);
                u.candidate_since_ms = before.candidate_since_ms;
        }
        if (c->store->ops->save_user(c->store, user, x, y, now, &u, err) < 0)
                return -1;
        const char *target = d.target >= 0 ? edges[d.target].name : NULL;
        if (d.action != EM_SCHED_STAY && !deferred &&
            em_api_action_start(c, d.action, service, user, u.serving, target, d.reason, err) < 0)
                return -1;
        reply_json(r, 200,
                   json_pack("{s:s, s:s, s:s?, s:s, s:b, s:s?, s:f, s:s}", "user", user, "action",
                             em_sched_action_name(d.action), "target", target, "reason", d.reason,
                             "deferred", deferred, "serving", service ? u.serving : NULL,
                             "handoff_ms", d.handoff_ms, "nearest_by",
                             d.by_rtt ? "rtt" : "distance"));
        return 0;
}

/* ---- GET ---- */

static const char *const list_urls[] = {
    [EM_CTL_EDGES] = "/edges",
    [EM_CTL_SERVICES] = "/services",
    [EM_CTL_USERS] = "/users",
    [EM_CTL_MIGRATIONS] = "/migrations",
};

static void metric(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values come from certificates and requests: escaped. */
static char *label(const json_t *o, const char *key)
{
        return em_metrics_label(em_json_str(o, key) ?: "");
}

static void metrics_edges(FILE *f, const json_t *edges, int64_t now)
{
        /* Rates in bytes per second (heartbeats carry Mbit/s). */
        static const struct {
                const char *key, *name, *help;
                double scale;
        } cols[] = {
            {"capacity", "edgemig_edge_capacity", "services the edge accepts", 1},
            {"load", "edgemig_edge_load", "load reported by the edge", 1},
            {"containers", "edgemig_edge_containers", "containers running on the edge", 1},
            {"cpu", "edgemig_edge_cpu", "CPU use reported by the edge (0-1 per core)", 1},
            {"mem_bytes", "edgemig_edge_memory_bytes", "memory in use on the edge", 1},
            {"active_migrations", "edgemig_edge_active_migrations", "migrations in flight", 1},
            {"bandwidth_mbps", "edgemig_edge_bandwidth_bytes_per_second",
             "throughput of the edge's latest outgoing migration", 1e6 / 8},
        };
        for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
                metric(f, cols[k].name, "gauge", cols[k].help);
                for (size_t i = 0; i < json_array_size(edges); i++) {
                        json_t *e = json_array_get(edges, i);
                        cleanup_free char *name = label(e, "name");
                        fprintf(f, "%s{edge=\"%s\"} %g\n", cols[k].name, name ?: "",
                                num(e, cols[k].key, 0) * cols[k].scale);
                }
        }
        metric(f, "edgemig_edge_heartbeat_age_seconds", "gauge", "time since the last heartbeat");
        for (size_t i = 0; i < json_array_size(edges); i++) {
                json_t *e = json_array_get(edges, i);
                long long hb = em_json_int(e, "heartbeat_ms", 0);
                cleanup_free char *name = label(e, "name");
                fprintf(f, "edgemig_edge_heartbeat_age_seconds{edge=\"%s\"} %g\n", name ?: "",
                        hb ? (double)(now - hb) / 1000 : -1.0);
        }
}

/* Gauges, not counters: the history they count is pruned. */
static void metrics_actions(FILE *f, const json_t *counts)
{
        metric(f, "edgemig_controller_actions", "gauge", "prepares/migrations in the history");
        for (size_t i = 0; i < json_array_size(counts); i++) {
                json_t *m = json_array_get(counts, i);
                cleanup_free char *kind = label(m, "kind"), *status = label(m, "status");
                fprintf(f, "edgemig_controller_actions{kind=\"%s\",status=\"%s\"} %lld\n",
                        kind ?: "", status ?: "", em_json_int(m, "n", 0));
        }
        metric(f, "edgemig_controller_action_seconds", "gauge",
               "total duration of the prepares/migrations in the history");
        for (size_t i = 0; i < json_array_size(counts); i++) {
                json_t *m = json_array_get(counts, i);
                cleanup_free char *kind = label(m, "kind"), *status = label(m, "status");
                fprintf(f, "edgemig_controller_action_seconds{kind=\"%s\",status=\"%s\"} %g\n",
                        kind ?: "", status ?: "", num(m, "ms", 0) / 1000);
        }
}

static int get_metrics(struct em_api *c, struct em_api_reply *r, em_error_t *err)
{
        cleanup_json json_t *edges = NULL, *counts = NULL, *totals = NULL;
        cleanup_free char *buf = NULL;
        size_t len = 0;

        if (c->store->ops->list(c->store, EM_CTL_EDGES, &edges, err) < 0 ||
            c->store->ops->counts(c->store, &counts, &totals, err) < 0)
                return -1;
        cleanup_fclose FILE *f = open_memstream(&buf, &len);
        if (f == NULL)
                return em_error_set(err, errno, "open_memstream");
        json_t *t = totals;
        metric(f, "edgemig_controller_users", "gauge", "users known");
        fprintf(f, "edgemig_controller_users %lld\n", em_json_int(t, "users", 0));
        metric(f, "edgemig_controller_services", "gauge", "services registered");
        fprintf(f, "edgemig_controller_services %lld\n", em_json_int(t, "services", 0));
        metric(f, "edgemig_controller_reports_total", "counter", "position reports since start");
        fprintf(f, "edgemig_controller_reports_total %llu\n", c->reports);
        metric(f, "edgemig_controller_refused_total", "counter",
               "requests refused: no valid client certificate, or one not allowed to do "
               "this");
        fprintf(f, "edgemig_controller_refused_total %llu\n",
                __atomic_load_n(&c->refused, __ATOMIC_RELAXED));
        metric(f, "edgemig_controller_decisions_total", "counter",
               "scheduler decisions since start");
        for (int a = 0; a < 3; a++)
                fprintf(f, "edgemig_controller_decisions_total{action=\"%s\"} %llu\n",
                        em_sched_action_name(a), c->decisions[a]);
        metrics_actions(f, counts);
        metrics_edges(f, edges, em_now_ms());
        fclose(steal_pointer(&f));
        r->status = 200;
        r->text = steal_pointer(&buf);
        return 0;
}

static void get_health(struct em_api *c, struct em_api_reply *r)
{
        char leader[EM_ELECTION_ID_MAX] = "";
        bool lead = c->election == NULL || em_election_leader(c->election);

        if (c->election != NULL)
                em_election_holder(c->election, leader, sizeof(leader));
        reply_json(r, 200,
                   json_pack("{s:b, s:s, s:s, s:s?}", "ok", 1, "store", c->store->name, "role",
                             lead ? "leader" : "follower", "leader",
                             c->election == NULL ? NULL : leader));
}

static int handle_get(struct em_api *c, const char *url, struct em_api_reply *r, em_error_t *err)
{
        if (strcmp(url, "/metrics") == 0)
                return get_metrics(c, r, err);
        if (strcmp(url, "/healthz") == 0) {
                get_health(c, r);
                return 0;
        }
        for (size_t i = 0; i < sizeof(list_urls) / sizeof(list_urls[0]); i++) {
                if (strcmp(url, list_urls[i]) != 0)
                        continue;
                json_t *rows = NULL;
                if (c->store->ops->list(c->store, (enum em_ctl_list)i, &rows, err) < 0)
                        return -1;
                reply_json(r, 200, rows);
                return 0;
        }
        reply_error(r, 404, "no such resource");
        return 0;
}

/* "/edges/NAME/heartbeat" → NAME in buf if url is PREFIX NAME SUFFIX. */
static bool match_name(const char *url, const char *prefix, const char *suffix, char *buf,
                       size_t size)
{
        size_t pl = strlen(prefix), sl = strlen(suffix), ul = strlen(url);
        if (ul <= pl + sl || strncmp(url, prefix, pl) != 0 || strcmp(url + ul - sl, suffix) != 0 ||
            ul - pl - sl >= size)
                return false;
        memcpy(buf, url + pl, ul - pl - sl);
        buf[ul - pl - sl] = '\0';
        return valid_name(buf);
}

/* POST /migrations/ID/cancel: 202 once the source edge is being asked. */
static int post_cancel(struct em_api *c, const char *id_text, struct em_api_reply *r,
                       em_error_t *err)
{
        char *end = NULL;
        long long id = strtoll(id_text, &end, 10);

        if (*end != '\0' || id <= 0) {
                reply_error(r, 404, "no such migration");
                return 0;
        }
        if (em_api_cancel_start(c, id, err) < 0) {
                int st = em_error_status(*err);
                if (st != ENOENT && st != EALREADY && st != EAGAIN && st != EINVAL)
                        return -1;
                reply_error(r, st == ENOENT ? 404 : st == EINVAL ? 400 : 409, em_error_msg(*err));
                em_error_free(err);
                return 0;
        }
        reply_json(r, 202, json_pack("{s:I}", "cancelling", (json_int_t)id));
        return 0;
}

static int handle_post(struct em_api *c, const char *url, const struct em_api_request *rq,
                       struct em_api_reply *r, em_error_t *err)
{
        cleanup_json json_t *b = NULL;
        char name[EM_SCHED_NAME_MAX];

        if (rq->too_big) {
                reply_error(r, 413, "body too large");
                return 0;
        }
        if (em_json_parse(rq->body ? rq->body : "", rq->len, "request body", &b, err) < 0 ||
            !json_is_object(b)) {
                reply_error(r, 400, *err ? em_error_msg(*err) : "body must be a JSON object");
                em_error_free(err);
                return 0;
        }
        if (strcmp(url, "/edges") == 0)
                return post_edge(c, b, r, err);
        if (strcmp(url, "/services") == 0)
                return post_service(c, b, r, err);
        if (match_name(url, "/edges/", "/heartbeat", name, sizeof(name)))
                return post_heartbeat(c, name, b, r, err);
        if (match_name(url, "/users/", "/position", name, sizeof(name)))
                return post_position(c, name, b, r, err);
        if (match_name(url, "/migrations/", "/cancel", name, sizeof(name)))
                return post_cancel(c, name, r, err);
        reply_error(r, 404, "no such resource");
        return 0;
}

/* The etcd backend's takeover: called by the election once this replica
 * won, before it schedules. */
static int take_over(void *ud, em_error_t *err)
{
        struct em_api *c = ud;

        pthread_mutex_lock(&c->lock);
        int rc = c->store ? c->store->ops->recover(c->store, em_now_ms(), err) : 0;
        pthread_mutex_unlock(&c->lock);
        return rc;
}

static int open_store(struct em_api *c, const char *state_dir, em_error_t *err)
{
        if (c->o.etcd.endpoints == NULL)
                return em_ctlstore_sqlite_open(state_dir, c->o.etcd.edge_ttl_s, &c->store, err) <
                                   0 ||
                               c->store->ops->recover(c->store, em_now_ms(), err) < 0
                           ? -1
                           : 0;
        if (em_ctlstore_etcd_open(&c->o.etcd, &c->store, err) < 0)
                return -1;
        return em_election_start(em_ctlstore_etcd_client(c->store), EM_CTL_ETCD_LEADER_KEY,
                                 c->o.etcd.id, c->o.etcd.leader_ttl_s, take_over, c, &c->election,
                                 err);
}

int em_api_open(const char *state_dir, const struct em_api_opts *o, struct em_api **out,
                em_error_t *err)
{
        struct em_api *c = calloc(1, sizeof(*c));

        if (c == NULL)
                return em_error_set(err, ENOMEM, "opening the controller's state");
        c->o = *o;
        pthread_mutex_init(&c->lock, NULL);
        if (open_store(c, state_dir, err) < 0) {
                c->closed = true;
                em_api_close(c);
                return -1;
        }
        *out = c;
        return 0;
}

void em_api_close(struct em_api *c)
{
        bool last;

        if (c == NULL)
                return;
        /* First the election (it calls back into the store): resigning lets
         * another replica take over at once. */
        em_election_stop(c->election);
        c->election = NULL;
        pthread_mutex_lock(&c->lock);
        if (c->store != NULL)
                c->store->ops->close(c->store);
        c->store = NULL;
        last = c->workers == 0;
        pthread_mutex_unlock(&c->lock);
        if (last) {
                pthread_mutex_destroy(&c->lock);
                free(c);
        }
}

void em_api_reply_clear(struct em_api_reply *r)
{
        json_decref(r->json);
        free(r->text);
        *r = (struct em_api_reply){0};
}

char *em_api_reply_take(struct em_api_reply *r, const char **type)
{
        char *text = steal_pointer(&r->text);

        *type = "text/plain; version=0.0.4";
        if (text == NULL) {
                text = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
                *type = "application/json";
        }
        em_api_reply_clear(r);
        return text;
}

void em_api_count_refused(struct em_api *c)
{
        __atomic_add_fetch(&c->refused, 1, __ATOMIC_RELAXED);
}

/* POST /edges: the edge named in the body ("" if none). */
static char *body_edge(const struct em_api_request *rq)
{
        cleanup_json json_t *b = json_loadb(rq->body, rq->len, 0, NULL);
        const char *edge = em_json_str(b, "name");

        return strdup(edge ? edge : "");
}

int em_api_authorize(struct em_api *c, const struct em_api_request *rq, const char *addr,
                     struct em_api_reply *r)
{
        cleanup_error em_error_t err = NULL;
        cleanup_free char *edge = rq->body && !rq->too_big ? body_edge(rq) : NULL;
        const struct em_authz_request a = {rq->method, rq->url, rq->names, edge};

        if (!c->o.tls)
                return EM_AUTHZ_ALLOW;
        int rc = em_authz_check(c->o.admins, &a, &err);
        if (rc >= 0)
                return rc;
        em_log_warn("refused %s %s from %s (%s): %s", rq->method, rq->url, addr,
                    rq->names && rq->names[0] ? rq->names[0] : "?", em_error_msg(err));
        em_api_count_refused(c);
        reply_error(r, 403, em_error_msg(err));
        return -1;
}

/* With replicas, writes other than an edge's own registration and
 * heartbeats (which any replica records: they keep the edge's lease) go
 * to the leader: 503 naming it. */
static bool refuse_follower(struct em_api *c, const struct em_api_request *rq,
                            struct em_api_reply *r)
{
        char name[EM_SCHED_NAME_MAX], leader[EM_ELECTION_ID_MAX];

        if (c->election == NULL || strcmp(rq->method, "POST") != 0 ||
            strcmp(rq->url, "/edges") == 0 ||
            match_name(rq->url, "/edges/", "/heartbeat", name, sizeof(name)) ||
            em_election_leader(c->election))
                return false;
        em_election_holder(c->election, leader, sizeof(leader));
        r->status = 503;
        r->json = json_pack("{s:s, s:s?}", "error",
                            "this controller replica is not the leader: send writes to the "
                            "leader",
                            "leader", leader[0] ? leader : NULL);
        return true;
}

void em_api_handle(struct em_api *c, const struct em_api_request *rq, struct em_api_reply *r)
{
        cleanup_error em_error_t err = NULL;
        int rc = 0;

        pthread_mutex_lock(&c->lock);
        c->http_requests++;
        if (refuse_follower(c, rq, r))
                ;
        else if (strcmp(rq->method, "GET") == 0)
                rc = handle_get(c, rq->url, r, &err);
        else if (strcmp(rq->method, "POST") == 0)
                rc = handle_post(c, rq->url, rq, r, &err);
        else
                rc = (reply_error(r, 405, "method not allowed"), 0);
        pthread_mutex_unlock(&c->lock);
        if (rc < 0) {
                em_log_error("%s %s: %s", rq->method, rq->url, em_error_msg(err));
                em_api_reply_clear(r);
                reply_error(r, 500, em_error_msg(err));
        }
}
