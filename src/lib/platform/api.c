#include "platform/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "platform/api_actions.h"
#include "platform/api_int.h"
#include "platform/authz.h"
#include "platform/registry.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/log.h"

void em_api_opts_init(struct em_api_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->mode = EM_MIGRATE_PRECOPY;
        o->action_timeout_ms = 300000;
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
        if (em_registry_exec(
                c->db, err,
                "INSERT INTO edges(name, addr, x, y, capacity, registered_ms) "
                "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET addr = excluded.addr, "
                "x = excluded.x, y = excluded.y, capacity = excluded.capacity",
                "ssddii", name, addr, num(b, "x", 0), num(b, "y", 0), (int64_t)cap,
                em_now_ms()) < 0)
                return -1;
        em_log_info("edge %s registered at %s (%g, %g), capacity %lld", name, addr, num(b, "x", 0),
                    num(b, "y", 0), cap);
        reply_json(r, 201, json_pack("{s:s}", "name", name));
        return 0;
}

/* "containers" is a count or the list of container names running there; a
 * list also tells where each service really is (after an interrupted move).
 * The body edgemigd sends is described in platform/edge_agent.h. */
static int post_heartbeat(struct em_api *c, const char *edge, const json_t *b,
                          struct em_api_reply *r, em_error_t *err)
{
        json_t *cts = json_object_get(b, "containers"), *peers = json_object_get(b, "peers");
        cleanup_free char *names = NULL, *peers_text = NULL;
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
        if (json_is_array(cts) && (names = json_dumps(cts, JSON_COMPACT)) == NULL)
                return em_error_set(err, ENOMEM, "heartbeat");
        if (peers != NULL && (peers_text = json_dumps(peers, JSON_COMPACT)) == NULL)
                return em_error_set(err, ENOMEM, "heartbeat");
        int rc = em_registry_exec(
            c->db, err,
            "UPDATE edges SET load = ?, containers = ?, cpu = ?, mem_bytes = ?, "
            "active_migrations = ?, bandwidth_mbps = ?, heartbeat_ms = ?, "
            "load1 = ?, mem_available_bytes = ?, container_names = ?, peers = ? "
            "WHERE name = ?",
            "iidiididiSSs", (int64_t)em_json_int(b, "load", n), (int64_t)n, num(b, "cpu", 0),
            (int64_t)em_json_int(b, "mem_bytes", 0),
            (int64_t)em_json_int(b, "active_migrations", 0), num(b, "bandwidth_mbps", 0),
            em_now_ms(), num(b, "load1", 0), (int64_t)em_json_int(b, "mem_available_bytes", 0),
            names, peers_text, edge);
        if (rc < 0)
                return -1;
        if (rc == 0) {
                reply_error(r, 404, "no such edge");
                return 0;
        }
        for (size_t i = 0; i < json_array_size(cts); i++) {
                const char *s = json_string_value(json_array_get(cts, i));
                if (s != NULL &&
                    em_registry_exec(c->db, err,
                                     "UPDATE services SET edge = ? WHERE name = ? AND busy = 0",
                                     "ss", edge, s) < 0)
                        return -1;
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
        if (em_registry_query(c->db, "SELECT name FROM edges WHERE name = ?", "s", &rows, err,
                              edge) < 0)
                return -1;
        if (json_array_size(rows) == 0) {
                reply_error(r, 404, "no such edge");
                return 0;
        }
        if (em_registry_exec(
                c->db, err,
                "INSERT INTO services(name, user, edge, ip, updated_ms) VALUES(?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET user = excluded.user, edge = excluded.edge, "
                "ip = excluded.ip, updated_ms = excluded.updated_ms",
                "sssSi", name, user, edge, ip, em_now_ms()) < 0)
                return -1;
        reply_json(r, 201, json_pack("{s:s}", "name", name));
        return 0;
}

/* Bytes a migration of the service is expected to send: the mean on-the-wire
 * bytes of its last 3 successful migrations (the trigger's `migrate --json`
 * result in the history's detail). Folds in image delta, memory and dirty
 * rate as measured; 0 before the first one. */
static int handoff_bytes(struct em_api *c, const char *service, double *out, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(c->db,
                              "SELECT AVG(b) AS bytes FROM (SELECT json_extract(detail, "
                              "'$.bytes_wire') AS b FROM migrations WHERE service = ? AND "
                              "kind = 'migrate' AND status = 'done' AND json_valid(detail) "
                              "ORDER BY id DESC LIMIT 3) WHERE b > 0",
                              "s", &rows, err, service ? service : "") < 0)
                return -1;
        *out = num(json_array_get(rows, 0), "bytes", 0);
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
        if (em_registry_load_user(c->db, user, &u, err) < 0 ||
            em_registry_load_edges(c->db, &edges, &n, err) < 0 ||
            em_registry_query(c->db,
                              "SELECT name, edge, busy FROM services WHERE user = ? "
                              "ORDER BY name LIMIT 1",
                              "s", &svc, err, user) < 0)
                return -1;
        json_t *s = json_array_get(svc, 0);
        const char *service = em_json_str(s, "name");
        bool busy = em_json_int(s, "busy", 0) != 0;
        snprintf(u.serving, sizeof(u.serving), "%s", service ? em_json_str(s, "edge") : "");
        if (handoff_bytes(c, service, &u.handoff_bytes, err) < 0)
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
        if (em_registry_save_user(c->db, user, x, y, now, &u, err) < 0)
                return -1;
        const char *target = d.target >= 0 ? edges[d.target].name : NULL;
        if (d.action != EM_SCHED_STAY && !deferred &&
            em_api_action_start(c, d.action, service, user, u.serving, target, d.reason, err) < 0)
                return -1;
        reply_json(r, 200,
                   json_pack("{s:s, s:s, s:s?, s:s, s:b, s:s?, s:f}", "user", user, "action",
                             em_sched_action_name(d.action), "target", target, "reason", d.reason,
                             "deferred", deferred, "serving", service ? u.serving : NULL,
                             "handoff_ms", d.handoff_ms));
        return 0;
}

