#include "util/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

static char *pick(const char *env, const char *fallback)
{
        const char *v = getenv(env);
        return strdup(v && *v ? v : fallback);
}

const char *em_config_root_choice(const char *root_opt)
{
        const char *root = root_opt;

        if (root == NULL || *root == '\0')
                root = getenv("EDGEMIG_ROOT");
        if (root == NULL || *root == '\0')
                root = EM_DEFAULT_ROOT;
        return root;
}

int em_config_init(struct em_config *c, const char *root_opt, em_error_t *err)
{
        const char *root = em_config_root_choice(root_opt);
        char resolved[PATH_MAX];

        memset(c, 0, sizeof(*c));
        if (em_mkdir_p(root, 0700, err) < 0)
                return em_error_wrap(err, "creating state root (use --root DIR or EDGEMIG_ROOT)");
        if (realpath(root, resolved) == NULL)
                return em_error_set(err, errno, "resolving state root %s", root);
        c->root = strdup(resolved);
        c->criu =
            pick("EDGEMIG_CRIU", access(EM_DEFAULT_CRIU, X_OK) == 0 ? EM_DEFAULT_CRIU : "criu");
        c->runc = pick("EDGEMIG_RUNC", "runc");
        if (c->root == NULL || c->criu == NULL || c->runc == NULL) {
                em_config_free(c);
                return em_error_set(err, ENOMEM, "initialising configuration");
        }
        return 0;
}

void em_config_free(struct em_config *c)
{
        free(c->root);
        free(c->criu);
        free(c->runc);
        memset(c, 0, sizeof(*c));
}

char *em_config_path(const struct em_config *c, const char *rel)
{
        return em_path_join(c->root, rel);
}
