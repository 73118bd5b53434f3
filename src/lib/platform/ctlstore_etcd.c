/* The controller's state in etcd (see ctlstore_etcd.h). */
#include "platform/ctlstore_etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/registry.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"

#define PFX "/edgemig/"

struct etcd_store {
        struct em_ctlstore base;
        struct em_etcd *etcd;
        char *id;
        int edge_ttl_s;
        int64_t last_id;
};

static struct etcd_store *es(struct em_ctlstore *s)
{
        return (struct etcd_store *)s;
}

void em_ctl_etcd_migration_key(int64_t id, char *buf, size_t size)
{
        snprintf(buf, size, PFX "migrations/%019" PRId64, id);
}

static bool lists(const json_t *edge, const char *service)
{
        json_t *names = json_object_get(edge, "container_names"), *v;
        size_t i;

        json_array_foreach(names, i, v)
        {
                if (json_is_string(v) && strcmp(json_string_value(v), service) == 0)
                        return true;
        }
        return false;
}

int em_ctl_etcd_resolve(const json_t *source_edge, const json_t *target_edge, const char *service,
                        int64_t since_ms)
{
        /* Only what both edges said after the takeover counts: an older
         * list may predate the commit. */
        if (em_json_int(source_edge, "heartbeat_ms", 0) <= since_ms ||
            em_json_int(target_edge, "heartbeat_ms", 0) <= since_ms)
                return -1;
        /* While either edge still has a session (the migration, or its
         * commit, going on) the lists are not final: the source runs the
         * service through pre-copy. */
        if (em_json_int(source_edge, "active_migrations", 1) != 0 ||
            em_json_int(target_edge, "active_migrations", 1) != 0)
                return -1;
        bool on_src = lists(source_edge, service), on_tgt = lists(target_edge, service);
        if (on_tgt && !on_src)
                return 1;
        if (on_src && !on_tgt)
                return 0;
        return -1;
}

/* ---- documents ---- */

static int get_doc(struct em_ctlstore *s, const char *key, json_t **doc, int64_t *mod,
                   em_error_t *err)
{
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;

        *doc = NULL;
        if (em_etcd_get(es(s)->etcd, key, false, &kvs, &n, err) < 0)
                return -1;
        int rc = 0;
        if (n > 0) {
                rc = em_json_parse(kvs[0].value, kvs[0].value_len, key, doc, err);
                if (mod != NULL)
                        *mod = kvs[0].mod_revision;
        }
        em_etcd_kvs_free(kvs, n);
        return rc;
}

static int doc_key(char *buf, size_t size, const char *what, const char *name)
{
        return snprintf(buf, size, PFX "%s/%s", what, name) < (int)size ? 0 : -1;
}

static int get_named(struct em_ctlstore *s, const char *what, const char *name, json_t **doc,
                     int64_t *mod, em_error_t *err)
{
        char key[256];

        if (doc_key(key, sizeof(key), what, name) < 0)
                return em_error_set(err, ENAMETOOLONG, "etcd key for %s", name);
        return get_doc(s, key, doc, mod, err);
}

static int put_named(struct em_ctlstore *s, const char *what, const char *name, const json_t *doc,
                     em_error_t *err)
{
        char key[256];
        cleanup_free char *text = json_dumps(doc, JSON_COMPACT);

        if (text == NULL || doc_key(key, sizeof(key), what, name) < 0)
                return em_error_set(err, ENOMEM, "etcd document %s", name);
        return em_etcd_put(es(s)->etcd, key, text, 0, err);
}

/* Every document under PFX what/, in key order. */
static int list_docs(struct em_ctlstore *s, const char *what, json_t **out, em_error_t *err)
{
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;
        char prefix[128];

        snprintf(prefix, sizeof(prefix), PFX "%s/", what);
        if (em_etcd_get(es(s)->etcd, prefix, true, &kvs, &n, err) < 0)
                return -1;
        cleanup_json json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
                json_t *d = json_loadb(kvs[i].value, kvs[i].value_len, 0, NULL);
                if (json_is_object(d))
                        json_array_append_new(arr, d);
                else
                        json_decref(d);
        }
        em_etcd_kvs_free(kvs, n);
        *out = steal_pointer(&arr);
        return 0;
}

static double num(const json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);
        return json_is_number(v) ? json_number_value(v) : 0;
}

