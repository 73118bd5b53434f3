/* The CONTROL request (control.h describes the exchange). */
#ifndef EDGEMIG_PLATFORM_CONTROL_REQ_H
#define EDGEMIG_PLATFORM_CONTROL_REQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "migrate/common/mode.h"
#include "transfer/handshake.h"
#include "util/error.h"

#define EM_CONTROL_MAX_LEN  4096
#define EM_CONTROL_ADDR_MAX 255

enum em_control_op {
        EM_CONTROL_MIGRATE = 0,
        EM_CONTROL_PREPARE,
        EM_CONTROL_CANCEL, /* `edgemig migrate --cancel SESSION` on the edge */
};
const char *em_control_op_name(enum em_control_op op);

struct em_control_req {
        enum em_control_op op;
        char service[EM_CONTAINER_NAME_MAX + 1];
        char to[EM_CONTROL_ADDR_MAX + 1]; /* the target's edgemigd, HOST:PORT */
        enum em_migrate_mode mode;        /* EM_MIGRATE_PREPARE for op prepare */
        long long id;                     /* controller's action id (logs); 0: none */
        unsigned long long max_rate_bps;  /* migrate: --max-rate (bit/s); 0: none */
        bool auto_converge;               /* migrate: --auto-converge */
        bool progress;                    /* migrate/prepare: send progress replies */
        char session[33];                 /* cancel: the session id */
};

/* Parses and validates a CONTROL payload strictly (the sender is untrusted
 * until its name is checked, and a typo must not become a different
 * migration): a JSON object of at most EM_CONTROL_MAX_LEN bytes with only
 * the keys above; op known; service a valid container name; to HOST:PORT;
 * mode known, only with migrate, never "prepare"; "max_rate_bps" an integer
 * of 8000 to 10^15 and "auto_converge" a boolean, with migrate only;
 * "progress" a boolean. Op "cancel" takes "session" (32 lowercase hex
 * digits) and "id", nothing else. */
int em_control_req_parse(const char *buf, size_t len, struct em_control_req *out, em_error_t *err);
/* The CONTROL payload for req (new reference). */
json_t *em_control_req_json(const struct em_control_req *req);

#endif
