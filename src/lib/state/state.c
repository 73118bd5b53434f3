#include "state/state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

struct em_state {
        sqlite3 *db;
};

static const char *const state_names[EM_CSTATE__COUNT] = {
    "created", "running", "stopped", "checkpointed", "migrating",
};

const char *em_cstate_name(enum em_cstate s)
{
        return (unsigned)s < EM_CSTATE__COUNT ? state_names[s] : "unknown";
}

int em_cstate_parse(const char *name)
{
        for (int i = 0; i < EM_CSTATE__COUNT; i++) {
                if (strcmp(state_names[i], name) == 0)
                        return i;
        }
        return -1;
}

/* Schema migrations: entry i brings the schema from version i to i + 1. */
static const char *const migrations[] = {
    "CREATE TABLE containers ("
    " name TEXT PRIMARY KEY,"
    " image TEXT NOT NULL,"
    " image_digest TEXT NOT NULL DEFAULT '',"
    " ip TEXT UNIQUE,"
    " spec TEXT NOT NULL DEFAULT '{}',"
    " state TEXT NOT NULL,"
    " pid INTEGER NOT NULL DEFAULT 0,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " created_at INTEGER NOT NULL DEFAULT 0,"
    " started_at INTEGER NOT NULL DEFAULT 0,"
    " finished_at INTEGER NOT NULL DEFAULT 0);",
    /* 2: each container's host ID range (user namespace), 0/0 for none. */
    "ALTER TABLE containers ADD COLUMN id_base INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE containers ADD COLUMN id_size INTEGER NOT NULL DEFAULT 0;",
    /* 3: stopped through edgemig (not died): restart policies tell them apart. */
    "ALTER TABLE containers ADD COLUMN stopped_by_user INTEGER NOT NULL DEFAULT 0;",
    /* 4: service IPs of containers that migrated away: not handed out again. */
    "CREATE TABLE ip_reservations (ip TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " since INTEGER NOT NULL DEFAULT 0);",
};

static int db_fail(struct em_state *st, int rc, const char *what, em_error_t *err)
{
        int e = rc == SQLITE_CONSTRAINT ? EEXIST : rc == SQLITE_BUSY ? EBUSY : EIO;
        return em_error_set(err, e, "state database: %s: %s", what, sqlite3_errmsg(st->db));
}

static int exec_sql(struct em_state *st, const char *sql, em_error_t *err)
{
        int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : db_fail(st, rc, sql, err);
}

static void rollback(struct em_state *st)
{
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static void finalizep(sqlite3_stmt **s)
{
        sqlite3_finalize(*s);
}
#define cleanup_stmt __attribute__((cleanup(finalizep)))

static int prepare(struct em_state *st, const char *sql, sqlite3_stmt **out, em_error_t *err)
{
        int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
        return rc == SQLITE_OK ? 0 : db_fail(st, rc, "preparing statement", err);
}

int em_state_schema_version(struct em_state *st, int *version, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "PRAGMA user_version", &s, err) < 0)
                return -1;
        if (sqlite3_step(s) != SQLITE_ROW)
                return db_fail(st, SQLITE_ERROR, "reading schema version", err);
        *version = sqlite3_column_int(s, 0);
        return 0;
}

static int migrate_schema(struct em_state *st, em_error_t *err)
{
        const int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
        int v;

        if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
                return -1;
        if (em_state_schema_version(st, &v, err) < 0)
                goto fail;
        if (v > target) {
                em_error_set(err, EPROTO,
                             "state database has schema %d, newer than this edgemig (%d)", v,
                             target);
                goto fail;
        }
        for (; v < target; v++) {
                char pragma[64];
                snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
                if (exec_sql(st, migrations[v], err) < 0 || exec_sql(st, pragma, err) < 0)
                        goto fail;
        }
        return exec_sql(st, "COMMIT", err);
fail:
        rollback(st);
        return em_error_wrap(err, "migrating schema");
}

