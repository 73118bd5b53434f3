#include "container/security.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static const char *const cap_names[EM_CAP_LAST + 1] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

#define BIT(c) (1ull << (c))

uint64_t em_caps_default(void)
{
        /* Docker's default set: what images written for Docker expect. */
        return BIT(0) /* CHOWN */ | BIT(1) /* DAC_OVERRIDE */ | BIT(3) /* FOWNER */ |
               BIT(4) /* FSETID */ | BIT(5) /* KILL */ | BIT(6) /* SETGID */ | BIT(7) /* SETUID */ |
               BIT(8) /* SETPCAP */ | BIT(10) /* NET_BIND_SERVICE */ | BIT(13) /* NET_RAW */ |
               BIT(18) /* SYS_CHROOT */ | BIT(27) /* MKNOD */ | BIT(29) /* AUDIT_WRITE */ |
               BIT(31) /* SETFCAP */;
}

int em_cap_parse(const char *name)
{
        const char *bare = strncasecmp(name, "CAP_", 4) == 0 ? name + 4 : name;

        for (int i = 0; i <= EM_CAP_LAST; i++) {
                if (strcasecmp(cap_names[i] + 4, bare) == 0)
                        return i;
        }
        return -1;
}

const char *em_cap_name(int cap)
{
        return cap >= 0 && cap <= EM_CAP_LAST ? cap_names[cap] : NULL;
}

json_t *em_caps_json(uint64_t caps)
{
        json_t *a = json_array();

        for (int i = 0; a && i <= EM_CAP_LAST; i++) {
                if (caps & BIT(i))
                        json_array_append_new(a, json_string(cap_names[i]));
        }
        return a;
}

void em_security_policy_default(struct em_security_policy *out)
{
        *out = (struct em_security_policy){
            .userns = true,
            .pool = {EM_ID_FIRST_DEFAULT, EM_ID_SLOTS_DEFAULT, EM_ID_SIZE_DEFAULT},
            .cap_add_allowed = 0,
            .seccomp_unconfined_allowed = false,
            .pids_limit = EM_PIDS_LIMIT_DEFAULT,
            .pids_limit_max = 32768,
            .nofile = EM_NOFILE_DEFAULT,
            .nofile_max = 65536,
        };
}

/* A list of capability names as a mask; "ALL" is every known one. */
static int caps_from_json(const json_t *list, const char *what, uint64_t *out, em_error_t *err)
{
        size_t i;
        json_t *v;

        *out = 0;
        if (list == NULL)
                return 0;
        if (!json_is_array(list) || json_array_size(list) > EM_CAP_LAST + 2)
                return em_error_set(err, EINVAL, "%s must be a list of capability names", what);
        json_array_foreach(list, i, v)
        {
                const char *s = json_string_value(v);
                int c = s ? em_cap_parse(s) : -1;
                if (s && strcasecmp(s, "ALL") == 0)
                        *out |= BIT(EM_CAP_LAST + 1) - 1;
                else if (c < 0)
                        return em_error_set(err, EINVAL, "%s: unknown capability '%s'", what,
                                            s ? s : "(not a string)");
                else
                        *out |= BIT(c);
        }
        return 0;
}

/* Reads an optional positive integer no larger than max. */
static int get_u32(const json_t *obj, const char *key, uint32_t max, uint32_t *out, em_error_t *err)
{
        json_t *v = json_object_get(obj, key);

        if (v == NULL)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
                return em_error_set(err, EINVAL, "%s must be an integer from 1 to %u", key, max);
        *out = (uint32_t)json_integer_value(v);
        return 0;
}

static int get_bool(const json_t *obj, const char *key, bool *out, em_error_t *err)
{
        json_t *v = json_object_get(obj, key);

        if (v == NULL)
                return 0;
        if (!json_is_boolean(v))
                return em_error_set(err, EINVAL, "%s must be true or false", key);
        *out = json_is_true(v);
        return 0;
}

