/* etcd v3 through its JSON gateway (see etcd.h). */
#include "platform/etcd.h"
#include "platform/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/json.h"

char *em_etcd_b64(const void *data, size_t len)
{
        gnutls_datum_t in = {(unsigned char *)data, (unsigned)len}, out = {NULL, 0};
        char *s;
        size_t j = 0;

        if (len == 0)
                return strdup("");
        if (gnutls_base64_encode2(&in, &out) < 0)
                return NULL;
        /* GnuTLS wraps lines at 64 characters: the gateway wants one string. */
        if ((s = malloc(out.size + 1)) != NULL) {
                for (unsigned i = 0; i < out.size; i++)
                        if (out.data[i] != '\n' && out.data[i] != '\r')
                                s[j++] = (char)out.data[i];
                s[j] = '\0';
        }
        gnutls_free(out.data);
        return s;
}

int em_etcd_unb64(const char *text, char **out, size_t *len, em_error_t *err)
{
        gnutls_datum_t in = {(unsigned char *)text, (unsigned)strlen(text)}, dec = {NULL, 0};

        if (in.size == 0) {
                *out = calloc(1, 1);
                *len = 0;
                return *out ? 0 : em_error_set(err, ENOMEM, "base64");
        }
        if (gnutls_base64_decode2(&in, &dec) < 0)
                return em_error_set(err, EINVAL, "etcd: '%.40s' is not base64", text);
        char *s = malloc(dec.size + 1);
        if (s != NULL) {
                memcpy(s, dec.data, dec.size);
                s[dec.size] = '\0';
        }
        *len = dec.size;
        gnutls_free(dec.data);
        if (s == NULL)
                return em_error_set(err, ENOMEM, "base64");
        *out = s;
        return 0;
}

char *em_etcd_prefix_end(const char *prefix)
{
        char *end = strdup(prefix);
        size_t n = end ? strlen(end) : 0;

        /* Our prefixes end in '/', never in 0xff. */
        if (n > 0)
                end[n - 1]++;
        return end;
}

/* {"key": b64(key)} plus more fields. */
static json_t *keyed(const char *key)
{
        cleanup_free char *k = em_etcd_b64(key, strlen(key));

        return k ? json_pack("{s:s}", "key", k) : NULL;
}

static void set_b64(json_t *o, const char *field, const char *text)
{
        cleanup_free char *v = em_etcd_b64(text, strlen(text));

        if (o != NULL)
                json_object_set_new(o, field, v ? json_string(v) : json_null());
}

static void set_i64(json_t *o, const char *field, int64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "%" PRId64, v);
        if (o != NULL)
                json_object_set_new(o, field, json_string(buf));
}

json_t *em_etcd_range_req(const char *key, bool prefix)
{
        json_t *r = keyed(key);
        cleanup_free char *end = prefix ? em_etcd_prefix_end(key) : NULL;

        if (end != NULL)
                set_b64(r, "range_end", end);
        return r;
}

json_t *em_etcd_put_req(const char *key, const char *value, int64_t lease)
{
        json_t *r = keyed(key);

        set_b64(r, "value", value);
        if (lease != 0)
                set_i64(r, "lease", lease);
        return r;
}

json_t *em_etcd_delete_req(const char *key)
{
        return keyed(key);
}

static json_t *cmp(const char *key, const char *target)
{
        json_t *c = keyed(key);

        if (c != NULL) {
                json_object_set_new(c, "target", json_string(target));
                json_object_set_new(c, "result", json_string("EQUAL"));
        }
        return c;
}

json_t *em_etcd_cmp_create(const char *key, int64_t revision)
{
        json_t *c = cmp(key, "CREATE");

        set_i64(c, "create_revision", revision);
        return c;
}

json_t *em_etcd_cmp_mod(const char *key, int64_t revision)
{
        json_t *c = cmp(key, "MOD");

        set_i64(c, "mod_revision", revision);
        return c;
}

json_t *em_etcd_cmp_value(const char *key, const char *value)
{
        json_t *c = cmp(key, "VALUE");

        set_b64(c, "value", value);
        return c;
}

json_t *em_etcd_txn_req(json_t *cmps, json_t *ok, json_t *fail)
{
        return json_pack("{s:o, s:o, s:o}", "compare", cmps ? cmps : json_array(), "success",
                         ok ? ok : json_array(), "failure", fail ? fail : json_array());
}

json_t *em_etcd_op_put(const char *key, const char *value, int64_t lease)
{
        json_t *p = em_etcd_put_req(key, value, lease);

        return p ? json_pack("{s:o}", "request_put", p) : NULL;
}

