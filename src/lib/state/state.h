/* The per-root state database (<root>/state.db, SQLite in WAL mode): one row
 * per container with its lifecycle state. Every transition is one
 * transaction that checks the state it moves from, so a crash leaves either
 * the old or the new state, never a mix, and two concurrent edgemig
 * invocations cannot both win the same transition. */
#ifndef EDGEMIG_STATE_STATE_H
#define EDGEMIG_STATE_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_STATE_SCHEMA_VERSION 4
/* Clear of podman's 10.88.0.0/16 (and its 10.89+ pools), Docker's 172.17+,
 * Kubernetes' and k3s' usual pod and service ranges. */
#define EM_DEFAULT_SUBNET "10.66.0.0/16"

enum em_cstate {
        EM_CSTATE_CREATED = 0, /* resources set up, process not started yet */
        EM_CSTATE_RUNNING,
        EM_CSTATE_STOPPED,
        EM_CSTATE_CHECKPOINTED, /* process state in a checkpoint, not running here */
        EM_CSTATE_MIGRATING,    /* a migration owns the container */
        EM_CSTATE__COUNT
};
#define EM_CSTATE_BIT(s) (1u << (s))
#define EM_CSTATE_ANY    ((1u << EM_CSTATE__COUNT) - 1)

const char *em_cstate_name(enum em_cstate s);
/* -1 for an unknown name. */
int em_cstate_parse(const char *name);

/* A container's host ID range: ids 0..size-1 inside its user namespace are
 * host ids base..base+size-1 outside. size 0: no range (the host's ids). */
struct em_idrange {
        uint32_t base, size;
};

/* Where a host takes ranges from: `slots` ranges of `size` ids from `first`. */
struct em_idpool {
        uint32_t first, slots, size;
};

struct em_container_rec {
        char *name;
        char *image;        /* reference as given by the user */
        char *image_digest; /* manifest digest, sha256:… */
        char *ip;           /* service IPv4 address (no prefix length) */
        char *spec;         /* JSON: run options (env, cmd, memory, cpus, diff_ids) */
        enum em_cstate state;
        int pid;                                     /* container init pid on the host, 0 if none */
        int exit_code;                               /* -1 if unknown */
        int64_t created_at, started_at, finished_at; /* unix ms, 0 if never */
        struct em_idrange ids;                       /* its host ID range, size 0 if none */
        bool stopped_by_user; /* last stopped by `edgemig stop`, not died; cleared on RUNNING */
        /* Insert only: no address of its own (a pod member: the pod's infra
         * container holds the pod's service IP; container/pod.h). */
        bool no_ip;
};
void em_container_rec_free(struct em_container_rec **r);
#define cleanup_container_rec __attribute__((cleanup(em_container_rec_free)))
void em_container_rec_list_free(struct em_container_rec ***v, size_t n);

struct em_state;

/* Opens (creating and migrating the schema if needed) <root>/state.db. */
int em_state_open(const char *root, struct em_state **out, em_error_t *err);
/* Same with an explicit database file (tests). */
int em_state_open_path(const char *path, struct em_state **out, em_error_t *err);
void em_state_close(struct em_state **st);
#define cleanup_state __attribute__((cleanup(em_state_close)))

int em_state_schema_version(struct em_state *st, int *version, em_error_t *err);

/* Inserts a new container. When rec->ip is NULL (and not rec->no_ip), the lowest free address of
 * `subnet` (CIDR; NULL → EM_DEFAULT_SUBNET) is allocated in the same
 * transaction and stored into rec->ip. EEXIST if the name or the IP is taken
 * (by a container or a reservation for another name). */
int em_state_container_insert(struct em_state *st, struct em_container_rec *rec, const char *subnet,
                              em_error_t *err);
/* ENOENT if absent. */
int em_state_container_get(struct em_state *st, const char *name, struct em_container_rec **out,
                           em_error_t *err);
/* All containers ordered by name. */
int em_state_container_list(struct em_state *st, struct em_container_rec ***out, size_t *n,
                            em_error_t *err);
/* Moves `name` to state `to` if its current state is in `from_mask`
 * (EM_CSTATE_BIT()s); EBUSY (message names the current state) otherwise.
 * pid is stored as given; entering RUNNING stamps started_at (and clears
 * exit_code and stopped_by_user), leaving it for
 * STOPPED stamps finished_at. `prev` (may be NULL) receives the old state. */
int em_state_container_transition(struct em_state *st, const char *name, unsigned from_mask,
                                  enum em_cstate to, int pid, enum em_cstate *prev,
                                  em_error_t *err);
/* Marks a stop requested through edgemig (restart policies leave it alone). */
int em_state_container_set_stopped_by_user(struct em_state *st, const char *name, bool by_user,
                                           em_error_t *err);
int em_state_container_set_exit(struct em_state *st, const char *name, int exit_code,
                                em_error_t *err);
int em_state_container_delete(struct em_state *st, const char *name, em_error_t *err);

/* Gives container `name` (which must exist) a range of `pool` that overlaps
 * no other container's, in one transaction, and stores it in its row:
 * `preferred` if it is a free slot of the pool (a migration keeps the
 * source's range where it can), else a slot chosen by a hash of the name
 * (so hosts tend to agree on it), else the next free one. A container that
 * already has a range of this pool keeps it. ENOSPC when the pool is full. */
int em_state_idrange_allocate(struct em_state *st, const char *name, const struct em_idpool *pool,
                              const struct em_idrange *preferred, struct em_idrange *out,
                              em_error_t *err);
/* True if r is one slot of pool. */
bool em_idpool_has_slot(const struct em_idpool *pool, const struct em_idrange *r);

/* Lowest free host address of subnet (skipping the network address, .1 and
 * the broadcast address) not used by any container row or reservation.
 * A full subnet reclaims the oldest reservation in it that is older than
 * EM_IP_RESERVATION_MIN_AGE_MS (logged as a warning naming it): a read
 * here, committed by em_state_container_insert's automatic allocation. */
int em_state_ip_allocate(struct em_state *st, const char *subnet, char **out, em_error_t *err);
/* Service IPs of containers that migrated away stay reserved here, so this
 * host never hands one out again while the container runs elsewhere (and
 * the container takes it back if it returns): allocation skips them and an
 * insert of another container with that address fails with EEXIST. They
 * are pruned only when the range runs out (above), oldest first and not
 * before this age: a reservation costs nothing until its address is
 * needed, and dropping it while its container still runs elsewhere would
 * let two hosts announce one address (docs/network.md). */
#define EM_IP_RESERVATION_MIN_AGE_MS (7LL * 24 * 3600 * 1000)
int em_state_ip_reserve(struct em_state *st, const char *ip, const char *name, em_error_t *err);
/* [{"ip", "container", "since_ms"}] ordered by address. */
int em_state_ip_reservations(struct em_state *st, json_t **out, em_error_t *err);
/* ENOENT if ip is not reserved. */
int em_state_ip_release(struct em_state *st, const char *ip, em_error_t *err);
/* Who uses ip here: a container (*reserved false) or a reservation (true);
 * *name NULL if nobody. */
int em_state_ip_owner(struct em_state *st, const char *ip, char **name, bool *reserved,
                      em_error_t *err);
/* Parses "a.b.c.d/len" into host-order network and prefix length. */
int em_ipv4_cidr_parse(const char *cidr, uint32_t *net, int *len, em_error_t *err);

#endif
