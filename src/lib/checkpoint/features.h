/* Host feature probe (`edgemig check`): can this host checkpoint and restore
 * containers, and which optional mechanisms (soft-dirty pre-dump, lazy pages,
 * TCP repair, tbf shaping) does it have. The result is cached in
 * <root>/check-cache.json and is also what the migration handshake sends to a
 * peer, so it round-trips through JSON. */
#ifndef EDGEMIG_CHECKPOINT_FEATURES_H
#define EDGEMIG_CHECKPOINT_FEATURES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/config.h"
#include "util/error.h"

#define EM_CRIU_MIN_VERSION   "4.2"
#define EM_KERNEL_MIN_VERSION "5.10"
#define EM_LAZY_PIPE_SIZE     4194304 /* fs.pipe-max-size CRIU's page server needs */

enum em_feature_status {
        EM_FEATURE_OK = 0,
        EM_FEATURE_MISSING, /* absent or not working here */
        EM_FEATURE_WARN,    /* present but needs a setting changed before use */
};

struct em_feature {
        char *name; /* "kernel", "criu", "dump_restore", … */
        enum em_feature_status status;
        bool required; /* needed for can_migrate */
        char *value;   /* short machine value ("4.2.1", "v1-hybrid"), may be NULL */
        char *detail;  /* longer human text (path, error, log tail), may be NULL */
        char *hint;    /* what it means / what to do when not ok, may be NULL */
};

struct em_features; /* opaque */

/* Probes the host, or loads <root>/check-cache.json when use_cache and the
 * cache key (kernel release+version, CRIU and runc binaries' path+size+mtime,
 * edgemig version) still matches. A fresh probe rewrites the cache. Fails only
 * on internal errors; a missing feature is a result, not an error. */
int em_features_probe(const struct em_config *cfg, bool use_cache, struct em_features **out,
                      em_error_t *err);
void em_features_free(struct em_features *f);
void em_features_freep(struct em_features **f);
#define cleanup_features __attribute__((cleanup(em_features_freep)))

/* {"edgemig_version", "can_migrate", "cached", "probe_ms", "probes": [{"name",
 * "status": "ok|missing|warn", "required", "value", "detail", "hint"}]} */
json_t *em_features_to_json(const struct em_features *f);
/* Inverse of to_json (cache file, a peer's handshake). */
int em_features_from_json(const json_t *j, struct em_features **out, em_error_t *err);

/* True when the probe exists and its status is ok. */
bool em_features_has(const struct em_features *f, const char *name);
const struct em_feature *em_features_get(const struct em_features *f, const char *name);
size_t em_features_count(const struct em_features *f);
const struct em_feature *em_features_at(const struct em_features *f, size_t i);
/* Every required probe is ok. */
bool em_features_can_migrate(const struct em_features *f);
bool em_features_cached(const struct em_features *f);
long long em_features_probe_ms(const struct em_features *f);
const char *em_feature_status_name(enum em_feature_status s);

/* Pure helpers, exposed for tests and the handshake. */

/* Compares dotted numeric versions ("4.2.1" vs "4.2" → > 0; "4.10" > "4.9");
 * a missing component counts as 0, trailing non-digits ("-rc1", "+ds1") are
 * ignored. NULL sorts lowest. */
int em_version_cmp(const char *a, const char *b);
/* Extracts "4.2.1" from `criu --version` output ("Version: 4.2.1\n…") or
 * "1.1.5" from `runc --version` ("runc version 1.1.5+ds1\n…"). malloc'd, or
 * NULL if absent. */
char *em_version_from_output(const char *output, const char *prefix);
/* The cache key for this host and configuration (see em_features_probe). */
json_t *em_features_cache_key(const struct em_config *cfg);
/* True if cache (the parsed cache file) was written under key. */
bool em_features_cache_matches(const json_t *cache, const json_t *key);

#endif