json_t *em_etcd_op_range(const char *key)
{
        json_t *r = em_etcd_range_req(key, false);

        return r ? json_pack("{s:o}", "request_range", r) : NULL;
}

/* int64 fields come as decimal strings (or numbers from other gateways). */
static int64_t get_i64(const json_t *o, const char *field)
{
        json_t *v = json_object_get(o, field);

        if (json_is_integer(v))
                return json_integer_value(v);
        return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
}

int64_t em_etcd_header_revision(const json_t *resp)
{
        return get_i64(json_object_get(resp, "header"), "revision");
}

static int check_error(const json_t *resp, em_error_t *err)
{
        const char *msg = em_json_str(resp, "error");

        if (!json_is_object(resp))
                return em_error_set(err, EPROTO, "etcd: the answer is not a JSON object");
        if (msg == NULL)
                msg = em_json_str(resp, "message");
        if (msg != NULL)
                return em_error_set(err, EIO, "etcd: %s", msg);
        return 0;
}

void em_etcd_kvs_free(struct em_etcd_kv *kvs, size_t n)
{
        for (size_t i = 0; kvs != NULL && i < n; i++) {
                free(kvs[i].key);
                free(kvs[i].value);
        }
        free(kvs);
}

static int decode_kv(const json_t *j, struct em_etcd_kv *kv, em_error_t *err)
{
        const char *k = em_json_str(j, "key"), *v = em_json_str(j, "value");
        size_t klen;

        if (k == NULL)
                return em_error_set(err, EPROTO, "etcd: a key-value without a key");
        if (em_etcd_unb64(k, &kv->key, &klen, err) < 0 ||
            em_etcd_unb64(v ? v : "", &kv->value, &kv->value_len, err) < 0)
                return -1;
        kv->create_revision = get_i64(j, "create_revision");
        kv->mod_revision = get_i64(j, "mod_revision");
        kv->lease = get_i64(j, "lease");
        return 0;
}

/* Appends the decoded "kvs" of one range response. */
static int append_kvs(const json_t *resp, struct em_etcd_kv **kvs, size_t *n, em_error_t *err)
{
        json_t *arr = json_object_get(resp, "kvs");
        size_t add = json_array_size(arr);

        if (add == 0)
                return 0;
        struct em_etcd_kv *grown = realloc(*kvs, (*n + add) * sizeof(**kvs));
        if (grown == NULL)
                return em_error_set(err, ENOMEM, "etcd: key-values");
        *kvs = grown;
        for (size_t i = 0; i < add; i++) {
                memset(&grown[*n], 0, sizeof(grown[*n]));
                (*n)++;
                if (decode_kv(json_array_get(arr, i), &grown[*n - 1], err) < 0)
                        return -1;
        }
        return 0;
}

int em_etcd_parse_kvs(const json_t *resp, struct em_etcd_kv **kvs, size_t *n, em_error_t *err)
{
        *kvs = NULL;
        *n = 0;
        if (check_error(resp, err) < 0 || append_kvs(resp, kvs, n, err) < 0) {
                em_etcd_kvs_free(*kvs, *n);
                *kvs = NULL;
                *n = 0;
                return -1;
        }
        return 0;
}

int em_etcd_parse_txn(const json_t *resp, bool *succeeded, struct em_etcd_kv **kvs, size_t *n,
                      em_error_t *err)
{
        json_t *rs = json_object_get(resp, "responses");

        *kvs = NULL;
        *n = 0;
        if (check_error(resp, err) < 0)
                return -1;
        *succeeded = json_is_true(json_object_get(resp, "succeeded"));
        for (size_t i = 0; i < json_array_size(rs); i++) {
                json_t *range = json_object_get(json_array_get(rs, i), "response_range");
                if (range != NULL && append_kvs(range, kvs, n, err) < 0) {
                        em_etcd_kvs_free(*kvs, *n);
                        *kvs = NULL;
                        *n = 0;
                        return -1;
                }
        }
        return 0;
}

int em_etcd_parse_grant(const json_t *resp, int64_t *id, int64_t *ttl, em_error_t *err)
{
        if (check_error(resp, err) < 0)
                return -1;
        *id = get_i64(resp, "ID");
        *ttl = get_i64(resp, "TTL");
        if (*id == 0 || *ttl <= 0)
                return em_error_set(err, EPROTO, "etcd: a lease grant without ID or TTL");
        return 0;
}

