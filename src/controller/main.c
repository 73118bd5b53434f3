/* edgemig-controller: the platform's control plane. Edges register and
 * heartbeat, services are registered with their user and edge, users report
 * positions; the scheduler (platform/scheduler.h) decides, and the controller
 * asks the source edge's edgemigd to prepare/migrate with an authenticated
 * control request (migrate/control.h), or runs a configured command.
 * State lives in SQLite, so a restart loses nothing. HTTP/JSON API on
 * libmicrohttpd, over mutual TLS (clients need a certificate of the
 * platform CA) unless --insecure; an edge may register and heartbeat only
 * as the name its certificate carries, other writes need an --admin
 * certificate (platform/authz.h); see docs/platform.md. */
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include <openssl/x509.h>

#include "controller/store.h"
#include "migrate/control.h"
#include "platform/authz.h"
#include "transfer/ca.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

#define BODY_MAX (64 * 1024)

static const char usage[] =
    "Usage: edgemig-controller --state-dir DIR [OPTIONS]\n"
    "\n"
    "The edge platform controller: registers edges and services, takes user\n"
    "position reports and moves each user's service to the nearest edge with\n"
    "room (with hysteresis), pre-transferring it to the edge the user heads to.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT      API address (default 127.0.0.1:7880)\n"
    "  --tls-cert FILE         this controller's certificate (PEM): serve HTTPS\n"
    "  --tls-key FILE          ...its private key\n"
    "  --tls-ca FILE           the platform CA: clients must present a certificate\n"
    "                          it signed (mutual TLS)\n"
    "  --admin NAME            a certificate name that may act as an operator:\n"
    "                          register services, report positions, register or\n"
    "                          heartbeat any edge (repeatable; required with TLS)\n"
    "  --insecure              plain HTTP, no client authentication (trusted test\n"
    "                          networks only)\n"
    "  --state-dir DIR         where controller.db lives (required)\n"
    "  --mode MODE             migration mode requested from the edges: precopy\n"
    "                          (default), stop-and-copy, postcopy, hybrid or auto\n"
    "  --migrate-cmd PATH      instead of a control request, run `PATH SOURCE_EDGE\n"
    "                          SERVICE TARGET_ADDR` to migrate (test beds, scripts)\n"
    "  --prepare-cmd PATH      same for prepare\n"
    "  --margin D              a new edge must be closer by D (default 10)\n"
    "  --dwell-ms MS           ...for MS milliseconds in a row (default 2000)\n"
    "  --approach-reports N    prepare after N shrinking distances (default 3)\n"
    "  --prepare-radius D      prepare only edges within D (default 0: any)\n"
    "  --dwell-per-handoff F   add F x the expected handoff time to the dwell (default 2)\n"
    "  --dwell-max-ms MS       ...up to MS in all (default 10000)\n"
    "  --prepare-lead-ms MS    one approaching report fewer per MS of expected handoff\n"
    "                          (default 1000; 0: fixed)\n"
    "  --action-timeout S      give up on a migrate/prepare after S s (default 300)\n"
    "  --log-level LEVEL       error, warn, info (default) or debug\n"
    "  --log-format FORMAT     text (default) or json\n"
    "  -h, --help              this help\n"
    "\n"
    "Access (with TLS): every client needs a certificate of the platform CA.\n"
    "GET requests are open to any of them. An edge may POST /edges and\n"
    "/edges/NAME/heartbeat only for a NAME its certificate carries (SAN DNS/URI\n"
    "or CN, as edgemigd --allow-peer matches); every other write needs an\n"
    "--admin certificate. Refusals: 403 with the reason, logged with the\n"
    "client's name and address, counted in edgemig_controller_refused_total.\n"
    "\n"
    "Triggering: by default the controller connects to the source edge's\n"
    "edgemigd (its registered ADDR:PORT) with mutual TLS, presenting\n"
    "--tls-cert, and requires the edge's certificate to name the edge; the edge\n"
    "must list this certificate's name in `edgemigd --allow-controller`. The\n"
    "edge answers with the migration's report, kept in GET /migrations.\n";

struct ctl {
        sqlite3 *db;
        pthread_mutex_t lock;
        const char *migrate_cmd, *prepare_cmd;
        const char *tls_cert, *tls_key, *tls_ca; /* also the client identity towards edges */
        enum em_migrate_mode mode;
        struct em_sched_params params;
        int action_timeout_s;
        bool tls;
        const char **admins;        /* --admin names, NULL-terminated (argv strings) */
        unsigned long long refused; /* requests refused: authentication or authorization */
        unsigned long long reports, decisions[3], http_requests;
};

