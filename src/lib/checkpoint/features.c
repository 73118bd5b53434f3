/* The feature set: the probe table, JSON round trip, the cache, and the pure
 * version helpers. The probes themselves are in features_probes.c. */
#include "checkpoint/features.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/features_probes.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/version.h"

#define CACHE_NAME    "check-cache.json"
#define CACHE_MAX_LEN (1u << 20)

struct em_features {
        struct em_feature *items;
        size_t n;
        bool cached;
        long long probe_ms;
};

/* Order is display order; required probes decide can_migrate. */
static const struct {
        const char *name;
        bool required;
        em_probe_fn fn;
} probes[] = {
    {"kernel", true, em_probe_kernel},
    {"overlayfs", true, em_probe_overlayfs},
    {"namespaces", true, em_probe_namespaces},
    {"userns", false, em_probe_userns},
    {"cgroup", false, em_probe_cgroup},
    {"runc", true, em_probe_runc},
    {"criu", true, em_probe_criu},
    {"criu_check", false, em_probe_criu_check},
    {"criu_kdat_cache", false, em_probe_criu_kdat_cache},
    {"dump_restore", true, em_probe_dump_restore},
    {"hw_breakpoints", false, em_probe_hw_breakpoints},
    {"soft_dirty", false, em_probe_soft_dirty},
    {"userfaultfd", false, em_probe_userfaultfd},
    {"pipe_max_size", false, em_probe_pipe_max_size},
    {"tcp_repair", false, em_probe_tcp_repair},
    {"tcp_half_closed", false, em_probe_tcp_half_closed},
    {"tc_tbf", false, em_probe_tc_tbf},
    {"conntrack_hash", false, em_probe_conntrack_hash},
};
#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

static const char *const status_names[] = {"ok", "missing", "warn"};

const char *em_feature_status_name(enum em_feature_status s)
{
        return (unsigned)s < 3 ? status_names[s] : "missing";
}

static void feature_clear(struct em_feature *f)
{
        free(f->name);
        free(f->value);
        free(f->detail);
        free(f->hint);
        memset(f, 0, sizeof(*f));
}

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

void em_feature_set(struct em_feature *f, enum em_feature_status status, const char *value,
                    const char *detail, const char *hint)
{
        free(f->value);
        free(f->detail);
        free(f->hint);
        f->status = status;
        f->value = dup_or_null(value);
        f->detail = dup_or_null(detail);
        f->hint = dup_or_null(hint);
}

void em_features_free(struct em_features *f)
{
        if (f == NULL)
                return;
        for (size_t i = 0; i < f->n; i++)
                feature_clear(&f->items[i]);
        free(f->items);
        free(f);
}

void em_features_freep(struct em_features **f)
{
        em_features_free(*f);
        *f = NULL;
}

static struct em_features *features_new(size_t n)
{
        struct em_features *f = calloc(1, sizeof(*f));

        if (f == NULL)
                return NULL;
        f->items = calloc(n ? n : 1, sizeof(*f->items));
        if (f->items == NULL) {
                free(f);
                return NULL;
        }
        f->n = n;
        return f;
}

const struct em_feature *em_features_get(const struct em_features *f, const char *name)
{
        for (size_t i = 0; f && i < f->n; i++) {
                if (f->items[i].name && strcmp(f->items[i].name, name) == 0)
                        return &f->items[i];
        }
        return NULL;
}

bool em_features_has(const struct em_features *f, const char *name)
{
        const struct em_feature *x = em_features_get(f, name);
        return x != NULL && x->status == EM_FEATURE_OK;
}

size_t em_features_count(const struct em_features *f)
{
        return f ? f->n : 0;
}

const struct em_feature *em_features_at(const struct em_features *f, size_t i)
{
        return f && i < f->n ? &f->items[i] : NULL;
}

bool em_features_can_migrate(const struct em_features *f)
{
        if (f == NULL || f->n == 0)
                return false;
        for (size_t i = 0; i < f->n; i++) {
                if (f->items[i].required && f->items[i].status != EM_FEATURE_OK)
                        return false;
        }
        return true;
}

bool em_features_cached(const struct em_features *f)
{
        return f && f->cached;
}

long long em_features_probe_ms(const struct em_features *f)
{
        return f ? f->probe_ms : 0;
}

/* ---- JSON ---- */

static int set_opt_str(json_t *o, const char *key, const char *v)
{
        return json_object_set_new(o, key, v ? json_string(v) : json_null());
}