int em_state_open_path(const char *path, struct em_state **out, em_error_t *err)
{
        cleanup_free struct em_state *st = calloc(1, sizeof(*st));

        if (st == NULL)
                return em_error_set(err, ENOMEM, "opening %s", path);
        int rc = sqlite3_open_v2(path, &st->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 NULL);
        if (rc != SQLITE_OK) {
                em_error_set(err, EIO, "opening state database %s: %s", path,
                             st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
                sqlite3_close(st->db);
                return -1;
        }
        sqlite3_busy_timeout(st->db, 10000);
        /* WAL + NORMAL: durable across process crashes, fsync at checkpoints. */
        if (exec_sql(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err) < 0 ||
            migrate_schema(st, err) < 0) {
                sqlite3_close(st->db);
                return em_error_wrap(err, "opening %s", path);
        }
        *out = steal_pointer(&st);
        return 0;
}

int em_state_open(const char *root, struct em_state **out, em_error_t *err)
{
        cleanup_free char *path = em_path_join(root, "state.db");

        if (path == NULL)
                return em_error_set(err, ENOMEM, "opening state database");
        return em_state_open_path(path, out, err);
}

void em_state_close(struct em_state **st)
{
        if (*st == NULL)
                return;
        sqlite3_close((*st)->db);
        free(*st);
        *st = NULL;
}

void em_container_rec_free(struct em_container_rec **r)
{
        if (*r == NULL)
                return;
        free((*r)->name);
        free((*r)->image);
        free((*r)->image_digest);
        free((*r)->ip);
        free((*r)->spec);
        free(*r);
        *r = NULL;
}

void em_container_rec_list_free(struct em_container_rec ***v, size_t n)
{
        if (*v == NULL)
                return;
        for (size_t i = 0; i < n; i++)
                em_container_rec_free(&(*v)[i]);
        free(*v);
        *v = NULL;
}

int em_ipv4_cidr_parse(const char *cidr, uint32_t *net, int *len, em_error_t *err)
{
        char buf[32];
        struct in_addr a;
        char *slash, *end;

        if (strlen(cidr) >= sizeof(buf))
                return em_error_set(err, EINVAL, "invalid subnet '%s'", cidr);
        strcpy(buf, cidr);
        slash = strchr(buf, '/');
        if (slash == NULL)
                return em_error_set(err, EINVAL, "subnet '%s' lacks a /prefix length", cidr);
        *slash = '\0';
        long l = strtol(slash + 1, &end, 10);
        if (*end != '\0' || l < 8 || l > 30 || inet_pton(AF_INET, buf, &a) != 1)
                return em_error_set(err, EINVAL, "invalid subnet '%s' (want a.b.c.d/8..30)", cidr);
        uint32_t mask = l == 0 ? 0 : ~0u << (32 - l);
        *net = ntohl(a.s_addr) & mask;
        *len = (int)l;
        return 0;
}

static int collect_used_ips(struct em_state *st, uint32_t net, int len, uint8_t *used,
                            em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        uint32_t mask = ~0u << (32 - len);
        int rc;

        if (prepare(st,
                    "SELECT ip FROM containers WHERE ip IS NOT NULL UNION SELECT ip FROM "
                    "ip_reservations",
                    &s, err) < 0)
                return -1;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct in_addr a;
                const char *ip = (const char *)sqlite3_column_text(s, 0);
                if (ip == NULL || inet_pton(AF_INET, ip, &a) != 1)
                        continue;
                uint32_t h = ntohl(a.s_addr);
                if ((h & mask) == net)
                        used[(h - net) / 8] |= (uint8_t)(1u << ((h - net) % 8));
        }
        return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "listing addresses", err);
}

static char *col_dup(sqlite3_stmt *s, int i);

/* The subnet is full: the oldest reservation in it older than
 * EM_IP_RESERVATION_MIN_AGE_MS gives its address up, in the caller's
 * transaction (state.h). */
static int reclaim_reserved(struct em_state *st, uint32_t net, int len, char **out, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        cleanup_free char *name = NULL;
        uint32_t mask = ~0u << (32 - len);
        int64_t since = 0;
        int rc = SQLITE_DONE;

        *out = NULL;
        if (prepare(st,
                    "SELECT ip, name, since FROM ip_reservations WHERE since < ? ORDER BY since",
                    &s, err) < 0)
                return -1;
        sqlite3_bind_int64(s, 1, em_now_ms() - EM_IP_RESERVATION_MIN_AGE_MS);
        while (*out == NULL && (rc = sqlite3_step(s)) == SQLITE_ROW) {
                const char *ip = (const char *)sqlite3_column_text(s, 0);
                struct in_addr a;
                if (ip == NULL || inet_pton(AF_INET, ip, &a) != 1 ||
                    (ntohl(a.s_addr) & mask) != net)
                        continue;
                if ((name = col_dup(s, 1)) == NULL || (*out = strdup(ip)) == NULL)
                        return em_error_set(err, ENOMEM, "reclaiming an address");
                since = sqlite3_column_int64(s, 2);
        }
        if (*out == NULL)
                return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "listing reservations", err);
        em_log_warn("address range full: reusing %s, reserved for container %s since it migrated "
                    "away %lld days ago",
                    *out, name, (long long)((em_now_ms() - since) / 86400000));
        if (em_state_ip_release(st, *out, err) < 0) {
                free(steal_pointer(out));
                return -1;
        }
        return 0;
}