int em_etcd_parse_keepalive(const json_t *resp, int64_t *ttl, em_error_t *err)
{
        json_t *res = json_object_get(resp, "result");

        if (check_error(resp, err) < 0)
                return -1;
        if (!json_is_object(res))
                return em_error_set(err, EPROTO, "etcd: a keepalive answer without a result");
        if (check_error(res, err) < 0)
                return -1;
        *ttl = get_i64(res, "TTL");
        return 0;
}

/* ---- calls ---- */

static int add_endpoint(struct em_etcd *e, const char *url, size_t len, em_error_t *err)
{
        bool https = strncmp(url, "https://", 8) == 0;

        if (len == 0 || (!https && strncmp(url, "http://", 7) != 0))
                return em_error_set(err, EINVAL,
                                    "--etcd takes http(s)://HOST:PORT[,...], not '%.*s'", (int)len,
                                    url);
        if (https && e->ca == NULL)
                return em_error_set(err, EINVAL,
                                    "--etcd %.*s is https: name etcd's CA with --etcd-ca FILE",
                                    (int)len, url);
        if (!https && e->cert != NULL)
                return em_error_set(err, EINVAL, "--etcd-cert needs https:// endpoints, not '%.*s'",
                                    (int)len, url);
        if (e->n == EM_ETCD_MAX_ENDPOINTS)
                return em_error_set(err, EINVAL, "--etcd: at most %d endpoints",
                                    EM_ETCD_MAX_ENDPOINTS);
        while (len > 0 && url[len - 1] == '/')
                len--;
        if ((e->urls[e->n++] = strndup(url, len)) == NULL)
                return em_error_set(err, ENOMEM, "etcd endpoints");
        return 0;
}

static int dup_opt(const char *s, char **out, em_error_t *err)
{
        if (s != NULL && (*out = strdup(s)) == NULL)
                return em_error_set(err, ENOMEM, "etcd options");
        return 0;
}

/* libcurl's share locks: one mutex per kind of shared data we use. */
static pthread_mutex_t *lock_of(struct em_etcd *e, curl_lock_data data)
{
        return &e->locks[data == CURL_LOCK_DATA_CONNECT       ? 0
                         : data == CURL_LOCK_DATA_SSL_SESSION ? 1
                                                              : 2];
}

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *ud)
{
        pthread_mutex_lock(lock_of(ud, data));
}

static void share_unlock(CURL *c, curl_lock_data data, void *ud)
{
        pthread_mutex_unlock(lock_of(ud, data));
}

static int share_new(struct em_etcd *e, em_error_t *err)
{
        /* Before any thread: libcurl's global set-up is not thread-safe
         * (refcounted; em_etcd_close drops it). */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                return em_error_set(err, EIO, "etcd client: curl_global_init failed");
        CURLSH *sh = curl_share_init();

        if (sh == NULL)
                return em_error_set(err, ENOMEM, "etcd client: curl_share_init");
        for (int i = 0; i < 3; i++)
                pthread_mutex_init(&e->locks[i], NULL);
        curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(sh, CURLSHOPT_USERDATA, e);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        e->share = sh;
        return 0;
}

int em_etcd_open(const struct em_etcd_opts *o, struct em_etcd **out, em_error_t *err)
{
        struct em_etcd *e = calloc(1, sizeof(*e));

        if (e == NULL)
                return em_error_set(err, ENOMEM, "etcd client");
        e->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
        int rc = dup_opt(o->ca, &e->ca, err) < 0 || dup_opt(o->cert, &e->cert, err) < 0 ||
                         dup_opt(o->key, &e->key, err) < 0
                     ? -1
                     : 0;
        if (rc == 0 && (o->cert == NULL) != (o->key == NULL))
                rc = em_error_set(err, EINVAL, "--etcd-cert and --etcd-key go together");
        for (const char *p = o->endpoints ? o->endpoints : ""; rc == 0 && *p != '\0';) {
                size_t len = strcspn(p, ",");
                rc = add_endpoint(e, p, len, err);
                p += len + (p[len] == ',');
        }
        if (rc == 0 && e->n == 0)
                rc = em_error_set(err, EINVAL, "--etcd: no endpoint given");
        if (rc == 0)
                rc = share_new(e, err);
        if (rc < 0) {
                em_etcd_close(e);
                return -1;
        }
        *out = e;
        return 0;
}

void em_etcd_close(struct em_etcd *e)
{
        if (e == NULL)
                return;
        for (size_t i = 0; i < e->n; i++)
                free(e->urls[i]);
        free(e->ca);
        free(e->cert);
        free(e->key);
        if (e->share != NULL) {
                curl_share_cleanup(e->share);
                for (int i = 0; i < 3; i++)
                        pthread_mutex_destroy(&e->locks[i]);
                curl_global_cleanup();
        }
        free(e);
}

