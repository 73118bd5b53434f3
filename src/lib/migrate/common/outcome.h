/* The target's outcome record of each migration session it accepted, in
 * <root>/outcomes/<session>.json (rewritten atomically) next to
 * <root>/outcomes/<session>.lock (created once, never replaced; flock-held
 * while a decision is taken). The record is bound to the peer identity
 * that opened the session and outlives the session's staging directory,
 * so a source that lost the end of the conversation can ask later
 * (OUTCOME frame, migrate/common/resolve.h) and the answer never changes:
 *
 *   staging --> restoring --> restored --> committed
 *      \            \             \
 *       +------------+-------------+-----> aborted
 *
 * "restored" without "committed" is a session in doubt: its container runs
 * here and stays until the source commits or aborts. "aborted" fences the
 * session: a later commit is refused. docs/protocol.md, "Commit rule and failure handling". */
#ifndef EDGEMIG_MIGRATE_OUTCOME_H
#define EDGEMIG_MIGRATE_OUTCOME_H

/* In a pod session's staging directory: the member names it reserved,
 * one a line (migrate/target/pod_target.h), for an abort after a crash. */
#define EM_OUTCOME_MEMBERS "pod-members"
/* And the named volumes it moves into <root>/volumes for the restore,
 * written before it does with the identity of each copy
 * (migrate/common/volume_sync.h em_volume_rx_list), for an abort after a
 * crash to remove those it moved (the source keeps its own copy). */
#define EM_OUTCOME_VOLUMES "pod-volumes"

#include <stdbool.h>

#include "container/container.h"
#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

enum em_outcome_state {
        EM_OUTCOME_UNKNOWN = 0, /* no record: the session never reached HELLO_ACK here */
        EM_OUTCOME_STAGING,
        EM_OUTCOME_RESTORING,
        EM_OUTCOME_RESTORED,
        EM_OUTCOME_COMMITTED,
        EM_OUTCOME_ABORTED,
};
const char *em_outcome_state_name(enum em_outcome_state s);
enum em_outcome_state em_outcome_state_parse(const char *s);

#define EM_OUTCOME_PEER_MAX 255

struct em_outcome {
        char session[33];
        char container[EM_NAME_MAX + 1];
        char peer[EM_OUTCOME_PEER_MAX + 1]; /* TLS identity; "" without TLS */
        enum em_outcome_state state;
};

/* True for 32 lowercase hex digits (a session id as the records name it). */
bool em_outcome_session_valid(const char *session);

/* A new record in state staging; EEXIST if the session id was used before
 * (a second connection with the same session is refused). */
int em_outcome_create(const char *root, const struct em_outcome *o, em_error_t *err);
/* Removes a record that never became a session (a refused HELLO). */
void em_outcome_drop(const char *root, const char *session);
/* Takes the session's decision lock, waiting up to timeout_ms (ENOENT: no
 * such session, ETIMEDOUT: still held). *fd holds it until closed. */
int em_outcome_lock(const char *root, const char *session, int timeout_ms, int *fd,
                    em_error_t *err);
/* Reads the record (ENOENT if none). */
int em_outcome_load(const char *root, const char *session, struct em_outcome *o, em_error_t *err);
/* Writes o->state (call with the lock held). */
int em_outcome_store(const char *root, const struct em_outcome *o, em_error_t *err);
/* Moves the session's record from `from` to `to`, the decision lock held
 * by the caller: ECANCELED when the source aborted the session meanwhile
 * (OUTCOME abort fences the restore), EPROTO when it is in any other
 * state than `from`. */
int em_outcome_advance(const char *root, const char *session, enum em_outcome_state from,
                       enum em_outcome_state to, em_error_t *err);
/* Moves the record to aborted and removes what the session left: its
 * container if it was restored (after `route_hook withdraw IP`, when
 * route_hook is not NULL: a restored copy may have announced its service
 * IP), or the name it reserved (containers/<name>, created at HELLO) if
 * nothing was restored into it; and the names of a pod session's members
 * listed in its staging directory's EM_OUTCOME_MEMBERS that have no
 * container record (reserved, or staged but not restored), and the named
 * volumes listed in its EM_OUTCOME_VOLUMES that it installed (the listed
 * copy, not another volume of that name) and no container here mounts
 * any more. Lock held. */
int em_outcome_abort(const struct em_config *cfg, struct em_outcome *o, const char *route_hook,
                     em_error_t *err);
/* True for a restored session whose container is no longer here (an
 * operator removed it): there is no copy left to commit. */
bool em_outcome_copy_gone(const struct em_config *cfg, const struct em_outcome *o);
/* Calls fn for every record (lock not taken). */
typedef void (*em_outcome_fn)(const struct em_outcome *o, void *ud);
int em_outcome_each(const char *root, em_outcome_fn fn, void *ud, em_error_t *err);

/* How long an OUTCOME request waits for a session's decision lock: a
 * restore holds it. */
#define EM_OUTCOME_LOCK_MS 60000

/* edgemigd's side of an OUTCOME request (first frame f, already received):
 * {"session": HEX, "decision": "query"|"commit"|"abort"} from the peer
 * identity that owns the session; answers OUTCOME {"session", "state",
 * "container", "ok", "error"?}. */
int em_outcome_serve(const struct em_config *cfg, em_conn_t *conn, const char *peer,
                     const char *route_hook, const struct em_frame *f, em_error_t *err);

#endif