struct request {
        char *body;
        size_t len;
        bool too_big;
        char **names;    /* the client certificate's names (TLS only) */
        bool needs_body; /* authorization waits for the body (POST /edges) */
};

struct reply {
        unsigned status;
        json_t *json; /* owned */
        char *text;   /* owned, for /metrics */
};

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

static void reply_error(struct reply *r, unsigned status, const char *msg)
{
        r->status = status;
        r->json = json_pack("{s:s}", "error", msg);
}

static void reply_json(struct reply *r, unsigned status, json_t *j)
{
        r->status = status;
        r->json = j;
}

static double num(const json_t *o, const char *k, double fallback)
{
        json_t *v = json_object_get(o, k);
        return json_is_number(v) ? json_number_value(v) : fallback;
}

/* ---- migrations: run the configured command in a worker thread ---- */

struct action {
        struct ctl *ctl;
        int64_t id;
        enum em_sched_action kind;
        char cmd[4096], source[EM_SCHED_NAME_MAX], service[EM_SCHED_NAME_MAX];
        char target[EM_SCHED_NAME_MAX], target_addr[256], source_addr[256];
};

static void action_finish(struct action *a, bool ok, const char *detail)
{
        cleanup_error em_error_t err = NULL;
        struct ctl *c = a->ctl;

        pthread_mutex_lock(&c->lock);
        if (ok && a->kind == EM_SCHED_MIGRATE)
                ctl_exec(c->db, &err, "UPDATE services SET edge = ?, updated_ms = ? WHERE name = ?",
                         "sis", a->target, em_now_ms(), a->service);
        ctl_exec(c->db, &err, "UPDATE services SET busy = 0 WHERE name = ?", "s", a->service);
        ctl_exec(c->db, &err,
                 "UPDATE migrations SET status = ?, finished_ms = ?, detail = ? WHERE id = ?",
                 "siSi", ok ? "done" : "failed", em_now_ms(), detail, a->id);
        pthread_mutex_unlock(&c->lock);
        if (err != NULL)
                em_log_error("recording %s of %s: %s", em_sched_action_name(a->kind), a->service,
                             em_error_msg(err));
}

/* The authenticated path: a CONTROL request to the source edge's edgemigd,
 * which must present a certificate naming that edge. The history's detail
 * is the migration report it answers with (on failure too), else the error. */
static void action_request(struct action *a)
{
        cleanup_error em_error_t err = NULL;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        cleanup_json json_t *reply = NULL;
        cleanup_free char *detail = NULL;
        const char *const edge[] = {a->source, NULL};
        struct em_tls_config tc = {a->ctl->tls_ca, a->ctl->tls_cert, a->ctl->tls_key, edge};
        struct em_control_req req = {
            .op = a->kind == EM_SCHED_PREPARE ? EM_CONTROL_PREPARE : EM_CONTROL_MIGRATE,
            .mode = a->kind == EM_SCHED_PREPARE ? EM_MIGRATE_PREPARE : a->ctl->mode,
            .id = a->id,
        };

        em_log_info("%s %s: %s (%s) -> %s (%s), control request %lld",
                    em_sched_action_name(a->kind), a->service, a->source, a->source_addr, a->target,
                    a->target_addr, (long long)a->id);
        snprintf(req.service, sizeof(req.service), "%s", a->service);
        snprintf(req.to, sizeof(req.to), "%s", a->target_addr);
        int rc = em_tls_ctx_new(&tc, false, &tls, &err);
        if (rc == 0)
                rc = em_control_request(tls, a->source_addr, &req, a->ctl->action_timeout_s * 1000,
                                        &reply, &err);
        bool ok = rc == 0 && json_is_true(json_object_get(reply, "ok"));
        json_t *report = json_object_get(reply, "report");
        if (json_is_object(report))
                detail = json_dumps(report, JSON_COMPACT);
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
        spec.timeout_ms = a->ctl->action_timeout_s * 1000;
        int rc = em_proc_run(&spec, &res, &err);
        const char *detail = rc < 0 ? em_error_msg(err) : (res.out ? res.out : "");
        em_log_info("%s %s -> %s: %s", em_sched_action_name(a->kind), a->service, a->target,
                    rc < 0 ? detail : "done");
        action_finish(a, rc == 0, detail);
        return NULL;
}

