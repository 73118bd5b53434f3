/* The requesting side of a control request (control_client.h). */
#include "platform/control_client.h"

#include <errno.h>

#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/json.h"

int em_control_exchange(em_conn_t *conn, const struct em_control_req *req, int timeout_ms,
                        json_t **reply, em_error_t *err)
{
        cleanup_json json_t *j = em_control_req_json(req);
        const char *peer = em_conn_identity(conn);

        if (j == NULL)
                return em_error_set(err, ENOMEM, "building the control request");
        em_conn_set_timeout(conn, timeout_ms);
        if (em_proto_send_json(conn, EM_FRAME_CONTROL, j, err) < 0 ||
            em_proto_recv_json(conn, EM_FRAME_CONTROL_REPLY, reply, err) < 0)
                return em_error_wrap(err, "control request to '%s' at %s", peer ? peer : "?",
                                     em_conn_peer(conn));
        return 0;
}
