#include "migrate/session.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/features.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/subprocess.h"
#include "util/version.h"

int em_session_local_hello(const struct em_config *cfg, struct em_hello *h, em_error_t *err)
{
        cleanup_features struct em_features *f = NULL;
        const struct em_feature *criu;

        if (em_features_probe(cfg, true, &f, err) < 0)
                return em_error_wrap(err, "probing host features");
        criu = em_features_get(f, "criu");
        h->protocol = EM_PROTOCOL_VERSION;
        h->edgemig_version = strdup(EM_VERSION);
        h->criu_version = strdup(criu && criu->value ? criu->value : "unknown");
        h->features = em_features_to_json(f);
        if (h->edgemig_version == NULL || h->criu_version == NULL || h->features == NULL)
                return em_error_set(err, ENOMEM, "building HELLO");
        if (!em_features_can_migrate(f))
                return em_error_set(err, ENOTSUP,
                                    "this host cannot migrate containers; run `edgemig check` "
                                    "for the reason");
        return em_cpuinfo_local(&h->cpu, err);
}

char *em_session_incoming_dir(const struct em_config *cfg, const char *session_hex)
{
        char *p = NULL;

        if (asprintf(&p, "%s/incoming/%s", cfg->root, session_hex) < 0)
                return NULL;
        return p;
}

/* A peer's name as a path component: lower case, plain, never "sha256-…"
 * (that prefix names hashed identities). */
static bool plain_identity(const char *id, char out[65])
{
        size_t n = strlen(id);

        if (n == 0 || n > 64 || !isalnum((unsigned char)id[0]) ||
            strncasecmp(id, "sha256-", 7) == 0)
                return false;
        for (size_t i = 0; i <= n; i++) {
                unsigned char c = (unsigned char)tolower((unsigned char)id[i]);
                if (c != '\0' && !isalnum(c) && c != '.' && c != '_' && c != '-')
                        return false;
                out[i] = (char)c;
        }
        return true;
}

char *em_session_cache_dir(const struct em_config *cfg, const char *container, const char *identity)
{
        char key[80], digest[EM_DIGEST_STR_LEN + 1];
        cleanup_free char *lower = identity ? strdup(identity) : NULL;
        char *p = NULL;

        if (identity == NULL)
                snprintf(key, sizeof(key), "-insecure");
        else if (!plain_identity(identity, key)) {
                if (lower == NULL)
                        return NULL;
                for (char *c = lower; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
                em_sha256_buf(lower, strlen(lower), digest);
                snprintf(key, sizeof(key), "sha256-%s", em_digest_hex(digest));
        }
        if (asprintf(&p, "%s/pagecache/%s/%s", cfg->root, container, key) < 0)
                return NULL;
        return p;
}

int em_session_route_hook(const char *hook, const char *verb, const char *ip, em_error_t *err)
{
        const char *argv[] = {hook, verb, ip, NULL};
        struct em_proc_spec spec;

        if (hook == NULL || *hook == '\0')
                return 0;
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = 10000;
        if (em_proc_run(&spec, NULL, err) < 0)
                return em_error_wrap(err, "route hook '%s %s %s'", hook, verb, ip);
        return 0;
}
