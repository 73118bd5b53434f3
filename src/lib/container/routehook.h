/* The route hook: the executable that moves a service IP's route to the host
 * that runs its container (dist/route-hook by BGP or gratuitous ARP;
 * docs/network.md, "Route handoff"). It is run as `HOOK announce IP` when a
 * container with a service IP starts here and `HOOK withdraw IP` when it
 * stops or leaves. Migrations call it at their own steps (migrate/common);
 * `edgemig run`, `start`, `restart`, `stop`, `rm` and edgemigd's restart
 * policies call it through this module, so that a service IP is announced
 * wherever its container runs, not only after a migration. */
#ifndef EDGEMIG_CONTAINER_ROUTEHOOK_H
#define EDGEMIG_CONTAINER_ROUTEHOOK_H

#include "util/config.h"
#include "util/error.h"

/* Runs `hook verb ip` (10 s at most); nothing when hook is NULL or "". */
int em_route_hook_run(const char *hook, const char *verb, const char *ip, em_error_t *err);

/* The service IP of container name here (*ip NULL if it has none, e.g. a
 * pod member: the pod's infra container holds the pod's IP). */
int em_route_hook_container_ip(const struct em_config *cfg, const char *name, char **ip,
                               em_error_t *err);

/* Runs `hook verb IP` for container name's service IP; nothing when hook is
 * NULL or "" or the container has no service IP. */
int em_route_hook_container(const struct em_config *cfg, const char *hook, const char *verb,
                            const char *name, em_error_t *err);

#endif