/* ---- GET ---- */

static const char *const list_sql[][2] = {
    {"/edges", "SELECT name, addr, x, y, capacity, load, containers, cpu, load1, mem_bytes, "
               "mem_available_bytes, active_migrations, bandwidth_mbps, registered_ms, "
               "heartbeat_ms, container_names, peers FROM edges ORDER BY name"},
    {"/services", "SELECT name, user, edge, ip, busy FROM services ORDER BY name"},
    {"/users", "SELECT u.name, u.x, u.y, u.updated_ms, u.reports, (SELECT s.edge FROM services s "
               "WHERE s.user = u.name ORDER BY s.name LIMIT 1) AS serving FROM users u "
               "ORDER BY u.name"},
    {"/migrations", "SELECT id, kind, service, user, source, target, started_ms, finished_ms, "
                    "finished_ms - started_ms AS duration_ms, status, reason, detail "
                    "FROM migrations ORDER BY id"},
};

static void metric(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_edges(FILE *f, const json_t *edges, int64_t now)
{
        static const char *const cols[][3] = {
            {"capacity", "edgemig_edge_capacity", "services the edge accepts"},
            {"load", "edgemig_edge_load", "load reported by the edge"},
            {"containers", "edgemig_edge_containers", "containers running on the edge"},
            {"cpu", "edgemig_edge_cpu", "CPU use reported by the edge (0-1 per core)"},
            {"mem_bytes", "edgemig_edge_memory_bytes", "memory in use on the edge"},
            {"active_migrations", "edgemig_edge_active_migrations", "migrations in flight"},
            {"bandwidth_mbps", "edgemig_edge_bandwidth_mbps", "measured bandwidth to peers"},
        };
        for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
                metric(f, cols[k][1], "gauge", cols[k][2]);
                for (size_t i = 0; i < json_array_size(edges); i++) {
                        json_t *e = json_array_get(edges, i);
                        fprintf(f, "%s{edge=\"%s\"} %g\n", cols[k][1], em_json_str(e, "name"),
                                num(e, cols[k][0], 0));
                }
        }
        metric(f, "edgemig_edge_heartbeat_age_seconds", "gauge", "time since the last heartbeat");
        for (size_t i = 0; i < json_array_size(edges); i++) {
                json_t *e = json_array_get(edges, i);
                long long hb = em_json_int(e, "heartbeat_ms", 0);
                fprintf(f, "edgemig_edge_heartbeat_age_seconds{edge=\"%s\"} %g\n",
                        em_json_str(e, "name"), hb ? (double)(now - hb) / 1000 : -1.0);
        }
}

