#include "migrate/target/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/restart.h"
#include "container/security.h"
#include "container/volume.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/json.h"

#define MAX_STRINGS    4096
#define MAX_STRING_LEN 32768

static const char *const known_keys[] = {
    "name", "image", "image_digest", "diff_ids", "image_config", "env",    "cmd", "memory",
    "cpus", "ip",    "userns",       "security", "restart",      "mounts", NULL};

static int check_keys(const json_t *spec, em_error_t *err)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)spec, key, v)
        {
                bool known = false;
                for (const char *const *k = known_keys; *k && !known; k++)
                        known = strcmp(*k, key) == 0;
                if (!known)
                        return em_error_set(err, EPERM, "spec field '%s' is not allowed", key);
        }
        return 0;
}

/* null, or an array of bounded strings without NUL. */
static int check_strv(const json_t *v, const char *what, bool env, em_error_t *err)
{
        size_t i;
        json_t *s;

        if (v == NULL || json_is_null(v))
                return 0;
        if (!json_is_array(v) || json_array_size(v) > MAX_STRINGS)
                return em_error_set(err, EPERM, "spec %s must be a list of strings", what);
        json_array_foreach(v, i, s)
        {
                size_t len = json_string_length(s);
                const char *str = json_string_value(s);
                if (str == NULL || len > MAX_STRING_LEN || strlen(str) != len ||
                    (env && (strchr(str, '=') == NULL || str[0] == '=')))
                        return em_error_set(err, EPERM, "spec %s entry %zu is not allowed", what,
                                            i);
        }
        return 0;
}

int em_cidr_parse(const char *s, struct em_cidr *out, em_error_t *err)
{
        char addr[16];
        const char *slash = strchr(s, '/');
        struct in_addr a;
        char *end;

        if (slash == NULL || slash - s > 15)
                return em_error_set_code(err, EINVAL, "'%s' is not A.B.C.D/N", s);
        memcpy(addr, s, (size_t)(slash - s));
        addr[slash - s] = '\0';
        long n = strtol(slash + 1, &end, 10);
        if (inet_pton(AF_INET, addr, &a) != 1 || slash[1] == '\0' || *end != '\0' || n < 0 ||
            n > 32)
                return em_error_set_code(err, EINVAL, "'%s' is not A.B.C.D/N", s);
        out->mask = n == 0 ? 0 : ~0u << (32 - n);
        out->net = ntohl(a.s_addr);
        if ((out->net & ~out->mask) != 0)
                return em_error_set_code(err, EINVAL, "'%s' has host bits set", s);
        return 0;
}

void em_cidr_format(const struct em_cidr *c, char out[20])
{
        unsigned n = 0;

        while (n < 32 && (c->mask & (1u << (31 - n))))
                n++;
        /* Masked to 8 bits each and n <= 32, so at most 18 characters; the
         * masks also let gcc -O1 (the sanitizer build) prove it fits. */
        snprintf(out, 20, "%u.%u.%u.%u/%u", (c->net >> 24) & 255, (c->net >> 16) & 255,
                 (c->net >> 8) & 255, c->net & 255, n & 63);
}

void em_policy_init(struct em_policy *p)
{
        em_error_t e = NULL;

        memset(p, 0, sizeof(*p));
        p->max_memory = (int64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
        p->max_cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
        if (em_cidr_parse(EM_POLICY_SERVICE_CIDR, &p->cidrs[0], &e) == 0)
                p->n_cidrs = 1;
        em_error_free(&e);
        p->default_cidrs = true;
}

int em_policy_add_cidr(struct em_policy *p, const char *cidr, em_error_t *err)
{
        struct em_cidr c;

        if (em_cidr_parse(cidr, &c, err) < 0)
                return -1;
        if (p->default_cidrs)
                p->n_cidrs = 0;
        p->default_cidrs = false;
        if (p->n_cidrs == EM_POLICY_MAX_CIDRS)
                return em_error_set(err, E2BIG, "more than %d service CIDRs", EM_POLICY_MAX_CIDRS);
        p->cidrs[p->n_cidrs++] = c;
        return 0;
}

/* "a/b, c/d" for an error message. */
static void cidr_list(const struct em_policy *p, char *buf, size_t size)
{
        size_t off = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < p->n_cidrs && off + 22 < size; i++) {
                char one[20];
                em_cidr_format(&p->cidrs[i], one);
                off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "", one);
        }
}

static int check_ip(const struct em_policy *p, const json_t *v, em_error_t *err)
{
        const char *ip = json_string_value(v);
        struct in_addr a;
        char list[EM_POLICY_MAX_CIDRS * 22];

        if (ip == NULL || strlen(ip) > 15 || inet_pton(AF_INET, ip, &a) != 1)
                return em_error_set(err, EPERM, "spec ip must be a plain IPv4 address");
        uint32_t h = ntohl(a.s_addr);
        if (h == 0 || (h >> 24) == 127 || (h >> 28) >= 14 || (h >> 16) == 0xa9fe)
                return em_error_set(err, EPERM, "spec ip %s is not a usable service address", ip);
        for (size_t i = 0; i < p->n_cidrs; i++)
                if ((h & p->cidrs[i].mask) == p->cidrs[i].net)
                        return 0;
        cidr_list(p, list, sizeof(list));
        return em_error_set(err, EPERM,
                            "spec ip %s is outside this host's service CIDRs (%s); its operator "
                            "can allow the range with edgemigd --service-cidr",
                            ip, list);
}

