/* Platform strings and multi-arch index selection. */
#include "store/osarch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

static bool field_ok(const char *s, size_t n, size_t max)
{
        if (n == 0 || n >= max)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                        return false;
        }
        return true;
}

int em_osarch_parse(const char *s, struct em_osarch *out, em_error_t *err)
{
        const char *a = s != NULL ? strchr(s, '/') : NULL;
        const char *v = a != NULL ? strchr(a + 1, '/') : NULL;
        size_t on = a != NULL ? (size_t)(a - s) : 0;
        size_t an = a == NULL ? 0 : v != NULL ? (size_t)(v - a - 1) : strlen(a + 1);
        size_t vn = v != NULL ? strlen(v + 1) : 0;

        memset(out, 0, sizeof(*out));
        if (a == NULL || !field_ok(s, on, sizeof(out->os)) ||
            !field_ok(a + 1, an, sizeof(out->arch)) ||
            (v != NULL && !field_ok(v + 1, vn, sizeof(out->variant))))
                return em_error_set_code(
                    err, EINVAL,
                    "platform '%.64s' is not OS/ARCH[/VARIANT] (e.g. linux/arm64, "
                    "linux/arm/v7)",
                    s != NULL ? s : "");
        memcpy(out->os, s, on);
        memcpy(out->arch, a + 1, an);
        if (v != NULL)
                memcpy(out->variant, v + 1, vn);
        return 0;
}

void em_osarch_host(struct em_osarch *out)
{
        static const struct {
                const char *machine, *arch, *variant;
        } map[] = {
            {"x86_64", "amd64", ""},    {"aarch64", "arm64", ""}, {"armv7l", "arm", "v7"},
            {"armv6l", "arm", "v6"},    {"i686", "386", ""},      {"i386", "386", ""},
            {"ppc64le", "ppc64le", ""}, {"s390x", "s390x", ""},   {"riscv64", "riscv64", ""}};
        struct utsname u;
        const char *m = uname(&u) == 0 ? u.machine : "x86_64";

        memset(out, 0, sizeof(*out));
        snprintf(out->os, sizeof(out->os), "linux");
        snprintf(out->arch, sizeof(out->arch), "%.31s", m);
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
                if (strcmp(m, map[i].machine) == 0) {
                        snprintf(out->arch, sizeof(out->arch), "%s", map[i].arch);
                        snprintf(out->variant, sizeof(out->variant), "%s", map[i].variant);
                }
        }
}

const char *em_osarch_str(const struct em_osarch *p, char *buf, size_t len)
{
        snprintf(buf, len, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
        return buf;
}

static bool eq(const char *a, const char *b)
{
        return a != NULL && strcmp(a, b) == 0;
}

/* The entry's variant, with arm64's implied v8 made explicit. */
static const char *variant_of(const struct em_descriptor *d)
{
        if (d->variant != NULL && d->variant[0] != '\0')
                return d->variant;
        return eq(d->arch, "arm64") ? "v8" : "";
}

/* 2: exact (or the default variant), 1: usable, 0: not this platform. */
static int score(const struct em_descriptor *d, const struct em_osarch *p)
{
        if (eq(d->media_type, EM_MT_OCI_INDEX) || eq(d->media_type, EM_MT_DOCKER_LIST))
                return 0;
        if (!eq(d->os, p->os) || !eq(d->arch, p->arch))
                return 0;
        const char *want =
            p->variant[0] != '\0' || strcmp(p->arch, "arm64") != 0 ? p->variant : "v8";
        if (strcmp(variant_of(d), want) == 0)
                return 2;
        return p->variant[0] == '\0' ? 1 : 0;
}

const struct em_descriptor *em_osarch_select(const struct em_index *ix, const struct em_osarch *p)
{
        const struct em_descriptor *best = NULL;
        int best_score = 0;
        bool any_platform = false;

        for (size_t i = 0; i < ix->n; i++) {
                const struct em_descriptor *d = &ix->manifests[i];
                int sc = score(d, p);

                any_platform = any_platform || d->os != NULL || d->arch != NULL;
                if (sc > best_score)
                        best = d, best_score = sc;
        }
        if (best == NULL && !any_platform && ix->n == 1)
                return &ix->manifests[0];
        return best;
}