/* ---- edges and their leases ---- */

/* Keeps the edge's lease alive, or binds its alive key to a new one. */
static int keep_alive(struct em_ctlstore *s, const char *name, json_t *doc, em_error_t *err)
{
        int64_t lease = em_json_int(doc, "lease", 0), ttl = 0;
        char key[256];

        if (lease != 0 && em_etcd_lease_keepalive(es(s)->etcd, lease, &ttl, err) < 0)
                return -1;
        if (ttl > 0)
                return 0;
        if (em_etcd_lease_grant(es(s)->etcd, es(s)->edge_ttl_s, &lease, err) < 0 ||
            doc_key(key, sizeof(key), "alive", name) < 0 ||
            em_etcd_put(es(s)->etcd, key, "{}", lease, err) < 0)
                return -1;
        json_object_set_new(doc, "lease", json_integer(lease));
        return 0;
}

static int edge_register(struct em_ctlstore *s, const json_t *e, int64_t now, em_error_t *err)
{
        const char *name = em_json_str(e, "name");
        cleanup_json json_t *doc = NULL;

        if (get_named(s, "edges", name, &doc, NULL, err) < 0)
                return -1;
        if (doc == NULL)
                doc = json_pack("{s:I, s:I}", "registered_ms", (json_int_t)now, "heartbeat_ms",
                                (json_int_t)0);
        if (doc == NULL || json_object_update(doc, (json_t *)e) < 0)
                return em_error_set(err, ENOMEM, "edge %s", name);
        if (keep_alive(s, name, doc, err) < 0)
                return -1;
        return put_named(s, "edges", name, doc, err);
}

/* The services the edge lists (and no action is moving) are there. */
static int place_services(struct em_ctlstore *s, const char *edge, const json_t *names,
                          em_error_t *err)
{
        size_t i;
        json_t *v;

        json_array_foreach(names, i, v)
        {
                cleanup_json json_t *svc = NULL;
                const char *n = json_string_value(v);
                if (n == NULL || get_named(s, "services", n, &svc, NULL, err) < 0)
                        return n == NULL ? 0 : -1;
                const char *at = em_json_str(svc, "edge");
                if (svc == NULL || em_json_int(svc, "busy", 0) != 0 || (at && !strcmp(at, edge)))
                        continue;
                json_object_set_new(svc, "edge", json_string(edge));
                if (put_named(s, "services", n, svc, err) < 0)
                        return -1;
        }
        return 0;
}

static int resolve_inflight(struct em_ctlstore *s, const char *edge, const json_t *doc, int64_t now,
                            em_error_t *err);

static int edge_heartbeat(struct em_ctlstore *s, const char *edge, const json_t *hb, int64_t now,
                          em_error_t *err)
{
        cleanup_json json_t *doc = NULL;

        if (get_named(s, "edges", edge, &doc, NULL, err) < 0)
                return -1;
        if (doc == NULL)
                return 0;
        if (json_object_update(doc, (json_t *)hb) < 0)
                return em_error_set(err, ENOMEM, "heartbeat of %s", edge);
        json_object_set_new(doc, "heartbeat_ms", json_integer(now));
        if (keep_alive(s, edge, doc, err) < 0 || put_named(s, "edges", edge, doc, err) < 0 ||
            place_services(s, edge, json_object_get(hb, "container_names"), err) < 0 ||
            resolve_inflight(s, edge, doc, now, err) < 0)
                return -1;
        return 1;
}

static int service_register(struct em_ctlstore *s, const char *name, const char *user,
                            const char *edge, const char *ip, int64_t now, em_error_t *err)
{
        cleanup_json json_t *e = NULL, *svc = NULL;

        if (get_named(s, "edges", edge, &e, NULL, err) < 0)
                return -1;
        if (e == NULL)
                return 0;
        if (get_named(s, "services", name, &svc, NULL, err) < 0)
                return -1;
        long long busy = em_json_int(svc, "busy", 0);
        json_decref(svc);
        svc = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I}", "name", name, "user", user, "edge", edge,
                        "ip", ip, "busy", (json_int_t)busy, "updated_ms", (json_int_t)now);
        if (svc == NULL)
                return em_error_set(err, ENOMEM, "service %s", name);
        return put_named(s, "services", name, svc, err) < 0 ? -1 : 1;
}

