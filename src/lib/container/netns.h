/* Per-container network namespaces owned by edgemig (runc never checkpoints a
 * network namespace, so the container's must outlive its processes and be
 * re-created identically on a migration target).
 *
 * Wiring, CNI/Calico style, so the service IP can move between hosts:
 *   container: eth0 = SERVICE_IP/32, route 169.254.1.1 dev eth0 scope link,
 *              default via 169.254.1.1 — identical on every host;
 *   host:      veth <host_veth> with 169.254.1.1/32 (answers the container's
 *              ARP for its gateway) and a /32 route to SERVICE_IP, which is
 *              added and withdrawn separately because the IP travels. */
#ifndef EDGEMIG_CONTAINER_NETNS_H
#define EDGEMIG_CONTAINER_NETNS_H

#include <stdbool.h>

#include "util/error.h"

#define EM_GATEWAY_IP "169.254.1.1"

/* Creates an empty file at path and bind-mounts a fresh network namespace on it. */
int em_netns_create(const char *path, em_error_t *err);
/* Unmounts and removes it; absent is not an error. */
int em_netns_destroy(const char *path, em_error_t *err);
/* Creates the veth pair and configures the container side (lo up, eth0 with
 * ip/32 and the routes) and the host side (up, gateway address). */
int em_netns_wire(const char *netns, const char *host_veth, const char *ip, em_error_t *err);
/* The host's /32 route to the service IP through host_veth (replace/delete). */
int em_netns_route_add(const char *host_veth, const char *ip, em_error_t *err);
int em_netns_route_del(const char *host_veth, const char *ip, em_error_t *err);
/* create + wire + route; on failure nothing is left. */
int em_netns_setup(const char *path, const char *host_veth, const char *ip, em_error_t *err);
/* Like setup, for the network namespace of process pid (which runc created
 * inside the container's user namespace): bind-mounts it at path, then wires
 * it. On failure nothing is left. */
int em_netns_adopt(int pid, const char *path, const char *host_veth, const char *ip,
                   em_error_t *err);
/* Deletes the host veth (and with it the route) and destroys the namespace. */
int em_netns_teardown(const char *path, const char *host_veth, em_error_t *err);
/* Removes CRIU's network-lock rules (iptables chain CRIU) from a namespace,
 * which a failed restore leaves behind and which blackhole later traffic. */
int em_netns_flush_criu_lock(const char *netns, em_error_t *err);
/* Adds the same rules (every packet in and out dropped), as CRIU does for
 * a namespace it dumps: for one it does not own (runc passes a pod
 * member's as external), dumps taken one after another keep a connection
 * between two of them intact only if no packet (a delayed ACK answered
 * with a reset) crosses between the first dump and the last. Undo with
 * em_netns_flush_criu_lock. */
int em_netns_criu_lock(const char *netns, em_error_t *err);
/* Drops (on) or lets through again (off) the TCP resets a namespace
 * sends. While the members of a pod are restored one after another, the
 * first end of a connection between two of them comes back while the
 * other is not there yet: the window probe CRIU's restore sends would be
 * answered with a reset and the connection lost. Dropped, the probe is
 * just lost. The same holds for a client outside whose packet reaches the
 * restored infra's namespace before the member it talks to is back (the
 * pod's roll-back on its source, where the route never moved). */
int em_netns_hold_resets(const char *netns, bool on, em_error_t *err);
/* Adds (on) or removes a policy-routing rule (priority
 * EM_NETNS_BLACKHOLE_PRIORITY, before the main table) in this host's
 * network namespace that drops every packet routed to ip/32 silently.
 * Held while a pod is down for its migration and until its roll-back here
 * has restored every member: without it a client's new connection fails
 * at once on an ICMP unreachable once the pod's namespace went with the
 * dump, and a client's packet that reaches the restored infra's namespace
 * before its member is back is answered with a reset. Dropped, the packet
 * is retried, and reaches the pod wherever it runs by then. */
#define EM_NETNS_BLACKHOLE_PRIORITY 4242
int em_netns_blackhole(const char *ip, bool on, em_error_t *err);

#endif
