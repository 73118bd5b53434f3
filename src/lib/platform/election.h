/* Leader election of controller replicas through etcd. Each replica holds
 * a lease (TTL ttl_s) and keeps it alive every tick (ttl/4); a replica that
 * is not the leader campaigns with a txn that creates the leader key bound
 * to its lease only if the key does not exist (create_revision == 0), and
 * otherwise reads who holds it. A dead leader's lease expires after at most
 * ttl_s, etcd deletes the key, and the next campaign of another replica
 * wins: takeover within ttl_s plus a tick.
 *
 * A leader counts itself leader only until its lease may have expired
 * (the last successful keepalive's send time + the TTL etcd answered), so
 * a leader cut off from etcd stops scheduling before another can win; the
 * controller also fences each intent it records on the key's value
 * (platform/ctlstore_etcd.h).
 *
 * The state machine (em_election_state, em_election_next, _on_*) is pure
 * and unit-tested; em_election_start runs it against etcd in a thread. */
#ifndef EDGEMIG_PLATFORM_ELECTION_H
#define EDGEMIG_PLATFORM_ELECTION_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/etcd.h"
#include "util/error.h"

#define EM_ELECTION_ID_MAX 256

struct em_election_state {
        char id[EM_ELECTION_ID_MAX];     /* this replica (its advertised URL) */
        char holder[EM_ELECTION_ID_MAX]; /* the leader as last seen ("" unknown) */
        int64_t lease;                   /* 0: none */
        int64_t lease_until_ms;          /* monotonic: the lease may expire after this */
        bool elected;                    /* the campaign won (the key holds our lease) */
        bool leader;                     /* elected and the takeover work is done */
};

enum em_election_step {
        EM_ELECTION_GRANT,     /* get a lease */
        EM_ELECTION_KEEPALIVE, /* renew it, then campaign if not elected */
};

void em_election_init(struct em_election_state *s, const char *id);
enum em_election_step em_election_next(const struct em_election_state *s, int64_t now_ms);
/* A lease granted by a request sent at sent_ms. */
void em_election_on_grant(struct em_election_state *s, int64_t lease, int64_t ttl_s,
                          int64_t sent_ms);
/* A keepalive sent at sent_ms answered ttl_s (0: the lease is gone). */
void em_election_on_keepalive(struct em_election_state *s, int64_t ttl_s, int64_t sent_ms);
/* An etcd request failed: nothing is renewed; the lease runs out. */
void em_election_on_error(struct em_election_state *s, int64_t now_ms);
/* The campaign's result: won, or the key's current holder (our own id
 * after a lost answer counts as won). */
void em_election_on_campaign(struct em_election_state *s, bool won, const char *holder);
/* Whether this replica may act as leader at now_ms. */
bool em_election_is_leader(const struct em_election_state *s, int64_t now_ms);

/* The campaign txn: put key = id with lease if key does not exist; else
 * read key. */
json_t *em_election_campaign_txn(const char *key, const char *id, int64_t lease);

/* ---- the running election ---- */
struct em_election;
/* Called in the election's thread once this replica won, before it counts
 * as leader (the new leader settles what the previous one left); < 0:
 * retried on the next tick. */
typedef int (*em_election_takeover_fn)(void *ud, em_error_t *err);

int em_election_start(struct em_etcd *etcd, const char *key, const char *id, int ttl_s,
                      em_election_takeover_fn takeover, void *ud, struct em_election **out,
                      em_error_t *err);
/* Stops the thread and resigns (revokes the lease: the others take over
 * at once). */
void em_election_stop(struct em_election *e);
bool em_election_leader(struct em_election *e);
/* The leader's id as last seen ("" if unknown) into buf. */
void em_election_holder(struct em_election *e, char *buf, size_t size);

#endif
