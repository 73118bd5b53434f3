/* The controller's state in etcd (platform/etcd.h), for several controller
 * replicas: the replicated backend of platform/ctlstore.h. Keys, each a
 * JSON document:
 *   /edgemig/edges/NAME       an edge as registered and last heartbeat
 *   /edgemig/alive/NAME       bound to the edge's lease (TTL edge_ttl_s),
 *                             kept alive by its heartbeats: an edge without
 *                             it is never chosen as a target
 *   /edgemig/services/NAME, /edgemig/users/NAME
 *   /edgemig/migrations/ID    the history; written as the intent before a
 *                             prepare or migration starts, in one txn that
 *                             marks the service busy, fenced on this
 *                             replica holding the leader key
 *   /edgemig/inflight/ID      while an action runs: {source, target}, so
 *                             that an edge's heartbeat looks only at its
 *                             own migrations
 *   /edgemig/leader           the leader's id (platform/election.h)
 * A new leader (recover) turns the in-flight migrations of its predecessor
 * into "resolving": their service stays busy (nothing is scheduled for
 * it) until heartbeats, newer than the takeover, of the source and the
 * target show no migration session open on either and the service running
 * on exactly one of them; the edges' commit
 * protocol decided that (docs/protocol.md). That edge becomes the
 * service's, the record "done" or "failed". So no handoff is lost or
 * started twice across a leader change. */
#ifndef EDGEMIG_PLATFORM_CTLSTORE_ETCD_H
#define EDGEMIG_PLATFORM_CTLSTORE_ETCD_H

#include "platform/ctlstore.h"
#include "platform/etcd.h"
#include "util/error.h"

#define EM_CTL_ETCD_LEADER_KEY "/edgemig/leader"

struct em_ctl_etcd_opts {
        const char *endpoints;       /* NULL: not etcd */
        const char *ca, *cert, *key; /* TLS to etcd */
        const char *id;              /* this replica's id (its URL) */
        int leader_ttl_s;            /* the leader's lease (default 2) */
        int edge_ttl_s;              /* an edge's lease (EM_CTL_EDGE_TTL_S) */
};

int em_ctlstore_etcd_open(const struct em_ctl_etcd_opts *o, struct em_ctlstore **out,
                          em_error_t *err);
/* The client, for the election. */
struct em_etcd *em_ctlstore_etcd_client(struct em_ctlstore *s);

/* Pure helpers (unit-tested): the migrations key of id (sorted as
 * numbers), and the resolution of an in-flight migration from the two
 * edges' last container lists: 1 done (on the target only), 0 failed (on
 * the source only), -1 not known yet (a list older than since_ms, or an
 * edge with a migration session still open). */
void em_ctl_etcd_migration_key(int64_t id, char *buf, size_t size);
int em_ctl_etcd_resolve(const json_t *source_edge, const json_t *target_edge, const char *service,
                        int64_t since_ms);
/* Whether an in-flight mark concerns edge (its source or target); a mark
 * that names neither (an older controller wrote "{}") may: its record
 * tells. */
bool em_ctl_etcd_inflight_involves(const json_t *mark, const char *edge);

#endif