static int user_service(struct em_ctlstore *s, const char *user, json_t **out, em_error_t *err)
{
        cleanup_json json_t *all = NULL;
        size_t i;
        json_t *v;

        *out = NULL;
        if (list_docs(s, "services", &all, err) < 0)
                return -1;
        json_array_foreach(all, i, v)
        {
                const char *u = em_json_str(v, "user");
                if (u != NULL && strcmp(u, user) == 0) { /* key order: the first by name */
                        *out = json_incref(v);
                        break;
                }
        }
        return 0;
}

static int handoff_bytes(struct em_ctlstore *s, const char *service, double *out, em_error_t *err)
{
        cleanup_json json_t *all = NULL;
        double sum = 0;
        int n = 0, seen = 0;

        *out = 0;
        if (service == NULL || list_docs(s, "migrations", &all, err) < 0)
                return service == NULL ? 0 : -1;
        for (size_t i = json_array_size(all); i-- > 0 && seen < 3;) {
                json_t *m = json_array_get(all, i);
                const char *sv = em_json_str(m, "service"), *k = em_json_str(m, "kind");
                const char *st = em_json_str(m, "status"), *d = em_json_str(m, "detail");
                if (!sv || strcmp(sv, service) || !k || strcmp(k, "migrate") || !st ||
                    strcmp(st, "done"))
                        continue;
                cleanup_json json_t *rep = d ? json_loads(d, 0, NULL) : NULL;
                if (!json_is_object(rep))
                        continue;
                seen++;
                if (num(rep, "bytes_wire") > 0) {
                        sum += num(rep, "bytes_wire");
                        n++;
                }
        }
        *out = n ? sum / n : 0;
        return 0;
}

/* ---- users ---- */

static int load_user(struct em_ctlstore *s, const char *name, struct em_sched_user *u,
                     em_error_t *err)
{
        cleanup_json json_t *doc = NULL;

        if (get_named(s, "users", name, &doc, NULL, err) < 0)
                return -1;
        return em_registry_user_decode(em_json_str(doc, "sched"), u, err);
}

static int save_user(struct em_ctlstore *s, const char *name, double x, double y, int64_t now,
                     const struct em_sched_user *u, em_error_t *err)
{
        cleanup_json json_t *doc = NULL;
        cleanup_free char *sched = em_registry_user_encode(u);

        if (sched == NULL)
                return em_error_set(err, ENOMEM, "encoding scheduler state");
        if (get_named(s, "users", name, &doc, NULL, err) < 0)
                return -1;
        long long reports = em_json_int(doc, "reports", 0) + 1;
        json_decref(doc);
        doc =
            json_pack("{s:s, s:f, s:f, s:I, s:I, s:s}", "name", name, "x", x, "y", y, "updated_ms",
                      (json_int_t)now, "reports", (json_int_t)reports, "sched", sched);
        if (doc == NULL)
                return em_error_set(err, ENOMEM, "user %s", name);
        return put_named(s, "users", name, doc, err);
}

/* ---- what the scheduler sees ---- */

static int alive_set(struct em_ctlstore *s, json_t **names, em_error_t *err)
{
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;

        if (em_etcd_get(es(s)->etcd, PFX "alive/", true, &kvs, &n, err) < 0)
                return -1;
        *names = json_object();
        for (size_t i = 0; i < n; i++)
                json_object_set_new(*names, kvs[i].key + strlen(PFX "alive/"), json_true());
        em_etcd_kvs_free(kvs, n);
        return 0;
}

static int services_on(const json_t *services, const char *edge)
{
        int n = 0;
        size_t i;
        json_t *v;

        json_array_foreach(services, i, v)
        {
                const char *e = em_json_str(v, "edge");
                n += e != NULL && strcmp(e, edge) == 0;
        }
        return n;
}

static void sched_edge(struct em_sched_edge *d, const json_t *e, const json_t *services)
{
        snprintf(d->name, sizeof(d->name), "%s", em_json_str(e, "name"));
        d->x = num(e, "x");
        d->y = num(e, "y");
        d->capacity = (int)em_json_int(e, "capacity", 0);
        int placed = services_on(services, d->name);
        d->load = (int)em_json_int(e, "load", 0);
        d->load = d->load > placed ? d->load : placed;
        d->bandwidth_mbps = num(e, "bandwidth_mbps");
}