/* Call inside a transaction. */
static int ip_allocate_locked(struct em_state *st, const char *subnet, char **out, em_error_t *err)
{
        uint32_t net;
        int len;

        if (em_ipv4_cidr_parse(subnet ? subnet : EM_DEFAULT_SUBNET, &net, &len, err) < 0)
                return -1;
        uint32_t size = 1u << (32 - len);
        cleanup_free uint8_t *used = calloc(size / 8 + 1, 1);
        if (used == NULL)
                return em_error_set(err, ENOMEM, "allocating an address");
        if (collect_used_ips(st, net, len, used, err) < 0)
                return -1;
        for (uint32_t off = 2; off < size - 1; off++) {
                if (used[off / 8] & (1u << (off % 8)))
                        continue;
                struct in_addr a = {.s_addr = htonl(net + off)};
                char buf[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &a, buf, sizeof(buf));
                *out = strdup(buf);
                return *out ? 0 : em_error_set(err, ENOMEM, "allocating an address");
        }
        if (reclaim_reserved(st, net, len, out, err) < 0)
                return -1;
        if (*out != NULL)
                return 0;
        return em_error_set(err, ENOSPC, "no free address left in %s",
                            subnet ? subnet : EM_DEFAULT_SUBNET);
}

int em_state_ip_allocate(struct em_state *st, const char *subnet, char **out, em_error_t *err)
{
        if (exec_sql(st, "BEGIN", err) < 0)
                return -1;
        int rc = ip_allocate_locked(st, subnet, out, err);
        rollback(st);
        return rc;
}

static int insert_row(struct em_state *st, const struct em_container_rec *r, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st,
                    "INSERT INTO containers (name, image, image_digest, ip, spec, state, pid,"
                    " exit_code, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, -1, ?)",
                    &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, r->image, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, r->image_digest ? r->image_digest : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, r->ip, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, r->spec ? r->spec : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, em_cstate_name(r->state), -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 7, r->pid);
        sqlite3_bind_int64(s, 8, r->created_at ? r->created_at : em_now_ms());
        int rc = sqlite3_step(s);
        if (rc == SQLITE_CONSTRAINT)
                return em_error_set(err, EEXIST, "a container named '%s' or with address %s exists",
                                    r->name, r->ip ? r->ip : "(none)");
        return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "inserting container", err);
}

static int run_name_ip_delete(struct em_state *st, const struct em_container_rec *r,
                              em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "DELETE FROM ip_reservations WHERE name = ? AND ip = ?", &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, r->ip, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "dropping a reservation", err);
}

