/* The election's state machine without etcd: leases, campaigns, losing a
 * lease, the local deadline that stops a cut-off leader, the takeover
 * step; the campaign txn; and the etcd backend's pure parts (migration
 * keys, resolving an in-flight migration from the edges' lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "platform/ctlstore_etcd.h"
#include "platform/election.h"
#include "util/json.h"

static void test_follower_then_leader(void **state)
{
        struct em_election_state s;

        em_election_init(&s, "https://a:1");
        assert_int_equal(em_election_next(&s, 0), EM_ELECTION_GRANT);
        em_election_on_grant(&s, 42, 2, 1000);
        assert_int_equal(em_election_next(&s, 1500), EM_ELECTION_KEEPALIVE);
        /* Another replica holds the key. */
        em_election_on_campaign(&s, false, "https://b:1");
        assert_false(s.elected);
        assert_string_equal(s.holder, "https://b:1");
        assert_false(em_election_is_leader(&s, 1500));
        /* It died: its key went with its lease; our campaign wins. */
        em_election_on_keepalive(&s, 2, 1500);
        em_election_on_campaign(&s, true, NULL);
        assert_true(s.elected);
        assert_string_equal(s.holder, "https://a:1");
        /* Not leader until the takeover work is done. */
        assert_false(em_election_is_leader(&s, 1600));
        s.leader = true;
        assert_true(em_election_is_leader(&s, 1600));
}

static void test_cut_off_leader_steps_down(void **state)
{
        struct em_election_state s;

        em_election_init(&s, "a");
        em_election_on_grant(&s, 1, 2, 0);
        em_election_on_campaign(&s, true, NULL);
        s.leader = true;
        em_election_on_keepalive(&s, 2, 1000); /* valid until 3000 */
        em_election_on_error(&s, 2000);        /* etcd unreachable: still within */
        assert_true(em_election_is_leader(&s, 2999));
        /* The lease may have expired at etcd: another may lead now. */
        assert_false(em_election_is_leader(&s, 3000));
        em_election_on_error(&s, 3000);
        assert_false(s.elected);
        assert_int_equal(s.lease, 0);
        assert_int_equal(em_election_next(&s, 3000), EM_ELECTION_GRANT);
}

static void test_lease_gone(void **state)
{
        struct em_election_state s;

        em_election_init(&s, "a");
        em_election_on_grant(&s, 1, 2, 0);
        em_election_on_campaign(&s, true, NULL);
        s.leader = true;
        em_election_on_keepalive(&s, 0, 500); /* etcd says: no such lease */
        assert_false(em_election_is_leader(&s, 600));
        assert_int_equal(em_election_next(&s, 600), EM_ELECTION_GRANT);
        /* A new lease never inherits leadership. */
        em_election_on_grant(&s, 2, 2, 700);
        assert_false(s.elected);
}

static void test_own_key_counts_as_won(void **state)
{
        struct em_election_state s;

        em_election_init(&s, "a");
        em_election_on_grant(&s, 1, 2, 0);
        /* Our put landed but its answer was lost: the key names us. */
        em_election_on_campaign(&s, false, "a");
        assert_true(s.elected);
}

static void test_campaign_txn(void **state)
{
        cleanup_json json_t *t = em_election_campaign_txn("/edgemig/leader", "me", 77);
        json_t *c = json_array_get(json_object_get(t, "compare"), 0);
        json_t *put =
            json_object_get(json_array_get(json_object_get(t, "success"), 0), "request_put");

        assert_string_equal(em_json_str(c, "target"), "CREATE");
        assert_string_equal(em_json_str(c, "create_revision"), "0");
        assert_string_equal(em_json_str(put, "lease"), "77");
        assert_string_equal(em_json_str(put, "value"), "bWU=");
        assert_non_null(
            json_object_get(json_array_get(json_object_get(t, "failure"), 0), "request_range"));
}

static void test_migration_keys_sort(void **state)
{
        char a[96], b[96];

        em_ctl_etcd_migration_key(9, a, sizeof(a));
        em_ctl_etcd_migration_key(10, b, sizeof(b));
        assert_true(strcmp(a, b) < 0);
        assert_string_equal(b, "/edgemig/migrations/0000000000000000010");
}

static json_t *edge(int64_t hb_ms, int sessions, bool runs)
{
        json_t *e = json_pack("{s:I, s:i, s:[]}", "heartbeat_ms", (json_int_t)hb_ms,
                              "active_migrations", sessions, "container_names");
        if (runs)
                json_array_append_new(json_object_get(e, "container_names"), json_string("redis"));
        return e;
}

static void test_resolve(void **state)
{
        cleanup_json json_t *src = edge(200, 0, true), *tgt = edge(200, 0, false);
        cleanup_json json_t *old = edge(50, 0, false), *both = edge(200, 0, true);
        cleanup_json json_t *busy = edge(200, 1, false),
                            *no_count = json_pack("{s:I, s:[]}", "heartbeat_ms", (json_int_t)200,
                                                  "container_names");

        assert_int_equal(em_ctl_etcd_resolve(src, tgt, "redis", 100), 0);   /* rolled back */
        assert_int_equal(em_ctl_etcd_resolve(tgt, src, "redis", 100), 1);   /* committed */
        assert_int_equal(em_ctl_etcd_resolve(src, both, "redis", 100), -1); /* not settled */
        assert_int_equal(em_ctl_etcd_resolve(tgt, tgt, "redis", 100), -1);  /* nowhere yet */
        /* A list from before the takeover may predate the commit. */
        assert_int_equal(em_ctl_etcd_resolve(old, src, "redis", 100), -1);
        assert_int_equal(em_ctl_etcd_resolve(NULL, src, "redis", 100), -1);
        /* Pre-copy: the source still runs it, and its session is open. */
        assert_int_equal(em_ctl_etcd_resolve(src, busy, "redis", 100), -1);
        assert_int_equal(em_ctl_etcd_resolve(busy, tgt, "redis", 100), -1);
        /* An edge that does not say counts as busy. */
        assert_int_equal(em_ctl_etcd_resolve(src, no_count, "redis", 100), -1);
}

/* A heartbeat looks only at the migrations its edge is part of; an
 * older mark that names no edges is left to its record. */
static void test_inflight_involves(void **state)
{
        cleanup_json json_t *mark = json_pack("{s:s, s:s}", "source", "h1", "target", "h2");
        cleanup_json json_t *old = json_object();

        (void)state;
        assert_true(em_ctl_etcd_inflight_involves(mark, "h1"));
        assert_true(em_ctl_etcd_inflight_involves(mark, "h2"));
        assert_false(em_ctl_etcd_inflight_involves(mark, "h3"));
        assert_false(em_ctl_etcd_inflight_involves(mark, "h"));
        assert_true(em_ctl_etcd_inflight_involves(old, "h3"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_follower_then_leader),
            cmocka_unit_test(test_cut_off_leader_steps_down),
            cmocka_unit_test(test_lease_gone),
            cmocka_unit_test(test_own_key_counts_as_won),
            cmocka_unit_test(test_campaign_txn),
            cmocka_unit_test(test_migration_keys_sort),
            cmocka_unit_test(test_resolve),
            cmocka_unit_test(test_inflight_involves),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
