/* The controller's state in SQLite (<state dir>/controller.db, through
 * platform/registry.h): the embedded backend of platform/ctlstore.h, for
 * one controller on one machine. */
#ifndef EDGEMIG_PLATFORM_CTLSTORE_SQLITE_H
#define EDGEMIG_PLATFORM_CTLSTORE_SQLITE_H

#include "platform/ctlstore.h"
#include "util/error.h"

/* Opens (creating) <state_dir>/controller.db. An edge whose last
 * registration or heartbeat is edge_ttl_s old or older is dead
 * (em_ctl_edge_alive; <= 0: EM_CTL_EDGE_TTL_S). */
int em_ctlstore_sqlite_open(const char *state_dir, int edge_ttl_s, struct em_ctlstore **out,
                            em_error_t *err);

#endif
