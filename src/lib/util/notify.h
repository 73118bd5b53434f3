/* Readiness for systemd's Type=notify services (sd_notify, libsystemd).
 *
 * A daemon takes NOTIFY_SOCKET out of its environment as it starts: runc,
 * when it finds NOTIFY_SOCKET, hands the socket to the container and waits
 * for the container's own READY=1, so a `runc run --detach` or `runc
 * restore --detach` spawned by a daemon that kept the variable would hang
 * (and CRIU and hooks would inherit it). The daemon then says READY=1 on
 * the socket it took, once it accepts connections. */
#ifndef EDGEMIG_UTIL_NOTIFY_H
#define EDGEMIG_UTIL_NOTIFY_H

#include "util/error.h"

/* Removes NOTIFY_SOCKET from the environment and returns its value
 * (malloc'd), or NULL when not started by systemd. Call it before any
 * thread or child starts. */
char *em_notify_take(void);

/* Sends READY=1 and STATUS=status to socket (from em_notify_take). NULL:
 * the environment's NOTIFY_SOCKET, which is then removed. Not started by
 * systemd: nothing to do, returns 0. Call it before threads start when
 * socket is not NULL (it sets the variable for libsystemd, then removes
 * it again). */
int em_notify_ready(const char *socket, const char *status, em_error_t *err);

#endif
