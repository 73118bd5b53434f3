/* The source's record of a target's page cache after `prepare`: which pages
 * that target holds for a container, so the migration that follows need not
 * ask the target for its whole hash list (16 bytes a page, over the slow
 * link, on the handoff's clock). The record names the cache by the digest
 * of its first N pages (delta/pages.h: em_pagecache_prefix_digest); the
 * target checks it and sends only the hashes of pages added since. A stale
 * or missing record costs nothing but the full list. */
#ifndef EDGEMIG_MIGRATE_KNOWN_CACHE_H
#define EDGEMIG_MIGRATE_KNOWN_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "delta/pages.h"
#include "util/error.h"

/* What `prepare` saw of the service's writes, kept with the record so the
 * migration that follows can tell, without reading the memory, whether a
 * pre-copy round is worth it: the rate (wire bytes per second) at which
 * its last round found pages the target lacks, and when (unix ms). A
 * negative rate: not known (a record of an older edgemig). */
struct em_known_dirt {
        double left_wire_bps;
        int64_t at_ms;
};

/* Writes <root>/known/<container>/<hash of target>.bin atomically: the
 * target's cache state {"cache_pages", "cache_digest"}, dirt (NULL: not
 * known) and the hashes in position order (known's positions must be the
 * cache's page indices, so their count must equal cache_pages). */
int em_known_cache_save(const char *root, const char *container, const char *target,
                        const json_t *cache_state, const em_hashset_t *known,
                        const struct em_known_dirt *dirt, em_error_t *err);
/* Loads the record for (container, target) into known and returns its
 * {"pages": N, "digest": D} in *prefix; *prefix = NULL when there is none;
 * *dirt (if not NULL) what it says of the writes, a negative rate if
 * nothing. A corrupt record is an error (the caller drops it and goes on). */
int em_known_cache_load(const char *root, const char *container, const char *target,
                        em_hashset_t *known, json_t **prefix, struct em_known_dirt *dirt,
                        em_error_t *err);
/* Whether a record for (container, target) exists (not whether it holds). */
bool em_known_cache_exists(const char *root, const char *container, const char *target);
/* Forgets every record for container (it left this host). */
void em_known_cache_drop(const char *root, const char *container);

#endif
