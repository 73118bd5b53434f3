/* Named fault points for tests (in the spirit of CRIU's CRIU_FAULT):
 *   EDGEMIG_FAULT="point=action[,point=action...]"
 * point:  a name passed to em_fault() (e.g. "target.before-restore");
 * action: crash  - _exit(113) at once, like a killed process
 *         error  - fail with EIO ("injected fault")
 *         enospc - fail with ENOSPC, like a full disk
 *         drop   - shut the connection down both ways (a cut link)
 *         corrupt- write a frame with a bad checksum to the peer
 *         stall  - pause 3 s, then go on (a test acts meanwhile, e.g. cuts
 *                  the link: a real partition at this point)
 * Unset, em_fault() costs one getenv per call. */
#ifndef EDGEMIG_UTIL_FAULT_H
#define EDGEMIG_UTIL_FAULT_H

#include <stddef.h>

#include "util/error.h"

/* fd: the connection's socket (for drop/corrupt), or -1. Returns 0 when no
 * fault fires here, -1 with *err set when one does. */
int em_fault(const char *point, int fd, em_error_t *err);
/* The action configured for point, or NULL (exposed for tests). */
const char *em_fault_action(const char *spec, const char *point, char *buf, size_t len);

#endif