/* Only the edges whose lease is alive. */
static int load_edges(struct em_ctlstore *s, struct em_sched_edge **out, size_t *n, em_error_t *err)
{
        cleanup_json json_t *edges = NULL, *services = NULL, *alive = NULL;
        size_t i, k = 0;
        json_t *e;

        if (list_docs(s, "edges", &edges, err) < 0 ||
            list_docs(s, "services", &services, err) < 0 || alive_set(s, &alive, err) < 0)
                return -1;
        size_t len = json_array_size(edges);
        cleanup_free struct em_sched_edge *v = calloc(len ? len : 1, sizeof(*v));
        if (v == NULL)
                return em_error_set(err, ENOMEM, "edges");
        json_array_foreach(edges, i, e)
        {
                const char *name = em_json_str(e, "name");
                if (name != NULL && json_object_get(alive, name) != NULL)
                        sched_edge(&v[k++], e, services);
        }
        *out = steal_pointer(&v);
        *n = k;
        return 0;
}

/* ---- listings ---- */

static void list_edges(json_t *rows, const json_t *alive)
{
        size_t i;
        json_t *e;

        json_array_foreach(rows, i, e)
        {
                const char *name = em_json_str(e, "name");
                json_object_set_new(e, "alive", json_boolean(name && json_object_get(alive, name)));
                json_object_del(e, "lease");
        }
}

static int list_users(struct em_ctlstore *s, json_t *rows, em_error_t *err)
{
        cleanup_json json_t *services = NULL;
        size_t i;
        json_t *u;

        if (list_docs(s, "services", &services, err) < 0)
                return -1;
        json_array_foreach(rows, i, u)
        {
                json_t *svc = NULL;
                if (user_service(s, em_json_str(u, "name"), &svc, err) < 0)
                        return -1;
                json_object_set_new(u, "serving",
                                    svc ? json_incref(json_object_get(svc, "edge")) : json_null());
                json_decref(svc);
                json_object_del(u, "sched");
        }
        return 0;
}

static void list_migrations(json_t *rows)
{
        size_t i;
        json_t *m;

        json_array_foreach(rows, i, m)
        {
                json_t *f = json_object_get(m, "finished_ms");
                json_object_set_new(
                    m, "duration_ms",
                    json_is_integer(f)
                        ? json_integer(json_integer_value(f) - em_json_int(m, "started_ms", 0))
                        : json_null());
        }
}

static int list(struct em_ctlstore *s, enum em_ctl_list what, json_t **rows, em_error_t *err)
{
        static const char *const names[] = {"edges", "services", "users", "migrations"};
        cleanup_json json_t *r = NULL, *alive = NULL;

        if (list_docs(s, names[what], &r, err) < 0)
                return -1;
        if (what == EM_CTL_EDGES && alive_set(s, &alive, err) < 0)
                return -1;
        if (what == EM_CTL_EDGES)
                list_edges(r, alive);
        if (what == EM_CTL_USERS && list_users(s, r, err) < 0)
                return -1;
        if (what == EM_CTL_MIGRATIONS)
                list_migrations(r);
        *rows = steal_pointer(&r);
        return 0;
}

static int counts(struct em_ctlstore *s, json_t **actions, json_t **totals, em_error_t *err)
{
        cleanup_json json_t *migs = NULL, *users = NULL, *services = NULL, *by = json_object();
        size_t i;
        json_t *m;

        if (list_docs(s, "migrations", &migs, err) < 0 || list_docs(s, "users", &users, err) < 0 ||
            list_docs(s, "services", &services, err) < 0)
                return -1;
        json_array_foreach(migs, i, m)
        {
                char k[128];
                const char *kind = em_json_str(m, "kind"), *st = em_json_str(m, "status");
                snprintf(k, sizeof(k), "%s\n%s", kind ? kind : "", st ? st : "");
                json_t *row = json_object_get(by, k);
                if (row == NULL) {
                        row = json_pack("{s:s, s:s, s:I, s:I}", "kind", kind ? kind : "", "status",
                                        st ? st : "", "n", (json_int_t)0, "ms", (json_int_t)0);
                        json_object_set_new(by, k, row);
                }
                long long fin = em_json_int(m, "finished_ms", 0);
                json_object_set_new(row, "n", json_integer(em_json_int(row, "n", 0) + 1));
                json_object_set_new(
                    row, "ms",
                    json_integer(em_json_int(row, "ms", 0) +
                                 (fin ? fin - em_json_int(m, "started_ms", 0) : 0)));
        }
        *actions = json_array();
        const char *k;
        json_object_foreach(by, k, m) json_array_append(*actions, m);
        *totals = json_pack("{s:I, s:I}", "users", (json_int_t)json_array_size(users), "services",
                            (json_int_t)json_array_size(services));
        return 0;
}

