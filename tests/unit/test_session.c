#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migrate/session.h"
#include "util/cleanup.h"

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

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cache_dir_per_peer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
