#include "migrate/common/resolve.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "migrate/common/journal.h"
#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

void em_resolve_opts_init(struct em_resolve_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->connect_timeout_ms = 5000;
        o->io_timeout_ms = EM_OUTCOME_LOCK_MS + 10000;
        o->attempts = 3;
        o->retry_ms = 1000;
        o->connect = em_session_connect;
}

void em_resolve_peer_free(struct em_resolve_peer *p)
{
        free(p->target);
        free(p->identity);
        p->target = p->identity = NULL;
}

int em_resolve_peer_save(const char *workdir, const char *target, const char *identity,
                         em_error_t *err)
{
        cleanup_free char *path = em_path_join(workdir, "target.json");
        cleanup_json json_t *j = json_pack("{s:s, s:s?}", "target", target, "identity", identity);

        if (path == NULL || j == NULL)
                return em_error_set(err, ENOMEM, "journal");
        return em_json_write_file(path, j, err);
}

int em_resolve_peer_load(const char *workdir, struct em_resolve_peer *p, em_error_t *err)
{
        cleanup_free char *path = em_path_join(workdir, "target.json");
        cleanup_json json_t *j = NULL;
        const char *t, *id;

        if (path == NULL || em_json_load_file(path, 4096, &j, err) < 0)
                return em_error_wrap(err, "the session's target");
        t = em_json_str(j, "target");
        id = em_json_str(j, "identity");
        if (t == NULL)
                return em_error_set(err, EINVAL, "%s names no target", path);
        p->target = strdup(t);
        p->identity = id ? strdup(id) : NULL;
        if (p->target == NULL || (id && p->identity == NULL))
                return em_error_set(err, ENOMEM, "journal");
        return 0;
}

/* The same target as the migration's, and authenticated the same way. */
static int connect_peer(const struct em_resolve_opts *o, const struct em_resolve_peer *p,
                        em_conn_t **conn, em_error_t *err)
{
        cleanup_free char *name = NULL;

        if (p->identity != NULL && o->tls == NULL)
                return em_error_set(err, EACCES,
                                    "the migration used mutual TLS: give this host's "
                                    "certificate (--tls-cert/--tls-key/--tls-ca, or <root>/pki)");
        if (o->connect(o->tls, p->target, o->connect_timeout_ms, conn, &name, err) < 0)
                return -1;
        if (p->identity != NULL && (name == NULL || strcasecmp(name, p->identity) != 0)) {
                em_conn_free(conn);
                return em_error_set(err, EACCES, "%s is now '%s', not the target '%s'", p->target,
                                    name ? name : "?", p->identity);
        }
        return 0;
}

static int exchange(em_conn_t *conn, const char *session, const char *decision,
                    enum em_outcome_state *state, em_error_t *err)
{
        cleanup_json json_t *req =
            json_pack("{s:s, s:s}", "session", session, "decision", decision);
        cleanup_json json_t *ans = NULL;
        const char *why;

        if (req == NULL)
                return em_error_set(err, ENOMEM, "OUTCOME");
        if (em_proto_send_json(conn, EM_FRAME_OUTCOME, req, err) < 0 ||
            em_proto_recv_json(conn, EM_FRAME_OUTCOME, &ans, err) < 0)
                return -1;
        if (strcmp(em_json_str(ans, "session") ? em_json_str(ans, "session") : "", session) != 0)
                return em_error_set(err, EPROTO, "OUTCOME answer for another session");
        *state = em_outcome_state_parse(em_json_str(ans, "state"));
        if (json_is_true(json_object_get(ans, "ok")))
                return 0;
        why = em_json_str(ans, "error");
        return em_error_set(err, EPERM, "the target refused to %s session %s: %s", decision,
                            session, why ? why : "no reason given");
}

