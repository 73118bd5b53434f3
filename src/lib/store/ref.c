#include "store/ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/digest.h"

void em_ref_free(struct em_ref *r)
{
        free(r->registry);
        free(r->repo);
        free(r->tag);
        free(r->digest);
        memset(r, 0, sizeof(*r));
}

static bool repo_valid(const char *s)
{
        if (*s == '\0' || *s == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//") != NULL)
                return false;
        for (const char *p = s; *p; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._-/", *p)))
                        return false;
        }
        return strstr(s, "..") == NULL;
}

static bool tag_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 128 || *s == '.' || *s == '-')
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int split_digest(char *copy, struct em_ref *r, em_error_t *err)
{
        char *at = strchr(copy, '@');

        if (at == NULL)
                return 0;
        *at = '\0';
        if (!em_digest_valid(at + 1))
                return em_error_set(err, EINVAL, "bad digest '%s' in reference", at + 1);
        r->digest = strdup(at + 1);
        return 0;
}

int em_ref_parse(const char *s, struct em_ref *out, em_error_t *err)
{
        cleanup_free char *copy = strdup(s);
        struct em_ref r = {0};

        if (copy == NULL)
                return em_error_set(err, ENOMEM, "reference");
        if (split_digest(copy, &r, err) < 0)
                return -1;
        char *rest = copy, *slash = strchr(copy, '/');
        if (slash != NULL && (memchr(copy, '.', (size_t)(slash - copy)) != NULL ||
                              memchr(copy, ':', (size_t)(slash - copy)) != NULL ||
                              strncmp(copy, "localhost/", 10) == 0)) {
                *slash = '\0';
                r.registry = strdup(copy);
                r.has_registry = true;
                rest = slash + 1;
        } else {
                r.registry = strdup(EM_DEFAULT_REGISTRY);
        }
        char *colon = strrchr(rest, ':');
        if (colon != NULL && strchr(colon, '/') == NULL) {
                *colon = '\0';
                r.tag = strdup(colon + 1);
        } else if (r.digest == NULL) {
                r.tag = strdup("latest");
        }
        if (strcmp(r.registry, EM_DEFAULT_REGISTRY) == 0 && strchr(rest, '/') == NULL) {
                if (asprintf(&r.repo, "library/%s", rest) < 0)
                        r.repo = NULL; /* undefined after a failure */
        } else
                r.repo = strdup(rest);
        if (r.repo == NULL || !repo_valid(r.repo) || (r.tag != NULL && !tag_valid(r.tag)) ||
            *r.registry == '\0') {
                em_ref_free(&r);
                return em_error_set(err, EINVAL, "invalid image reference '%s'", s);
        }
        *out = r;
        return 0;
}

char *em_ref_string(const struct em_ref *r)
{
        char *out = NULL;
        int n;

        if (r->digest != NULL && r->tag == NULL)
                n = asprintf(&out, "%s/%s@%s", r->registry, r->repo, r->digest);
        else
                n = asprintf(&out, "%s/%s:%s", r->registry, r->repo, r->tag);
        return n < 0 ? NULL : out;
}

int em_ref_pin(const char *name, const char *registry, const char *digest, char **out,
               em_error_t *err)
{
        struct em_ref r;

        if (!em_digest_valid(digest))
                return em_error_set(err, EINVAL, "image %s: bad digest", name);
        if (em_ref_parse(name, &r, err) < 0)
                return -1;
        free(r.tag);
        free(r.digest);
        r.tag = NULL;
        r.digest = strdup(digest);
        if (registry != NULL) {
                free(r.registry);
                r.registry = strdup(registry);
        }
        *out = r.digest && r.registry ? em_ref_string(&r) : NULL;
        em_ref_free(&r);
        return *out ? 0 : em_error_set(err, ENOMEM, "image reference");
}
