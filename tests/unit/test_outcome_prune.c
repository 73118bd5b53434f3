/* em_outcome_prune: only committed and aborted records go, by age and
 * beyond the newest max_keep; a record whose lock is held stays. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/outcome.h"
#include "migrate/common/outcome_prune.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define DAY (24 * 3600)
static const time_t NOW = 2000000000;

static char root[] = "/tmp/em-outcome-prune-XXXXXX";

static int setup(void **state)
{
        return mkdtemp(root) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
        em_error_t err = NULL;

        em_rm_rf(root, &err);
        em_error_free(&err);
        return 0;
}

static void session_id(int i, char out[33])
{
        snprintf(out, 33, "%032x", i);
}

/* A record of session i in state st, last changed age seconds before NOW. */
static void record(int i, enum em_outcome_state st, time_t age)
{
        struct em_outcome o = {.state = EM_OUTCOME_STAGING};
        em_error_t err = NULL;
        char path[512];

        session_id(i, o.session);
        snprintf(o.container, sizeof(o.container), "c%d", i);
        if (em_outcome_create(root, &o, &err) < 0)
                fail_msg("create: %s", em_error_msg(err));
        o.state = st;
        assert_int_equal(em_outcome_store(root, &o, &err), 0);
        snprintf(path, sizeof(path), "%s/outcomes/%s.json", root, o.session);
        struct timespec ts[2] = {{.tv_sec = NOW - age}, {.tv_sec = NOW - age}};
        assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool exists(int i)
{
        char s[33], json[512], lock[512];

        session_id(i, s);
        snprintf(json, sizeof(json), "%s/outcomes/%s.json", root, s);
        snprintf(lock, sizeof(lock), "%s/outcomes/%s.lock", root, s);
        assert_int_equal(em_path_exists(json), em_path_exists(lock)); /* both or neither */
        return em_path_exists(json);
}

static void test_only_old_final_records_go(void **state)
{
        em_error_t err = NULL;
        size_t n = 99;

        record(1, EM_OUTCOME_COMMITTED, 31 * DAY);
        record(2, EM_OUTCOME_ABORTED, 40 * DAY);
        record(3, EM_OUTCOME_RESTORED, 400 * DAY); /* in doubt: decides its session */
        record(4, EM_OUTCOME_STAGING, 400 * DAY);
        record(5, EM_OUTCOME_RESTORING, 400 * DAY);
        record(6, EM_OUTCOME_COMMITTED, 29 * DAY);
        record(7, EM_OUTCOME_ABORTED, 0);
        assert_int_equal(
            em_outcome_prune(root, EM_OUTCOME_KEEP_S, EM_OUTCOME_KEEP_MAX, NOW, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_false(exists(1));
        assert_false(exists(2));
        for (int i = 3; i <= 7; i++)
                assert_true(exists(i));
        /* A second pass finds nothing more. */
        assert_int_equal(
            em_outcome_prune(root, EM_OUTCOME_KEEP_S, EM_OUTCOME_KEEP_MAX, NOW, &n, &err), 0);
        assert_int_equal(n, 0);
}

/* Beyond max_keep final records, the oldest go whatever their age; the
 * ones in doubt do not count and stay. */
static void test_count_limit_keeps_newest(void **state)
{
        em_error_t err = NULL;
        size_t n = 0;

        for (int i = 10; i < 15; i++)
                record(i, EM_OUTCOME_COMMITTED, (time_t)(15 - i) * 60); /* 14 newest */
        assert_int_equal(em_outcome_prune(root, EM_OUTCOME_KEEP_S, 4, NOW, &n, &err), 0);
        /* Final records now: 6 (29 days), 7 (just now) and 10..14 (minutes);
         * the newest four stay. */
        assert_int_equal(n, 3);
        assert_true(exists(7) && exists(14) && exists(13) && exists(12));
        assert_false(exists(11) || exists(10) || exists(6));
        assert_true(exists(3) && exists(4) && exists(5));
}

/* An OUTCOME request holding the lock keeps its record. */
static void test_locked_record_stays(void **state)
{
        cleanup_close int fd = -1;
        em_error_t err = NULL;
        char s[33];
        size_t n = 0;

        record(20, EM_OUTCOME_ABORTED, 90 * DAY);
        session_id(20, s);
        assert_int_equal(em_outcome_lock(root, s, 1000, &fd, &err), 0);
        assert_int_equal(
            em_outcome_prune(root, EM_OUTCOME_KEEP_S, EM_OUTCOME_KEEP_MAX, NOW, &n, &err), 0);
        assert_true(exists(20));
        close(steal_fd(&fd));
        assert_int_equal(
            em_outcome_prune(root, EM_OUTCOME_KEEP_S, EM_OUTCOME_KEEP_MAX, NOW, &n, &err), 0);
        assert_false(exists(20));
        /* The session id may not come back as a new session before it went. */
        struct em_outcome o = {.state = EM_OUTCOME_STAGING};
        session_id(20, o.session);
        snprintf(o.container, sizeof(o.container), "again");
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
}

static void test_no_directory(void **state)
{
        em_error_t err = NULL;
        size_t n = 7;

        assert_int_equal(em_outcome_prune("/nonexistent-em-root", 1, 1, NOW, &n, &err), 0);
        assert_int_equal(n, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_only_old_final_records_go),
            cmocka_unit_test(test_count_limit_keeps_newest),
            cmocka_unit_test(test_locked_record_stays),
            cmocka_unit_test(test_no_directory),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
