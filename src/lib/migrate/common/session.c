#include "migrate/common/session.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "checkpoint/features.h"
#include "container/routehook.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/log.h"
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

int em_session_connect(em_tls_ctx_t *tls, const char *target, int timeout_ms, em_conn_t **conn,
                       char **identity, em_error_t *err)
{
        *identity = NULL;
        if (tls != NULL)
                return em_tls_connect(tls, target, timeout_ms, conn, identity, err);
        return em_tcp_connect(target, timeout_ms, conn, err);
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

int em_session_peer_key(const char *identity, char out[EM_PEER_KEY_LEN])
{
        char digest[EM_DIGEST_STR_LEN + 1];
        cleanup_free char *lower = identity ? strdup(identity) : NULL;

        if (identity == NULL) {
                snprintf(out, EM_PEER_KEY_LEN, "-insecure");
                return 0;
        }
        if (plain_identity(identity, out))
                return 0;
        if (lower == NULL)
                return -1;
        for (char *c = lower; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        em_sha256_buf(lower, strlen(lower), digest);
        snprintf(out, EM_PEER_KEY_LEN, "sha256-%s", em_digest_hex(digest));
        return 0;
}

char *em_session_cache_dir(const struct em_config *cfg, const char *container, const char *identity)
{
        char key[EM_PEER_KEY_LEN];
        char *p = NULL;

        if (em_session_peer_key(identity, key) < 0 ||
            asprintf(&p, "%s/pagecache/%s/%s", cfg->root, container, key) < 0)
                return NULL;
        return p;
}

int em_session_peer_slot(const struct em_config *cfg, const char *identity, int max, int *fd_out,
                         em_error_t *err)
{
        char key[EM_PEER_KEY_LEN];
        cleanup_free char *dir = NULL;

        if (em_session_peer_key(identity, key) < 0 ||
            asprintf(&dir, "%s/peers/%s", cfg->root, key) < 0)
                return em_error_set(err, ENOMEM, "peer slots");
        if (em_mkdir_p(dir, 0700, err) < 0)
                return -1;
        for (int i = 0; i < max; i++) {
                char name[32];
                snprintf(name, sizeof(name), "slot-%d", i);
                cleanup_free char *path = em_path_join(dir, name);
                cleanup_close int fd =
                    path ? open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
                if (fd < 0)
                        return em_error_set(err, path ? errno : ENOMEM, "opening %s", dir);
                if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
                        *fd_out = steal_fd(&fd);
                        return 0;
                }
        }
        return em_error_set_code(err, EBUSY,
                                 "peer '%s' already has %d sessions here (edgemigd "
                                 "--max-sessions-per-peer)",
                                 identity ? identity : "(unauthenticated)", max);
}

int em_session_route_hook(const char *hook, const char *verb, const char *ip, em_error_t *err)
{
        return em_route_hook_run(hook, verb, ip, err);
}

int em_session_route_warn(em_session_route_fn run, const char *hook, const char *verb,
                          const char *ip, const char *context)
{
        cleanup_error em_error_t e = NULL;

        if (ip == NULL || (run ? run : em_session_route_hook)(hook, verb, ip, &e) == 0)
                return 0;
        em_log_warn("%s: %s", context, em_error_msg(e));
        return -1;
}
