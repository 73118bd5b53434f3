/* The controller's side of a control request (control_client.h). */
#include "platform/control_client.h"

#include <errno.h>

#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/json.h"

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
