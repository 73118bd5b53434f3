/* Admission control for the edge's server (platform/server.c): which
 * accepted connection gets a session child. Each child costs a fork and,
 * before TLS has said who the peer is, up to the handshake's 10 s, so
 * without limits a flood of connections forks without bound. The limits:
 * live children in all, live children per peer address (so one peer host,
 * authenticated or not, cannot take every slot), a token bucket on new
 * children per second, and a deadline on a child's whole life. Pure
 * bookkeeping: the caller accepts, forks, reaps and kills. */
#ifndef EDGEMIG_PLATFORM_ADMISSION_H
#define EDGEMIG_PLATFORM_ADMISSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct em_admission_limits {
        int max_children;    /* live sessions and connections in all (default 64) */
        int max_per_addr;    /* of them from one peer address (default 8) */
        int rate;            /* new children a second, bursts of twice that (default 20) */
        int64_t deadline_ms; /* a session's whole life (default 1 h; 0: none) */
        /* Migration sessions of one peer identity at once (default 4); the
         * session child enforces it once TLS named the peer
         * (migrate/common/session.h em_session_peer_slot). */
        int max_sessions_per_peer;
};
void em_admission_limits_init(struct em_admission_limits *l);

typedef struct em_admission em_admission_t;
int em_admission_new(const struct em_admission_limits *l, em_admission_t **out, em_error_t *err);
void em_admission_free(em_admission_t **a);
#define cleanup_admission __attribute__((cleanup(em_admission_free)))

/* Whether a connection from peer ("IP:PORT" or "[IPv6]:PORT", as
 * em_conn_peer gives it) may have a child now: NULL if so, else which limit
 * refuses it ("connections", "per-peer" or "rate"). Admitting takes a token. */
const char *em_admission_check(em_admission_t *a, const char *peer, int64_t now_ms);
/* Records the child forked for an admitted connection. */
void em_admission_add(em_admission_t *a, pid_t pid, const char *peer, int64_t now_ms);
/* Forgets a reaped child (unknown pids are ignored). */
void em_admission_remove(em_admission_t *a, pid_t pid);
/* A child past its deadline, once each (0: none); *peer its address. */
pid_t em_admission_overdue(em_admission_t *a, int64_t now_ms, const char **peer);
size_t em_admission_count(const em_admission_t *a);

#endif
