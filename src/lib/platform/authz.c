/* The controller's authorization decision (authz.h). */
#include "platform/authz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "transfer/tls.h"

#define EDGES     "/edges"
#define HEARTBEAT "/heartbeat"

/* "/edges/NAME/heartbeat" → NAME (not terminated: *len bytes), as the
 * controller's router reads it; false for any other path. */
static bool heartbeat_edge(const char *path, const char **name, size_t *len)
{
        size_t pl = strlen(EDGES "/"), sl = strlen(HEARTBEAT), n = strlen(path);

        if (n <= pl + sl || strncmp(path, EDGES "/", pl) != 0 ||
            strcmp(path + n - sl, HEARTBEAT) != 0)
                return false;
        *name = path + pl;
        *len = n - pl - sl;
        return true;
}

static bool names_edge(const char *const *names, const char *edge, size_t len)
{
        char buf[256];

        if (len == 0 || len >= sizeof(buf) || memchr(edge, '\0', len) != NULL)
                return false;
        memcpy(buf, edge, len);
        buf[len] = '\0';
        const char *const one[] = {buf, NULL};
        return em_tls_name_match(names, one) != NULL;
}

int em_authz_check(const char *const *admins, const struct em_authz_request *rq, em_error_t *err)
{
        const char *who = rq->names && rq->names[0] ? rq->names[0] : "?";
        const char *edge = NULL;
        size_t len = 0;

        if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)
                return EM_AUTHZ_ALLOW;
        if (em_tls_name_match(rq->names, admins) != NULL)
                return EM_AUTHZ_ALLOW;
        bool post = strcmp(rq->method, "POST") == 0;
        if (post && strcmp(rq->path, EDGES) == 0) {
                if (rq->body_edge == NULL)
                        return EM_AUTHZ_NEEDS_BODY;
                if (names_edge(rq->names, rq->body_edge, strlen(rq->body_edge)))
                        return EM_AUTHZ_ALLOW;
                return em_error_set_code(
                    err, EACCES,
                    "certificate '%s' may not register edge '%s': an edge registers only under a "
                    "name its certificate carries (edgemigd --edge-name defaults to it); other "
                    "registrations need an operator certificate named in edgemig-controller "
                    "--admin",
                    who, rq->body_edge);
        }
        if (post && heartbeat_edge(rq->path, &edge, &len)) {
                if (names_edge(rq->names, edge, len))
                        return EM_AUTHZ_ALLOW;
                return em_error_set_code(err, EACCES,
                                         "certificate '%s' may not heartbeat edge '%.*s': an edge "
                                         "heartbeats only under a name its certificate carries "
                                         "(edgemigd --edge-name defaults to it)",
                                         who, (int)(len > 200 ? 200 : len), edge);
        }
        return em_error_set_code(err, EACCES,
                                 "%s %s is an operator action: certificate '%s' is not named in "
                                 "edgemig-controller --admin (use the certificate of an "
                                 "operator listed there with --admin NAME)",
                                 rq->method, rq->path, who);
}