static int edge_addr(struct em_ctlstore *s, const char *edge, char **addr, em_error_t *err)
{
        cleanup_json json_t *doc = NULL;

        *addr = NULL;
        if (edge == NULL || get_named(s, "edges", edge, &doc, NULL, err) < 0)
                return edge == NULL ? 0 : -1;
        const char *a = em_json_str(doc, "addr");
        if (a != NULL && (*addr = strdup(a)) == NULL)
                return em_error_set(err, ENOMEM, "edge address");
        return 0;
}

/* ---- actions: intents, fenced on leadership ---- */

static json_t *action_doc(const struct em_ctl_action *a, int64_t id, int64_t now)
{
        return json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:s?, s:I, s:n, s:s, s:s?, s:n}", "id",
                         (json_int_t)id, "kind", a->kind, "service", a->service, "user", a->user,
                         "source", a->source, "target", a->target, "started_ms", (json_int_t)now,
                         "finished_ms", "status", a->status, "reason", a->reason, "detail");
}

/* One txn: the record, the in-flight mark and the busy service, only if
 * this replica still holds the leader key. */
static json_t *begin_txn(struct em_ctlstore *s, const json_t *doc, const json_t *svc,
                         int64_t svc_mod, int64_t id)
{
        char mkey[96], ikey[96], skey[256];
        cleanup_free char *mtext = json_dumps(doc, JSON_COMPACT);
        cleanup_free char *stext = svc ? json_dumps(svc, JSON_COMPACT) : NULL;
        cleanup_json json_t *mark = json_pack("{s:s?, s:s?}", "source", em_json_str(doc, "source"),
                                              "target", em_json_str(doc, "target"));
        cleanup_free char *itext = mark ? json_dumps(mark, JSON_COMPACT) : NULL;
        json_t *cmps = json_array(), *ok = json_array();

        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        snprintf(ikey, sizeof(ikey), PFX "inflight/%019" PRId64, id);
        json_array_append_new(cmps, em_etcd_cmp_value(EM_CTL_ETCD_LEADER_KEY, es(s)->id));
        json_array_append_new(ok, em_etcd_op_put(mkey, mtext ? mtext : "{}", 0));
        if (stext != NULL) {
                doc_key(skey, sizeof(skey), "services", em_json_str(svc, "name"));
                json_array_append_new(cmps, em_etcd_cmp_mod(skey, svc_mod));
                json_array_append_new(ok, em_etcd_op_put(skey, stext, 0));
                json_array_append_new(ok, em_etcd_op_put(ikey, itext ? itext : "{}", 0));
        }
        return em_etcd_txn_req(cmps, ok, NULL);
}

static int64_t next_id(struct em_ctlstore *s, int64_t now)
{
        /* Time-ordered and unique: one leader writes at a time (fenced),
         * and a successor's clock is past its predecessor's last id. */
        int64_t id = now * 1000;
        if (id <= es(s)->last_id)
                id = es(s)->last_id + 1;
        return es(s)->last_id = id;
}

static int action_begin(struct em_ctlstore *s, const struct em_ctl_action *a, int64_t now,
                        int64_t *id, em_error_t *err)
{
        cleanup_json json_t *svc = NULL, *doc = NULL;
        int64_t mod = 0;
        bool running = strcmp(a->status, "running") == 0, won = false;
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;

        if (running && get_named(s, "services", a->service, &svc, &mod, err) < 0)
                return -1;
        if (running && svc == NULL)
                return em_error_set(err, ENOENT, "service %s is not registered", a->service);
        if (svc != NULL)
                json_object_set_new(svc, "busy", json_integer(1));
        *id = next_id(s, now);
        if ((doc = action_doc(a, *id, now)) == NULL)
                return em_error_set(err, ENOMEM, "action record");
        if (em_etcd_txn(es(s)->etcd, begin_txn(s, doc, svc, mod, *id), &won, &kvs, &n, err) < 0)
                return -1;
        em_etcd_kvs_free(kvs, n);
        if (!won)
                return em_error_set(err, EAGAIN,
                                    "not starting %s of %s: this replica no longer leads, or "
                                    "the service changed meanwhile",
                                    a->kind, a->service);
        return 0;
}

