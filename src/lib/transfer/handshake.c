#include "transfer/handshake.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/version.h"

#define MAX_STR     256
#define MAX_FLAGS   1024
#define MAX_FLAGLEN 64

static const char *const modes[] = {"precopy", "stop-and-copy", "postcopy", "hybrid", "auto",
                                    "prepare", "check",         "pod",      NULL};

void em_cpuinfo_free(struct em_cpuinfo *c)
{
        free(c->vendor);
        em_strv_free(c->flags);
        memset(c, 0, sizeof(*c));
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int flags_add(struct em_cpuinfo *c, const char *f, size_t n, em_error_t *err)
{
        char **v;

        if (c->nflags >= MAX_FLAGS)
                return em_error_set(err, E2BIG, "more than %d CPU flags", MAX_FLAGS);
        v = realloc(c->flags, sizeof(char *) * (c->nflags + 2));
        if (v == NULL)
                return em_error_set(err, ENOMEM, "CPU flags");
        c->flags = v;
        v[c->nflags] = strndup(f, n);
        if (v[c->nflags] == NULL)
                return em_error_set(err, ENOMEM, "CPU flags");
        v[++c->nflags] = NULL;
        return 0;
}

static const char *field(const char *text, const char *key, size_t *len)
{
        const char *p = strstr(text, key);

        if (p == NULL || (p != text && p[-1] != '\n') || (p = strchr(p, ':')) == NULL)
                return NULL;
        p += strspn(p + 1, " \t") + 1;
        *len = strcspn(p, "\n");
        return p;
}

int em_cpuinfo_parse(const char *text, struct em_cpuinfo *out, em_error_t *err)
{
        size_t len = 0;
        const char *p;

        memset(out, 0, sizeof(*out));
        p = field(text, "vendor_id", &len);
        out->vendor = p ? strndup(p, len) : strdup("unknown");
        p = field(text, "flags", &len);
        if (p == NULL)
                return em_error_set(err, EINVAL, "no CPU flags in /proc/cpuinfo");
        for (const char *end = p + len; p < end;) {
                size_t n = strcspn(p, " \n");
                if (n > (size_t)(end - p))
                        n = (size_t)(end - p);
                if (n > 0 && flags_add(out, p, n, err) < 0)
                        return -1;
                p += n + 1;
        }
        if (out->nflags > 0)
                qsort(out->flags, out->nflags, sizeof(char *), cmp_str);
        return out->vendor ? 0 : em_error_set(err, ENOMEM, "CPU vendor");
}

int em_cpuinfo_local(struct em_cpuinfo *out, em_error_t *err)
{
        cleanup_free char *text = NULL;
        size_t len = 0;

        if (em_read_file("/proc/cpuinfo", 4 << 20, &text, &len, err) < 0)
                return -1;
        return em_cpuinfo_parse(text, out, err);
}

void em_hello_free(struct em_hello *h)
{
        free(h->edgemig_version);
        free(h->criu_version);
        free(h->container);
        free(h->mode);
        json_decref(h->features);
        em_cpuinfo_free(&h->cpu);
        memset(h, 0, sizeof(*h));
}

int em_session_new(uint8_t id[16], em_error_t *err)
{
        if (getrandom(id, 16, 0) != 16)
                return em_error_set(err, errno, "getrandom");
        return 0;
}

void em_session_hex(const uint8_t id[16], char out[33])
{
        for (int i = 0; i < 16; i++)
                snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int session_unhex(const char *s, uint8_t id[16])
{
        if (s == NULL || strlen(s) != 32 || strspn(s, "0123456789abcdef") != 32)
                return -1;
        for (int i = 0; i < 16; i++)
                sscanf(s + 2 * i, "%2hhx", &id[i]);
        return 0;
}

static json_t *cpu_json(const struct em_cpuinfo *c)
{
        json_t *flags = json_array();

        for (size_t i = 0; i < c->nflags; i++)
                json_array_append_new(flags, json_string(c->flags[i]));
        return json_pack("{s:s, s:o}", "vendor", c->vendor ? c->vendor : "unknown", "flags", flags);
}

int em_hello_build(const struct em_hello *h, char **out, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        json_t *features = h->features ? json_incref(h->features) : json_object();
        char sid[33];

        em_session_hex(h->session, sid);
        j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "protocol", h->protocol,
                      "edgemig", h->edgemig_version ? h->edgemig_version : EM_VERSION, "criu",
                      h->criu_version ? h->criu_version : "", "session", sid, "container",
                      h->container ? h->container : "", "mode", h->mode ? h->mode : "precopy",
                      "features", features, "cpu", cpu_json(&h->cpu));
        if (j == NULL)
                return em_error_set(err, ENOMEM, "building HELLO");
        *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        return *out ? 0 : em_error_set(err, ENOMEM, "serializing HELLO");
}

static int get_str(json_t *j, const char *key, bool allow_empty, char **out, em_error_t *err)
{
        json_t *v = json_object_get(j, key);
        const char *s;

        if (!json_is_string(v))
                return em_error_set(err, EPROTO, "HELLO: \"%s\" missing or not a string", key);
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || strlen(s) > MAX_STR ||
            (!allow_empty && s[0] == '\0'))
                return em_error_set(err, EPROTO, "HELLO: bad \"%s\"", key);
        *out = strdup(s);
        return *out ? 0 : em_error_set(err, ENOMEM, "HELLO");
}

