/* The controller's prepares and migrations, each in a detached worker
 * thread: by default an authenticated control request to the source edge's
 * edgemigd (platform/control.h), which must present a certificate naming
 * that edge; or a configured command. The history row in the registry's
 * migrations table goes running -> done/failed with the edge's report. */
#ifndef EDGEMIG_PLATFORM_API_ACTIONS_H
#define EDGEMIG_PLATFORM_API_ACTIONS_H

#include <stdint.h>

#include "platform/scheduler.h"
#include "util/error.h"

struct em_api;

/* Called with the api's lock held: records the action (a "skipped" row if
 * it cannot run: no command, and control requests need TLS) and starts its
 * worker. */
int em_api_action_start(struct em_api *c, enum em_sched_action kind, const char *service,
                        const char *user, const char *source, const char *target,
                        const char *reason, em_error_t *err);
/* Called with the api's lock held: POST /migrations/ID/cancel. The running
 * migration ID's source edge gets a CONTROL cancel for the session its
 * progress reported, from a worker; the migration's own worker then
 * records "cancelled" (or, if the cancel came too late, its outcome).
 * ENOENT: no such migration; EALREADY: not running; EAGAIN: no session
 * reported yet. */
int em_api_cancel_start(struct em_api *c, int64_t id, em_error_t *err);

#endif
