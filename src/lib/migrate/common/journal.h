/* A file-based journal of each migration session in its staging
 * directory: <root>/outgoing/<session>/ on the source ("owner", then
 * "final" (with the checkpoint), "committing", "committed"; spec.json, images/,
 * target.json) and <root>/incoming/<session>/ on the target ("owner"; the
 * target's states are its outcome record, migrate/common/outcome.h). After a
 * session process dies, or when edgemigd restarts, recovery finishes,
 * settles (migrate/common/resolve.h) or rolls back what was in flight. */
#ifndef EDGEMIG_MIGRATE_JOURNAL_H
#define EDGEMIG_MIGRATE_JOURNAL_H

#include <sys/types.h>

#include "util/config.h"

struct em_resolve_opts;
#include "util/error.h"

/* Writes dir/name atomically with "CONTAINER PID\n". */
int em_journal_write(const char *dir, const char *name, const char *container, em_error_t *err);

/* Creates "owner" ("CONTAINER PID\n"), locked (flock) for as long as
 * *lock_fd stays open: recovery leaves a session alone while its lock is
 * held. The file appears already locked and is never replaced: EEXIST if
 * dir has an owner (another session uses it). */
int em_journal_own(const char *dir, const char *container, int *lock_fd, em_error_t *err);

/* True while the process that owns the session in dir holds its lock. */
bool em_journal_alive(const char *dir);
/* True if dir holds the marker name ("final", "committing", ...). */
bool em_journal_has(const char *dir, const char *name);

/* Restores container here from the checkpoint an outgoing session kept in
 * dir (spec.json, images/), then runs `route_hook announce IP` (route_hook
 * may be NULL). */
int em_journal_restore_kept(const struct em_config *cfg, const char *dir, const char *container,
                            const char *route_hook, em_error_t *err);

/* Recovers the sessions of process pid (0: of every process no longer
 * alive; -1: the same, skipping one without an owner file, which may be
 * a live session being created): a copy restored but never committed is
 * removed, its service IP withdrawn with `route_hook withdraw IP`
 * (route_hook may be NULL). A pod's session whose pod restore journal is
 * not settled yet (checkpoint/pod_journal.h) is left for a later call.
 * Returns the number of sessions recovered. */
int em_migrate_target_recover(const struct em_config *cfg, pid_t pid, const char *route_hook,
                              em_error_t *err);

/* Recovers outgoing sessions whose edgemig process died: one committed to
 * the target is removed here; one whose FINAL went out is settled with the
 * target (migrate/common/resolve.h, reached through ro; NULL: plain TCP only) and
 * stays in doubt, stopped here, if the target does not answer; one
 * checkpointed ("checkpointed", older journals) is restored here. Returns
 * the number settled. */
int em_migrate_source_recover(const struct em_config *cfg, const struct em_resolve_opts *ro,
                              em_error_t *err);

#endif
