/* Pods: containers that share the network, IPC and UTS namespaces and one
 * service IP, as podman's pods do.
 *
 * The namespaces are held by an infra container, a small process from the
 * busybox image that sleeps: `pod create NAME` runs it as container NAME
 * (spec "pod_infra": true) with the pod's service IP and host ID range, and
 * `run --pod NAME` starts each member in it (spec "pod": NAME). Why an infra
 * container rather than the first member:
 *   - the namespaces outlive any member, so a member can stop, restart or
 *     be removed without taking the pod's address away from the others;
 *   - it is the one container of the pod that runc and CRIU treat as a
 *     plain one: runc creates its user namespace and, inside it, the
 *     network namespace that `edgemig netns-hook` wires (nethook.h), as for
 *     any container, and CRIU restores them from its images. Each member
 *     joins the infra's user, network, IPC and UTS namespaces by path
 *     (/proc/<infra pid>/ns/...). A pod's containers checkpoint, and the
 *     infra restores as any container does. A member restored by runc
 *     1.1.5 and CRIU 4.2.1 as usual fails (CRIU clones it into a new user
 *     namespace before it joins any); it did restore by hand with runc
 *     and CRIU run inside the infra's user and network namespaces
 *     (docs/pods.md has the recipe and what is left; its image edit is
 *     checkpoint/pod_img.h); checkpoint/pod_ckpt.h does that for a
 *     whole pod on one host. No container of a pod is checkpointed or
 *     moved alone (em_pod_refuse_alone), nor a pod migrated to another
 *     host yet; runc never checkpoints a network namespace either way;
 *   - the members share the infra's user namespace and its ID range (one
 *     range per pod, the layers idmapped to it as for any container), so
 *     they can join its namespaces at all: a process may only join a
 *     namespace its own user namespace owns.
 * A member has no address of its own in the state (state.h: no_ip); its
 * spec takes the infra's ip and userns when it is prepared. */
#ifndef EDGEMIG_CONTAINER_POD_H
#define EDGEMIG_CONTAINER_POD_H

#include <jansson.h>
#include <stdbool.h>

#include "state/state.h"
#include "util/config.h"
#include "util/error.h"

#define EM_POD_INFRA_IMAGE "busybox"

struct em_pod_create_opts {
        const char *name;
        const char *ip;      /* "a.b.c.d[/len]" or NULL: allocated as run does */
        const char *image;   /* the infra's image (needs sh and sleep); NULL: busybox */
        const char *restart; /* the infra's restart policy (restart.h), NULL: "no" */
};

/* Runs the pod's infra container NAME. On failure nothing is left. */
int em_pod_create(const struct em_config *cfg, const struct em_pod_create_opts *o, em_error_t *err);
/* [{"name", "ip", "state", "infra_pid", "members": [{"name", "state"}]}]
 * ordered by name. */
int em_pod_list(const struct em_config *cfg, json_t **out, em_error_t *err);
/* One entry of em_pod_list; ENOENT if there is no pod NAME. */
int em_pod_inspect(const struct em_config *cfg, const char *name, json_t **out, em_error_t *err);
/* Removes the pod: EBUSY while it has members, unless force (then the
 * members are removed first, running or not). */
int em_pod_rm(const struct em_config *cfg, const char *name, bool force, em_error_t *err);

/* Stops the pod's running members (timeout_s each, as `stop`), then its
 * infra container. Stops at the first failure. */
int em_pod_stop(const struct em_config *cfg, const char *name, int timeout_s, em_error_t *err);
/* Starts the pod's infra container unless it runs, then every member that
 * is not running. Stops at the first failure, leaving what started. */
int em_pod_start(const struct em_config *cfg, const char *name, em_error_t *err);

/* The pod a spec belongs to (member) or is (infra); NULL if none. */
const char *em_pod_of_spec(const json_t *spec);
bool em_pod_spec_is_infra(const json_t *spec);
/* 1 if the record is a pod's infra container, 0 if not, -1 if its stored
 * spec does not parse. */
int em_pod_rec_is_infra(const struct em_container_rec *rec, em_error_t *err);
/* Fails unless pod NAME exists here and its infra container runs. */
int em_pod_check_running(struct em_state *st, const char *pod, em_error_t *err);
/* For a member's spec: sets "ip" and "userns" to the pod's and *infra_pid
 * to the infra container's init; for any other spec *infra_pid = 0. */
int em_pod_member_join(struct em_state *st, json_t *spec, int *infra_pid, em_error_t *err);
/* The members of pod NAME, ordered by name (NULL-terminated strv); with
 * running_only, those whose state is running and whose process is alive,
 * not a zombie (after a reboot the state still says running). */
int em_pod_members(struct em_state *st, const char *pod, bool running_only, char ***out,
                   em_error_t *err);
/* EBUSY naming them if the infra container rec still has running members:
 * stopping it would take their network away, starting it again would give
 * it namespaces they are not in. */
int em_pod_check_infra_idle(struct em_state *st, const struct em_container_rec *rec,
                            em_error_t *err);

/* ENOTSUP if spec is a pod's (member or infra): checkpointing or moving
 * one container of a pod alone would split the pod's namespaces. `what`
 * names the operation ("migrating"). */
int em_pod_refuse_alone(const json_t *spec, const char *what, em_error_t *err);

#endif
