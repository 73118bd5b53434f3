/* The requesting side of a control request (control_client.h). */
#include "platform/control_client.h"

#include <errno.h>

#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"

/* Reads CONTROL_REPLY frames until the final one (no "progress" key),
 * handing each progress object to fn, all by the deadline. */
static int await_reply(em_conn_t *conn, int64_t deadline, em_control_progress_fn fn, void *ud,
                       json_t **reply, em_error_t *err)
{
        for (;;) {
                int64_t left = deadline - em_mono_ms();
                cleanup_json json_t *j = NULL;
                if (left <= 0)
                        return em_error_set(err, ETIMEDOUT, "no answer in time");
                em_conn_set_timeout(conn, (int)left);
                if (em_proto_recv_json(conn, EM_FRAME_CONTROL_REPLY, &j, err) < 0)
                        return -1;
                json_t *p = json_object_get(j, "progress");
                if (p == NULL) {
                        *reply = steal_pointer(&j);
                        return 0;
                }
                if (fn != NULL && json_is_object(p))
                        fn(ud, p);
        }
}

int em_control_exchange(em_conn_t *conn, const struct em_control_req *req, int timeout_ms,
                        json_t **reply, em_error_t *err)
{
        return em_control_exchange_progress(conn, req, timeout_ms, NULL, NULL, reply, err);
}

int em_control_exchange_progress(em_conn_t *conn, const struct em_control_req *req, int timeout_ms,
                                 em_control_progress_fn fn, void *ud, json_t **reply,
                                 em_error_t *err)
{
        cleanup_json json_t *j = em_control_req_json(req);
        const char *peer = em_conn_identity(conn);

        if (j == NULL)
                return em_error_set(err, ENOMEM, "building the control request");
        em_conn_set_timeout(conn, timeout_ms);
        if (em_proto_send_json(conn, EM_FRAME_CONTROL, j, err) < 0 ||
            await_reply(conn, em_mono_ms() + timeout_ms, fn, ud, reply, err) < 0)
                return em_error_wrap(err, "control request to '%s' at %s", peer ? peer : "?",
                                     em_conn_peer(conn));
        return 0;
}