int em_etcd_call(struct em_etcd *e, const char *path, const json_t *body, json_t **resp,
                 em_error_t *err)
{
        cleanup_free char *text = json_dumps(body, JSON_COMPACT);
        size_t first = __atomic_load_n(&e->current, __ATOMIC_RELAXED);
        const struct em_http_tls tls = {
            .cert = e->cert, .key = e->key, .ca = e->ca, .share = e->share};

        if (text == NULL)
                return em_error_set(err, ENOMEM, "etcd request");
        for (size_t k = 0; k < e->n; k++) {
                size_t i = (first + k) % e->n;
                cleanup_free char *url = NULL, *out = NULL;
                em_error_free(err);
                if (asprintf(&url, "%s%s", e->urls[i], path) < 0)
                        return em_error_set(err, ENOMEM, "etcd request");
                long st = em_http_request(url, text, &tls, e->timeout_ms, &out, err);
                /* 5xx: this member cannot serve (no quorum seen from it). */
                if (st < 0 || st >= 500)
                        continue;
                __atomic_store_n(&e->current, i, __ATOMIC_RELAXED);
                if (em_json_parse(out, strlen(out), "etcd's answer", resp, err) < 0)
                        return -1;
                return 0;
        }
        return em_error_wrap(err, "no etcd endpoint answered (%zu tried)", e->n);
}

int em_etcd_get(struct em_etcd *e, const char *key, bool prefix, struct em_etcd_kv **kvs, size_t *n,
                em_error_t *err)
{
        cleanup_json json_t *req = em_etcd_range_req(key, prefix), *resp = NULL;

        if (req == NULL)
                return em_error_set(err, ENOMEM, "etcd range");
        if (em_etcd_call(e, "/v3/kv/range", req, &resp, err) < 0)
                return -1;
        return em_etcd_parse_kvs(resp, kvs, n, err);
}

/* Calls path and only checks the answer for an error. */
static int call_checked(struct em_etcd *e, const char *path, json_t *req, em_error_t *err)
{
        cleanup_json json_t *resp = NULL, *owned = req;

        if (owned == NULL)
                return em_error_set(err, ENOMEM, "etcd %s", path);
        if (em_etcd_call(e, path, owned, &resp, err) < 0)
                return -1;
        return check_error(resp, err);
}

int em_etcd_put(struct em_etcd *e, const char *key, const char *value, int64_t lease,
                em_error_t *err)
{
        return call_checked(e, "/v3/kv/put", em_etcd_put_req(key, value, lease), err);
}

int em_etcd_delete(struct em_etcd *e, const char *key, em_error_t *err)
{
        return call_checked(e, "/v3/kv/deleterange", em_etcd_delete_req(key), err);
}

int em_etcd_txn(struct em_etcd *e, json_t *txn, bool *succeeded, struct em_etcd_kv **kvs, size_t *n,
                em_error_t *err)
{
        cleanup_json json_t *resp = NULL, *owned = txn;

        if (owned == NULL)
                return em_error_set(err, ENOMEM, "etcd txn");
        if (em_etcd_call(e, "/v3/kv/txn", owned, &resp, err) < 0)
                return -1;
        return em_etcd_parse_txn(resp, succeeded, kvs, n, err);
}

int em_etcd_lease_grant(struct em_etcd *e, int64_t ttl_s, int64_t *id, em_error_t *err)
{
        cleanup_json json_t *req = json_pack("{s:I}", "TTL", (json_int_t)ttl_s), *resp = NULL;
        int64_t ttl;

        if (req == NULL)
                return em_error_set(err, ENOMEM, "etcd lease");
        if (em_etcd_call(e, "/v3/lease/grant", req, &resp, err) < 0)
                return -1;
        return em_etcd_parse_grant(resp, id, &ttl, err);
}

int em_etcd_lease_keepalive(struct em_etcd *e, int64_t id, int64_t *ttl, em_error_t *err)
{
        cleanup_json json_t *req = json_object(), *resp = NULL;

        set_i64(req, "ID", id);
        if (req == NULL)
                return em_error_set(err, ENOMEM, "etcd keepalive");
        if (em_etcd_call(e, "/v3/lease/keepalive", req, &resp, err) < 0)
                return -1;
        return em_etcd_parse_keepalive(resp, ttl, err);
}

int em_etcd_lease_revoke(struct em_etcd *e, int64_t id, em_error_t *err)
{
        json_t *req = json_object();

        set_i64(req, "ID", id);
        return call_checked(e, "/v3/lease/revoke", req, err);
}