/* Writes the settled record and service, unless the record changed since
 * it was read (then the caller reads again). */
static int settle(struct em_ctlstore *s, int64_t id, json_t *m, int64_t mod, const char *status,
                  const char *edge, em_error_t *err)
{
        char mkey[96], ikey[96], skey[256];
        cleanup_json json_t *svc = NULL;
        const char *service = em_json_str(m, "service");
        bool won = false;
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;

        if (get_named(s, "services", service ? service : "", &svc, NULL, err) < 0)
                return -1;
        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        snprintf(ikey, sizeof(ikey), PFX "inflight/%019" PRId64, id);
        cleanup_free char *mtext = json_dumps(m, JSON_COMPACT);
        json_t *cmps = json_array(), *ok = json_array();
        json_array_append_new(cmps, em_etcd_cmp_mod(mkey, mod));
        json_array_append_new(ok, em_etcd_op_put(mkey, mtext ? mtext : "{}", 0));
        json_array_append_new(ok,
                              json_pack("{s:o}", "request_delete_range", em_etcd_delete_req(ikey)));
        if (svc != NULL && doc_key(skey, sizeof(skey), "services", service) == 0) {
                json_object_set_new(svc, "busy", json_integer(0));
                if (edge != NULL)
                        json_object_set_new(svc, "edge", json_string(edge));
                cleanup_free char *stext = json_dumps(svc, JSON_COMPACT);
                json_array_append_new(ok, em_etcd_op_put(skey, stext ? stext : "{}", 0));
        }
        if (em_etcd_txn(es(s)->etcd, em_etcd_txn_req(cmps, ok, NULL), &won, &kvs, &n, err) < 0)
                return -1;
        em_etcd_kvs_free(kvs, n);
        if (won)
                em_log_info("%s %s (id %" PRId64 "): %s", em_json_str(m, "kind"), service, id,
                            status);
        return won ? 1 : 0;
}

/* Reads the record and settles it, retrying a few times on a race. */
static int finish(struct em_ctlstore *s, int64_t id, const char *status, const char *detail,
                  bool move, int64_t now, em_error_t *err)
{
        char mkey[96];

        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        for (int attempt = 0; attempt < 5; attempt++) {
                cleanup_json json_t *m = NULL;
                int64_t mod = 0;
                if (get_doc(s, mkey, &m, &mod, err) < 0)
                        return -1;
                const char *st = em_json_str(m, "status");
                if (m == NULL || st == NULL ||
                    (strcmp(st, "running") != 0 && strcmp(st, "resolving") != 0))
                        return 0; /* already settled (by a new leader) */
                json_object_set_new(m, "status", json_string(status));
                json_object_set_new(m, "finished_ms", json_integer(now));
                if (detail != NULL)
                        json_object_set_new(m, "detail", json_string(detail));
                const char *tgt = em_json_str(m, "target");
                int rc = settle(s, id, m, mod, status, move ? tgt : NULL, err);
                if (rc != 0)
                        return rc < 0 ? -1 : 0;
        }
        return em_error_set(err, EAGAIN, "settling action %" PRId64 ": it keeps changing", id);
}

static int action_finish(struct em_ctlstore *s, int64_t id, const struct em_ctl_action *a,
                         const char *status, const char *detail, int64_t now, em_error_t *err)
{
        bool moved = strcmp(status, "done") == 0 && strcmp(a->kind, "migrate") == 0;

        return finish(s, id, status, detail, moved, now, err);
}

static int action_progress(struct em_ctlstore *s, int64_t id, const char *detail, em_error_t *err)
{
        char mkey[96];
        cleanup_json json_t *m = NULL;
        int64_t mod = 0;
        bool won = false;
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;

        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        if (get_doc(s, mkey, &m, &mod, err) < 0)
                return -1;
        const char *st = em_json_str(m, "status");
        if (st == NULL || strcmp(st, "running") != 0)
                return 0;
        json_object_set_new(m, "detail", json_string(detail));
        cleanup_free char *text = json_dumps(m, JSON_COMPACT);
        json_t *cmps = json_array(), *ok = json_array();
        json_array_append_new(cmps, em_etcd_cmp_mod(mkey, mod));
        json_array_append_new(ok, em_etcd_op_put(mkey, text ? text : "{}", 0));
        /* A lost race (the record settled meanwhile) drops this progress. */
        if (em_etcd_txn(es(s)->etcd, em_etcd_txn_req(cmps, ok, NULL), &won, &kvs, &n, err) < 0)
                return -1;
        em_etcd_kvs_free(kvs, n);
        return 0;
}

