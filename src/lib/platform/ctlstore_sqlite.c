/* The controller's state in SQLite (see ctlstore_sqlite.h). */
#include "platform/ctlstore_sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "platform/registry.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/log.h"

struct sqlite_store {
        struct em_ctlstore base;
        sqlite3 *db;
        int edge_ttl_s;
};

static sqlite3 *db_of(struct em_ctlstore *s)
{
        return ((struct sqlite_store *)s)->db;
}

static double num(const json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);
        return json_is_number(v) ? json_number_value(v) : 0;
}

static int ttl_of(struct em_ctlstore *s)
{
        return ((struct sqlite_store *)s)->edge_ttl_s;
}

/* A registration, like a heartbeat, makes the edge seen (alive for the TTL,
 * as the etcd backend's lease). */
static int edge_register(struct em_ctlstore *s, const json_t *e, int64_t now, em_error_t *err)
{
        return em_registry_exec(
                   db_of(s), err,
                   "INSERT INTO edges(name, addr, x, y, capacity, registered_ms, seen_ms) "
                   "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET addr = "
                   "excluded.addr, x = excluded.x, y = excluded.y, capacity = excluded.capacity, "
                   "seen_ms = excluded.seen_ms",
                   "ssddiii", em_json_str(e, "name"), em_json_str(e, "addr"), num(e, "x"),
                   num(e, "y"), (int64_t)em_json_int(e, "capacity", 0), now, now) < 0
                   ? -1
                   : 0;
}

/* A JSON member kept as text (NULL when absent or null). */
static char *text_of(const json_t *hb, const char *k)
{
        json_t *v = json_object_get(hb, k);
        return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT) : NULL;
}

static int edge_heartbeat(struct em_ctlstore *s, const char *edge, const json_t *hb, int64_t now,
                          em_error_t *err)
{
        cleanup_free char *names = text_of(hb, "container_names");
        cleanup_free char *peers = text_of(hb, "peers");
        cleanup_free char *rtts = text_of(hb, "rtts");
        json_t *cts = json_object_get(hb, "container_names");
        int rc = em_registry_exec(
            db_of(s), err,
            "UPDATE edges SET load = ?, containers = ?, cpu = ?, mem_bytes = ?, "
            "active_migrations = ?, bandwidth_mbps = ?, heartbeat_ms = ?, seen_ms = ?, "
            "load1 = ?, mem_available_bytes = ?, container_names = ?, peers = ?, rtts = ? "
            "WHERE name = ?",
            "iidiidiidiSSSs", (int64_t)em_json_int(hb, "load", 0),
            (int64_t)em_json_int(hb, "containers", 0), num(hb, "cpu"),
            (int64_t)em_json_int(hb, "mem_bytes", 0),
            (int64_t)em_json_int(hb, "active_migrations", 0), num(hb, "bandwidth_mbps"), now, now,
            num(hb, "load1"), (int64_t)em_json_int(hb, "mem_available_bytes", 0), names, peers,
            rtts, edge);
        if (rc <= 0)
                return rc;
        for (size_t i = 0; i < json_array_size(cts); i++) {
                const char *n = json_string_value(json_array_get(cts, i));
                if (n != NULL &&
                    em_registry_exec(db_of(s), err,
                                     "UPDATE services SET edge = ? WHERE name = ? AND busy = 0",
                                     "ss", edge, n) < 0)
                        return -1;
        }
        return 1;
}

static int service_register(struct em_ctlstore *s, const char *name, const char *user,
                            const char *edge, const char *ip, int64_t now, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(db_of(s), "SELECT name FROM edges WHERE name = ?", "s", &rows, err,
                              edge) < 0)
                return -1;
        if (json_array_size(rows) == 0)
                return 0;
        if (em_registry_exec(
                db_of(s), err,
                "INSERT INTO services(name, user, edge, ip, updated_ms) VALUES(?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET user = excluded.user, edge = excluded.edge, "
                "ip = excluded.ip, updated_ms = excluded.updated_ms",
                "sssSi", name, user, edge, ip, now) < 0)
                return -1;
        return 1;
}

static int user_service(struct em_ctlstore *s, const char *user, json_t **svc, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(db_of(s),
                              "SELECT name, edge, busy FROM services WHERE user = ? "
                              "ORDER BY name LIMIT 1",
                              "s", &rows, err, user) < 0)
                return -1;
        *svc = json_incref(json_array_get(rows, 0));
        return 0;
}

