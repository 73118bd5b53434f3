/* Registry credentials from containers-auth.json / Docker config.json. */
#include "store/regauth.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/conffile.h"
#include "util/json.h"

void em_reg_cred_clear(struct em_reg_cred *c)
{
        if (c->user != NULL)
                explicit_bzero(c->user, strlen(c->user));
        if (c->pass != NULL)
                explicit_bzero(c->pass, strlen(c->pass));
        free(c->user);
        free(c->pass);
        c->user = c->pass = NULL;
}

/* The host part of an auths key: no scheme, no path. */
static bool key_matches(const char *key, const char *host)
{
        size_t n;

        if (strncmp(key, "https://", 8) == 0)
                key += 8;
        else if (strncmp(key, "http://", 7) == 0)
                key += 7;
        n = strcspn(key, "/");
        if (strlen(host) == n && strncmp(key, host, n) == 0)
                return true;
        /* Docker Hub's credentials are filed under its index's name. */
        return strcmp(host, "docker.io") == 0 && n == 15 && strncmp(key, "index.docker.io", n) == 0;
}

static bool has_ctl(const char *s)
{
        for (; *s != '\0'; s++) {
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        }
        return false;
}

/* base64("user:password") -> the two strings. */
static int decode_auth(const char *b64, const char *host, struct em_reg_cred *out, em_error_t *err)
{
        size_t n = strlen(b64);
        cleanup_free unsigned char *raw = NULL;

        if (n == 0 || n % 4 != 0 || n > 64 * 1024 || (raw = malloc(n / 4 * 3 + 1)) == NULL)
                return em_error_set_code(err, EINVAL, "credentials for %s: \"auth\" is not base64",
                                         host);
        int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
        if (len < 0)
                return em_error_set_code(err, EINVAL, "credentials for %s: \"auth\" is not base64",
                                         host);
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
        raw[len] = '\0';
        char *colon = memchr(raw, ':', (size_t)len);
        if (colon == NULL || colon == (char *)raw || strlen((char *)raw) != (size_t)len ||
            has_ctl((char *)raw)) {
                explicit_bzero(raw, (size_t)len);
                return em_error_set_code(
                    err, EINVAL, "credentials for %s: \"auth\" is not base64 of USER:PASSWORD",
                    host);
        }
        *colon = '\0';
        out->user = strdup((char *)raw);
        out->pass = strdup(colon + 1);
        explicit_bzero(raw, (size_t)len);
        if (out->user == NULL || out->pass == NULL) {
                em_reg_cred_clear(out);
                return em_error_set(err, ENOMEM, "credentials");
        }
        return 1;
}

int em_regauth_parse(const char *json, size_t len, const char *host, struct em_reg_cred *out,
                     em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        const char *key;
        json_t *v;

        memset(out, 0, sizeof(*out));
        if (em_json_parse(json, len, "auth file", &j, err) < 0)
                return -1;
        json_t *auths = json_is_object(j) ? json_object_get(j, "auths") : NULL;
        if (auths == NULL)
                return 0;
        if (!json_is_object(auths))
                return em_error_set_code(err, EINVAL, "\"auths\" is not an object");
        json_object_foreach(auths, key, v)
        {
                if (!key_matches(key, host))
                        continue;
                const char *a = json_is_object(v) ? em_json_str(v, "auth") : NULL;
                if (a == NULL)
                        return em_error_set_code(
                            err, EINVAL,
                            "credentials for %s have no \"auth\" string (identity "
                            "tokens and credential helpers are not supported)",
                            host);
                return decode_auth(a, host, out, err);
        }
        return 0;
}

static int from_file(const char *path, const char *host, bool must_exist, struct em_reg_cred *out,
                     em_error_t *err)
{
        cleanup_fclose FILE *f = fopen(path, "re");
        cleanup_free char *buf = NULL;

        if (f == NULL && errno == ENOENT && !must_exist)
                return 0;
        if (f == NULL)
                return em_error_set(err, errno, "registry auth file %s", path);
        if ((buf = malloc(EM_REGAUTH_MAX_BYTES + 1)) == NULL)
                return em_error_set(err, ENOMEM, "auth file");
        size_t n = fread(buf, 1, EM_REGAUTH_MAX_BYTES + 1, f);
        int rc = n > EM_REGAUTH_MAX_BYTES
                     ? em_error_set(err, EFBIG, "registry auth file %s: over 1 MiB", path)
                     : em_regauth_parse(buf, n, host, out, err);
        explicit_bzero(buf, n);
        return rc < 0 ? em_error_wrap(err, "%s", path) : rc;
}

int em_regauth_find(const char *file, const char *host, struct em_reg_cred *out, em_error_t *err)
{
        const char *dc = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
        char p[3][4096];

        memset(out, 0, sizeof(*out));
        if (file != NULL)
                return from_file(file, host, true, out, err);
        snprintf(p[0], sizeof(p[0]), "%s", getenv("REGISTRY_AUTH_FILE") ?: "");
        snprintf(p[1], sizeof(p[1]), "%s/config.json", dc ?: "");
        snprintf(p[2], sizeof(p[2]), "%s/.docker/config.json", home ?: "");
        int rc = from_file(EM_SYSCONFDIR "/edgemig/auth.json", host, false, out, err);
        if (rc == 0 && p[0][0] != '\0')
                rc = from_file(p[0], host, false, out, err);
        if (rc == 0 && dc != NULL)
                rc = from_file(p[1], host, false, out, err);
        if (rc == 0 && home != NULL && dc == NULL)
                rc = from_file(p[2], host, false, out, err);
        return rc;
}