static int check_layers(const json_t *spec, const json_t *diff_ids, em_error_t *err)
{
        json_t *ids = json_object_get(spec, "diff_ids");
        size_t i;
        json_t *d;

        if (!json_is_array(ids) || json_array_size(ids) == 0 || !json_equal(ids, diff_ids))
                return em_error_set(err, EPERM, "spec layers differ from the image's");
        json_array_foreach(ids, i, d)
        {
                if (!em_digest_valid(json_string_value(d)))
                        return em_error_set(err, EPERM, "spec layer %zu is not a digest", i);
        }
        return 0;
}

/* The source's ID range is only a preference (the target allocates its own)
 * and the security options are held to the target's policy when the
 * container is prepared (container/security.h); here only their shape. */
static int check_security(const json_t *spec, em_error_t *err)
{
        json_t *u = json_object_get(spec, "userns");
        json_t *base = json_object_get(u, "base"), *size = json_object_get(u, "size");

        if (u && (!json_is_object(u) || json_object_size(u) != 2 || !json_is_integer(base) ||
                  !json_is_integer(size)))
                return em_error_set(err, EPERM, "spec userns must be {\"base\", \"size\"}");
        cleanup_error em_error_t e = NULL;
        if (em_security_opts_check(json_object_get(spec, "security"), &e) < 0)
                return em_error_set_code(err, EPERM, "spec security: %s", em_error_msg(e));
        return 0;
}

/* Volumes, bind mounts and tmpfs: their shape here; the target's own
 * allow-list and volumes when the plan is checked (em_mounts_admit). */
static int check_mounts(const json_t *spec, em_error_t *err)
{
        cleanup_error em_error_t e = NULL;

        if (em_mounts_check(json_object_get(spec, "mounts"), &e) < 0)
                return em_error_set_code(err, EPERM, "spec mounts: %s", em_error_msg(e));
        return 0;
}

static int check_config(const json_t *cfg, em_error_t *err)
{
        const char *user = em_json_str(cfg, "User"), *wd = em_json_str(cfg, "WorkingDir");

        if (!json_is_object(cfg))
                return em_error_set(err, EPERM, "spec image_config must be an object");
        if ((user && strlen(user) > 256) || (wd && (wd[0] != '/' || strlen(wd) > 4096)))
                return em_error_set(err, EPERM, "spec image_config User/WorkingDir not allowed");
        if (check_strv(json_object_get(cfg, "Env"), "image Env", true, err) < 0 ||
            check_strv(json_object_get(cfg, "Cmd"), "image Cmd", false, err) < 0 ||
            check_strv(json_object_get(cfg, "Entrypoint"), "image Entrypoint", false, err) < 0)
                return -1;
        return 0;
}

int em_policy_check_spec(const struct em_policy *policy, const json_t *spec, const char *name,
                         const json_t *diff_ids, em_error_t *err)
{
        struct em_policy dflt;
        json_t *mem = json_object_get(spec, "memory"), *cpus = json_object_get(spec, "cpus");
        const char *sname = em_json_str(spec, "name");

        if (policy == NULL) {
                em_policy_init(&dflt);
                policy = &dflt;
        }
        if (!json_is_object(spec) || check_keys(spec, err) < 0)
                return em_error_wrap(err, "incoming container refused by policy");
        if (sname == NULL || strcmp(sname, name) != 0) {
                em_error_set(err, EPERM, "spec name does not match the HELLO");
        } else if ((mem && !json_is_integer(mem)) || (mem && json_integer_value(mem) < 0) ||
                   (cpus && !json_is_number(cpus)) || (cpus && json_number_value(cpus) < 0)) {
                em_error_set(err, EPERM, "spec memory/cpus must be non-negative numbers");
        } else if (mem && json_integer_value(mem) > policy->max_memory) {
                em_error_set(err, EPERM,
                             "spec memory %lld bytes is above this host's maximum of %lld "
                             "(edgemigd --max-memory)",
                             (long long)json_integer_value(mem), (long long)policy->max_memory);
        } else if (cpus && json_number_value(cpus) > policy->max_cpus) {
                em_error_set(err, EPERM,
                             "spec cpus %g is above this host's maximum of %g (edgemigd "
                             "--max-cpus)",
                             json_number_value(cpus), policy->max_cpus);
        } else if (check_ip(policy, json_object_get(spec, "ip"), err) == 0 &&
                   check_layers(spec, diff_ids, err) == 0 && check_security(spec, err) == 0 &&
                   check_mounts(spec, err) == 0 &&
                   em_restart_of_spec(spec, &(enum em_restart){0}, err) == 0 &&
                   check_strv(json_object_get(spec, "env"), "env", true, err) == 0 &&
                   check_strv(json_object_get(spec, "cmd"), "cmd", false, err) == 0 &&
                   check_config(json_object_get(spec, "image_config"), err) == 0) {
                return 0;
        }
        return em_error_wrap(err, "incoming container refused by policy");
}
