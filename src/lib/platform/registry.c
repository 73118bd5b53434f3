/* The controller's registry in SQLite (see registry.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform/registry.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS edges(name TEXT PRIMARY KEY, addr TEXT NOT NULL,"
    " x REAL NOT NULL, y REAL NOT NULL, capacity INTEGER NOT NULL, load INTEGER DEFAULT 0,"
    " containers INTEGER DEFAULT 0, cpu REAL DEFAULT 0, mem_bytes INTEGER DEFAULT 0,"
    " active_migrations INTEGER DEFAULT 0, bandwidth_mbps REAL DEFAULT 0,"
    " registered_ms INTEGER, heartbeat_ms INTEGER DEFAULT 0, load1 REAL DEFAULT 0,"
    " mem_available_bytes INTEGER DEFAULT 0, container_names TEXT, peers TEXT);"
    "CREATE TABLE IF NOT EXISTS services(name TEXT PRIMARY KEY, user TEXT NOT NULL,"
    " edge TEXT NOT NULL, ip TEXT, busy INTEGER DEFAULT 0, updated_ms INTEGER);"
    "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, x REAL, y REAL,"
    " updated_ms INTEGER, reports INTEGER DEFAULT 0, sched TEXT);"
    "CREATE TABLE IF NOT EXISTS migrations(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, service TEXT NOT NULL, user TEXT, source TEXT, target TEXT,"
    " started_ms INTEGER, finished_ms INTEGER, status TEXT NOT NULL, reason TEXT, detail TEXT);";

int em_registry_open(const char *path, sqlite3 **out, em_error_t *err)
{
        sqlite3 *db = NULL;
        char *msg = NULL;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK) {
                em_error_set(err, EIO, "opening %s: %s", path, sqlite3_errmsg(db));
                sqlite3_close(db);
                return -1;
        }
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
                em_error_set(err, EIO, "schema of %s: %s", path, msg ? msg : "?");
                sqlite3_free(msg);
                sqlite3_close(db);
                return -1;
        }
        /* Columns added since the first schema; "duplicate column" means the
         * database has them already. */
        static const char *const added[] = {
            "ALTER TABLE edges ADD COLUMN load1 REAL DEFAULT 0",
            "ALTER TABLE edges ADD COLUMN mem_available_bytes INTEGER DEFAULT 0",
            "ALTER TABLE edges ADD COLUMN container_names TEXT",
            "ALTER TABLE edges ADD COLUMN peers TEXT",
            "ALTER TABLE edges ADD COLUMN rtts TEXT",
            "ALTER TABLE edges ADD COLUMN seen_ms INTEGER DEFAULT 0",
        };
        for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
                if (sqlite3_exec(db, added[i], NULL, NULL, &msg) != SQLITE_OK &&
                    (msg == NULL || strstr(msg, "duplicate column") == NULL)) {
                        em_error_set(err, EIO, "upgrading the schema of %s: %s", path,
                                     msg ? msg : "?");
                        sqlite3_free(msg);
                        sqlite3_close(db);
                        return -1;
                }
                sqlite3_free(msg);
                msg = NULL;
        }
        *out = db;
        return 0;
}

static int bind_all(sqlite3_stmt *st, const char *fmt, va_list ap)
{
        for (int i = 0; fmt != NULL && fmt[i] != '\0'; i++) {
                int rc;
                switch (fmt[i]) {
                case 's':
                case 'S': {
                        const char *s = va_arg(ap, const char *);
                        rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
                               : sqlite3_bind_null(st, i + 1);
                        break;
                }
                case 'd':
                        rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
                        break;
                case 'i':
                        rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
                        break;
                default:
                        return -1;
                }
                if (rc != SQLITE_OK)
                        return -1;
        }
        return 0;
}

static int prepare_bound(sqlite3 *db, const char *sql, const char *fmt, va_list ap,
                         sqlite3_stmt **st, em_error_t *err)
{
        if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
                return em_error_set(err, EIO, "sql: %s", sqlite3_errmsg(db));
        if (bind_all(*st, fmt, ap) < 0) {
                sqlite3_finalize(*st);
                *st = NULL;
                return em_error_set(err, EINVAL, "sql: binding parameters");
        }
        return 0;
}

int em_registry_exec(sqlite3 *db, em_error_t *err, const char *sql, const char *fmt, ...)
{
        sqlite3_stmt *st = NULL;
        va_list ap;

        va_start(ap, fmt);
        int rc = prepare_bound(db, sql, fmt, ap, &st, err);
        va_end(ap);
        if (rc < 0)
                return -1;
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return em_error_set(err, EIO, "sql: %s", sqlite3_errmsg(db));
        return sqlite3_changes(db);
}

static json_t *column_json(sqlite3_stmt *st, int c)
{
        switch (sqlite3_column_type(st, c)) {
        case SQLITE_INTEGER:
                return json_integer(sqlite3_column_int64(st, c));
        case SQLITE_FLOAT:
                return json_real(sqlite3_column_double(st, c));
        case SQLITE_NULL:
                return json_null();
        default:
                return json_string((const char *)sqlite3_column_text(st, c));
        }
}