/* The name an address is reserved for, or NULL (*out). */
static int reservation_of(struct em_state *st, const char *ip, char **out, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        *out = NULL;
        if (prepare(st, "SELECT name FROM ip_reservations WHERE ip = ?", &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, ip, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && (*out = col_dup(s, 0)) == NULL)
                return em_error_set(err, ENOMEM, "reading a reservation");
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(st, rc, "reservations", err);
}

/* An explicit address reserved for another container is taken; the
 * container the reservation was kept for takes it back. */
static int claim_reserved(struct em_state *st, const struct em_container_rec *r, em_error_t *err)
{
        cleanup_free char *owner = NULL;

        if (reservation_of(st, r->ip, &owner, err) < 0)
                return -1;
        if (owner != NULL && strcmp(owner, r->name) != 0)
                return em_error_set(err, EEXIST,
                                    "address %s is reserved for container %s, which migrated "
                                    "away from this host",
                                    r->ip, owner);
        return owner == NULL ? 0 : run_name_ip_delete(st, r, err);
}

int em_state_container_insert(struct em_state *st, struct em_container_rec *rec, const char *subnet,
                              em_error_t *err)
{
        if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
                return -1;
        if (rec->ip == NULL && !rec->no_ip && ip_allocate_locked(st, subnet, &rec->ip, err) < 0)
                goto fail;
        if ((rec->ip && claim_reserved(st, rec, err) < 0) || insert_row(st, rec, err) < 0)
                goto fail;
        return exec_sql(st, "COMMIT", err);
fail:
        rollback(st);
        return -1;
}

static char *col_dup(sqlite3_stmt *s, int i)
{
        const unsigned char *t = sqlite3_column_text(s, i);
        return t ? strdup((const char *)t) : NULL;
}

#define REC_COLUMNS                                                                                \
        "name, image, image_digest, ip, spec, state, pid, exit_code, created_at, started_at,"      \
        " finished_at, id_base, id_size, stopped_by_user"

static struct em_container_rec *rec_from_row(sqlite3_stmt *s)
{
        struct em_container_rec *r = calloc(1, sizeof(*r));

        if (r == NULL)
                return NULL;
        r->name = col_dup(s, 0);
        r->image = col_dup(s, 1);
        r->image_digest = col_dup(s, 2);
        r->ip = col_dup(s, 3);
        r->spec = col_dup(s, 4);
        const char *state = (const char *)sqlite3_column_text(s, 5);
        int parsed = state ? em_cstate_parse(state) : -1;
        r->state = parsed < 0 ? EM_CSTATE_STOPPED : (enum em_cstate)parsed;
        r->pid = sqlite3_column_int(s, 6);
        r->exit_code = sqlite3_column_int(s, 7);
        r->created_at = sqlite3_column_int64(s, 8);
        r->started_at = sqlite3_column_int64(s, 9);
        r->finished_at = sqlite3_column_int64(s, 10);
        r->ids.base = (uint32_t)sqlite3_column_int64(s, 11);
        r->ids.size = (uint32_t)sqlite3_column_int64(s, 12);
        r->stopped_by_user = sqlite3_column_int(s, 13) != 0;
        if (r->name == NULL || r->image == NULL)
                em_container_rec_free(&r);
        return r;
}

int em_state_container_get(struct em_state *st, const char *name, struct em_container_rec **out,
                           em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "SELECT " REC_COLUMNS " FROM containers WHERE name = ?", &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return em_error_set(err, ENOENT, "no container named '%s'", name);
        if (rc != SQLITE_ROW)
                return db_fail(st, rc, "reading container", err);
        *out = rec_from_row(s);
        return *out ? 0 : em_error_set(err, ENOMEM, "reading container %s", name);
}

int em_state_container_list(struct em_state *st, struct em_container_rec ***out, size_t *n,
                            em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        struct em_container_rec **v = NULL;
        size_t count = 0;
        int rc;

        if (prepare(st, "SELECT " REC_COLUMNS " FROM containers ORDER BY name", &s, err) < 0)
                return -1;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct em_container_rec **nv = realloc(v, (count + 1) * sizeof(*v));
                if (nv == NULL || (nv[count] = rec_from_row(s)) == NULL) {
                        v = nv ? nv : v;
                        em_container_rec_list_free(&v, count);
                        return em_error_set(err, ENOMEM, "listing containers");
                }
                v = nv;
                count++;
        }
        if (rc != SQLITE_DONE) {
                em_container_rec_list_free(&v, count);
                return db_fail(st, rc, "listing containers", err);
        }
        *out = v;
        *n = count;
        return 0;
}

static int read_state_locked(struct em_state *st, const char *name, enum em_cstate *cur,
                             em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "SELECT state FROM containers WHERE name = ?", &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
                return em_error_set(err, ENOENT, "no container named '%s'", name);
        if (rc != SQLITE_ROW)
                return db_fail(st, rc, "reading container state", err);
        int p = em_cstate_parse((const char *)sqlite3_column_text(s, 0));
        *cur = p < 0 ? EM_CSTATE_STOPPED : (enum em_cstate)p;
        return 0;
}

static int write_state_locked(struct em_state *st, const char *name, enum em_cstate cur,
                              enum em_cstate to, int pid, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        const char *sql = "UPDATE containers SET state = ?, pid = ? WHERE name = ?";

        if (to == EM_CSTATE_RUNNING)
                sql = "UPDATE containers SET state = ?, pid = ?, started_at = ?4, exit_code = -1, "
                      "stopped_by_user = 0 WHERE name = ?3";
        else if (cur == EM_CSTATE_RUNNING && to == EM_CSTATE_STOPPED)
                sql = "UPDATE containers SET state = ?, pid = ?, finished_at = ?4 WHERE name = ?3";
        if (prepare(st, sql, &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, em_cstate_name(to), -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, pid);
        sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(s) >= 4)
                sqlite3_bind_int64(s, 4, em_now_ms());
        int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "updating container state", err);
}

