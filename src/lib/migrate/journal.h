/* A file-based journal of each target session, in its staging directory
 * <root>/incoming/<session>/: "owner" (container and serving pid),
 * "restoring" (a restore was started), "committed" (the source's DONE
 * arrived: the container is ours). After a session process dies, or when
 * edgemigd restarts, recovery finishes or rolls back what was in flight:
 * a container restored but never committed is removed, because the source
 * restores its own copy when it gets no confirmation. */
#ifndef EDGEMIG_MIGRATE_JOURNAL_H
#define EDGEMIG_MIGRATE_JOURNAL_H

#include <sys/types.h>

#include "util/config.h"
#include "util/error.h"

/* Writes dir/name atomically with "CONTAINER PID\n". */
int em_journal_write(const char *dir, const char *name, const char *container, em_error_t *err);

/* Writes "owner" and locks it (flock) for as long as *lock_fd stays open:
 * recovery leaves a session alone while its lock is held. */
int em_journal_own(const char *dir, const char *container, int *lock_fd, em_error_t *err);

/* Recovers the sessions of process pid (0: of every process no longer
 * alive). Returns the number of sessions recovered. */
int em_migrate_target_recover(const struct em_config *cfg, pid_t pid, em_error_t *err);

/* Recovers outgoing sessions whose edgemig process died: a container
 * checkpointed here but never committed is restored here; one committed to
 * the target is removed here. Returns the number recovered. */
int em_migrate_source_recover(const struct em_config *cfg, em_error_t *err);

#endif
