/* The controller's prepares and migrations, each in a detached worker
 * thread: by default an authenticated control request to the source edge's
 * edgemigd (platform/control.h), which must present a certificate naming
 * that edge; or a configured command. The history row in the registry's
 * migrations table goes running -> done/failed with the edge's report. */
#ifndef EDGEMIG_PLATFORM_API_ACTIONS_H
#define EDGEMIG_PLATFORM_API_ACTIONS_H

#include "platform/scheduler.h"
#include "util/error.h"

struct em_api;

/* Called with the api's lock held: records the action (a "skipped" row if
 * it cannot run: no command, and control requests need TLS) and starts its
 * worker. */
int em_api_action_start(struct em_api *c, enum em_sched_action kind, const char *service,
                        const char *user, const char *source, const char *target,
                        const char *reason, em_error_t *err);

#endif
