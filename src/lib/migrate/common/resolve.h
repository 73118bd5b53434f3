/* The source settles a migration that is in doubt (FINAL went out, no
 * acknowledged commit came back) by asking the target for the session's
 * outcome on a fresh mutually authenticated connection (OUTCOME frame,
 * migrate/common/outcome.h). The source is the coordinator:
 *   - it journalled "committing" (it decided to commit): commit;
 *   - otherwise the target runs a restored copy: journal "committing", commit;
 *   - otherwise: abort, and only once the target acknowledged the abort
 *     (and removed any copy) restore here;
 *   - a target that fenced a session we decided to commit (aborted: no copy
 *     there, ever) lets us restore here too.
 * A target that cannot be reached leaves the session in doubt: the
 * checkpoint stays in <root>/outgoing/<session>/, nothing runs here, and
 * `edgemig recover` retries (or `--keep-local` when the target is gone). */
#ifndef EDGEMIG_MIGRATE_RESOLVE_H
#define EDGEMIG_MIGRATE_RESOLVE_H

#include <stdbool.h>

#include "migrate/common/outcome.h"
#include "migrate/common/session.h"
#include "transfer/tls.h"
#include "util/error.h"

/* How to reach the target again. */
struct em_resolve_opts {
        em_tls_ctx_t *tls; /* client context; NULL: plain TCP (only if the migration was) */
        int connect_timeout_ms;
        int io_timeout_ms;
        int attempts; /* connections tried before giving up (>= 1) */
        int retry_ms; /* pause between them */
        /* How to connect (em_resolve_opts_init: em_session_connect); the
         * source's engine passes its own seam (em_source_ops.connect). */
        em_session_connect_fn connect;
        /* Recovery runs `route_hook announce IP` after restoring a kept
         * copy here and `route_hook withdraw IP` after dropping one that
         * was handed over (NULL: none). */
        const char *route_hook;
};
void em_resolve_opts_init(struct em_resolve_opts *o);

/* Who the target of an outgoing session is: <workdir>/target.json. */
struct em_resolve_peer {
        char *target;   /* HOST:PORT */
        char *identity; /* its certificate's name, NULL without TLS */
};
void em_resolve_peer_free(struct em_resolve_peer *p);
int em_resolve_peer_save(const char *workdir, const char *target, const char *identity,
                         em_error_t *err);
int em_resolve_peer_load(const char *workdir, struct em_resolve_peer *p, em_error_t *err);

/* One OUTCOME exchange: decision "query", "commit" or "abort"; *state gets
 * the target's answer. A refusal is an error with status EPERM (*state is
 * still set); an unreachable target any other status. */
int em_outcome_request(const struct em_resolve_opts *o, const struct em_resolve_peer *p,
                       const char *session, const char *decision, enum em_outcome_state *state,
                       em_error_t *err);

enum em_verdict {
        EM_VERDICT_COMMIT,  /* the target owns the service: drop the copy here */
        EM_VERDICT_ABORT,   /* the target has no copy and never will: restore here */
        EM_VERDICT_UNKNOWN, /* the target could not be reached: keep the checkpoint */
};

/* Settles session (journal in workdir) with the target, retrying per o.
 * Writes "committing" before any commit. Returns 0 with the verdict, or -1
 * when the target's answer contradicts the journal (a commit we decided on,
 * for a session the target does not know; or a peer that refuses us): a
 * human must look, the error says what. */
int em_resolve_session(const struct em_resolve_opts *o, const char *workdir, const char *session,
                       enum em_verdict *verdict, em_error_t *err);

#endif
