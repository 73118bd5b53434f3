#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "platform/authz.h"
#include "util/cleanup.h"

static const char *const admins[] = {"ops", "client", NULL};
static const char *const h1[] = {"h1", NULL};
static const char *const h2[] = {"h2", NULL};
static const char *const client[] = {"client", NULL};
/* SAN DNS names first, then the CN (em_x509_names' order). */
static const char *const multi[] = {"edge-a.example", "urn:edge:a", "h3", NULL};
static const char *const nameless[] = {NULL};

/* Decision and, on refusal, that the message contains want. */
static int check(const char *const *adm, const char *const *names, const char *method,
                 const char *path, const char *body_edge, const char *want)
{
        struct em_authz_request rq = {method, path, names, body_edge};
        cleanup_error em_error_t err = NULL;
        int rc = em_authz_check(adm, &rq, &err);

        if (rc < 0) {
                assert_non_null(err);
                assert_int_equal(em_error_status(err), EACCES);
                if (want != NULL && strstr(em_error_msg(err), want) == NULL)
                        fail_msg("'%s' lacks '%s'", em_error_msg(err), want);
        } else {
                assert_null(err);
                assert_null(want);
        }
        return rc;
}

static void test_reads_open_to_any_certificate(void **state)
{
        const char *paths[] = {"/edges",   "/services", "/users", "/migrations",
                               "/metrics", "/healthz",  "/nope"};
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                assert_int_equal(check(admins, h2, "GET", paths[i], NULL, NULL), EM_AUTHZ_ALLOW);
                assert_int_equal(check(NULL, nameless, "GET", paths[i], NULL, NULL),
                                 EM_AUTHZ_ALLOW);
                assert_int_equal(check(admins, client, "HEAD", paths[i], NULL, NULL),
                                 EM_AUTHZ_ALLOW);
        }
}

static void test_edge_heartbeats_as_itself_only(void **state)
{
        assert_int_equal(check(admins, h1, "POST", "/edges/h1/heartbeat", NULL, NULL),
                         EM_AUTHZ_ALLOW);
        assert_int_equal(check(admins, h2, "POST", "/edges/h1/heartbeat", NULL,
                               "certificate 'h2' may not heartbeat edge 'h1'"),
                         -1);
        /* Prefixes and suffixes of the name are other names. */
        assert_int_equal(check(admins, h1, "POST", "/edges/h10/heartbeat", NULL, "edge 'h10'"), -1);
        assert_int_equal(check(admins, h1, "POST", "/edges/h/heartbeat", NULL, "edge 'h'"), -1);
        assert_int_equal(check(admins, h1, "POST", "/edges//heartbeat", NULL, "--admin"), -1);
        assert_int_equal(check(admins, h1, "POST", "/edges/h1/x/heartbeat", NULL, NULL), -1);
        /* Not a heartbeat path: an operator action. */
        assert_int_equal(check(admins, h1, "POST", "/edges/h1/heartbeats", NULL, "--admin"), -1);
        assert_int_equal(check(admins, h1, "POST", "/edges/heartbeat", NULL, "--admin"), -1);
        /* Another method on the edge's own path is not a heartbeat either. */
        assert_int_equal(check(admins, h1, "PUT", "/edges/h1/heartbeat", NULL, "--admin"), -1);
        assert_int_equal(check(admins, h1, "DELETE", "/edges", "h1", "--admin"), -1);
}

static void test_edge_registers_as_itself_only(void **state)
{
        /* The name is in the body: decided once it is read. */
        assert_int_equal(check(admins, h1, "POST", "/edges", NULL, NULL), EM_AUTHZ_NEEDS_BODY);
        assert_int_equal(check(admins, h1, "POST", "/edges", "h1", NULL), EM_AUTHZ_ALLOW);
        assert_int_equal(check(admins, h2, "POST", "/edges", "h1",
                               "certificate 'h2' may not register edge 'h1'"),
                         -1);
        assert_int_equal(check(admins, h2, "POST", "/edges", "", "register edge ''"), -1);
        assert_int_equal(check(admins, h2, "POST", "/edges/", NULL, "--admin"), -1);
}

static void test_any_certificate_name_counts(void **state)
{
        /* SAN DNS, SAN URI or CN, case-insensitively like --allow-peer. */
        assert_int_equal(check(admins, multi, "POST", "/edges/h3/heartbeat", NULL, NULL),
                         EM_AUTHZ_ALLOW);
        assert_int_equal(
            check(admins, multi, "POST", "/edges/EDGE-A.example/heartbeat", NULL, NULL),
            EM_AUTHZ_ALLOW);
        assert_int_equal(check(admins, multi, "POST", "/edges", "urn:edge:a", NULL),
                         EM_AUTHZ_ALLOW);
        assert_int_equal(
            check(admins, multi, "POST", "/edges", "h1", "certificate 'edge-a.example'"), -1);
        assert_int_equal(check(admins, nameless, "POST", "/edges/h1/heartbeat", NULL, "'?'"), -1);
        static const char *const admin_san[] = {"h9", "OPS", NULL};
        assert_int_equal(check(admins, admin_san, "POST", "/services", NULL, NULL), EM_AUTHZ_ALLOW);
}

static void test_operator_actions_need_admin(void **state)
{
        const char *paths[] = {"/services", "/users/alice/position", "/users", "/anything"};
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                assert_int_equal(check(admins, client, "POST", paths[i], NULL, NULL),
                                 EM_AUTHZ_ALLOW);
                assert_int_equal(check(admins, h2, "POST", paths[i], NULL,
                                       "is an operator action: certificate 'h2' is not named in "
                                       "edgemig-controller --admin"),
                                 -1);
        }
        /* An admin may register and heartbeat any edge (by hand, test beds). */
        assert_int_equal(check(admins, client, "POST", "/edges", NULL, NULL), EM_AUTHZ_ALLOW);
        assert_int_equal(check(admins, client, "POST", "/edges/h1/heartbeat", NULL, NULL),
                         EM_AUTHZ_ALLOW);
        /* No admin list: nobody is an admin; edges still act for themselves. */
        static const char *const none[] = {NULL};
        assert_int_equal(check(none, client, "POST", "/services", NULL, "--admin"), -1);
        assert_int_equal(check(NULL, client, "POST", "/services", NULL, "--admin"), -1);
        assert_int_equal(check(NULL, h1, "POST", "/edges/h1/heartbeat", NULL, NULL),
                         EM_AUTHZ_ALLOW);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_reads_open_to_any_certificate),
            cmocka_unit_test(test_edge_heartbeats_as_itself_only),
            cmocka_unit_test(test_edge_registers_as_itself_only),
            cmocka_unit_test(test_any_certificate_name_counts),
            cmocka_unit_test(test_operator_actions_need_admin),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