static int check_keys(const json_t *obj, const char *const *keys, const char *what, em_error_t *err)
{
        const char *key;
        json_t *v;

        if (!json_is_object(obj))
                return em_error_set(err, EINVAL, "%s must be a JSON object", what);
        json_object_foreach((json_t *)obj, key, v)
        {
                const char *const *k = keys;
                while (*k && strcmp(*k, key) != 0)
                        k++;
                if (*k == NULL)
                        return em_error_set(err, EINVAL, "%s: unknown key '%s'", what, key);
        }
        return 0;
}

static int policy_from_json(const json_t *j, struct em_security_policy *p, em_error_t *err)
{
        static const char *const keys[] = {"userns",
                                           "id_first",
                                           "id_slots",
                                           "id_size",
                                           "allow_cap_add",
                                           "allow_seccomp_unconfined",
                                           "pids_limit",
                                           "pids_limit_max",
                                           "nofile",
                                           "nofile_max",
                                           NULL};
        json_t *first = json_object_get(j, "id_first");

        if (check_keys(j, keys, "security policy", err) < 0 ||
            get_bool(j, "userns", &p->userns, err) < 0 ||
            get_u32(j, "id_slots", UINT32_MAX, &p->pool.slots, err) < 0 ||
            get_u32(j, "id_size", UINT32_MAX, &p->pool.size, err) < 0 ||
            caps_from_json(json_object_get(j, "allow_cap_add"), "allow_cap_add",
                           &p->cap_add_allowed, err) < 0 ||
            get_bool(j, "allow_seccomp_unconfined", &p->seccomp_unconfined_allowed, err) < 0 ||
            get_u32(j, "pids_limit_max", UINT32_MAX, &p->pids_limit_max, err) < 0 ||
            get_u32(j, "pids_limit", p->pids_limit_max, &p->pids_limit, err) < 0 ||
            get_u32(j, "nofile_max", UINT32_MAX, &p->nofile_max, err) < 0 ||
            get_u32(j, "nofile", p->nofile_max, &p->nofile, err) < 0)
                return -1;
        if (first != NULL && (!json_is_integer(first) || json_integer_value(first) < 1 ||
                              json_integer_value(first) > UINT32_MAX))
                return em_error_set(err, EINVAL, "id_first must be a host id above 0");
        if (first != NULL)
                p->pool.first = (uint32_t)json_integer_value(first);
        if ((uint64_t)p->pool.first + (uint64_t)p->pool.slots * p->pool.size > UINT32_MAX)
                return em_error_set(err, EINVAL, "id_first + id_slots * id_size passes 2^32");
        return 0;
}

int em_security_policy_load(const struct em_config *cfg, struct em_security_policy *out,
                            em_error_t *err)
{
        cleanup_free char *path = em_config_path(cfg, EM_SECURITY_POLICY_FILE);
        cleanup_json json_t *j = NULL;

        em_security_policy_default(out);
        if (path == NULL)
                return em_error_set(err, ENOMEM, "security policy");
        if (!em_path_exists(path))
                return 0;
        if (em_json_load_file(path, 1u << 20, &j, err) < 0 || policy_from_json(j, out, err) < 0)
                return em_error_wrap(err, "reading the host's security policy %s", path);
        return 0;
}

json_t *em_security_policy_json(const struct em_security_policy *p)
{
        return json_pack("{s:b, s:I, s:I, s:I, s:o, s:b, s:I, s:I, s:I, s:I}", "userns", p->userns,
                         "id_first", (json_int_t)p->pool.first, "id_slots",
                         (json_int_t)p->pool.slots, "id_size", (json_int_t)p->pool.size,
                         "allow_cap_add", em_caps_json(p->cap_add_allowed),
                         "allow_seccomp_unconfined", p->seccomp_unconfined_allowed, "pids_limit",
                         (json_int_t)p->pids_limit, "pids_limit_max", (json_int_t)p->pids_limit_max,
                         "nofile", (json_int_t)p->nofile, "nofile_max", (json_int_t)p->nofile_max);
}

