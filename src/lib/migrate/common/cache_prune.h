/* Expiry of the target's page caches (<root>/pagecache/<container>/<peer>/,
 * session.h em_session_cache_dir): the pages and volume copies a
 * `prepare` (or a failed migration) left for a migration that may never
 * come. A committed migration drops them; a cache no session used
 * for max_age_s goes too. "Used" is the newest mtime of the peer's
 * directory and of its entries: each session that opens the cache marks
 * its pages file (delta/pagecache.h em_pagecache_open), and every page or
 * file it receives changes one of them. A session lives at most
 * edgemigd's --session-deadline (1 h), far below the age, so a cache in
 * use is never old; one that a session opens in the instant of a sweep
 * could go under it, and that session then fails and is rolled back
 * (the source keeps its container). docs/protocol.md, "Whose cache". */
#ifndef EDGEMIG_MIGRATE_COMMON_CACHE_PRUNE_H
#define EDGEMIG_MIGRATE_COMMON_CACHE_PRUNE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

/* edgemigd's: a cache unused for a day goes (checked hourly, with the
 * outcome records: outcome_prune.h). */
#define EM_PAGECACHE_KEEP_S (24 * 3600)

/* Removes every <root>/pagecache/<container>/<peer>/ unused for more than
 * max_age_s before now, and a container's directory left empty; *pruned
 * (may be NULL) counts the caches removed. A cache that cannot be removed
 * is logged and skipped; the first error reading the tree fails. */
int em_pagecache_prune(const char *root, int64_t max_age_s, time_t now, size_t *pruned,
                       em_error_t *err);

#endif