static int get_metrics(struct em_api *c, struct em_api_reply *r, em_error_t *err)
{
        cleanup_json json_t *edges = NULL, *counts = NULL, *totals = NULL;
        cleanup_free char *buf = NULL;
        size_t len = 0;

        if (em_registry_query(c->db, list_sql[0][1], NULL, &edges, err) < 0 ||
            em_registry_query(c->db,
                              "SELECT kind, status, COUNT(*) AS n, "
                              "SUM(finished_ms - started_ms) AS ms FROM migrations "
                              "GROUP BY kind, status",
                              NULL, &counts, err) < 0 ||
            em_registry_query(c->db,
                              "SELECT (SELECT COUNT(*) FROM users) AS users, "
                              "(SELECT COUNT(*) FROM services) AS services",
                              NULL, &totals, err) < 0)
                return -1;
        cleanup_fclose FILE *f = open_memstream(&buf, &len);
        if (f == NULL)
                return em_error_set(err, errno, "open_memstream");
        json_t *t = json_array_get(totals, 0);
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
        metric(f, "edgemig_controller_actions", "gauge", "prepares/migrations in the history");
        metric(f, "edgemig_controller_action_seconds_sum", "gauge", "their total duration");
        for (size_t i = 0; i < json_array_size(counts); i++) {
                json_t *m = json_array_get(counts, i);
                fprintf(f, "edgemig_controller_actions{kind=\"%s\",status=\"%s\"} %lld\n",
                        em_json_str(m, "kind"), em_json_str(m, "status"), em_json_int(m, "n", 0));
                fprintf(f, "edgemig_controller_action_seconds_sum{kind=\"%s\",status=\"%s\"} %g\n",
                        em_json_str(m, "kind"), em_json_str(m, "status"), num(m, "ms", 0) / 1000);
        }
        metrics_edges(f, edges, em_now_ms());
        fclose(steal_pointer(&f));
        r->status = 200;
        r->text = steal_pointer(&buf);
        return 0;
}

/* The JSON kept as text in edges rows (container_names, peers) goes out as
 * JSON. */
static void edges_unpack(json_t *rows)
{
        static const char *const cols[] = {"container_names", "peers"};
        size_t i;
        json_t *row;

        json_array_foreach(rows, i, row)
        {
                for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
                        const char *t = em_json_str(row, cols[k]);
                        json_t *v = t ? json_loads(t, 0, NULL) : NULL;
                        if (v != NULL)
                                json_object_set_new(row, cols[k], v);
                }
        }
}

static int handle_get(struct em_api *c, const char *url, struct em_api_reply *r, em_error_t *err)
{
        if (strcmp(url, "/metrics") == 0)
                return get_metrics(c, r, err);
        if (strcmp(url, "/healthz") == 0) {
                reply_json(r, 200, json_pack("{s:b}", "ok", 1));
                return 0;
        }
        for (size_t i = 0; i < sizeof(list_sql) / sizeof(list_sql[0]); i++) {
                if (strcmp(url, list_sql[i][0]) != 0)
                        continue;
                json_t *rows = NULL;
                if (em_registry_query(c->db, list_sql[i][1], NULL, &rows, err) < 0)
                        return -1;
                if (i == 0)
                        edges_unpack(rows);
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

/* Actions that were running when a previous controller died: their outcome
 * is decided by edgemigd's own rules (finish or roll back); the next edge
 * heartbeat listing containers tells where the service ended up. */
static int recover_state(struct em_api *c, em_error_t *err)
{
        int n = em_registry_exec(c->db, err,
                                 "UPDATE migrations SET status = 'interrupted', finished_ms = ? "
                                 "WHERE status = 'running'",
                                 "i", em_now_ms());
        if (n < 0 || em_registry_exec(c->db, err, "UPDATE services SET busy = 0", NULL) < 0)
                return -1;
        if (n > 0)
                em_log_warn("%d action(s) were in flight when the last controller stopped", n);
        return 0;
}

int em_api_open(const char *state_dir, const struct em_api_opts *o, struct em_api **out,
                em_error_t *err)
{
        cleanup_free char *path = NULL;
        struct em_api *c;

        if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
                return em_error_set(err, errno, "creating %s", state_dir);
        if (asprintf(&path, "%s/controller.db", state_dir) < 0 ||
            (c = calloc(1, sizeof(*c))) == NULL)
                return em_error_set(err, ENOMEM, "opening the registry");
        c->o = *o;
        pthread_mutex_init(&c->lock, NULL);
        if (em_registry_open(path, &c->db, err) < 0 || recover_state(c, err) < 0) {
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
        pthread_mutex_lock(&c->lock);
        sqlite3_close(c->db);
        c->db = NULL;
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

void em_api_handle(struct em_api *c, const struct em_api_request *rq, struct em_api_reply *r)
{
        cleanup_error em_error_t err = NULL;
        int rc;

        pthread_mutex_lock(&c->lock);
        c->http_requests++;
        if (strcmp(rq->method, "GET") == 0)
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