static int migration_get(struct em_ctlstore *s, int64_t id, json_t **row, em_error_t *err)
{
        char mkey[96];
        cleanup_json json_t *m = NULL;
        char *addr = NULL;

        *row = NULL;
        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        if (get_doc(s, mkey, &m, NULL, err) < 0)
                return -1;
        if (m == NULL)
                return 0;
        if (edge_addr(s, em_json_str(m, "source"), &addr, err) < 0)
                return -1;
        json_object_set_new(m, "addr", addr ? json_string(addr) : json_null());
        free(addr);
        *row = steal_pointer(&m);
        return 0;
}

/* ---- a new leader's takeover ---- */

bool em_ctl_etcd_inflight_involves(const json_t *mark, const char *edge)
{
        const char *source = em_json_str(mark, "source"), *target = em_json_str(mark, "target");

        if (source == NULL && target == NULL)
                return true; /* an older mark ("{}"): the record tells */
        return (source && strcmp(source, edge) == 0) || (target && strcmp(target, edge) == 0);
}

/* The in-flight marks, each with its id and, if it names them, the
 * migration's source and target. */
static int inflight(struct em_ctlstore *s, json_t **out, em_error_t *err)
{
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;

        if (em_etcd_get(es(s)->etcd, PFX "inflight/", true, &kvs, &n, err) < 0)
                return -1;
        *out = json_array();
        for (size_t i = 0; i < n; i++) {
                json_t *mark = json_loadb(kvs[i].value, kvs[i].value_len, 0, NULL);
                if (!json_is_object(mark)) {
                        json_decref(mark);
                        mark = json_object();
                }
                json_object_set_new(
                    mark, "id",
                    json_integer(strtoll(kvs[i].key + strlen(PFX "inflight/"), NULL, 10)));
                json_array_append_new(*out, mark);
        }
        em_etcd_kvs_free(kvs, n);
        return 0;
}

/* The edge whose heartbeat was just stored, with its document as
 * written (the in-flight loop's filter); NULL for a takeover. */
struct heard {
        const char *edge;
        const json_t *doc;
};

/* Marks a predecessor's running action: a prepare is only interrupted (it
 * moves nothing); a migration waits for the edges to tell. */
static int mark_resolving(struct em_ctlstore *s, int64_t id, const struct heard *h, int64_t now,
                          em_error_t *err)
{
        char mkey[96];
        cleanup_json json_t *m = NULL;
        int64_t mod = 0;

        (void)h;
        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        if (get_doc(s, mkey, &m, &mod, err) < 0)
                return -1;
        const char *st = em_json_str(m, "status"), *kind = em_json_str(m, "kind");
        if (m == NULL || st == NULL || strcmp(st, "running") != 0)
                return 0;
        if (kind != NULL && strcmp(kind, "prepare") == 0)
                return finish(s, id, "interrupted", "the controller leading it stopped", false, now,
                              err);
        json_object_set_new(m, "status", json_string("resolving"));
        json_object_set_new(m, "resolve_since_ms", json_integer(now));
        cleanup_free char *text = json_dumps(m, JSON_COMPACT);
        json_t *cmps = json_array(), *ok = json_array();
        json_array_append_new(cmps, em_etcd_cmp_mod(mkey, mod));
        json_array_append_new(ok, em_etcd_op_put(mkey, text ? text : "{}", 0));
        bool won = false;
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;
        if (em_etcd_txn(es(s)->etcd, em_etcd_txn_req(cmps, ok, NULL), &won, &kvs, &n, err) < 0)
                return -1;
        em_etcd_kvs_free(kvs, n);
        em_log_warn("%s of %s (id %" PRId64 ") was in flight under the previous leader: "
                    "waiting for the edges to tell where it runs",
                    kind, em_json_str(m, "service"), id);
        return 0;
}

