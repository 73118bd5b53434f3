#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/journal.h"
#include "migrate/source/monitor.h"
#include "migrate/source/phases.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"

#define SESSION "0123456789abcdef0123456789abcdef"

static char root[64];

static int setup(void **state)
{
        (void)state;
        strcpy(root, "/tmp/em-monitor-XXXXXX");
        return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
        em_error_t err = NULL;
        (void)state;
        return em_rm_rf(root, &err);
}

static void test_progress_json(void **state)
{
        struct em_progress p = {.session = SESSION,
                                .container = "web",
                                .phase = "precopy",
                                .round = 2,
                                .bytes_sent = 3000000,
                                .round_sent = 500000,
                                .left_estimate = 2500000,
                                .final_estimate = 250000,
                                .rate = 1000000,
                                .dirty_rate = 40000};
        cleanup_json json_t *j = em_progress_json(&p);

        assert_string_equal(em_json_str(j, "phase"), "precopy");
        assert_int_equal(em_json_int(j, "round", 0), 2);
        assert_int_equal(em_json_int(j, "bytes_left", -1), 2000000);
        /* 2 MB of the round and 0.25 MB of the final at 1 MB/s. */
        assert_int_equal(em_json_int(j, "eta_ms", -1), 2250);
        assert_int_equal(em_json_int(j, "expected_downtime_ms", -1), 250);
        /* Nothing measured yet: unknowns are null, not zero. */
        struct em_progress q = {.session = SESSION, .phase = "handshake"};
        cleanup_json json_t *k = em_progress_json(&q);
        assert_true(json_is_null(json_object_get(k, "bytes_left")));
        assert_true(json_is_null(json_object_get(k, "eta_ms")));
        assert_true(json_is_null(json_object_get(k, "expected_downtime_ms")));
}

struct lines {
        pthread_mutex_t lock;
        json_t *all;
};

static void collect(void *ud, const json_t *p)
{
        struct lines *l = ud;
        pthread_mutex_lock(&l->lock);
        json_array_append_new(l->all, json_deep_copy(p));
        pthread_mutex_unlock(&l->lock);
}

static void touch(const char *dir, const char *name)
{
        cleanup_free char *path = em_path_join(dir, name);
        int fd = open(path, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
}

static void wait_cancelled(struct source *s)
{
        int64_t until = em_mono_ms() + 3000;
        while (!em_monitor_cancelled(s) && em_mono_ms() < until)
                usleep(20000);
}

/* Progress at each phase; a cancel before the final step is taken and
 * stops the final step from starting. */
static void test_progress_and_cancel(void **state)
{
        struct lines l = {PTHREAD_MUTEX_INITIALIZER, json_array()};
        struct em_migrate_opts o = {.progress = collect, .progress_ud = &l};
        struct source s = {.name = "web", .o = &o, .session = SESSION, .workdir = root};
        em_error_t err = NULL;

        assert_int_equal(em_monitor_start(&s, &err), 0);
        em_monitor_phase(&s, "precopy", 4096);
        em_monitor_round(&s, 1, 4096);
        em_monitor_rates(&s, 1024, 10.0, 2048.0);
        touch(root, "cancel");
        wait_cancelled(&s);
        assert_true(em_monitor_cancelled(&s));
        assert_int_equal(em_monitor_enter_final(&s, &err), -1);
        assert_int_equal(em_error_status(err), ECANCELED);
        em_error_free(&err);
        em_monitor_stop(&s, false);
        assert_null(s.mon);
        size_t n = json_array_size(l.all);
        assert_true(n >= 2);
        bool saw_precopy = false;
        for (size_t i = 0; i < n; i++)
                saw_precopy |=
                    strcmp(em_json_str(json_array_get(l.all, i), "phase"), "precopy") == 0;
        assert_true(saw_precopy);
        assert_string_equal(em_json_str(json_array_get(l.all, n - 1), "phase"), "cancelled");
        assert_string_equal(em_json_str(json_array_get(l.all, n - 1), "session"), SESSION);
        json_decref(l.all);
}

/* A progress callback whose first call blocks until released, as a slow
 * reader of --progress would: the phases run on meanwhile. */
struct gate {
        struct lines l;
        pthread_cond_t cond;
        bool entered, open;
};

static void gated(void *ud, const json_t *p)
{
        struct gate *g = ud;

        pthread_mutex_lock(&g->l.lock);
        g->entered = true;
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
                pthread_cond_wait(&g->cond, &g->l.lock);
        json_array_append_new(g->l.all, json_deep_copy(p));
        pthread_mutex_unlock(&g->l.lock);
}

/* Every phase gets its snapshot, in order, even when the phases change
 * faster than the monitor's thread runs (here: while it is held in the
 * callback). */
static void test_no_phase_skipped(void **state)
{
        struct gate g = {
            {PTHREAD_MUTEX_INITIALIZER, json_array()}, PTHREAD_COND_INITIALIZER, false, false};
        struct em_migrate_opts o = {.progress = gated, .progress_ud = &g};
        struct source s = {.name = "web", .o = &o, .session = SESSION, .workdir = root};
        static const char *const phases[] = {"layers", "precopy", "final", "restore"};
        em_error_t err = NULL;

        assert_int_equal(em_monitor_start(&s, &err), 0);
        pthread_mutex_lock(&g.l.lock);
        while (!g.entered)
                pthread_cond_wait(&g.cond, &g.l.lock);
        pthread_mutex_unlock(&g.l.lock);
        for (size_t i = 0; i < 4; i++)
                em_monitor_phase(&s, phases[i], 0);
        pthread_mutex_lock(&g.l.lock);
        g.open = true;
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.l.lock);
        em_monitor_stop(&s, true);
        size_t k = 0, n = json_array_size(g.l.all);
        for (size_t i = 0; i < n && k < 4; i++)
                if (strcmp(em_json_str(json_array_get(g.l.all, i), "phase"), phases[k]) == 0)
                        k++;
        assert_int_equal(k, 4);
        assert_string_equal(em_json_str(json_array_get(g.l.all, n - 1), "phase"), "done");
        json_decref(g.l.all);
}