int em_security_opts_check(const json_t *opts, em_error_t *err)
{
        static const char *const keys[] = {"cap_add",    "cap_drop", "seccomp",
                                           "pids_limit", "nofile",   NULL};
        const char *seccomp = em_json_str(opts, "seccomp");
        uint64_t caps;
        uint32_t n;

        if (opts == NULL)
                return 0;
        if (check_keys(opts, keys, "security options", err) < 0 ||
            caps_from_json(json_object_get(opts, "cap_add"), "cap_add", &caps, err) < 0 ||
            caps_from_json(json_object_get(opts, "cap_drop"), "cap_drop", &caps, err) < 0 ||
            get_u32(opts, "pids_limit", UINT32_MAX, &n, err) < 0 ||
            get_u32(opts, "nofile", UINT32_MAX, &n, err) < 0)
                return -1;
        if (json_object_get(opts, "seccomp") &&
            (seccomp == NULL || (strcmp(seccomp, "default") && strcmp(seccomp, "unconfined"))))
                return em_error_set(err, EINVAL, "seccomp must be \"default\" or \"unconfined\"");
        return 0;
}

static int resolve_caps(const struct em_security_policy *pol, const json_t *opts, uint64_t *caps,
                        em_error_t *err)
{
        uint64_t add = 0, drop = 0;

        if (caps_from_json(json_object_get(opts, "cap_add"), "cap_add", &add, err) < 0 ||
            caps_from_json(json_object_get(opts, "cap_drop"), "cap_drop", &drop, err) < 0)
                return -1;
        uint64_t extra = add & ~em_caps_default() & ~pol->cap_add_allowed;
        for (int c = 0; c <= EM_CAP_LAST; c++) {
                if (extra & BIT(c))
                        return em_error_set(err, EPERM,
                                            "cap-add %s is not allowed by this host's policy "
                                            "(allow_cap_add in %s)",
                                            cap_names[c], EM_SECURITY_POLICY_FILE);
        }
        *caps = (em_caps_default() | add) & ~drop;
        return 0;
}

static int resolve_limits(const struct em_security_policy *pol, const json_t *opts,
                          struct em_security_profile *out, em_error_t *err)
{
        out->pids_limit = pol->pids_limit;
        out->nofile = pol->nofile;
        if (get_u32(opts, "pids_limit", UINT32_MAX, &out->pids_limit, err) < 0 ||
            get_u32(opts, "nofile", UINT32_MAX, &out->nofile, err) < 0)
                return -1;
        if (out->pids_limit > pol->pids_limit_max)
                return em_error_set(err, EPERM,
                                    "pids-limit %u is above this host's pids_limit_max %u",
                                    out->pids_limit, pol->pids_limit_max);
        if (out->nofile > pol->nofile_max)
                return em_error_set(err, EPERM, "nofile %u is above this host's nofile_max %u",
                                    out->nofile, pol->nofile_max);
        return 0;
}

static int resolve_ids(const struct em_security_policy *pol, const json_t *spec,
                       struct em_idrange *ids, em_error_t *err)
{
        json_t *u = json_object_get(spec, "userns");

        *ids = (struct em_idrange){0, 0};
        if (!pol->userns)
                return 0;
        long long base = em_json_int(u, "base", -1), size = em_json_int(u, "size", -1);
        if (base < 0 || base > UINT32_MAX || size < 0 || size > UINT32_MAX)
                return em_error_set(err, EINVAL, "the container has no host ID range");
        *ids = (struct em_idrange){(uint32_t)base, (uint32_t)size};
        if (!em_idpool_has_slot(&pol->pool, ids))
                return em_error_set(err, EPERM,
                                    "ID range %u+%u is not one of this host's ranges "
                                    "(id_first/id_slots/id_size in %s)",
                                    ids->base, ids->size, EM_SECURITY_POLICY_FILE);
        return 0;
}

