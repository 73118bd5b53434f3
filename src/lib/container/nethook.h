/* The OCI prestart hook that wires a container's network namespace.
 *
 * A container in its own user namespace needs a network namespace owned by
 * that user namespace: the kernel lets it mount sysfs only then, and CRIU,
 * restoring the user namespace from the images, can only create a network
 * namespace inside it (it cannot join one owned by the host's). So runc (on
 * run) and CRIU (on restore) create the network namespace, and runc calls
 * this hook once it exists (at create, and at CRIU's setup-namespaces step,
 * before any socket is restored). The hook binds it at <root>/netns/NAME and
 * wires it as em_netns_setup does (netns.h). The hook is the small
 * `edgemig-netns-hook NETNS HOST_VETH IP` installed next to edgemig (it
 * runs inside `runc restore`, so inside a migration's downtime, and loads
 * two libraries where edgemig loads 47), else the edgemig binary itself:
 * `edgemig netns-hook NETNS HOST_VETH IP`; runc's state JSON on stdin. */
#ifndef EDGEMIG_CONTAINER_NETHOOK_H
#define EDGEMIG_CONTAINER_NETHOOK_H

#include <jansson.h>

#include "util/error.h"

#define EM_NETHOOK_VERB "netns-hook"
#define EM_NETHOOK_BIN  "edgemig-netns-hook"

/* The hook entry for config.json's hooks.prestart: edgemig-netns-hook
 * when it is next to the edgemig binary, else `edgemig netns-hook`. */
int em_nethook_json(const char *netns, const char *host_veth, const char *ip, json_t **out,
                    em_error_t *err);
/* The hook itself: reads the container's pid from the state JSON on
 * state_fd, then em_netns_adopt(). */
int em_nethook_run(const char *netns, const char *host_veth, const char *ip, int state_fd,
                   em_error_t *err);

#endif