/* Once the final step began a cancel is refused: the commit rule decides. */
static void test_cancel_too_late(void **state)
{
        struct em_migrate_opts o = {0};
        struct source s = {.name = "web", .o = &o, .session = SESSION, .workdir = root};
        em_error_t err = NULL;

        assert_int_equal(em_monitor_start(&s, &err), 0);
        assert_int_equal(em_monitor_enter_final(&s, &err), 0);
        touch(root, "cancel");
        usleep(600000);
        assert_false(em_monitor_cancelled(&s));
        em_monitor_stop(&s, true);
}

struct fake_migration {
        char dir[128];
        int lock;
        struct em_config *cfg;
};

/* Plays the migration: waits for the cancel, saves a rolled-back
 * timeline, releases the session's lock. */
static void *fake_migration(void *arg)
{
        struct fake_migration *f = arg;
        cleanup_free char *cancel = em_path_join(f->dir, "cancel");
        cleanup_free char *report = NULL;
        em_error_t err = NULL;

        for (int i = 0; i < 200 && access(cancel, F_OK) != 0; i++)
                usleep(10000);
        if (asprintf(&report, "%s/migrations/%s.json", f->cfg->root, SESSION) < 0)
                return NULL;
        cleanup_json json_t *r = json_pack("{s:s, s:s, s:b, s:b}", "id", SESSION, "container",
                                           "web", "ok", 0, "cancelled", 1);
        em_json_write_file(report, r, &err);
        close(f->lock);
        return NULL;
}

static void test_cancel_request(void **state)
{
        struct em_config cfg = {.root = root};
        struct fake_migration f = {.lock = -1, .cfg = &cfg};
        cleanup_json json_t *report = NULL;
        cleanup_free char *mig = em_path_join(root, "migrations");
        em_error_t err = NULL;
        pthread_t th;

        assert_int_equal(em_migrate_cancel(&cfg, "../etc", 1000, &report, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
        assert_int_equal(em_migrate_cancel(&cfg, SESSION, 1000, &report, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);

        snprintf(f.dir, sizeof(f.dir), "%s/outgoing/%s", root, SESSION);
        assert_int_equal(em_mkdir_p(f.dir, 0700, &err), 0);
        assert_int_equal(em_mkdir_p(mig, 0700, &err), 0);
        assert_int_equal(em_journal_own(f.dir, "web", &f.lock, &err), 0);
        assert_int_equal(pthread_create(&th, NULL, fake_migration, &f), 0);
        assert_int_equal(em_migrate_cancel(&cfg, SESSION, 5000, &report, &err), 0);
        pthread_join(th, NULL);
        assert_true(json_is_true(json_object_get(report, "cancelled")));
        /* Asked again: it already ended. */
        json_decref(report);
        report = NULL;
        assert_int_equal(em_migrate_cancel(&cfg, SESSION, 1000, &report, &err), -1);
        assert_int_equal(em_error_status(err), EALREADY);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_progress_json),
            cmocka_unit_test_setup_teardown(test_progress_and_cancel, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_too_late, setup, teardown),
            cmocka_unit_test_setup_teardown(test_no_phase_skipped, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cancel_request, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