int em_state_container_transition(struct em_state *st, const char *name, unsigned from_mask,
                                  enum em_cstate to, int pid, enum em_cstate *prev, em_error_t *err)
{
        enum em_cstate cur = EM_CSTATE_STOPPED;

        if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
                return -1;
        if (read_state_locked(st, name, &cur, err) < 0)
                goto fail;
        if (!(from_mask & EM_CSTATE_BIT(cur))) {
                em_error_set(err, EBUSY, "container '%s' is %s, cannot become %s", name,
                             em_cstate_name(cur), em_cstate_name(to));
                goto fail;
        }
        if (write_state_locked(st, name, cur, to, pid, err) < 0)
                goto fail;
        if (exec_sql(st, "COMMIT", err) < 0)
                goto fail;
        if (prev)
                *prev = cur;
        return 0;
fail:
        rollback(st);
        return -1;
}

static int run_name_stmt(struct em_state *st, const char *sql, const char *name, int ival,
                         em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, sql, &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(s) >= 2)
                sqlite3_bind_int(s, 2, ival);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE)
                return db_fail(st, rc, "updating container", err);
        if (sqlite3_changes(st->db) == 0)
                return em_error_set(err, ENOENT, "no container named '%s'", name);
        return 0;
}

int em_state_container_set_stopped_by_user(struct em_state *st, const char *name, bool by_user,
                                           em_error_t *err)
{
        return run_name_stmt(st, "UPDATE containers SET stopped_by_user = ?2 WHERE name = ?1", name,
                             by_user, err);
}

int em_state_container_set_exit(struct em_state *st, const char *name, int exit_code,
                                em_error_t *err)
{
        return run_name_stmt(st, "UPDATE containers SET exit_code = ?2 WHERE name = ?1", name,
                             exit_code, err);
}

int em_state_container_delete(struct em_state *st, const char *name, em_error_t *err)
{
        return run_name_stmt(st, "DELETE FROM containers WHERE name = ?", name, 0, err);
}

bool em_idpool_has_slot(const struct em_idpool *pool, const struct em_idrange *r)
{
        return pool->size > 0 && r->size == pool->size && r->base >= pool->first &&
               (r->base - pool->first) % pool->size == 0 &&
               (r->base - pool->first) / pool->size < pool->slots;
}

struct used_ranges {
        struct em_idrange *v;
        size_t n;
};

/* Every range held by a container other than `name`; *mine gets name's. */
static int collect_ranges(struct em_state *st, const char *name, struct used_ranges *u,
                          struct em_idrange *mine, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        int rc;

        if (prepare(st, "SELECT name, id_base, id_size FROM containers WHERE id_size > 0", &s,
                    err) < 0)
                return -1;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct em_idrange r = {(uint32_t)sqlite3_column_int64(s, 1),
                                       (uint32_t)sqlite3_column_int64(s, 2)};
                if (strcmp((const char *)sqlite3_column_text(s, 0), name) == 0) {
                        *mine = r;
                        continue;
                }
                struct em_idrange *nv = realloc(u->v, (u->n + 1) * sizeof(*nv));
                if (nv == NULL)
                        return em_error_set(err, ENOMEM, "listing ID ranges");
                u->v = nv;
                u->v[u->n++] = r;
        }
        return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "listing ID ranges", err);
}

static bool range_free(const struct used_ranges *u, const struct em_idrange *r)
{
        uint64_t end = (uint64_t)r->base + r->size;

        for (size_t i = 0; i < u->n; i++) {
                if (r->base < (uint64_t)u->v[i].base + u->v[i].size && u->v[i].base < end)
                        return false;
        }
        return true;
}

static uint32_t name_hash(const char *name)
{
        uint32_t h = 2166136261u; /* FNV-1a */

        for (; *name; name++)
                h = (h ^ (uint8_t)*name) * 16777619u;
        return h;
}

static int pick_range(const struct used_ranges *u, const char *name, const struct em_idpool *pool,
                      const struct em_idrange *preferred, struct em_idrange *out, em_error_t *err)
{
        if (preferred && em_idpool_has_slot(pool, preferred) && range_free(u, preferred)) {
                *out = *preferred;
                return 0;
        }
        uint32_t start = name_hash(name) % pool->slots;
        for (uint32_t i = 0; i < pool->slots; i++) {
                uint32_t slot = (start + i) % pool->slots;
                struct em_idrange r = {pool->first + slot * pool->size, pool->size};
                if (range_free(u, &r)) {
                        *out = r;
                        return 0;
                }
        }
        return em_error_set(err, ENOSPC, "all %u ID ranges of this host are in use", pool->slots);
}