static bool name_ok(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n <= EM_CONTAINER_NAME_MAX && s[0] != '.' &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int parse_cpu(json_t *cpu, struct em_cpuinfo *c, em_error_t *err)
{
        json_t *flags = json_object_get(cpu, "flags"), *v;
        size_t i;

        if (!json_is_object(cpu) || !json_is_array(flags) || json_array_size(flags) > MAX_FLAGS)
                return em_error_set(err, EPROTO, "HELLO: bad \"cpu\"");
        if (get_str(cpu, "vendor", false, &c->vendor, err) < 0)
                return -1;
        json_array_foreach(flags, i, v)
        {
                const char *f = json_string_value(v);
                if (f == NULL || f[0] == '\0' || strlen(f) > MAX_FLAGLEN ||
                    strlen(f) != json_string_length(v))
                        return em_error_set(err, EPROTO, "HELLO: bad CPU flag");
                if (flags_add(c, f, strlen(f), err) < 0)
                        return -1;
        }
        if (c->nflags > 0)
                qsort(c->flags, c->nflags, sizeof(char *), cmp_str);
        return 0;
}

static int hello_fields(json_t *j, struct em_hello *h, em_error_t *err)
{
        json_t *proto = json_object_get(j, "protocol");
        cleanup_free char *sid = NULL;
        bool mode_ok = false;

        if (!json_is_integer(proto) || json_integer_value(proto) < 0 ||
            json_integer_value(proto) > 65535)
                return em_error_set(err, EPROTO, "HELLO: bad \"protocol\"");
        h->protocol = (int)json_integer_value(proto);
        if (get_str(j, "edgemig", false, &h->edgemig_version, err) < 0 ||
            get_str(j, "criu", true, &h->criu_version, err) < 0 ||
            get_str(j, "session", false, &sid, err) < 0 ||
            get_str(j, "container", false, &h->container, err) < 0 ||
            get_str(j, "mode", false, &h->mode, err) < 0)
                return -1;
        if (session_unhex(sid, h->session) < 0)
                return em_error_set(err, EPROTO, "HELLO: session id is not 32 hex digits");
        if (!name_ok(h->container))
                return em_error_set(err, EPROTO, "HELLO: invalid container name");
        for (int i = 0; modes[i] != NULL; i++)
                mode_ok |= strcmp(modes[i], h->mode) == 0;
        if (!mode_ok)
                return em_error_set(err, EPROTO, "HELLO: unknown mode \"%s\"", h->mode);
        h->features = json_object_get(j, "features");
        if (!json_is_object(h->features)) {
                h->features = NULL;
                return em_error_set(err, EPROTO, "HELLO: \"features\" is not an object");
        }
        json_incref(h->features);
        return parse_cpu(json_object_get(j, "cpu"), &h->cpu, err);
}

int em_hello_parse(const char *buf, size_t len, struct em_hello *out, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        json_error_t jerr;

        memset(out, 0, sizeof(*out));
        if (len > EM_HELLO_MAX_LEN)
                return em_error_set(err, EMSGSIZE, "HELLO of %zu bytes", len);
        /* Depth is bounded by jansson (2048); duplicates would hide fields. */
        j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j))
                return em_error_set(err, EPROTO, "HELLO is not a JSON object: %s", jerr.text);
        if (hello_fields(j, out, err) < 0) {
                em_hello_free(out);
                return -1;
        }
        return 0;
}

