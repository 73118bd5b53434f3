/* Whether CRIU can checkpoint a container's processes again: a process
 * that dropped privileges with setuid() (no exec) is non-dumpable, and
 * once CRIU has restored it its memory map belongs to the host's initial
 * user namespace, where CRIU's namespace check has no capability: the
 * dump would fail with "Can't open PID/ns/net on procfs: Permission
 * denied" (docs/security.md, "Services that drop privileges themselves
 * checkpoint once"). */
#ifndef EDGEMIG_CHECKPOINT_REDUMP_H
#define EDGEMIG_CHECKPOINT_REDUMP_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

/* From procfs facts of one process: the owner of /proc/PID/ns (a
 * non-dumpable process's: the root of its memory map's user namespace,
 * host uid 0 for the initial one), its effective uid on the host, and
 * whether it runs in a user namespace of its own. */
bool em_redump_refused(uid_t ns_dir_owner, uid_t host_euid, bool own_userns);

/* Fails (EPERM, naming the process of container name and the fix) when
 * a process of the tree under root could not be checkpointed; a process
 * that vanishes meanwhile is passed over. */
int em_redump_check(const char *name, pid_t root, em_error_t *err);

#endif
