/* The CONTROL request as data: parsed strictly on the edge, built by the
 * controller and `edgemig control` (see control_req.h). */
#include "platform/control_req.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/container.h"
#include "transfer/conn.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char *const op_names[] = {"migrate", "prepare", "cancel"};

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
                            "control request: \"op\" must be \"migrate\", \"prepare\" or "
                            "\"cancel\"");
}

static int check_keys(const json_t *j, em_error_t *err)
{
        static const char *const known[] = {
            "op",           "service",       "to",       "mode",   "id",
            "max_rate_bps", "auto_converge", "progress", "session"};
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
                                            "service, to, mode, id, max_rate_bps, "
                                            "auto_converge, progress, session)",
                                            key);
        }
        return 0;
}

static int parse_id(const json_t *j, struct em_control_req *out, em_error_t *err)
{
        json_t *id = json_object_get(j, "id");

        if (id != NULL && (!json_is_integer(id) || json_integer_value(id) < 0))
                return em_error_set(err, EINVAL,
                                    "control request: \"id\" must be a non-negative integer");
        out->id = id ? (long long)json_integer_value(id) : 0;
        return 0;
}

/* Op cancel: the session, and the id (parsed by the caller); no other key. */
static int parse_cancel(const json_t *j, struct em_control_req *out, em_error_t *err)
{
        const char *session = em_json_str(j, "session");
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)j, key, v)
        {
                if (strcmp(key, "op") != 0 && strcmp(key, "session") != 0 && strcmp(key, "id") != 0)
                        return em_error_set(err, EINVAL,
                                            "control request: \"%.64s\" does not apply to cancel",
                                            key);
        }
        if (session == NULL || strlen(session) != 32 || strspn(session, "0123456789abcdef") != 32)
                return em_error_set(err, EINVAL,
                                    "control request: \"session\" must be a session id (32 hex "
                                    "digits)");
        memcpy(out->session, session, 33);
        return 0;
}

/* max_rate_bps, auto_converge (migrate only) and progress. */
static int parse_steering(const json_t *j, struct em_control_req *out, em_error_t *err)
{
        json_t *rate = json_object_get(j, "max_rate_bps"),
               *ac = json_object_get(j, "auto_converge");
        json_t *pr = json_object_get(j, "progress");

        if (json_object_get(j, "session") != NULL)
                return em_error_set(err, EINVAL,
                                    "control request: \"session\" applies to cancel only");
        if ((rate || ac) && out->op != EM_CONTROL_MIGRATE)
                return em_error_set(err, EINVAL,
                                    "control request: \"max_rate_bps\" and \"auto_converge\" "
                                    "apply to migrate only");
        if (rate && (!json_is_integer(rate) || json_integer_value(rate) < 8000 ||
                     json_integer_value(rate) > 1000000000000000LL))
                return em_error_set(err, EINVAL,
                                    "control request: \"max_rate_bps\" must be an integer of "
                                    "8000 to 10^15 (bit/s)");
        if ((ac && !json_is_boolean(ac)) || (pr && !json_is_boolean(pr)))
                return em_error_set(err, EINVAL,
                                    "control request: \"auto_converge\" and \"progress\" are "
                                    "true or false");
        out->max_rate_bps = rate ? (unsigned long long)json_integer_value(rate) : 0;
        out->auto_converge = json_is_true(ac);
        out->progress = json_is_true(pr);
        return 0;
}

int em_control_req_parse(const char *buf, size_t len, struct em_control_req *out, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        cleanup_free char *host = NULL, *port = NULL;
        const char *service, *to, *mode;

        memset(out, 0, sizeof(*out));
        if (len > EM_CONTROL_MAX_LEN)
                return em_error_set(err, EMSGSIZE, "control request of %zu bytes (at most %d)", len,
                                    EM_CONTROL_MAX_LEN);
        if (em_json_parse(buf, len, "control request", &j, err) < 0)
                return -1;
        if (!json_is_object(j))
                return em_error_set(err, EINVAL, "control request is not a JSON object");
        if (check_keys(j, err) < 0 || parse_op(em_json_str(j, "op"), &out->op, err) < 0 ||
            parse_id(j, out, err) < 0)
                return -1;
        if (out->op == EM_CONTROL_CANCEL)
                return parse_cancel(j, out, err);
        if (parse_steering(j, out, err) < 0)
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
        return 0;
}

static json_t *cancel_json(const struct em_control_req *req)
{
        json_t *j = json_pack("{s:s, s:s}", "op", "cancel", "session", req->session);

        if (j != NULL && req->id > 0 && json_object_set_new(j, "id", json_integer(req->id)) < 0)
                json_decref(steal_pointer(&j));
        return j;
}

/* The optional keys of migrate and prepare; -1 on out of memory. */
static int steering_json(json_t *j, const struct em_control_req *req)
{
        if (req->max_rate_bps &&
            json_object_set_new(j, "max_rate_bps", json_integer((json_int_t)req->max_rate_bps)) < 0)
                return -1;
        if (req->auto_converge && json_object_set_new(j, "auto_converge", json_true()) < 0)
                return -1;
        if (req->progress && json_object_set_new(j, "progress", json_true()) < 0)
                return -1;
        return 0;
}

json_t *em_control_req_json(const struct em_control_req *req)
{
        if (req->op == EM_CONTROL_CANCEL)
                return cancel_json(req);
        json_t *j = json_pack("{s:s, s:s, s:s}", "op", em_control_op_name(req->op), "service",
                              req->service, "to", req->to);

        if (j == NULL || steering_json(j, req) < 0) {
                json_decref(j);
                return NULL;
        }
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
