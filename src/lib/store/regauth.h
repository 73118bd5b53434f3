/* Registry credentials as operators keep them: a containers-auth.json file
 * (podman, skopeo: /etc/edgemig/auth.json) or a Docker config.json, both
 * {"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}. Keys may
 * carry a scheme and a path ("https://index.docker.io/v1/"); only the host
 * part is matched. */
#ifndef EDGEMIG_STORE_REGAUTH_H
#define EDGEMIG_STORE_REGAUTH_H

#include <stddef.h>

#include "util/error.h"

#define EM_REGAUTH_MAX_BYTES (1u << 20)

struct em_reg_cred {
        char *user;
        char *pass;
};
/* Wipes and frees both strings. */
void em_reg_cred_clear(struct em_reg_cred *c);
#define cleanup_reg_cred __attribute__((cleanup(em_reg_cred_clear)))

/* Finds host's entry in the JSON text of an auth file. Returns 1 and fills
 * *out when there is one, 0 when there is none, < 0 (EINVAL) when the file
 * or the entry is malformed (not base64, no ':', control characters). */
int em_regauth_parse(const char *json, size_t len, const char *host, struct em_reg_cred *out,
                     em_error_t *err);

/* Credentials for host from `file` when it is non-NULL (it must exist),
 * else from the first of EM_SYSCONFDIR/edgemig/auth.json,
 * $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json and ~/.docker/config.json
 * that exists and names host. Returns 1, 0 (anonymous) or < 0. */
int em_regauth_find(const char *file, const char *host, struct em_reg_cred *out, em_error_t *err);

#endif
