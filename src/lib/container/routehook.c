#include "container/routehook.h"

#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "util/cleanup.h"
#include "util/subprocess.h"

#define ROUTE_HOOK_TIMEOUT_MS 10000

static bool hook_set(const char *hook)
{
        return hook != NULL && *hook != '\0';
}

int em_route_hook_run(const char *hook, const char *verb, const char *ip, em_error_t *err)
{
        const char *argv[] = {hook, verb, ip, NULL};
        struct em_proc_spec spec;

        if (!hook_set(hook))
                return 0;
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = ROUTE_HOOK_TIMEOUT_MS;
        if (em_proc_run(&spec, NULL, err) < 0)
                return em_error_wrap(err, "route hook '%s %s %s'", hook, verb, ip);
        return 0;
}

int em_route_hook_container_ip(const struct em_config *cfg, const char *name, char **ip,
                               em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;

        *ip = NULL;
        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0)
                return -1;
        *ip = steal_pointer(&rec->ip);
        return 0;
}

int em_route_hook_container(const struct em_config *cfg, const char *hook, const char *verb,
                            const char *name, em_error_t *err)
{
        cleanup_free char *ip = NULL;

        if (!hook_set(hook))
                return 0;
        if (em_route_hook_container_ip(cfg, name, &ip, err) < 0)
                return em_error_wrap(err, "service IP of %s", name);
        return ip == NULL ? 0 : em_route_hook_run(hook, verb, ip, err);
}
