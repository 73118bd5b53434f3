#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/session.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

/* Page caches are per (container, peer identity): plain names as they are
 * (lower case, like the allow-lists compare them), anything else hashed, an
 * unauthenticated peer apart from every name. */
static void test_cache_dir_per_peer(void **state)
{
        struct em_config cfg = {.root = (char *)"/r"};
        cleanup_free char *a = em_session_cache_dir(&cfg, "web", "Edge-1");
        cleanup_free char *b = em_session_cache_dir(&cfg, "web", "edge-2");
        cleanup_free char *plain = em_session_cache_dir(&cfg, "web", NULL);
        cleanup_free char *uri = em_session_cache_dir(&cfg, "web", "spiffe://x/../edge");
        cleanup_free char *uri2 = em_session_cache_dir(&cfg, "web", "SPIFFE://X/../EDGE");
        cleanup_free char *fake = em_session_cache_dir(&cfg, "web", "sha256-abc");
        cleanup_free char *dot = em_session_cache_dir(&cfg, "web", "..");

        (void)state;
        assert_string_equal(a, "/r/pagecache/web/edge-1");
        assert_string_equal(b, "/r/pagecache/web/edge-2");
        assert_string_equal(plain, "/r/pagecache/web/-insecure");
        assert_string_equal(uri, uri2);
        assert_int_equal(strlen(uri), strlen("/r/pagecache/web/sha256-") + 64);
        assert_null(strchr(uri + strlen("/r/pagecache/web/"), '/'));
        /* A name that looks like a hashed one is hashed itself. */
        assert_int_equal(strlen(fake), strlen(uri));
        assert_string_not_equal(dot, "/r/pagecache/web/..");
        assert_int_equal(strlen(dot), strlen(uri));
}

/* A peer's session slots are flocks: max at once, released on close. */
static void test_peer_slots(void **state)
{
        char root[] = "/tmp/em-session-XXXXXX";
        struct em_config cfg = {.root = root};
        em_error_t err = NULL;
        int a = -1, b = -1, c = -1;

        (void)state;
        assert_non_null(mkdtemp(root));
        assert_int_equal(em_session_peer_slot(&cfg, "h1", 2, &a, &err), 0);
        assert_int_equal(em_session_peer_slot(&cfg, "H1", 2, &b, &err), 0);
        assert_int_equal(em_session_peer_slot(&cfg, "h1", 2, &c, &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        assert_non_null(strstr(em_error_msg(err), "--max-sessions-per-peer"));
        em_error_free(&err);
        assert_int_equal(em_session_peer_slot(&cfg, "h2", 2, &c, &err), 0); /* another peer */
        close(c);
        close(a);
        assert_int_equal(em_session_peer_slot(&cfg, "h1", 2, &a, &err), 0); /* released */
        close(a);
        close(b);
        assert_int_equal(em_rm_rf(root, &err), 0);
}

static int hook_calls;

static int seam_hook(const char *hook, const char *verb, const char *ip, em_error_t *err)
{
        hook_calls++;
        if (strcmp(hook, "fails") == 0)
                return em_error_set(err, EIO, "route hook '%s %s %s' failed", hook, verb, ip);
        return 0;
}

/* A route change asked for on the way out is tried and, on failure,
 * reported as -1 (and logged) but never turned into an error of the
 * caller; no service IP: nothing to run. Without a seam the real hook
 * runs: a missing executable fails, no hook succeeds. */
static void test_route_warn(void **state)
{
        (void)state;
        hook_calls = 0;
        assert_int_equal(em_session_route_warn(seam_hook, "ok", "withdraw", "10.9.0.1", "w"), 0);
        assert_int_equal(em_session_route_warn(seam_hook, "fails", "withdraw", "10.9.0.1", "w"),
                         -1);
        assert_int_equal(em_session_route_warn(seam_hook, "fails", "withdraw", NULL, "w"), 0);
        assert_int_equal(hook_calls, 2);
        assert_int_equal(em_session_route_warn(NULL, "", "announce", "10.9.0.1", "a"), 0);
        assert_int_equal(
            em_session_route_warn(NULL, "/nonexistent/route-hook", "announce", "10.9.0.1", "a"),
            -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cache_dir_per_peer),
            cmocka_unit_test(test_peer_slots),
            cmocka_unit_test(test_route_warn),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
