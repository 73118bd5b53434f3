/* Restart policies: which containers edgemigd brings back, and when.
 *
 * `edgemig run --restart no|on-failure|always` records the policy in the
 * container's spec ("restart", absent for "no"), so it travels with a
 * migration. edgemig cannot see the exit status of a detached container
 * (runc's detached init is not its child), so "failure" means: the
 * container's processes ended without `edgemig stop`/`restart`/`rm` (they
 * exited, crashed, were killed, or the host or edgemigd died).
 *
 *   no          never restarted;
 *   on-failure  restarted when it died (at edgemigd's start and while it runs);
 *   always      the same, and at edgemigd's start also after `edgemig stop`
 *               (as Docker's "always").
 *
 * While edgemigd runs, a container that keeps dying is restarted after
 * 1 s, 2 s, 4 s, ... up to 60 s; the delay starts over once it has run for
 * 60 s. Containers that a migration owns, checkpointed ones and created ones
 * are left alone. A container started again announces its service IP
 * through the route hook, when one is set; one without a policy whose
 * processes ended on their own (its record still says running, or `ps`
 * marked it stopped) has it withdrawn, once per run. A pod's infra container is started before the
 * others (its members join its namespaces, pod.h). */
#ifndef EDGEMIG_CONTAINER_RESTART_H
#define EDGEMIG_CONTAINER_RESTART_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "state/state.h"
#include "util/config.h"
#include "util/error.h"

enum em_restart {
        EM_RESTART_NO = 0,
        EM_RESTART_ON_FAILURE,
        EM_RESTART_ALWAYS,
};

/* "no", "on-failure" or "always"; the error lists them. */
int em_restart_parse(const char *s, enum em_restart *out, em_error_t *err);
const char *em_restart_name(enum em_restart r);
/* The policy of a spec; a missing "restart" is "no", anything unknown is an
 * error (a spec from a peer is checked with this too). */
int em_restart_of_spec(const json_t *spec, enum em_restart *out, em_error_t *err);

/* Whether a container that is not running now (rec->state RUNNING with its
 * process gone, or STOPPED) is to be started. boot: edgemigd is starting. */
bool em_restart_wanted(enum em_restart policy, const struct em_container_rec *rec, bool boot);

struct em_restart_monitor;
int em_restart_monitor_new(struct em_restart_monitor **out, em_error_t *err);
void em_restart_monitor_free(struct em_restart_monitor **m);
/* Runs `hook announce IP` (routehook.h) after each start of a container
 * with a service IP, and `hook withdraw IP` when one without a restart
 * policy has ended; hook (NULL: none) must outlive m. */
void em_restart_monitor_set_route_hook(struct em_restart_monitor *m, const char *hook);
#define cleanup_restart_monitor __attribute__((cleanup(em_restart_monitor_free)))

/* One pass over the containers of cfg's root at monotonic time now_ms:
 * starts those whose policy asks for it and whose back-off has passed.
 * A container that fails to start is logged and retried later; the pass
 * fails only when the state cannot be read. *started (may be NULL)
 * receives how many were started. */
int em_restart_monitor_pass(struct em_restart_monitor *m, const struct em_config *cfg, bool boot,
                            int64_t now_ms, int *started, em_error_t *err);

#endif