/* Called with the lock held: records the action and starts its worker. */
static int action_start(struct ctl *c, enum em_sched_action kind, const char *service,
                        const char *user, const char *source, const char *target,
                        const char *reason, em_error_t *err)
{
        const char *cmd = kind == EM_SCHED_MIGRATE ? c->migrate_cmd : c->prepare_cmd;
        cleanup_json json_t *rows = NULL, *srows = NULL;
        cleanup_free struct action *a = calloc(1, sizeof(*a));

        if (a == NULL)
                return em_error_set(err, ENOMEM, "action");
        if (ctl_query_json(c->db, "SELECT addr FROM edges WHERE name = ?", "s", &rows, err,
                           target) < 0 ||
            ctl_query_json(c->db, "SELECT addr FROM edges WHERE name = ?", "s", &srows, err,
                           source) < 0)
                return -1;
        const char *addr = em_json_str(json_array_get(rows, 0), "addr");
        const char *saddr = em_json_str(json_array_get(srows, 0), "addr");
        if (addr == NULL)
                return em_error_set(err, ENOENT, "edge %s has no address", target);
        /* Without a command: the authenticated request, which needs TLS. */
        bool run = cmd != NULL || (c->tls && saddr != NULL);
        const char *skip = saddr == NULL ? "skipped (source edge unknown)"
                                         : "skipped (no --migrate-cmd, and control requests "
                                           "need --tls-*)";
        if (ctl_exec(c->db, err,
                     "INSERT INTO migrations(kind, service, user, source, target, started_ms, "
                     "status, reason) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                     "sssssiss", em_sched_action_name(kind), service, user, source, target,
                     em_now_ms(), run ? "running" : skip, reason) < 0)
                return -1;
        if (!run)
                return 0;
        a->ctl = c;
        a->id = sqlite3_last_insert_rowid(c->db);
        a->kind = kind;
        snprintf(a->cmd, sizeof(a->cmd), "%s", cmd ? cmd : "");
        snprintf(a->source_addr, sizeof(a->source_addr), "%s", saddr ? saddr : "");
        snprintf(a->source, sizeof(a->source), "%s", source);
        snprintf(a->service, sizeof(a->service), "%s", service);
        snprintf(a->target, sizeof(a->target), "%s", target);
        snprintf(a->target_addr, sizeof(a->target_addr), "%s", addr);
        if (ctl_exec(c->db, err, "UPDATE services SET busy = 1 WHERE name = ?", "s", service) < 0)
                return -1;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, action_run, a);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
                ctl_exec(c->db, err, "UPDATE services SET busy = 0 WHERE name = ?", "s", service);
                return em_error_set(err, rc, "starting the %s worker", em_sched_action_name(kind));
        }
        steal_pointer(&a);
        return 0;
}

/* ---- handlers (called with the lock held) ---- */

