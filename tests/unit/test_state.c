#include <errno.h>
#include <sqlite3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

struct fixture {
        char dir[64];
        struct em_state *st;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;

        strcpy(f->dir, "/tmp/test_state.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(em_state_open(f->dir, &f->st, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        em_state_close(&f->st);
        em_rm_rf(f->dir, &err);
        free(f);
        return 0;
}

static int add(struct em_state *st, const char *name, const char *ip, const char *subnet,
               char **got_ip, em_error_t *err)
{
        struct em_container_rec r = {.name = (char *)name,
                                     .image = "busybox",
                                     .ip = ip ? strdup(ip) : NULL,
                                     .spec = "{\"diff_ids\":[]}",
                                     .state = EM_CSTATE_CREATED};
        int rc = em_state_container_insert(st, &r, subnet, err);
        if (got_ip)
                *got_ip = r.ip;
        else
                free(r.ip);
        return rc;
}

static void test_schema_version(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        int v = 0;

        assert_int_equal(em_state_schema_version(f->st, &v, &err), 0);
        assert_int_equal(v, EM_STATE_SCHEMA_VERSION);
        /* Reopening an existing database does not migrate twice. */
        em_state_close(&f->st);
        assert_int_equal(em_state_open(f->dir, &f->st, &err), 0);
        assert_int_equal(em_state_schema_version(f->st, &v, &err), 0);
        assert_int_equal(v, EM_STATE_SCHEMA_VERSION);
}

static void test_transitions(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;
        struct em_container_rec *r = NULL;
        enum em_cstate prev;

        assert_int_equal(add(f->st, "web", "10.0.0.5", NULL, NULL, &err), 0);
        assert_int_equal(em_state_container_transition(f->st, "web",
                                                       EM_CSTATE_BIT(EM_CSTATE_CREATED),
                                                       EM_CSTATE_RUNNING, 1234, &prev, &err),
                         0);
        assert_int_equal(prev, EM_CSTATE_CREATED);
        assert_int_equal(em_state_container_get(f->st, "web", &r, &err), 0);
        assert_int_equal(r->state, EM_CSTATE_RUNNING);
        assert_int_equal(r->pid, 1234);
        assert_true(r->started_at > 0);
        assert_int_equal(r->finished_at, 0);
        em_container_rec_free(&r);

        /* A transition from the wrong state fails and changes nothing. */
        assert_int_equal(em_state_container_transition(f->st, "web",
                                                       EM_CSTATE_BIT(EM_CSTATE_CREATED),
                                                       EM_CSTATE_STOPPED, 0, NULL, &err),
                         -1);
        assert_int_equal(em_error_status(err), EBUSY);
        assert_non_null(strstr(em_error_msg(err), "is running"));
        em_error_free(&err);
        assert_int_equal(em_state_container_get(f->st, "web", &r, &err), 0);
        assert_int_equal(r->state, EM_CSTATE_RUNNING);
        em_container_rec_free(&r);

        assert_int_equal(em_state_container_transition(f->st, "web",
                                                       EM_CSTATE_BIT(EM_CSTATE_RUNNING),
                                                       EM_CSTATE_STOPPED, 0, NULL, &err),
                         0);
        assert_int_equal(em_state_container_get(f->st, "web", &r, &err), 0);
        assert_int_equal(r->state, EM_CSTATE_STOPPED);
        assert_true(r->finished_at >= r->started_at);
        em_container_rec_free(&r);

        assert_int_equal(em_state_container_transition(f->st, "nope", EM_CSTATE_ANY,
                                                       EM_CSTATE_STOPPED, 0, NULL, &err),
                         -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        assert_int_equal(em_state_container_delete(f->st, "web", &err), 0);
        assert_int_equal(em_state_container_get(f->st, "web", &r, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
}

static void test_duplicates(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(add(f->st, "a", "10.0.0.5", NULL, NULL, &err), 0);
        assert_int_equal(add(f->st, "a", "10.0.0.6", NULL, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        em_error_free(&err);
        assert_int_equal(add(f->st, "b", "10.0.0.5", NULL, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
}

static void test_ip_allocation(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;
        cleanup_free char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        assert_int_equal(add(f->st, "a", NULL, NULL, &a, &err), 0);
        assert_string_equal(a, "10.66.0.2"); /* .0 network, .1 reserved */
        assert_int_equal(add(f->st, "b", NULL, NULL, &b, &err), 0);
        assert_string_equal(b, "10.66.0.3");
        /* A given address is taken into account; freed ones are reused. */
        assert_int_equal(add(f->st, "c", "10.66.0.4", NULL, NULL, &err), 0);
        assert_int_equal(add(f->st, "d", NULL, NULL, &c, &err), 0);
        assert_string_equal(c, "10.66.0.5");
        assert_int_equal(em_state_container_delete(f->st, "a", &err), 0);
        assert_int_equal(add(f->st, "e", NULL, NULL, &d, &err), 0);
        assert_string_equal(d, "10.66.0.2");
}

static void test_ip_exhaustion(void **state)
{
        struct fixture *f = *state;
        cleanup_error em_error_t err = NULL;
        char name[16];

        /* A /30 has exactly one usable address for containers (.2). */
        assert_int_equal(add(f->st, "x0", NULL, "192.168.7.0/30", NULL, &err), 0);
        assert_int_equal(add(f->st, "x1", NULL, "192.168.7.0/30", NULL, &err), -1);
        assert_int_equal(em_error_status(err), ENOSPC);
        em_error_free(&err);
        /* A /29: .2 to .6 (not .0, .1 or the broadcast .7). */
        for (int i = 0; i < 5; i++) {
                snprintf(name, sizeof(name), "y%d", i);
                assert_int_equal(add(f->st, name, NULL, "172.16.0.0/29", NULL, &err), 0);
        }
        assert_int_equal(add(f->st, "y5", NULL, "172.16.0.0/29", NULL, &err), -1);
        assert_int_equal(em_error_status(err), ENOSPC);
}

static void test_idrange_allocation(void **state)
{
        struct fixture *f = *state;
        const struct em_idpool pool = {1u << 20, 8, 65536};
        struct em_idrange a, b, again, pref = {(1u << 20) + 3 * 65536, 65536};
        cleanup_container_rec struct em_container_rec *rec = NULL;
        em_error_t err = NULL;

        assert_int_equal(add(f->st, "a", NULL, NULL, NULL, &err), 0);
        assert_int_equal(add(f->st, "b", NULL, NULL, NULL, &err), 0);
        assert_int_equal(em_state_idrange_allocate(f->st, "a", &pool, &pref, &a, &err), 0);
        assert_int_equal(a.base, pref.base);
        assert_int_equal(a.size, 65536);
        /* b prefers the same range: taken, so it gets another slot. */
        assert_int_equal(em_state_idrange_allocate(f->st, "b", &pool, &pref, &b, &err), 0);
        assert_int_not_equal(b.base, a.base);
        assert_true(em_idpool_has_slot(&pool, &b));
        /* A container keeps its range; the row carries it. */
        assert_int_equal(em_state_idrange_allocate(f->st, "a", &pool, NULL, &again, &err), 0);
        assert_int_equal(again.base, a.base);
        assert_int_equal(em_state_container_get(f->st, "a", &rec, &err), 0);
        assert_int_equal(rec->ids.base, a.base);
        assert_int_equal(rec->ids.size, 65536);
        /* Deleting the container frees its range. */
        assert_int_equal(em_state_container_delete(f->st, "a", &err), 0);
        assert_int_equal(em_state_idrange_allocate(f->st, "b", &pool, &pref, &again, &err), 0);
        assert_int_equal(again.base, b.base);
        assert_int_equal(add(f->st, "c", NULL, NULL, NULL, &err), 0);
        assert_int_equal(em_state_idrange_allocate(f->st, "c", &pool, &pref, &again, &err), 0);
        assert_int_equal(again.base, pref.base);
        /* No row, no range. */
        assert_int_equal(em_state_idrange_allocate(f->st, "nobody", &pool, NULL, &again, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
}

/* A stop through edgemig is remembered until the container runs again. */
static void test_stopped_by_user(void **state)
{
        struct fixture *f = *state;
        cleanup_container_rec struct em_container_rec *a = NULL, *b = NULL;
        em_error_t err = NULL;

        assert_int_equal(add(f->st, "a", NULL, NULL, NULL, &err), 0);
        assert_int_equal(em_state_container_transition(f->st, "a", EM_CSTATE_ANY, EM_CSTATE_STOPPED,
                                                       0, NULL, &err),
                         0);
        assert_int_equal(em_state_container_set_stopped_by_user(f->st, "a", true, &err), 0);
        assert_int_equal(em_state_container_get(f->st, "a", &a, &err), 0);
        assert_true(a->stopped_by_user);
        assert_int_equal(em_state_container_transition(f->st, "a", EM_CSTATE_ANY, EM_CSTATE_RUNNING,
                                                       42, NULL, &err),
                         0);
        assert_int_equal(em_state_container_get(f->st, "a", &b, &err), 0);
        assert_false(b->stopped_by_user);
        assert_int_equal(em_state_container_set_stopped_by_user(f->st, "nobody", true, &err), -1);
        em_error_free(&err);
}

/* A migrated-away container's address stays reserved: not allocated, not
 * taken by another name, taken back by its own; the owner lookup says so. */
static void test_ip_reservations(void **state)
{
        struct fixture *f = *state;
        cleanup_free char *owner = NULL, *owner2 = NULL;
        em_error_t err = NULL;
        bool reserved = false;

        assert_int_equal(em_state_ip_reserve(f->st, "10.1.0.2", "gone", &err), 0);
        /* Allocation skips it. */
        struct em_container_rec a = {.name = "a", .image = "i", .state = EM_CSTATE_CREATED};
        assert_int_equal(em_state_container_insert(f->st, &a, "10.1.0.0/24", &err), 0);
        assert_string_equal(a.ip, "10.1.0.3");
        free(a.ip);
        /* Another name cannot take it explicitly. */
        struct em_container_rec b = {
            .name = "b", .image = "i", .ip = "10.1.0.2", .state = EM_CSTATE_CREATED};
        assert_int_equal(em_state_container_insert(f->st, &b, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_non_null(strstr(em_error_msg(err), "reserved for container gone"));
        em_error_free(&err);
        assert_int_equal(em_state_ip_owner(f->st, "10.1.0.2", &owner, &reserved, &err), 0);
        assert_string_equal(owner, "gone");
        assert_true(reserved);
        json_t *list = NULL;
        assert_int_equal(em_state_ip_reservations(f->st, &list, &err), 0);
        assert_int_equal(json_array_size(list), 1);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(list, 0), "container")), "gone");
        json_decref(list);
        /* Its container comes back: the reservation is consumed. */
        struct em_container_rec g = {
            .name = "gone", .image = "i", .ip = "10.1.0.2", .state = EM_CSTATE_CREATED};
        assert_int_equal(em_state_container_insert(f->st, &g, NULL, &err), 0);
        assert_int_equal(em_state_ip_owner(f->st, "10.1.0.2", &owner2, &reserved, &err), 0);
        assert_string_equal(owner2, "gone");
        assert_false(reserved);
        assert_int_equal(em_state_ip_release(f->st, "10.1.0.2", &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
}

/* Ages the reservations of name by days (another connection, as an old
 * database would have them). */
static void age_reservation(const char *dir, const char *name, int days)
{
        char path[128], sql[256];
        sqlite3 *db = NULL;

        snprintf(path, sizeof(path), "%s/state.db", dir);
        snprintf(sql, sizeof(sql),
                 "UPDATE ip_reservations SET since = since - %d * 86400000 WHERE name = '%s'", days,
                 name);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

/* A full range reuses the oldest reservation older than a week, then the
 * next; a younger one is never taken: the range is full then. */
static void test_ip_reservation_reclaimed_when_full(void **state)
{
        static const char *const subnet = "172.20.0.0/29"; /* .2 to .6 */
        struct fixture *f = *state;
        cleanup_free char *a = NULL, *b = NULL, *owner = NULL;
        em_error_t err = NULL;
        bool reserved = true;

        assert_int_equal(em_state_ip_reserve(f->st, "172.20.0.2", "old1", &err), 0);
        assert_int_equal(em_state_ip_reserve(f->st, "172.20.0.3", "old2", &err), 0);
        assert_int_equal(em_state_ip_reserve(f->st, "172.20.0.4", "recent", &err), 0);
        assert_int_equal(em_state_ip_reserve(f->st, "10.9.0.2", "elsewhere", &err), 0);
        age_reservation(f->dir, "old1", 8);
        age_reservation(f->dir, "old2", 9);
        age_reservation(f->dir, "recent", 6);
        age_reservation(f->dir, "elsewhere", 100); /* another range: never ours */
        assert_int_equal(add(f->st, "c5", NULL, subnet, NULL, &err), 0);
        assert_int_equal(add(f->st, "c6", NULL, subnet, NULL, &err), 0);
        /* Full but for reservations: the oldest (old2) goes first. */
        assert_int_equal(add(f->st, "n1", NULL, subnet, &a, &err), 0);
        assert_string_equal(a, "172.20.0.3");
        assert_int_equal(add(f->st, "n2", NULL, subnet, &b, &err), 0);
        assert_string_equal(b, "172.20.0.2");
        assert_int_equal(em_state_ip_owner(f->st, "172.20.0.3", &owner, &reserved, &err), 0);
        assert_string_equal(owner, "n1");
        assert_false(reserved);
        /* Six days is too young: the range is full. */
        assert_int_equal(add(f->st, "n3", NULL, subnet, NULL, &err), -1);
        assert_int_equal(em_error_status(err), ENOSPC);
        em_error_free(&err);
        json_t *list = NULL;
        assert_int_equal(em_state_ip_reservations(f->st, &list, &err), 0);
        assert_int_equal(json_array_size(list), 2); /* recent and elsewhere */
        json_decref(list);
}

static void test_idrange_exhaustion(void **state)
{
        struct fixture *f = *state;
        const struct em_idpool pool = {100000, 2, 65536};
        struct em_idrange r, bad = {100001, 65536};
        em_error_t err = NULL;

        assert_int_equal(add(f->st, "a", NULL, NULL, NULL, &err), 0);
        assert_int_equal(add(f->st, "b", NULL, NULL, NULL, &err), 0);
        assert_int_equal(add(f->st, "c", NULL, NULL, NULL, &err), 0);
        /* A preferred range that is not a slot of the pool is not taken. */
        assert_int_equal(em_state_idrange_allocate(f->st, "a", &pool, &bad, &r, &err), 0);
        assert_int_equal((r.base - 100000) % 65536, 0);
        assert_int_equal(em_state_idrange_allocate(f->st, "b", &pool, NULL, &r, &err), 0);
        assert_int_equal(em_state_idrange_allocate(f->st, "c", &pool, NULL, &r, &err), -1);
        assert_int_equal(em_error_status(err), ENOSPC);
        em_error_free(&err);
        const struct em_idpool huge = {1u << 31, 1u << 16, 65536};
        assert_int_equal(em_state_idrange_allocate(f->st, "c", &huge, NULL, &r, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
}

static void test_idpool_slots(void **state)
{
        const struct em_idpool pool = {100000, 4, 65536};
        (void)state;
        assert_true(em_idpool_has_slot(&pool, &(struct em_idrange){100000, 65536}));
        assert_true(em_idpool_has_slot(&pool, &(struct em_idrange){100000 + 3 * 65536, 65536}));
        assert_false(em_idpool_has_slot(&pool, &(struct em_idrange){100000 + 4 * 65536, 65536}));
        assert_false(em_idpool_has_slot(&pool, &(struct em_idrange){100000, 65535}));
        assert_false(em_idpool_has_slot(&pool, &(struct em_idrange){99999, 65536}));
        assert_false(em_idpool_has_slot(&pool, &(struct em_idrange){0, 0}));
}

static void test_cidr_parse(void **state)
{
        cleanup_error em_error_t err = NULL;
        uint32_t net;
        int len;

        assert_int_equal(em_ipv4_cidr_parse("10.66.7.9/16", &net, &len, &err), 0);
        assert_int_equal(net, 0x0a420000);
        assert_int_equal(len, 16);
        assert_int_equal(em_ipv4_cidr_parse("10.66.0.0", &net, &len, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_ipv4_cidr_parse("10.66.0.0/31", &net, &len, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_ipv4_cidr_parse("300.1.1.1/16", &net, &len, &err), -1);
}

static void test_state_names(void **state)
{
        for (int i = 0; i < EM_CSTATE__COUNT; i++)
                assert_int_equal(em_cstate_parse(em_cstate_name((enum em_cstate)i)), i);
        assert_int_equal(em_cstate_parse("dancing"), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
            cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
            cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ip_allocation, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ip_exhaustion, setup, teardown),
            cmocka_unit_test_setup_teardown(test_idrange_allocation, setup, teardown),
            cmocka_unit_test_setup_teardown(test_idrange_exhaustion, setup, teardown),
            cmocka_unit_test_setup_teardown(test_stopped_by_user, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ip_reservations, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ip_reservation_reclaimed_when_full, setup,
                                            teardown),
            cmocka_unit_test(test_idpool_slots),
            cmocka_unit_test(test_cidr_parse),
            cmocka_unit_test(test_state_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