int em_outcome_request(const struct em_resolve_opts *o, const struct em_resolve_peer *p,
                       const char *session, const char *decision, enum em_outcome_state *state,
                       em_error_t *err)
{
        cleanup_conn em_conn_t *conn = NULL;

        *state = EM_OUTCOME_UNKNOWN;
        if (em_fault("source.outcome", -1, err) < 0 || connect_peer(o, p, &conn, err) < 0)
                return em_error_wrap(err, "asking %s for the outcome of session %s", p->target,
                                     session);
        em_conn_set_timeout(conn, o->io_timeout_ms);
        if (exchange(conn, session, decision, state, err) < 0)
                return em_error_wrap(err, "asking %s for the outcome of session %s", p->target,
                                     session);
        return 0;
}

/* We decided to commit. A target that fenced the session (aborted: it has
 * no copy and never will) lets us restore ours after all; one that does
 * not know the session at all lost its record: a human must look. */
static int settle_commit(const struct em_resolve_opts *o, const struct em_resolve_peer *p,
                         const char *session, enum em_verdict *v, em_error_t *err)
{
        enum em_outcome_state st = EM_OUTCOME_UNKNOWN;

        if (em_outcome_request(o, p, session, "commit", &st, err) < 0) {
                if (em_error_status(*err) != EPERM)
                        return 0;
                if (st != EM_OUTCOME_ABORTED)
                        return -1;
                em_error_free(err);
                *v = EM_VERDICT_ABORT;
                return 1;
        }
        if (st != EM_OUTCOME_COMMITTED)
                return em_error_set(err, EPROTO, "the target answered a commit with %s",
                                    em_outcome_state_name(st));
        *v = EM_VERDICT_COMMIT;
        return 1;
}

/* One round of the decision. Returns 1 when settled, 0 when the target
 * could not be reached, -1 on a contradiction. */
static int settle_once(const struct em_resolve_opts *o, const struct em_resolve_peer *p,
                       const char *workdir, const char *session, enum em_verdict *v,
                       em_error_t *err)
{
        enum em_outcome_state st = EM_OUTCOME_UNKNOWN;
        bool committing = em_journal_has(workdir, "committing");

        if (!committing) {
                if (em_outcome_request(o, p, session, "query", &st, err) < 0)
                        return em_error_status(*err) == EPERM ? -1 : 0;
                if (st == EM_OUTCOME_RESTORED || st == EM_OUTCOME_COMMITTED) {
                        /* The target runs it: commit, and remember that we did. */
                        if (em_journal_write(workdir, "committing", session, err) < 0)
                                return -1;
                        committing = true;
                }
        }
        if (committing)
                return settle_commit(o, p, session, v, err);
        if (em_outcome_request(o, p, session, "abort", &st, err) < 0)
                return em_error_status(*err) == EPERM ? -1 : 0;
        if (st != EM_OUTCOME_ABORTED && st != EM_OUTCOME_UNKNOWN)
                return em_error_set(err, EPROTO, "the target answered an abort with %s",
                                    em_outcome_state_name(st));
        *v = EM_VERDICT_ABORT;
        return 1;
}

int em_resolve_session(const struct em_resolve_opts *o, const char *workdir, const char *session,
                       enum em_verdict *verdict, em_error_t *err)
{
        struct em_resolve_peer p = {0};
        em_error_t e = NULL;
        int r = 0;

        *verdict = EM_VERDICT_UNKNOWN;
        if (em_resolve_peer_load(workdir, &p, err) < 0)
                return -1;
        for (int i = 0; i < (o->attempts > 0 ? o->attempts : 1) && r == 0; i++) {
                if (i > 0)
                        poll(NULL, 0, o->retry_ms);
                em_error_free(&e);
                r = settle_once(o, &p, workdir, session, verdict, &e);
                if (r == 0)
                        em_log_warn("session %s in doubt: %s", session, em_error_msg(e));
        }
        em_resolve_peer_free(&p);
        if (r < 0) {
                em_error_move(err, &e);
                return -1;
        }
        em_error_free(&e);
        return 0;
}