static int store_range(struct em_state *st, const char *name, const struct em_idrange *r,
                       em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "UPDATE containers SET id_base = ?, id_size = ? WHERE name = ?", &s, err) <
            0)
                return -1;
        sqlite3_bind_int64(s, 1, r->base);
        sqlite3_bind_int64(s, 2, r->size);
        sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE)
                return db_fail(st, rc, "storing an ID range", err);
        if (sqlite3_changes(st->db) == 0)
                return em_error_set(err, ENOENT, "no container named '%s'", name);
        return 0;
}

static int idrange_allocate_locked(struct em_state *st, const char *name,
                                   const struct em_idpool *pool, const struct em_idrange *preferred,
                                   struct em_idrange *out, em_error_t *err)
{
        struct used_ranges u = {0};
        struct em_idrange mine = {0, 0};
        int rc = collect_ranges(st, name, &u, &mine, err);

        if (rc == 0 && em_idpool_has_slot(pool, &mine) && range_free(&u, &mine))
                *out = mine;
        else if (rc == 0)
                rc = pick_range(&u, name, pool, preferred, out, err);
        free(u.v);
        return rc < 0 ? -1 : store_range(st, name, out, err);
}

int em_state_idrange_allocate(struct em_state *st, const char *name, const struct em_idpool *pool,
                              const struct em_idrange *preferred, struct em_idrange *out,
                              em_error_t *err)
{
        if (pool->size == 0 || pool->slots == 0 ||
            (uint64_t)pool->first + (uint64_t)pool->slots * pool->size > UINT32_MAX)
                return em_error_set(err, EINVAL, "invalid ID pool (%u ranges of %u from %u)",
                                    pool->slots, pool->size, pool->first);
        if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
                return -1;
        if (idrange_allocate_locked(st, name, pool, preferred, out, err) < 0) {
                rollback(st);
                return em_error_wrap(err, "allocating an ID range for %s", name);
        }
        return exec_sql(st, "COMMIT", err);
}

int em_state_ip_reserve(struct em_state *st, const char *ip, const char *name, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "INSERT OR REPLACE INTO ip_reservations (ip, name, since) VALUES (?, ?, ?)",
                    &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, ip, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, em_now_ms());
        int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? 0 : db_fail(st, rc, "reserving an address", err);
}

int em_state_ip_release(struct em_state *st, const char *ip, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        if (prepare(st, "DELETE FROM ip_reservations WHERE ip = ?", &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, ip, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE)
                return db_fail(st, rc, "releasing an address", err);
        if (sqlite3_changes(st->db) == 0)
                return em_error_set(err, ENOENT, "address %s is not reserved", ip);
        return 0;
}

int em_state_ip_owner(struct em_state *st, const char *ip, char **name, bool *reserved,
                      em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;

        *name = NULL;
        *reserved = false;
        if (prepare(st, "SELECT name FROM containers WHERE ip = ?", &s, err) < 0)
                return -1;
        sqlite3_bind_text(s, 1, ip, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                return (*name = col_dup(s, 0)) ? 0 : em_error_set(err, ENOMEM, "owner of %s", ip);
        if (rc != SQLITE_DONE)
                return db_fail(st, rc, "looking up an address", err);
        if (reservation_of(st, ip, name, err) < 0)
                return -1;
        *reserved = *name != NULL;
        return 0;
}

int em_state_ip_reservations(struct em_state *st, json_t **out, em_error_t *err)
{
        cleanup_stmt sqlite3_stmt *s = NULL;
        json_t *arr = json_array();
        int rc;

        if (arr == NULL)
                return em_error_set(err, ENOMEM, "reservations");
        if (prepare(st, "SELECT ip, name, since FROM ip_reservations ORDER BY ip", &s, err) < 0) {
                json_decref(arr);
                return -1;
        }
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
                json_array_append_new(
                    arr, json_pack("{s:s, s:s, s:I}", "ip", (const char *)sqlite3_column_text(s, 0),
                                   "container", (const char *)sqlite3_column_text(s, 1), "since_ms",
                                   (json_int_t)sqlite3_column_int64(s, 2)));
        if (rc != SQLITE_DONE) {
                json_decref(arr);
                return db_fail(st, rc, "listing reservations", err);
        }
        *out = arr;
        return 0;
}