static json_t *feature_to_json(const struct em_feature *x)
{
        json_t *o = json_pack("{s:s, s:s, s:b}", "name", x->name, "status",
                              em_feature_status_name(x->status), "required", x->required);

        if (o == NULL || set_opt_str(o, "value", x->value) < 0 ||
            set_opt_str(o, "detail", x->detail) < 0 || set_opt_str(o, "hint", x->hint) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

json_t *em_features_to_json(const struct em_features *f)
{
        cleanup_json json_t *arr = json_array();
        cleanup_json json_t *o = NULL;

        if (arr == NULL)
                return NULL;
        for (size_t i = 0; i < f->n; i++) {
                if (json_array_append_new(arr, feature_to_json(&f->items[i])) < 0)
                        return NULL;
        }
        o = json_pack("{s:s, s:b, s:b, s:I, s:O}", "edgemig_version", EM_VERSION, "can_migrate",
                      em_features_can_migrate(f), "cached", f->cached, "probe_ms",
                      (json_int_t)f->probe_ms, "probes", arr);
        return steal_pointer(&o);
}

static int status_parse(const char *s, enum em_feature_status *out)
{
        for (unsigned i = 0; s && i < 3; i++) {
                if (strcmp(s, status_names[i]) == 0) {
                        *out = (enum em_feature_status)i;
                        return 0;
                }
        }
        return -1;
}

static int feature_from_json(const json_t *p, size_t idx, struct em_feature *x, em_error_t *err)
{
        const char *name = em_json_str(p, "name");

        if (!json_is_object(p) || name == NULL || *name == '\0')
                return em_error_set(err, EINVAL, "probe %zu: missing name", idx);
        if (status_parse(em_json_str(p, "status"), &x->status) < 0)
                return em_error_set(err, EINVAL, "probe %s: bad status", name);
        x->required = json_is_true(json_object_get(p, "required"));
        x->name = strdup(name);
        x->value = dup_or_null(em_json_str(p, "value"));
        x->detail = dup_or_null(em_json_str(p, "detail"));
        x->hint = dup_or_null(em_json_str(p, "hint"));
        if (x->name == NULL)
                return em_error_set(err, ENOMEM, "probe %s", name);
        return 0;
}

int em_features_from_json(const json_t *j, struct em_features **out, em_error_t *err)
{
        const json_t *arr = json_object_get(j, "probes");
        cleanup_features struct em_features *f = NULL;

        if (!json_is_array(arr))
                return em_error_set(err, EINVAL, "feature set: \"probes\" is not an array");
        f = features_new(json_array_size(arr));
        if (f == NULL)
                return em_error_set(err, ENOMEM, "feature set");
        for (size_t i = 0; i < f->n; i++) {
                if (feature_from_json(json_array_get(arr, i), i, &f->items[i], err) < 0)
                        return em_error_wrap(err, "feature set");
        }
        f->cached = json_is_true(json_object_get(j, "cached"));
        f->probe_ms = em_json_int(j, "probe_ms", 0);
        *out = steal_pointer(&f);
        return 0;
}

/* ---- versions ---- */

int em_version_cmp(const char *a, const char *b)
{
        if (a == NULL || b == NULL)
                return (a != NULL) - (b != NULL);
        while (isdigit((unsigned char)*a) || isdigit((unsigned char)*b)) {
                unsigned long x = strtoul(a, (char **)&a, 10);
                unsigned long y = strtoul(b, (char **)&b, 10);
                if (x != y)
                        return x < y ? -1 : 1;
                /* Step over one '.', only if a component follows. */
                if (*a == '.' && isdigit((unsigned char)a[1]))
                        a++;
                else if (!isdigit((unsigned char)*a))
                        a = "";
                if (*b == '.' && isdigit((unsigned char)b[1]))
                        b++;
                else if (!isdigit((unsigned char)*b))
                        b = "";
        }
        return 0;
}

char *em_version_from_output(const char *output, const char *prefix)
{
        const char *p = output ? strstr(output, prefix) : NULL;
        size_t n = 0;

        if (p == NULL)
                return NULL;
        p += strlen(prefix);
        while (*p == ' ' || *p == '\t')
                p++;
        while (isdigit((unsigned char)p[n]) || (p[n] == '.' && isdigit((unsigned char)p[n + 1])))
                n++;
        return n > 0 ? strndup(p, n) : NULL;
}

/* ---- cache ---- */

/* Resolves a command name through PATH like execvp does. */
static char *resolve_binary(const char *name)
{
        const char *path = getenv("PATH");

        if (strchr(name, '/') != NULL)
                return strdup(name);
        cleanup_free char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;
        for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
             dir = strtok_r(NULL, ":", &save)) {
                cleanup_free char *full = em_path_join(dir, name);
                if (full && access(full, X_OK) == 0)
                        return steal_pointer(&full);
        }
        return NULL;
}

static json_t *binary_key(const char *name)
{
        cleanup_free char *path = resolve_binary(name);
        struct stat st;

        if (path == NULL || stat(path, &st) < 0)
                return json_pack("{s:s, s:n}", "name", name, "path");
        return json_pack("{s:s, s:s, s:I, s:I}", "name", name, "path", path, "size",
                         (json_int_t)st.st_size, "mtime_ns",
                         (json_int_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
}

json_t *em_features_cache_key(const struct em_config *cfg)
{
        struct utsname u;

        if (uname(&u) < 0)
                return NULL;
        return json_pack("{s:s, s:s, s:s, s:o, s:o}", "edgemig_version", EM_VERSION,
                         "kernel_release", u.release, "kernel_version", u.version, "criu",
                         binary_key(cfg->criu), "runc", binary_key(cfg->runc));
}

bool em_features_cache_matches(const json_t *cache, const json_t *key)
{
        const json_t *stored = json_object_get(cache, "key");
        return stored != NULL && key != NULL && json_equal(stored, key);
}

static struct em_features *cache_load(const char *path, const json_t *key)
{
        cleanup_json json_t *j = NULL;
        em_error_t e = NULL;
        struct em_features *f = NULL;

        if (!em_path_exists(path))
                return NULL;
        if (em_json_load_file(path, CACHE_MAX_LEN, &j, &e) < 0 ||
            !em_features_cache_matches(j, key) ||
            em_features_from_json(json_object_get(j, "features"), &f, &e) < 0) {
                if (e != NULL)
                        em_log_warn("ignoring feature cache: %s", em_error_msg(e));
                em_error_free(&e);
                return NULL;
        }
        f->cached = true;
        return f;
}

static void cache_store(const char *path, const json_t *key, const struct em_features *f)
{
        cleanup_json json_t *feat = em_features_to_json(f);
        cleanup_json json_t *j = NULL;
        em_error_t e = NULL;

        if (feat == NULL || key == NULL)
                return;
        json_object_set_new(feat, "cached", json_false());
        j = json_pack("{s:O, s:O}", "key", key, "features", feat);
        if (j == NULL || em_json_write_file(path, j, &e) < 0)
                em_log_warn("cannot write feature cache %s: %s", path,
                            e ? em_error_msg(e) : "out of memory");
        em_error_free(&e);
}

/* ---- probing ---- */

static int run_probes(const struct em_config *cfg, struct em_features *f, em_error_t *err)
{
        cleanup_free char *tmproot = em_config_path(cfg, "tmp");
        cleanup_free char *tmpdir = NULL;
        struct em_probe_ctx ctx = {.cfg = cfg};

        if (tmproot == NULL || asprintf(&tmpdir, "%s/check-XXXXXX", tmproot) < 0)
                return em_error_set(err, ENOMEM, "probing host features");
        if (em_mkdir_p(tmproot, 0700, err) < 0)
                return em_error_wrap(err, "probing host features");
        if (mkdtemp(tmpdir) == NULL)
                return em_error_set(err, errno, "creating %s", tmpdir);
        ctx.tmpdir = tmpdir;
        for (size_t i = 0; i < N_PROBES; i++) {
                long long t0 = em_mono_ms();
                f->items[i].name = strdup(probes[i].name);
                f->items[i].required = probes[i].required;
                probes[i].fn(&ctx, &f->items[i]);
                em_log_debug("probe %s: %s (%lld ms)", probes[i].name,
                             em_feature_status_name(f->items[i].status), em_mono_ms() - t0);
        }
        free(ctx.criu_version);
        em_error_t e = NULL;
        if (em_rm_rf(tmpdir, &e) < 0)
                em_log_warn("cannot remove %s: %s", tmpdir, em_error_msg(e));
        em_error_free(&e);
        for (size_t i = 0; i < N_PROBES; i++) {
                if (f->items[i].name == NULL)
                        return em_error_set(err, ENOMEM, "probing host features");
        }
        return 0;
}

/* Sysctls and module parameters change at run time, so a cached result
 * still re-reads them. */
static void refresh_dynamic(const struct em_config *cfg, struct em_features *f)
{
        struct em_probe_ctx ctx = {.cfg = cfg};

        for (size_t i = 0; i < f->n; i++) {
                const char *n = f->items[i].name;

                if (n && strcmp(n, "pipe_max_size") == 0)
                        em_probe_pipe_max_size(&ctx, &f->items[i]);
                else if (n && strcmp(n, "conntrack_hash") == 0)
                        em_probe_conntrack_hash(&ctx, &f->items[i]);
        }
}

int em_features_probe(const struct em_config *cfg, bool use_cache, struct em_features **out,
                      em_error_t *err)
{
        cleanup_free char *cache_path = em_config_path(cfg, CACHE_NAME);
        cleanup_json json_t *key = em_features_cache_key(cfg);
        cleanup_features struct em_features *f = NULL;
        long long t0 = em_mono_ms();

        if (cache_path == NULL)
                return em_error_set(err, ENOMEM, "probing host features");
        if (use_cache && key != NULL && (f = cache_load(cache_path, key)) != NULL) {
                refresh_dynamic(cfg, f);
                *out = steal_pointer(&f);
                return 0;
        }
        f = features_new(N_PROBES);
        if (f == NULL)
                return em_error_set(err, ENOMEM, "probing host features");
        if (run_probes(cfg, f, err) < 0)
                return -1;
        f->probe_ms = em_mono_ms() - t0;
        cache_store(cache_path, key, f);
        *out = steal_pointer(&f);
        return 0;
}
