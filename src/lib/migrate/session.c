#include "migrate/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/features.h"
#include "util/cleanup.h"
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
