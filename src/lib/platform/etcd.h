/* A client of etcd's v3 API through its JSON gateway (etcd 3.4: POST
 * /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn,
 * /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke) with libcurl:
 * keys and values travel base64-encoded, 64-bit numbers as decimal
 * strings, and proto3 leaves out fields at their default (a failed txn has
 * no "succeeded", an expired lease's keepalive no "TTL"). The encoders and
 * decoders are pure (unit-tested without etcd); em_etcd_call does the HTTP,
 * trying each endpoint in turn. What the controller keeps there:
 * platform/ctlstore_etcd.h. */
#ifndef EDGEMIG_PLATFORM_ETCD_H
#define EDGEMIG_PLATFORM_ETCD_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_ETCD_MAX_ENDPOINTS 8

struct em_etcd_opts {
        const char *endpoints;       /* "http(s)://HOST:PORT[,...]" */
        const char *ca, *cert, *key; /* TLS to etcd: its CA, and a client certificate (mTLS) */
        int timeout_ms;              /* per request (default 2000) */
};

struct em_etcd {
        char *urls[EM_ETCD_MAX_ENDPOINTS];
        size_t n;
        size_t current; /* the endpoint that answered last (a hint, races are harmless) */
        char *ca, *cert, *key;
        int timeout_ms;
        /* libcurl's connection cache and TLS sessions, shared by every
         * request of every thread: a request reuses an open connection
         * instead of a TCP and TLS handshake each. */
        void *share; /* CURLSH */
        pthread_mutex_t locks[3];
};

/* Splits and checks the endpoints (http:// or https://; https:// needs
 * the CA, a client certificate needs https://). */
int em_etcd_open(const struct em_etcd_opts *o, struct em_etcd **out, em_error_t *err);
void em_etcd_close(struct em_etcd *e);

/* One key-value as the gateway returns it, decoded. */
struct em_etcd_kv {
        char *key;
        char *value; /* NUL-terminated (values are JSON text here) */
        size_t value_len;
        int64_t create_revision, mod_revision, lease;
};
void em_etcd_kvs_free(struct em_etcd_kv *kvs, size_t n);

/* ---- pure encoding and decoding ---- */
char *em_etcd_b64(const void *data, size_t len);
/* NULL (EINVAL) if text is not base64. */
int em_etcd_unb64(const char *text, char **out, size_t *len, em_error_t *err);
/* The end of a prefix range: prefix with its last byte incremented. */
char *em_etcd_prefix_end(const char *prefix);

/* Request bodies. */
json_t *em_etcd_range_req(const char *key, bool prefix);
json_t *em_etcd_put_req(const char *key, const char *value, int64_t lease);
json_t *em_etcd_delete_req(const char *key);
/* A txn comparison: key's create revision (target "CREATE"), mod revision
 * ("MOD") or value ("VALUE") equals. */
json_t *em_etcd_cmp_create(const char *key, int64_t revision);
json_t *em_etcd_cmp_mod(const char *key, int64_t revision);
json_t *em_etcd_cmp_value(const char *key, const char *value);
/* {"compare": cmps, "success": ok, "failure": fail}; steals the three. */
json_t *em_etcd_txn_req(json_t *cmps, json_t *ok, json_t *fail);
/* Request operations for a txn's success/failure lists. */
json_t *em_etcd_op_put(const char *key, const char *value, int64_t lease);
json_t *em_etcd_op_range(const char *key);

/* Response decoders. A gateway error ({"error", "code"}) is an EIO error
 * naming etcd's message. */
int em_etcd_parse_kvs(const json_t *resp, struct em_etcd_kv **kvs, size_t *n, em_error_t *err);
int em_etcd_parse_txn(const json_t *resp, bool *succeeded, struct em_etcd_kv **kvs, size_t *n,
                      em_error_t *err);
int em_etcd_parse_grant(const json_t *resp, int64_t *id, int64_t *ttl, em_error_t *err);
/* ttl 0: the lease is gone (expired or revoked). */
int em_etcd_parse_keepalive(const json_t *resp, int64_t *ttl, em_error_t *err);
/* The revision in a response's header (0 if absent). */
int64_t em_etcd_header_revision(const json_t *resp);

/* ---- calls ---- */
/* POSTs body to path ("/v3/kv/range") at the first endpoint that answers. */
int em_etcd_call(struct em_etcd *e, const char *path, const json_t *body, json_t **resp,
                 em_error_t *err);
int em_etcd_get(struct em_etcd *e, const char *key, bool prefix, struct em_etcd_kv **kvs, size_t *n,
                em_error_t *err);
int em_etcd_put(struct em_etcd *e, const char *key, const char *value, int64_t lease,
                em_error_t *err);
int em_etcd_delete(struct em_etcd *e, const char *key, em_error_t *err);
/* Runs a txn; *kvs are the ranges' results of whichever branch ran. */
int em_etcd_txn(struct em_etcd *e, json_t *txn, bool *succeeded, struct em_etcd_kv **kvs, size_t *n,
                em_error_t *err);
int em_etcd_lease_grant(struct em_etcd *e, int64_t ttl_s, int64_t *id, em_error_t *err);
int em_etcd_lease_keepalive(struct em_etcd *e, int64_t id, int64_t *ttl, em_error_t *err);
int em_etcd_lease_revoke(struct em_etcd *e, int64_t id, em_error_t *err);

#endif