typedef int (*inflight_fn)(struct em_ctlstore *s, int64_t id, const struct heard *h, int64_t now,
                           em_error_t *err);

/* Calls fn for each migration recorded as in flight; after a heartbeat
 * (h not NULL) only for those whose source or target sent it. */
static int each_inflight(struct em_ctlstore *s, inflight_fn fn, const struct heard *h, int64_t now,
                         em_error_t *err)
{
        cleanup_json json_t *marks = NULL;
        size_t i;
        json_t *v;

        if (inflight(s, &marks, err) < 0)
                return -1;
        json_array_foreach(marks, i, v)
        {
                if (h != NULL && !em_ctl_etcd_inflight_involves(v, h->edge))
                        continue;
                if (fn(s, em_json_int(v, "id", 0), h, now, err) < 0)
                        return -1;
        }
        return 0;
}

static int recover(struct em_ctlstore *s, int64_t now, em_error_t *err)
{
        return each_inflight(s, mark_resolving, NULL, now, err);
}

/* Edge name's document: the one just heard, else as stored. */
static int edge_doc(struct em_ctlstore *s, const char *name, const struct heard *h, json_t **doc,
                    em_error_t *err)
{
        if (strcmp(name, h->edge) == 0) {
                *doc = json_incref((json_t *)h->doc);
                return 0;
        }
        return get_named(s, "edges", name, doc, NULL, err);
}

static int resolve_one(struct em_ctlstore *s, int64_t id, const struct heard *h, int64_t now,
                       em_error_t *err)
{
        char mkey[96];
        cleanup_json json_t *m = NULL, *src = NULL, *tgt = NULL;

        em_ctl_etcd_migration_key(id, mkey, sizeof(mkey));
        if (get_doc(s, mkey, &m, NULL, err) < 0)
                return -1;
        const char *st = em_json_str(m, "status"), *service = em_json_str(m, "service");
        const char *source = em_json_str(m, "source"), *target = em_json_str(m, "target");
        if (st == NULL || strcmp(st, "resolving") != 0 || !service || !source || !target)
                return 0;
        /* An older mark names no edges: its record does. */
        if (strcmp(source, h->edge) != 0 && strcmp(target, h->edge) != 0)
                return 0;
        if (edge_doc(s, source, h, &src, err) < 0 || edge_doc(s, target, h, &tgt, err) < 0)
                return -1;
        int r = em_ctl_etcd_resolve(src, tgt, service, em_json_int(m, "resolve_since_ms", 0));
        if (r < 0)
                return 0;
        return finish(s, id, r ? "done" : "failed",
                      r ? "settled by the next leader: the target runs it"
                        : "settled by the next leader: the source still runs it",
                      r == 1, now, err);
}

/* After edge's heartbeat, doc its document as just written: settles the
 * migrations a previous leader left in flight between it and another
 * edge. */
static int resolve_inflight(struct em_ctlstore *s, const char *edge, const json_t *doc, int64_t now,
                            em_error_t *err)
{
        const struct heard h = {.edge = edge, .doc = doc};

        return each_inflight(s, resolve_one, &h, now, err);
}

/* ---- open ---- */

static void store_close(struct em_ctlstore *s)
{
        em_etcd_close(es(s)->etcd);
        free(es(s)->id);
        free(s);
}

static const struct em_ctlstore_ops etcd_ops = {
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

struct em_etcd *em_ctlstore_etcd_client(struct em_ctlstore *s)
{
        return es(s)->etcd;
}

int em_ctlstore_etcd_open(const struct em_ctl_etcd_opts *o, struct em_ctlstore **out,
                          em_error_t *err)
{
        const struct em_etcd_opts eo = {o->endpoints, o->ca, o->cert, o->key, 2000};
        struct etcd_store *s = calloc(1, sizeof(*s));

        if (s == NULL || o->id == NULL || (s->id = strdup(o->id)) == NULL) {
                free(s);
                return em_error_set(err, o->id ? ENOMEM : EINVAL, "etcd store: no replica id");
        }
        s->base.ops = &etcd_ops;
        s->base.name = "etcd";
        s->edge_ttl_s = o->edge_ttl_s > 0 ? o->edge_ttl_s : EM_CTL_EDGE_TTL_S;
        if (em_etcd_open(&eo, &s->etcd, err) < 0) {
                free(s->id);
                free(s);
                return -1;
        }
        *out = &s->base;
        return 0;
}