int em_registry_query(sqlite3 *db, const char *sql, const char *fmt, json_t **out, em_error_t *err,
                      ...)
{
        sqlite3_stmt *st = NULL;
        va_list ap;
        int rc;

        va_start(ap, err);
        rc = prepare_bound(db, sql, fmt, ap, &st, err);
        va_end(ap);
        if (rc < 0)
                return -1;
        cleanup_json json_t *rows = json_array();
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *row = json_object();
                for (int c = 0; c < sqlite3_column_count(st); c++)
                        json_object_set_new(row, sqlite3_column_name(st, c), column_json(st, c));
                json_array_append_new(rows, row);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return em_error_set(err, EIO, "sql: %s", sqlite3_errmsg(db));
        *out = steal_pointer(&rows);
        return 0;
}

int em_registry_load_edges(sqlite3 *db, int64_t seen_after_ms, struct em_sched_edge **out,
                           size_t *n, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        if (em_registry_query(db,
                              "SELECT e.name, e.x, e.y, e.capacity, MAX(e.load, (SELECT COUNT(*) "
                              "FROM services s WHERE s.edge = e.name)) AS load, e.bandwidth_mbps "
                              "FROM edges e WHERE e.seen_ms > ? ORDER BY e.name",
                              "i", &rows, err, seen_after_ms) < 0)
                return -1;
        size_t len = json_array_size(rows);
        cleanup_free struct em_sched_edge *edges = calloc(len ? len : 1, sizeof(*edges));
        if (edges == NULL)
                return em_error_set(err, ENOMEM, "edges");
        for (size_t i = 0; i < len; i++) {
                json_t *r = json_array_get(rows, i);
                snprintf(edges[i].name, sizeof(edges[i].name), "%s", em_json_str(r, "name"));
                edges[i].x = json_number_value(json_object_get(r, "x"));
                edges[i].y = json_number_value(json_object_get(r, "y"));
                edges[i].capacity = (int)em_json_int(r, "capacity", 0);
                edges[i].load = (int)em_json_int(r, "load", 0);
                edges[i].bandwidth_mbps = json_number_value(json_object_get(r, "bandwidth_mbps"));
        }
        *out = steal_pointer(&edges);
        *n = len;
        return 0;
}

static void copy_str(char *dst, size_t size, const json_t *obj, const char *key)
{
        const char *s = em_json_str(obj, key);
        snprintf(dst, size, "%s", s ? s : "");
}

int em_registry_user_decode(const char *text, struct em_sched_user *u, em_error_t *err)
{
        cleanup_json json_t *s = NULL;

        memset(u, 0, sizeof(*u));
        if (text == NULL)
                return 0;
        if (em_json_parse(text, strlen(text), "scheduler state", &s, err) < 0)
                return -1;
        copy_str(u->candidate, sizeof(u->candidate), s, "candidate");
        copy_str(u->prepared, sizeof(u->prepared), s, "prepared");
        u->candidate_since_ms = em_json_int(s, "candidate_since_ms", 0);
        json_t *h = json_object_get(s, "history");
        for (size_t i = 0; i < json_array_size(h) && i < EM_SCHED_HISTORY; i++) {
                u->hist_x[i] = json_number_value(json_array_get(json_array_get(h, i), 0));
                u->hist_y[i] = json_number_value(json_array_get(json_array_get(h, i), 1));
                u->hist_n++;
        }
        return 0;
}

char *em_registry_user_encode(const struct em_sched_user *u)
{
        cleanup_json json_t *h = json_array();
        for (int i = 0; i < u->hist_n; i++)
                json_array_append_new(h, json_pack("[f,f]", u->hist_x[i], u->hist_y[i]));
        cleanup_json json_t *s =
            json_pack("{s:s, s:I, s:s, s:O}", "candidate", u->candidate, "candidate_since_ms",
                      (json_int_t)u->candidate_since_ms, "prepared", u->prepared, "history", h);
        return s ? json_dumps(s, JSON_COMPACT) : NULL;
}

int em_registry_load_user(sqlite3 *db, const char *name, struct em_sched_user *u, em_error_t *err)
{
        cleanup_json json_t *rows = NULL;

        memset(u, 0, sizeof(*u));
        if (em_registry_query(db, "SELECT sched FROM users WHERE name = ?", "s", &rows, err, name) <
            0)
                return -1;
        return em_registry_user_decode(em_json_str(json_array_get(rows, 0), "sched"), u, err);
}

int em_registry_save_user(sqlite3 *db, const char *name, double x, double y, int64_t now_ms,
                          const struct em_sched_user *u, em_error_t *err)
{
        cleanup_free char *text = em_registry_user_encode(u);
        if (text == NULL)
                return em_error_set(err, ENOMEM, "encoding scheduler state");
        return em_registry_exec(
                   db, err,
                   "INSERT INTO users(name, x, y, updated_ms, reports, sched) "
                   "VALUES(?, ?, ?, ?, 1, ?) ON CONFLICT(name) DO UPDATE SET x = excluded.x, "
                   "y = excluded.y, updated_ms = excluded.updated_ms, "
                   "reports = reports + 1, sched = excluded.sched",
                   "sddis", name, x, y, now_ms, text) < 0
                   ? -1
                   : 0;
}
