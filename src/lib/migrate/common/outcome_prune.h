/* Pruning of the target's outcome records (outcome.h). Only final records
 * go: committed and aborted. A restored record (in doubt) decides its
 * session and a staging or restoring one belongs to a live or crashed
 * session that recovery settles, so those stay whatever their age.
 *
 * Why a final record may go: a source asks about a session only while it
 * is in doubt. A source that never journaled "committing" asks to abort,
 * and "unknown" and "aborted" mean the same to it (it keeps its copy). A
 * committed record implies a source that journaled "committing" (DONE
 * came after it), and such a source treats "unknown" as a lost record
 * for an operator (resolve.c), never as leave to restore: pruning costs
 * at most an `edgemig recover` decision for a source in doubt for longer
 * than the age below, and never a second copy. docs/protocol.md. */
#ifndef EDGEMIG_MIGRATE_OUTCOME_PRUNE_H
#define EDGEMIG_MIGRATE_OUTCOME_PRUNE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

/* edgemigd's defaults: final records older than 30 days go, and at most
 * the newest 10,000 final records stay (a few hundred bytes each). */
#define EM_OUTCOME_KEEP_S   (30 * 24 * 3600)
#define EM_OUTCOME_KEEP_MAX 10000
/* How often edgemigd prunes (and once at start). */
#define EM_OUTCOME_PRUNE_EVERY_MS (3600 * 1000)

/* Removes (the .json, then the .lock) every final record under
 * <root>/outcomes whose last change (the .json's mtime) is more than
 * max_age_s before now, and the oldest final records beyond max_keep. A
 * record whose lock is held (an OUTCOME request deciding it) is skipped.
 * *pruned (may be NULL) counts the records removed. */
int em_outcome_prune(const char *root, int64_t max_age_s, size_t max_keep, time_t now,
                     size_t *pruned, em_error_t *err);

#endif
