/* Control requests from the platform controller (see control.h). */
#include "platform/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/features.h"
#include "container/container.h"
#include "migrate/common/journal.h"
#include "migrate/common/resolve.h"
#include "migrate/common/proto.h"
#include "migrate/source/monitor.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"

/* How long a cancel waits for the migration to roll back. */
#define CANCEL_WAIT_MS 60000

bool em_control_allowed(const char *peer, const char *const *allow)
{
        const char *names[] = {peer, NULL};

        /* The rule the TLS handshake applies to --allow-peer names. */
        return peer != NULL && em_tls_name_match(names, allow) != NULL;
}

int em_migrate_outgoing(const struct em_config *cfg, const char *name,
                        const struct em_migrate_opts *o, json_t **report, em_error_t *err)
{
        cleanup_features struct em_features *f = NULL;

        /* Host features are a property of the host, not of this handoff:
         * make sure they are cached before the clock starts. */
        if (em_features_probe(cfg, true, &f, err) < 0)
                return -1;
        /* A previous migration whose process died is finished first; one
         * in doubt is asked about once, briefly (`edgemig recover` retries). */
        struct em_resolve_opts ro;
        em_resolve_opts_init(&ro);
        ro.tls = o->tls;
        ro.attempts = 1;
        ro.connect_timeout_ms = 2000;
        if (em_migrate_source_recover(cfg, &ro, err) < 0)
                return -1;
        return em_migrate_source_run(cfg, name, o, report, err);
}

static int send_reply(em_conn_t *conn, bool ok, const char *error, json_t *report, em_error_t *err)
{
        cleanup_json json_t *j = json_pack("{s:b}", "ok", ok);

        if (j == NULL || (error && json_object_set_new(j, "error", json_string(error)) < 0) ||
            (report && json_object_set(j, "report", report) < 0))
                return em_error_set(err, ENOMEM, "building the control reply");
        return em_proto_send_json(conn, EM_FRAME_CONTROL_REPLY, j, err);
}

/* Refuses with a logged reason; returns -1 with that reason in *err. */
static int refuse(em_conn_t *conn, const char *peer, em_error_t *err, const char *why)
{
        em_error_t e = NULL;

        em_log_warn("refused control request from %s (%s): %s", em_conn_peer(conn),
                    peer ? peer : "no certificate", why);
        if (send_reply(conn, false, why, NULL, &e) < 0) {
                em_log_warn("answering %s: %s", em_conn_peer(conn), em_error_msg(e));
                em_error_free(&e);
        }
        return em_error_set(err, EACCES, "control request from %s refused: %s", em_conn_peer(conn),
                            why);
}

static int outgoing_tls(const struct em_control_server *s, em_tls_ctx_t **tls, em_error_t *err)
{
        struct em_tls_config tc = {s->tls_ca, s->tls_cert, s->tls_key, s->allow_peers};

        if (!s->tls_cert || !s->tls_key || !s->tls_ca)
                return em_error_set(err, EINVAL,
                                    "this edgemigd has no TLS credentials for the outgoing "
                                    "migration (start it with --tls-cert/--tls-key/--tls-ca)");
        return em_tls_ctx_new(&tc, false, tls, err);
}

/* progress: true: each progress snapshot goes to the controller as a
 * CONTROL_REPLY {"progress": {...}} before the final one (best effort). */
static void send_progress(void *ud, const json_t *p)
{
        em_conn_t *conn = ud;
        cleanup_json json_t *j = json_pack("{s:O}", "progress", (json_t *)p);
        em_error_t e = NULL;

        if (j != NULL && em_proto_send_json(conn, EM_FRAME_CONTROL_REPLY, j, &e) < 0) {
                em_log_debug("progress to the controller: %s", em_error_msg(e));
                em_error_free(&e);
        }
}