static int handoff_bytes(struct em_ctlstore *s, const char *service, double *out, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(db_of(s),
                              "SELECT AVG(b) AS bytes FROM (SELECT json_extract(detail, "
                              "'$.bytes_wire') AS b FROM migrations WHERE service = ? AND "
                              "kind = 'migrate' AND status = 'done' AND json_valid(detail) "
                              "ORDER BY id DESC LIMIT 3) WHERE b > 0",
                              "s", &rows, err, service ? service : "") < 0)
                return -1;
        *out = num(json_array_get(rows, 0), "bytes");
        return 0;
}

static int load_user(struct em_ctlstore *s, const char *name, struct em_sched_user *u,
                     em_error_t *err)
{
        return em_registry_load_user(db_of(s), name, u, err);
}

static int save_user(struct em_ctlstore *s, const char *name, double x, double y, int64_t now,
                     const struct em_sched_user *u, em_error_t *err)
{
        return em_registry_save_user(db_of(s), name, x, y, now, u, err);
}

static int load_edges(struct em_ctlstore *s, struct em_sched_edge **out, size_t *n, em_error_t *err)
{
        return em_registry_load_edges(db_of(s), em_ctl_alive_since(em_now_ms(), ttl_of(s)), out, n,
                                      err);
}

static const char *const list_sql[] = {
    [EM_CTL_EDGES] =
        "SELECT name, addr, x, y, capacity, load, containers, cpu, load1, "
        "mem_bytes, mem_available_bytes, active_migrations, bandwidth_mbps, "
        "registered_ms, heartbeat_ms, seen_ms, container_names, peers, rtts FROM edges "
        "ORDER BY name",
    [EM_CTL_SERVICES] = "SELECT name, user, edge, ip, busy FROM services ORDER BY name",
    [EM_CTL_USERS] = "SELECT u.name, u.x, u.y, u.updated_ms, u.reports, (SELECT s.edge FROM "
                     "services s WHERE s.user = u.name ORDER BY s.name LIMIT 1) AS serving "
                     "FROM users u ORDER BY u.name",
    [EM_CTL_MIGRATIONS] = "SELECT id, kind, service, user, source, target, started_ms, "
                          "finished_ms, finished_ms - started_ms AS duration_ms, status, "
                          "reason, detail FROM migrations ORDER BY id",
};

/* The JSON kept as text in edges rows (container_names, peers) goes out as
 * JSON; the last contact becomes "alive" (em_ctl_edge_alive). */
static void edges_unpack(json_t *rows, int edge_ttl_s, int64_t now)
{
        static const char *const cols[] = {"container_names", "peers", "rtts"};
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
                bool alive = em_ctl_edge_alive(em_json_int(row, "seen_ms", 0), now, edge_ttl_s);
                json_object_set_new(row, "alive", json_boolean(alive));
                json_object_del(row, "seen_ms");
        }
}

static int list(struct em_ctlstore *s, enum em_ctl_list what, json_t **rows, em_error_t *err)
{
        if (em_registry_query(db_of(s), list_sql[what], NULL, rows, err) < 0)
                return -1;
        if (what == EM_CTL_EDGES)
                edges_unpack(*rows, ttl_of(s), em_now_ms());
        return 0;
}

static int counts(struct em_ctlstore *s, json_t **actions, json_t **totals, em_error_t *err)
{
        cleanup_json json_t *t = NULL;

        if (em_registry_query(db_of(s),
                              "SELECT kind, status, COUNT(*) AS n, "
                              "SUM(finished_ms - started_ms) AS ms FROM migrations "
                              "GROUP BY kind, status",
                              NULL, actions, err) < 0)
                return -1;
        if (em_registry_query(db_of(s),
                              "SELECT (SELECT COUNT(*) FROM users) AS users, "
                              "(SELECT COUNT(*) FROM services) AS services",
                              NULL, &t, err) < 0) {
                json_decref(steal_pointer(actions));
                return -1;
        }
        *totals = json_incref(json_array_get(t, 0));
        return 0;
}

static int edge_addr(struct em_ctlstore *s, const char *edge, char **addr, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(db_of(s), "SELECT addr FROM edges WHERE name = ?", "s", &rows, err,
                              edge ? edge : "") < 0)
                return -1;
        const char *a = em_json_str(json_array_get(rows, 0), "addr");
        *addr = a ? strdup(a) : NULL;
        if (a != NULL && *addr == NULL)
                return em_error_set(err, ENOMEM, "edge address");
        return 0;
}