int em_security_profile_resolve(const struct em_security_policy *pol, const json_t *spec,
                                struct em_security_profile *out, em_error_t *err)
{
        const json_t *opts = json_object_get(spec, "security");
        const char *seccomp = em_json_str(opts, "seccomp");

        if (em_security_opts_check(opts, err) < 0 || resolve_caps(pol, opts, &out->caps, err) < 0 ||
            resolve_limits(pol, opts, out, err) < 0 || resolve_ids(pol, spec, &out->ids, err) < 0)
                return -1;
        out->seccomp = !(seccomp && strcmp(seccomp, "unconfined") == 0);
        if (!out->seccomp && !pol->seccomp_unconfined_allowed)
                return em_error_set(err, EPERM,
                                    "seccomp=unconfined is not allowed by this host's policy "
                                    "(allow_seccomp_unconfined in %s)",
                                    EM_SECURITY_POLICY_FILE);
        out->no_new_privs = true;
        return 0;
}

int em_security_profile_of(const struct em_config *cfg, const json_t *spec,
                           struct em_security_profile *out, em_error_t *err)
{
        struct em_security_policy pol;

        if (em_security_policy_load(cfg, &pol, err) < 0)
                return -1;
        return em_security_profile_resolve(&pol, spec, out, err);
}

int em_security_profile_incoming(const struct em_config *cfg, const json_t *spec,
                                 struct em_security_profile *out, em_error_t *err)
{
        struct em_security_policy pol;
        json_t *u = json_object_get(spec, "userns");
        long long base = em_json_int(u, "base", -1), size = em_json_int(u, "size", -1);

        if (em_security_policy_load(cfg, &pol, err) < 0)
                return -1;
        bool userns = pol.userns;
        pol.userns = false; /* the range is the source's: checked below */
        if (em_security_profile_resolve(&pol, spec, out, err) < 0)
                return -1;
        if (!userns)
                return 0;
        if (base < 0 || size != pol.pool.size || base + size > (long long)UINT32_MAX + 1)
                return em_error_set(err, EPERM,
                                    "the incoming container's ID range %lld+%lld is not a range "
                                    "of %u ids",
                                    base, size, pol.pool.size);
        out->ids = (struct em_idrange){(uint32_t)base, (uint32_t)size};
        return 0;
}

json_t *em_security_profile_json(const struct em_security_profile *p)
{
        json_t *ids = p->ids.size ? json_pack("{s:I, s:I}", "base", (json_int_t)p->ids.base, "size",
                                              (json_int_t)p->ids.size)
                                  : json_null();

        return json_pack("{s:o, s:b, s:b, s:o, s:I, s:I}", "caps", em_caps_json(p->caps), "seccomp",
                         p->seccomp, "no_new_privs", p->no_new_privs, "userns", ids, "pids_limit",
                         (json_int_t)p->pids_limit, "nofile", (json_int_t)p->nofile);
}

void em_security_spec_set_ids(json_t *spec, const struct em_idrange *ids)
{
        if (ids->size == 0)
                return;
        json_object_set_new(
            spec, "userns",
            json_pack("{s:I, s:I}", "base", (json_int_t)ids->base, "size", (json_int_t)ids->size));
}

int em_security_claim_ids(const struct em_config *cfg, struct em_state *st, const char *name,
                          json_t *spec, em_error_t *err)
{
        struct em_security_policy pol;
        json_t *u = json_object_get(spec, "userns");
        long long base = em_json_int(u, "base", -1), size = em_json_int(u, "size", -1);
        struct em_idrange want = {(uint32_t)base, (uint32_t)size}, got;

        if (em_security_policy_load(cfg, &pol, err) < 0)
                return -1;
        if (!pol.userns) {
                json_object_del(spec, "userns");
                return 0;
        }
        bool has_pref = base >= 0 && base <= UINT32_MAX && size > 0 && size <= UINT32_MAX;
        if (em_state_idrange_allocate(st, name, &pol.pool, has_pref ? &want : NULL, &got, err) < 0)
                return -1;
        em_security_spec_set_ids(spec, &got);
        return 0;
}