static void steer(struct em_migrate_opts *o, const struct em_control_req *req, em_conn_t *conn)
{
        o->max_rate_bps = req->max_rate_bps;
        o->auto_converge = req->auto_converge;
        if (req->progress) {
                o->progress = send_progress;
                o->progress_ud = conn;
        }
}

/* Op cancel: `edgemig migrate --cancel SESSION` on this edge. */
static int serve_cancel(const struct em_config *cfg, em_conn_t *conn,
                        const struct em_control_req *req, em_error_t *err)
{
        cleanup_error em_error_t merr = NULL;
        cleanup_json json_t *report = NULL;
        int rc = em_migrate_cancel(cfg, req->session, CANCEL_WAIT_MS, &report, &merr);

        em_log_info("control request %lld: cancel %s: %s", req->id, req->session,
                    rc < 0 ? em_error_msg(merr) : "cancelled");
        if (send_reply(conn, rc == 0, rc < 0 ? em_error_msg(merr) : NULL, report, err) < 0)
                return em_error_wrap(err, "answering the controller %s", em_conn_peer(conn));
        if (rc < 0) {
                em_error_move(err, &merr);
                return -1;
        }
        return 0;
}

int em_control_serve(const struct em_config *cfg, em_conn_t *conn, const char *peer,
                     const struct em_frame *first, const struct em_control_server *s,
                     em_error_t *err)
{
        cleanup_error em_error_t perr = NULL;
        cleanup_error em_error_t merr = NULL;
        cleanup_tls_ctx em_tls_ctx_t *tls = NULL;
        cleanup_json json_t *report = NULL;
        struct em_control_req req;
        struct em_migrate_opts o;
        char why[512];

        if (first->hdr.type != EM_FRAME_CONTROL)
                return em_error_set(err, EPROTO, "protocol error: expected CONTROL, got %s",
                                    em_frame_type_name(first->hdr.type));
        if (peer == NULL)
                return refuse(conn, peer, err,
                              "control requests need mutual TLS (this edgemigd runs --insecure)");
        if (s->allow_controllers == NULL || s->allow_controllers[0] == NULL)
                return refuse(conn, peer, err,
                              "this edgemigd takes no control requests (start it with "
                              "--allow-controller NAME to let the controller NAME command "
                              "migrations)");
        if (!em_control_allowed(peer, s->allow_controllers)) {
                snprintf(why, sizeof(why),
                         "'%s' is not a controller of this edge (edgemigd --allow-controller)",
                         peer);
                return refuse(conn, peer, err, why);
        }
        if (em_control_req_parse((const char *)first->payload, first->length, &req, &perr) < 0)
                return refuse(conn, peer, err, em_error_msg(perr));
        if (req.op == EM_CONTROL_CANCEL)
                return serve_cancel(cfg, conn, &req, err);
        em_log_info("control request %lld from '%s': %s %s to %s (%s)", req.id, peer,
                    em_control_op_name(req.op), req.service, req.to,
                    em_migrate_mode_name(req.mode));
        em_migrate_opts_init(&o);
        o.target = req.to;
        o.mode = req.mode;
        o.route_hook = s->route_hook;
        steer(&o, &req, conn);
        if (s->io_timeout_ms > 0)
                o.io_timeout_ms = s->io_timeout_ms;
        int rc = outgoing_tls(s, &tls, &merr);
        if (rc == 0) {
                o.tls = tls;
                rc = em_migrate_outgoing(cfg, req.service, &o, &report, &merr);
        }
        if (rc < 0)
                em_log_error("control request %lld: %s", req.id, em_error_msg(merr));
        else
                em_log_info("control request %lld: %s %s to %s done", req.id,
                            em_control_op_name(req.op), req.service, req.to);
        if (send_reply(conn, rc == 0, rc < 0 ? em_error_msg(merr) : NULL, report, err) < 0)
                return em_error_wrap(err, "answering the controller %s", em_conn_peer(conn));
        if (rc < 0) {
                em_error_move(err, &merr);
                return -1;
        }
        return 0;
}