bool em_criu_version_ok(const char *v)
{
        unsigned major = 0, minor = 0;

        if (v == NULL)
                return false;
        if (strncmp(v, "Version:", 8) == 0)
                v += 8;
        if (sscanf(v, " %u.%u", &major, &minor) != 2)
                return false;
        return major > EM_MIN_CRIU_MAJOR ||
               (major == EM_MIN_CRIU_MAJOR && minor >= EM_MIN_CRIU_MINOR);
}

__attribute__((format(printf, 2, 0))) static bool refuse_v(char **reason, const char *fmt,
                                                           va_list ap)
{
        if (vasprintf(reason, fmt, ap) < 0)
                *reason = NULL;
        return false;
}

__attribute__((format(printf, 2, 3))) static bool refuse(char **reason, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        refuse_v(reason, fmt, ap);
        va_end(ap);
        return false;
}

bool em_hello_accept(const struct em_hello *peer, const struct em_hello *local, char **reason)
{
        size_t j = 0;

        *reason = NULL;
        if (peer->protocol != local->protocol)
                return refuse(reason, "protocol version mismatch: source speaks %d, target %d",
                              peer->protocol, local->protocol);
        if (!em_criu_version_ok(peer->criu_version))
                return refuse(reason, "source CRIU %s is too old (need >= 4.2)",
                              peer->criu_version);
        if (!em_criu_version_ok(local->criu_version))
                return refuse(reason, "target CRIU %s is too old (need >= 4.2)",
                              local->criu_version ? local->criu_version : "(none)");
        if (strcmp(peer->cpu.vendor, local->cpu.vendor) != 0)
                return refuse(reason, "CPU vendor differs: source %s, target %s", peer->cpu.vendor,
                              local->cpu.vendor);
        /* Both lists are sorted: a merge walk finds source flags the target lacks. */
        for (size_t i = 0; i < peer->cpu.nflags; i++) {
                int c = 1;
                while (j < local->cpu.nflags &&
                       (c = strcmp(local->cpu.flags[j], peer->cpu.flags[i])) < 0)
                        j++;
                if (j >= local->cpu.nflags || c != 0)
                        return refuse(reason, "target CPU lacks the source's \"%s\" feature",
                                      peer->cpu.flags[i]);
        }
        return true;
}

int em_hello_ack_build(bool ok, const char *reason, const uint8_t session[16], char **out,
                       em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        char sid[33];

        em_session_hex(session, sid);
        j = json_pack("{s:b, s:s, s:s}", "ok", ok, "reason", reason ? reason : "", "session", sid);
        *out = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        return *out ? 0 : em_error_set(err, ENOMEM, "building HELLO_ACK");
}

int em_hello_ack_parse(const char *buf, size_t len, const uint8_t session[16], bool *ok,
                       char **reason, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        json_error_t jerr;
        json_t *okv;
        const char *r;
        uint8_t sid[16];

        *reason = NULL;
        if (len > EM_HELLO_MAX_LEN)
                return em_error_set(err, EMSGSIZE, "HELLO_ACK of %zu bytes", len);
        j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        okv = json_object_get(j, "ok");
        r = json_string_value(json_object_get(j, "reason"));
        if (!json_is_boolean(okv) || r == NULL || strlen(r) > 4096 ||
            session_unhex(json_string_value(json_object_get(j, "session")), sid) < 0)
                return em_error_set(err, EPROTO, "malformed HELLO_ACK");
        if (memcmp(sid, session, 16) != 0)
                return em_error_set(err, EPROTO, "HELLO_ACK answers another session");
        *ok = json_is_true(okv);
        if (r[0] != '\0' && (*reason = strdup(r)) == NULL)
                return em_error_set(err, ENOMEM, "HELLO_ACK");
        return 0;
}