static int post_edge(struct ctl *c, const json_t *b, struct reply *r, em_error_t *err)
{
        const char *name = em_json_str(b, "name"), *addr = em_json_str(b, "addr");
        long long cap = em_json_int(b, "capacity", -1);

        if (!valid_name(name) || addr == NULL || cap < 0 ||
            !json_is_number(json_object_get(b, "x")) || !json_is_number(json_object_get(b, "y"))) {
                reply_error(r, 400, "need name, addr, x, y, capacity >= 0");
                return 0;
        }
        if (ctl_exec(
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
static int post_heartbeat(struct ctl *c, const char *edge, const json_t *b, struct reply *r,
                          em_error_t *err)
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
        int rc =
            ctl_exec(c->db, err,
                     "UPDATE edges SET load = ?, containers = ?, cpu = ?, mem_bytes = ?, "
                     "active_migrations = ?, bandwidth_mbps = ?, heartbeat_ms = ?, "
                     "load1 = ?, mem_available_bytes = ?, container_names = ?, peers = ? "
                     "WHERE name = ?",
                     "iidiididiSSs", (int64_t)em_json_int(b, "load", n), (int64_t)n,
                     num(b, "cpu", 0), (int64_t)em_json_int(b, "mem_bytes", 0),
                     (int64_t)em_json_int(b, "active_migrations", 0), num(b, "bandwidth_mbps", 0),
                     em_now_ms(), num(b, "load1", 0),
                     (int64_t)em_json_int(b, "mem_available_bytes", 0), names, peers_text, edge);
        if (rc < 0)
                return -1;
        if (rc == 0) {
                reply_error(r, 404, "no such edge");
                return 0;
        }
        for (size_t i = 0; i < json_array_size(cts); i++) {
                const char *s = json_string_value(json_array_get(cts, i));
                if (s != NULL &&
                    ctl_exec(c->db, err, "UPDATE services SET edge = ? WHERE name = ? AND busy = 0",
                             "ss", edge, s) < 0)
                        return -1;
        }
        reply_json(r, 200, json_pack("{s:s}", "name", edge));
        return 0;
}

static int post_service(struct ctl *c, const json_t *b, struct reply *r, em_error_t *err)
{
        const char *name = em_json_str(b, "name"), *user = em_json_str(b, "user");
        const char *edge = em_json_str(b, "edge"), *ip = em_json_str(b, "ip");
        cleanup_json json_t *rows = NULL;

        if (!valid_name(name) || !valid_name(user) || !valid_name(edge)) {
                reply_error(r, 400, "need name, user, edge (and ip)");
                return 0;
        }
        if (ctl_query_json(c->db, "SELECT name FROM edges WHERE name = ?", "s", &rows, err, edge) <
            0)
                return -1;
        if (json_array_size(rows) == 0) {
                reply_error(r, 404, "no such edge");
                return 0;
        }
        if (ctl_exec(c->db, err,
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
static int handoff_bytes(struct ctl *c, const char *service, double *out, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (ctl_query_json(c->db,
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
static int post_position(struct ctl *c, const char *user, const json_t *b, struct reply *r,
                         em_error_t *err)
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
        if (ctl_load_user(c->db, user, &u, err) < 0 || ctl_load_edges(c->db, &edges, &n, err) < 0 ||
            ctl_query_json(c->db,
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
        if (em_sched_decide(&c->params, edges, n, &u, x, y, now, &d, err) < 0) {
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
        if (ctl_save_user(c->db, user, x, y, now, &u, err) < 0)
                return -1;
        const char *target = d.target >= 0 ? edges[d.target].name : NULL;
        if (d.action != EM_SCHED_STAY && !deferred &&
            action_start(c, d.action, service, user, u.serving, target, d.reason, err) < 0)
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

static int get_metrics(struct ctl *c, struct reply *r, em_error_t *err)
{
        cleanup_json json_t *edges = NULL, *counts = NULL, *totals = NULL;
        cleanup_free char *buf = NULL;
        size_t len = 0;

        if (ctl_query_json(c->db, list_sql[0][1], NULL, &edges, err) < 0 ||
            ctl_query_json(c->db,
                           "SELECT kind, status, COUNT(*) AS n, "
                           "SUM(finished_ms - started_ms) AS ms FROM migrations "
                           "GROUP BY kind, status",
                           NULL, &counts, err) < 0 ||
            ctl_query_json(c->db,
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

static int handle_get(struct ctl *c, const char *url, struct reply *r, em_error_t *err)
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
                if (ctl_query_json(c->db, list_sql[i][1], NULL, &rows, err) < 0)
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

static int handle_post(struct ctl *c, const char *url, const struct request *rq, struct reply *r,
                       em_error_t *err)
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
        reply_error(r, 404, "no such resource");
        return 0;
}

/* ---- libmicrohttpd plumbing ---- */

/* With MHD_OPTION_HTTPS_MEM_TRUST libmicrohttpd only asks for a client
 * certificate (GNUTLS_CERT_REQUEST) and never checks it, so every request is
 * checked here: a certificate must be presented and chain to the platform CA
 * (validity included). Returns NULL if so, else why not; *subject gets the
 * presented certificate's DN when there is one (gnutls_free it), *names the
 * identities of an accepted one (em_x509_names, the helper edgemigd's
 * --allow-peer check uses: SAN DNS/URI, then CN). */
static const char *client_refusal(struct MHD_Connection *conn, gnutls_datum_t *subject,
                                  char ***names)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
        unsigned int n = 0, status = 0;
        gnutls_x509_crt_t crt;

        if (s == NULL)
                return "no TLS session";
        const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
        if (peers == NULL || n == 0)
                return "no client certificate";
        if (gnutls_x509_crt_init(&crt) == 0) {
                if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0)
                        gnutls_x509_crt_get_dn2(crt, subject);
                gnutls_x509_crt_deinit(crt);
        }
        if (gnutls_certificate_verify_peers2(s, &status) < 0)
                return "client certificate could not be verified";
        if (status & GNUTLS_CERT_EXPIRED)
                return "client certificate expired";
        if (status & GNUTLS_CERT_NOT_ACTIVATED)
                return "client certificate not yet valid";
        if (status != 0)
                return "client certificate not signed by the platform CA";
        const unsigned char *der = peers[0].data;
        cleanup_x509 X509 *x = d2i_X509(NULL, &der, (long)peers[0].size);
        if (x == NULL || em_x509_names(x, names, NULL) < 0)
                return "client certificate could not be parsed";
        return NULL;
}

static void client_addr(struct MHD_Connection *conn, char *buf, size_t size)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        snprintf(buf, size, "?");
        if (ci != NULL && ci->client_addr->sa_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, buf,
                          (socklen_t)size);
}

/* Logs and counts a request refused for want of a valid certificate;
 * otherwise *names gets the certificate's names. */
static bool client_refused(struct ctl *c, struct MHD_Connection *conn, const char *method,
                           const char *url, char ***names)
{
        gnutls_datum_t subject = {NULL, 0};
        const char *why = client_refusal(conn, &subject, names);
        char addr[INET6_ADDRSTRLEN];

        if (why == NULL) {
                gnutls_free(subject.data);
                return false;
        }
        client_addr(conn, addr, sizeof(addr));
        em_log_warn("refused %s %s from %s: %s%s%s", method, url, addr, why,
                    subject.data ? ": " : "", subject.data ? (char *)subject.data : "");
        gnutls_free(subject.data);
        __atomic_add_fetch(&c->refused, 1, __ATOMIC_RELAXED);
        return true;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct reply *r)
{
        char *text = r->text;
        const char *type = "text/plain; version=0.0.4";

        if (text == NULL) {
                text = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
                type = "application/json";
        }
        json_decref(r->json);
        if (text == NULL)
                return MHD_NO;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
                free(text);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", type);
        enum MHD_Result rc = MHD_queue_response(conn, r->status, resp);
        MHD_destroy_response(resp);
        return rc;
}

/* Authorization after authentication (platform/authz.h), body_edge as
 * there. Returns EM_AUTHZ_ALLOW or EM_AUTHZ_NEEDS_BODY; or -1 after logging
 * and counting the refusal, with its 403 queued in *result. */
static int authorize(struct ctl *c, struct MHD_Connection *conn, const char *method,
                     const char *url, char **names, const char *body_edge, enum MHD_Result *result)
{
        cleanup_error em_error_t err = NULL;
        const struct em_authz_request a = {method, url, (const char *const *)names, body_edge};
        char addr[INET6_ADDRSTRLEN];
        struct reply r = {0};

        int rc = em_authz_check(c->admins, &a, &err);
        if (rc >= 0)
                return rc;
        client_addr(conn, addr, sizeof(addr));
        em_log_warn("refused %s %s from %s (%s): %s", method, url, addr,
                    names && names[0] ? names[0] : "?", em_error_msg(err));
        __atomic_add_fetch(&c->refused, 1, __ATOMIC_RELAXED);
        reply_error(&r, 403, em_error_msg(err));
        *result = send_reply(conn, &r);
        return -1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
        struct ctl *c = cls;
        struct request *rq = *con_cls;
        enum MHD_Result refused = MHD_NO;

        if (rq == NULL) {
                cleanup_strv char **names = NULL;
                int authz = EM_AUTHZ_ALLOW;
                if (c->tls && client_refused(c, conn, method, url, &names)) {
                        struct reply r = {0};
                        reply_error(&r, 403, "a client certificate of the platform CA is required");
                        return send_reply(conn, &r);
                }
                /* Refused before the body is read, unless the body decides. */
                if (c->tls && (authz = authorize(c, conn, method, url, names, NULL, &refused)) < 0)
                        return refused;
                rq = calloc(1, sizeof(*rq));
                if (rq == NULL)
                        return MHD_NO;
                rq->names = steal_pointer(&names);
                rq->needs_body = authz == EM_AUTHZ_NEEDS_BODY;
                *con_cls = rq;
                return MHD_YES;
        }
        if (*upload_size > 0) { /* body arrives in pieces */
                if (rq->len + *upload_size > BODY_MAX) {
                        rq->too_big = true;
                } else {
                        char *nb = realloc(rq->body, rq->len + *upload_size + 1);
                        if (nb == NULL)
                                return MHD_NO;
                        memcpy(nb + rq->len, upload_data, *upload_size);
                        rq->body = nb;
                        rq->len += *upload_size;
                        rq->body[rq->len] = '\0';
                }
                *upload_size = 0;
                return MHD_YES;
        }
        if (rq->needs_body && !rq->too_big) { /* POST /edges: the name is in the body */
                cleanup_json json_t *b = json_loadb(rq->body ? rq->body : "", rq->len, 0, NULL);
                const char *edge = em_json_str(b, "name");
                if (authorize(c, conn, method, url, rq->names, edge ? edge : "", &refused) < 0)
                        return refused;
        }
        cleanup_error em_error_t err = NULL;
        struct reply r = {0};
        int rc;
        pthread_mutex_lock(&c->lock);
        c->http_requests++;
        if (strcmp(method, "GET") == 0)
                rc = handle_get(c, url, &r, &err);
        else if (strcmp(method, "POST") == 0)
                rc = handle_post(c, url, rq, &r, &err);
        else
                rc = (reply_error(&r, 405, "method not allowed"), 0);
        pthread_mutex_unlock(&c->lock);
        if (rc < 0) {
                em_log_error("%s %s: %s", method, url, em_error_msg(err));
                json_decref(r.json);
                free(r.text);
                r = (struct reply){0};
                reply_error(&r, 500, em_error_msg(err));
        }
        return send_reply(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;
        if (rq != NULL) {
                free(rq->body);
                em_strv_free(rq->names);
                free(rq);
        }
        *con_cls = NULL;
}

static int parse_listen(const char *s, struct sockaddr_in *sa, em_error_t *err)
{
        cleanup_free char *host = strdup(s);
        char *colon = host ? strrchr(host, ':') : NULL;

        if (colon == NULL)
                return em_error_set(err, EINVAL, "--listen takes ADDR:PORT, not '%s'", s);
        *colon = '\0';
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        long port = strtol(colon + 1, NULL, 10);
        if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                return em_error_set(err, EINVAL, "--listen takes IPv4ADDR:PORT, not '%s'", s);
        sa->sin_port = htons((uint16_t)port);
        return 0;
}

/* Actions that were running when a previous controller died: their outcome
 * is decided by edgemigd's own rules (finish or roll back); the next edge
 * heartbeat listing containers tells where the service ended up. */
static int recover_state(struct ctl *c, em_error_t *err)
{
        int n = ctl_exec(c->db, err,
                         "UPDATE migrations SET status = 'interrupted', finished_ms = ? "
                         "WHERE status = 'running'",
                         "i", em_now_ms());
        if (n < 0 || ctl_exec(c->db, err, "UPDATE services SET busy = 0", NULL) < 0)
                return -1;
        if (n > 0)
                em_log_warn("%d action(s) were in flight when the last controller stopped", n);
        return 0;
}

struct opts {
        const char *listen, *state_dir;
        const char *tls_cert, *tls_key, *tls_ca;
        size_t nadmins;
        bool insecure;
};

static int parse_double(const char *s, double *out)
{
        char *end;
        errno = 0;
        *out = strtod(s, &end);
        return errno || *end || end == s || *out < 0 ? -1 : 0;
}

/* Same policy as edgemigd: mutual TLS, or plain HTTP only when asked for;
 * and with TLS, the operators' names (as edgemigd --allow-controller, no
 * silent default: without them nobody could register a service). */
static int check_tls_args(const struct opts *o)
{
        bool any = o->tls_cert || o->tls_key || o->tls_ca;
        const char *msg = NULL;

        if (o->insecure && any)
                msg = "--insecure excludes --tls-cert, --tls-key and --tls-ca";
        else if (o->insecure && o->nadmins > 0)
                msg = "--insecure excludes --admin: plain HTTP has no client identity (anyone may "
                      "do anything)";
        else if (!o->insecure && !any)
                msg = "clients must authenticate: pass --tls-cert FILE --tls-key FILE --tls-ca "
                      "FILE (certificates of the platform CA, `edgemig ca`), or --insecure for "
                      "plain HTTP on a trusted test network";
        else if (any && !(o->tls_cert && o->tls_key && o->tls_ca))
                msg = "--tls-cert, --tls-key and --tls-ca go together";
        else if (any && o->nadmins == 0)
                msg = "name the operators' certificates with --admin NAME (repeatable; e.g. "
                      "`edgemig ca issue admin` and --admin admin): only they may register "
                      "services and report positions, edges act only for themselves";
        if (msg == NULL)
                return 0;
        fprintf(stderr, "edgemig-controller: %s\n", msg);
        return -1;
}

static int parse_args(int argc, char **argv, struct opts *o, struct ctl *c)
{
        static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
                                           {"state-dir", required_argument, NULL, 's'},
                                           {"migrate-cmd", required_argument, NULL, 'm'},
                                           {"prepare-cmd", required_argument, NULL, 'p'},
                                           {"margin", required_argument, NULL, 'M'},
                                           {"dwell-ms", required_argument, NULL, 'D'},
                                           {"approach-reports", required_argument, NULL, 'A'},
                                           {"prepare-radius", required_argument, NULL, 'R'},
                                           {"action-timeout", required_argument, NULL, 'T'},
                                           {"dwell-per-handoff", required_argument, NULL, 'F'},
                                           {"dwell-max-ms", required_argument, NULL, 'X'},
                                           {"prepare-lead-ms", required_argument, NULL, 'P'},
                                           {"log-level", required_argument, NULL, 'L'},
                                           {"log-format", required_argument, NULL, 'J'},
                                           {"tls-cert", required_argument, NULL, 'c'},
                                           {"tls-key", required_argument, NULL, 'k'},
                                           {"tls-ca", required_argument, NULL, 'a'},
                                           {"insecure", no_argument, NULL, 'I'},
                                           {"mode", required_argument, NULL, 'o'},
                                           {"admin", required_argument, NULL, 'd'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
        struct em_log_opts lopt = EM_LOG_OPTS_INIT;
        char msg[160];
        double v = 0;
        int ch;

        while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
                bool bad = false;
                switch (ch) {
                case 'l':
                        o->listen = optarg;
                        break;
                case 's':
                        o->state_dir = optarg;
                        break;
                case 'm':
                        c->migrate_cmd = optarg;
                        break;
                case 'p':
                        c->prepare_cmd = optarg;
                        break;
                case 'M':
                        bad = parse_double(optarg, &c->params.margin) < 0;
                        break;
                case 'D':
                        bad = parse_double(optarg, &v) < 0, c->params.dwell_ms = (int64_t)v;
                        break;
                case 'A':
                        bad = parse_double(optarg, &v) < 0, c->params.approach_reports = (int)v;
                        break;
                case 'R':
                        bad = parse_double(optarg, &c->params.prepare_radius) < 0;
                        break;
                case 'T':
                        bad = parse_double(optarg, &v) < 0 || v < 1, c->action_timeout_s = (int)v;
                        break;
                case 'F':
                        bad = parse_double(optarg, &c->params.dwell_per_handoff) < 0;
                        break;
                case 'X':
                        bad = parse_double(optarg, &v) < 0, c->params.dwell_max_ms = (int64_t)v;
                        break;
                case 'P':
                        bad = parse_double(optarg, &v) < 0, c->params.prepare_lead_ms = (int64_t)v;
                        break;
                case 'L':
                case 'J':
                        if (em_log_opt_parse(&lopt, ch == 'L' ? "log-level" : "log-format", optarg,
                                             msg, sizeof(msg)) < 0) {
                                fprintf(stderr, "edgemig-controller: %s\n", msg);
                                return -1;
                        }
                        break;
                case 'c':
                        o->tls_cert = optarg;
                        break;
                case 'k':
                        o->tls_key = optarg;
                        break;
                case 'a':
                        o->tls_ca = optarg;
                        break;
                case 'I':
                        o->insecure = true;
                        break;
                case 'd': {
                        const char **list = realloc(c->admins, (o->nadmins + 2) * sizeof(*list));
                        if (list == NULL)
                                return -1;
                        list[o->nadmins++] = optarg;
                        list[o->nadmins] = NULL;
                        c->admins = list;
                        bad = *optarg == '\0';
                        break;
                }
                case 'o': {
                        cleanup_error em_error_t e = NULL;
                        bad = em_migrate_mode_parse(optarg, &c->mode, &e) < 0 ||
                              c->mode == EM_MIGRATE_PREPARE;
                        break;
                }
                case 'h':
                        fputs(usage, stdout);
                        exit(0);
                default:
                        bad = true;
                }
                if (bad) {
                        fputs(usage, stderr);
                        return -1;
                }
        }
        if (o->state_dir == NULL || optind != argc) {
                fputs(usage, stderr);
                return -1;
        }
        em_log_setup(lopt.level, lopt.json, 2, "edgemig-controller");
        c->tls_cert = o->tls_cert;
        c->tls_key = o->tls_key;
        c->tls_ca = o->tls_ca;
        return check_tls_args(o);
}

struct tls_files {
        char *cert, *key, *ca;
};

static void tls_files_free(struct tls_files *t)
{
        free(t->cert);
        if (t->key != NULL)
                explicit_bzero(t->key, strlen(t->key));
        free(t->key);
        free(t->ca);
}

static int tls_load(const struct opts *o, struct tls_files *t, em_error_t *err)
{
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
                return em_error_set(err, ENOTSUP, "libmicrohttpd was built without TLS");
        if (em_read_file(o->tls_cert, 1 << 20, &t->cert, NULL, err) < 0 ||
            em_read_file(o->tls_key, 1 << 20, &t->key, NULL, err) < 0 ||
            em_read_file(o->tls_ca, 1 << 20, &t->ca, NULL, err) < 0)
                return -1;
        return 0;
}

static struct MHD_Daemon *start_daemon(struct ctl *c, struct sockaddr_in *sa,
                                       const struct tls_files *t)
{
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

        if (!c->tls)
                return MHD_start_daemon(flags, 0, NULL, NULL, on_request, c, MHD_OPTION_SOCK_ADDR,
                                        (struct sockaddr *)sa, MHD_OPTION_NOTIFY_COMPLETED,
                                        on_completed, c, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                                        MHD_OPTION_END);
        return MHD_start_daemon(
            flags | MHD_USE_TLS, 0, NULL, NULL, on_request, c, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, c,
            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_HTTPS_MEM_CERT, t->cert,
            MHD_OPTION_HTTPS_MEM_KEY, t->key, MHD_OPTION_HTTPS_MEM_TRUST, t->ca, MHD_OPTION_END);
}

static int serve(struct ctl *c, const struct opts *o, em_error_t *err)
{
        __attribute__((cleanup(tls_files_free))) struct tls_files t = {0};
        struct sockaddr_in sa;
        sigset_t set;
        int sig;

        if (parse_listen(o->listen, &sa, err) < 0)
                return -1;
        c->tls = !o->insecure;
        if (c->tls && tls_load(o, &t, err) < 0)
                return -1;
        struct MHD_Daemon *d = start_daemon(c, &sa, &t);
        if (d == NULL)
                return em_error_set(err, EADDRINUSE, "cannot listen on %s%s", o->listen,
                                    c->tls ? " (or the certificate/key is unusable)" : "");
        em_log_info("ready: listening on %s://%s%s", c->tls ? "https" : "http", o->listen,
                    c->tls ? " (mutual TLS)" : " (INSECURE: no client authentication)");
        for (const char **a = c->admins; a && *a; a++)
                em_log_info("admin: certificates named %s may act as operators", *a);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigwait(&set, &sig);
        em_log_info("signal %d: stopping (actions in flight finish under edgemigd's rules)", sig);
        MHD_stop_daemon(d);
        return 0;
}

int main(int argc, char **argv)
{
        struct ctl c = {.lock = PTHREAD_MUTEX_INITIALIZER, .action_timeout_s = 300};
        struct opts o = {.listen = "127.0.0.1:7880"};
        cleanup_error em_error_t err = NULL;
        cleanup_free char *path = NULL;
        sigset_t set;

        em_log_setup(EM_LOG_INFO, false, 2, "edgemig-controller");
        em_sched_params_default(&c.params);
        if (parse_args(argc, argv, &o, &c) < 0)
                return 2;
        /* Workers inherit this mask; only main() takes SIGTERM/SIGINT. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        if (mkdir(o.state_dir, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "edgemig-controller: creating %s: %s\n", o.state_dir,
                        strerror(errno));
                return 1;
        }
        if (asprintf(&path, "%s/controller.db", o.state_dir) < 0)
                return 1;
        int rc = ctl_store_open(path, &c.db, &err);
        if (rc == 0)
                rc = recover_state(&c, &err);
        if (rc == 0)
                rc = serve(&c, &o, &err);
        if (rc < 0)
                fprintf(stderr, "edgemig-controller: %s\n", em_error_msg(err));
        pthread_mutex_lock(&c.lock);
        sqlite3_close(c.db);
        free(c.admins);
        return rc < 0 ? 1 : 0;
}
