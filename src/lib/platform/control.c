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
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"

static const char *const op_names[] = {"migrate", "prepare"};

const char *em_control_op_name(enum em_control_op op)
{
        return (size_t)op < sizeof(op_names) / sizeof(op_names[0]) ? op_names[op] : "?";
}

static int parse_op(const char *s, enum em_control_op *op, em_error_t *err)
{
        for (size_t i = 0; s && i < sizeof(op_names) / sizeof(op_names[0]); i++) {
                if (strcmp(s, op_names[i]) == 0) {
                        *op = (enum em_control_op)i;
                        return 0;
                }
        }
        return em_error_set(err, EINVAL,
                            "control request: \"op\" must be \"migrate\" or "
                            "\"prepare\"");
}

static int check_keys(const json_t *j, em_error_t *err)
{
        static const char *const known[] = {"op", "service", "to", "mode", "id"};
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)j, key, v)
        {
                bool ok = false;
                for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                        ok = ok || strcmp(key, known[i]) == 0;
                if (!ok)
                        return em_error_set(err, EINVAL,
                                            "control request: unknown field \"%.64s\" (known: op, "
                                            "service, to, mode, id)",
                                            key);
        }
        return 0;
}

int em_control_req_parse(const char *buf, size_t len, struct em_control_req *out, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        cleanup_free char *host = NULL, *port = NULL;
        const char *service, *to, *mode;
        json_t *id;

        memset(out, 0, sizeof(*out));
        if (len > EM_CONTROL_MAX_LEN)
                return em_error_set(err, EMSGSIZE, "control request of %zu bytes (at most %d)", len,
                                    EM_CONTROL_MAX_LEN);
        if (em_json_parse(buf, len, "control request", &j, err) < 0)
                return -1;
        if (!json_is_object(j))
                return em_error_set(err, EINVAL, "control request is not a JSON object");
        if (check_keys(j, err) < 0 || parse_op(em_json_str(j, "op"), &out->op, err) < 0)
                return -1;
        service = em_json_str(j, "service");
        if (service == NULL || strlen(service) > EM_CONTAINER_NAME_MAX ||
            !em_container_name_valid(service))
                return em_error_set(err, EINVAL,
                                    "control request: \"service\" must be a container name "
                                    "([A-Za-z0-9_.-], at most %d)",
                                    EM_CONTAINER_NAME_MAX);
        snprintf(out->service, sizeof(out->service), "%s", service);
        to = em_json_str(j, "to");
        if (to == NULL || strlen(to) > EM_CONTROL_ADDR_MAX || strpbrk(to, " \t\r\n") ||
            em_hostport_parse(to, &host, &port, err) < 0)
                return em_error_wrap(err, "control request: \"to\" must be the target's "
                                          "edgemigd as ADDR:PORT");
        snprintf(out->to, sizeof(out->to), "%s", to);
        mode = em_json_str(j, "mode");
        if (json_object_get(j, "mode") != NULL && mode == NULL)
                return em_error_set(err, EINVAL, "control request: \"mode\" must be a string");
        if (out->op == EM_CONTROL_PREPARE) {
                if (mode != NULL)
                        return em_error_set(err, EINVAL,
                                            "control request: \"mode\" applies to migrate only");
                out->mode = EM_MIGRATE_PREPARE;
        } else if (mode == NULL) {
                out->mode = EM_MIGRATE_PRECOPY;
        } else if (em_migrate_mode_parse(mode, &out->mode, err) < 0) {
                return em_error_wrap(err, "control request");
        } else if (out->mode == EM_MIGRATE_PREPARE) {
                return em_error_set(err, EINVAL,
                                    "control request: use \"op\": \"prepare\", not a mode");
        }
        id = json_object_get(j, "id");
        if (id != NULL && (!json_is_integer(id) || json_integer_value(id) < 0))
                return em_error_set(err, EINVAL,
                                    "control request: \"id\" must be a non-negative integer");
        out->id = id ? (long long)json_integer_value(id) : 0;
        return 0;
}

json_t *em_control_req_json(const struct em_control_req *req)
{
        json_t *j = json_pack("{s:s, s:s, s:s}", "op", em_control_op_name(req->op), "service",
                              req->service, "to", req->to);

        if (j == NULL)
                return NULL;
        if (req->op == EM_CONTROL_MIGRATE &&
            json_object_set_new(j, "mode", json_string(em_migrate_mode_name(req->mode))) < 0)
                goto fail;
        if (req->id > 0 && json_object_set_new(j, "id", json_integer(req->id)) < 0)
                goto fail;
        return j;
fail:
        json_decref(j);
        return NULL;
}

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
        em_log_info("control request %lld from '%s': %s %s to %s (%s)", req.id, peer,
                    em_control_op_name(req.op), req.service, req.to,
                    em_migrate_mode_name(req.mode));
        em_migrate_opts_init(&o);
        o.target = req.to;
        o.mode = req.mode;
        o.route_hook = s->route_hook;
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

int em_control_request(em_tls_ctx_t *tls, const char *addr, const struct em_control_req *req,
                       int timeout_ms, json_t **reply, em_error_t *err)
{
        cleanup_conn em_conn_t *conn = NULL;
        cleanup_free char *peer = NULL;
        cleanup_json json_t *j = em_control_req_json(req);

        if (j == NULL)
                return em_error_set(err, ENOMEM, "building the control request");
        if (tls == NULL)
                return em_error_set(err, EINVAL,
                                    "control requests need mutual TLS: the controller needs "
                                    "--tls-cert/--tls-key/--tls-ca");
        if (em_tls_connect(tls, addr, 10000, &conn, &peer, err) < 0)
                return em_error_wrap(err, "connecting to edgemigd at %s", addr);
        em_conn_set_timeout(conn, timeout_ms);
        if (em_proto_send_json(conn, EM_FRAME_CONTROL, j, err) < 0 ||
            em_proto_recv_json(conn, EM_FRAME_CONTROL_REPLY, reply, err) < 0)
                return em_error_wrap(err, "control request to '%s' at %s", peer, addr);
        return 0;
}