static int action_begin(struct em_ctlstore *s, const struct em_ctl_action *a, int64_t now,
                        int64_t *id, em_error_t *err)
{
        if (em_registry_exec(db_of(s), err,
                             "INSERT INTO migrations(kind, service, user, source, target, "
                             "started_ms, status, reason) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                             "sssssiss", a->kind, a->service, a->user, a->source, a->target, now,
                             a->status, a->reason) < 0)
                return -1;
        *id = sqlite3_last_insert_rowid(db_of(s));
        if (strcmp(a->status, "running") != 0)
                return 0;
        return em_registry_exec(db_of(s), err, "UPDATE services SET busy = 1 WHERE name = ?", "s",
                                a->service) < 0
                   ? -1
                   : 0;
}

static int action_finish(struct em_ctlstore *s, int64_t id, const struct em_ctl_action *a,
                         const char *status, const char *detail, int64_t now, em_error_t *err)
{
        int rc = 0;

        if (strcmp(status, "done") == 0 && strcmp(a->kind, "migrate") == 0)
                rc = em_registry_exec(db_of(s), err,
                                      "UPDATE services SET edge = ?, updated_ms = ? WHERE name = ?",
                                      "sis", a->target, now, a->service);
        if (rc >= 0)
                rc = em_registry_exec(db_of(s), err, "UPDATE services SET busy = 0 WHERE name = ?",
                                      "s", a->service);
        if (rc >= 0)
                rc = em_registry_exec(db_of(s), err,
                                      "UPDATE migrations SET status = ?, finished_ms = ?, "
                                      "detail = ? WHERE id = ?",
                                      "siSi", status, now, detail, id);
        return rc < 0 ? -1 : 0;
}

static int action_progress(struct em_ctlstore *s, int64_t id, const char *detail, em_error_t *err)
{
        return em_registry_exec(db_of(s), err,
                                "UPDATE migrations SET detail = ? WHERE id = ? AND status = "
                                "'running'",
                                "si", detail, id) < 0
                   ? -1
                   : 0;
}

static int migration_get(struct em_ctlstore *s, int64_t id, json_t **row, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(
                db_of(s),
                "SELECT m.kind, m.status, m.source, m.detail, e.addr FROM migrations m "
                "LEFT JOIN edges e ON e.name = m.source WHERE m.id = ?",
                "i", &rows, err, id) < 0)
                return -1;
        *row = json_incref(json_array_get(rows, 0));
        return 0;
}

/* Actions that were running when a previous controller died: their outcome
 * is decided by edgemigd's own rules (finish or roll back); the next edge
 * heartbeat listing containers tells where the service ended up. */
static int recover(struct em_ctlstore *s, int64_t now, em_error_t *err)
{
        int n = em_registry_exec(db_of(s), err,
                                 "UPDATE migrations SET status = 'interrupted', finished_ms = ? "
                                 "WHERE status = 'running'",
                                 "i", now);
        if (n < 0 || em_registry_exec(db_of(s), err, "UPDATE services SET busy = 0", NULL) < 0)
                return -1;
        if (n > 0)
                em_log_warn("%d action(s) were in flight when the last controller stopped", n);
        return 0;
}

static void store_close(struct em_ctlstore *s)
{
        sqlite3_close(db_of(s));
        free(s);
}

static const struct em_ctlstore_ops sqlite_ops = {
    .edge_register = edge_register,
    .edge_heartbeat = edge_heartbeat,
    .service_register = service_register,
    .user_service = user_service,
    .handoff_bytes = handoff_bytes,
    .load_user = load_user,
    .save_user = save_user,
    .load_edges = load_edges,
    .list = list,
    .counts = counts,
    .edge_addr = edge_addr,
    .action_begin = action_begin,
    .action_finish = action_finish,
    .action_progress = action_progress,
    .migration_get = migration_get,
    .recover = recover,
    .close = store_close,
};

int em_ctlstore_sqlite_open(const char *state_dir, int edge_ttl_s, struct em_ctlstore **out,
                            em_error_t *err)
{
        cleanup_free char *path = NULL;
        struct sqlite_store *s;

        if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
                return em_error_set(err, errno, "creating %s", state_dir);
        if (asprintf(&path, "%s/controller.db", state_dir) < 0 ||
            (s = calloc(1, sizeof(*s))) == NULL)
                return em_error_set(err, ENOMEM, "opening the registry");
        s->base.ops = &sqlite_ops;
        s->base.name = "sqlite";
        s->edge_ttl_s = edge_ttl_s > 0 ? edge_ttl_s : EM_CTL_EDGE_TTL_S;
        if (em_registry_open(path, &s->db, err) < 0) {
                free(s);
                return -1;
        }
        *out = &s->base;
        return 0;
}
