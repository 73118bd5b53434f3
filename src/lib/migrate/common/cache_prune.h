/* Expiry of the target's page caches (<root>/pagecache/<container>/<peer>/,
 * session.h em_session_cache_dir): the pages and volume copies a
 * `prepare` (or a failed migration) left for a migration that may never
 * come. A committed migration drops them; a cache no session used
 * for max_age_s goes too. "Used" is the newest mtime of the peer's
 * directory and of its entries: each session that opens the cache marks
 * its pages file (delta/pagecache.h em_pagecache_open), and every page or
 * file it receives changes one of them.
 *
 * A session only opens the caches of a container name it reserved
 * (containers/<name>, made at HELLO or, for a pod's members, at the
 * plan), and it makes that directory holding the names lock shared
 * (em_pagecache_names_lock). The sweep holds it exclusive while it
 * leaves every name that has such a directory and renames the old caches
 * of the others aside; it removes them after it released the lock. So a
 * session either reserved its name first, and its caches stay, or finds
 * them gone at its plan and tells the source it holds nothing (the
 * source sends whole): never a cache emptied under the manifest it sent.
 * docs/protocol.md, "How long a cache stays". */
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
 * max_age_s before now whose container name is neither a container here
 * nor reserved by a session, and a container's directory left empty;
 * *pruned (may be NULL) counts the caches removed. A cache that cannot be
 * removed is logged and skipped, and so is the whole sweep if the names
 * lock stays taken for 2 s; the first error reading the tree fails. */
int em_pagecache_prune(const char *root, int64_t max_age_s, time_t now, size_t *pruned,
                       em_error_t *err);

/* The names lock (<root>/pagecache/.names.lock) taken shared into *fd,
 * waiting for a sweep: a session holds it while it makes a container
 * name's directory. */
int em_pagecache_names_lock(const char *root, int *fd, em_error_t *err);

#endif
