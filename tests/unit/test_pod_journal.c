/* checkpoint/pod_journal: the journal of a pod checkpoint in flight and
 * its recovery, with a stand-in roll-back (the real one needs runc:
 * tests/integration/28-pod-checkpoint-crash.sh). A journal whose lock is
 * held is left; one a crash left is rolled back once, or dropped if its
 * checkpoint had completed; a failed roll-back keeps it for a retry; one
 * with names that are not container names is never acted on; a `runc
 * checkpoint` of one of the pod's containers still running is waited
 * for (a bounded time), or not at all with wait 0 (edgemigd's start),
 * which leaves the journal pending for a later try; a restore's journal
 * waits the same way for a `runc restore`. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/pod_journal.h"
#include "support/fixture.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "util/fsutil.h"
#include "util/json.h"

struct fixture {
        char dir[64];
        struct em_config cfg;
        char *ck, *journal;
};

/* What the stand-in roll-back saw, and what it answers. */
static int rollbacks, rollback_rc, restores;
/* A stand-in `runc checkpoint` still running when the roll-back came. */
static pid_t runc_pid;
static bool runc_ran_on;
static char rolled_dir[256], rolled_names[256];

static int fake_rollback(const struct em_config *cfg, const char *dir, char **names, size_t n,
                         em_error_t *err)
{
        (void)cfg;
        rollbacks++;
        if (runc_pid > 0)
                runc_ran_on = waitpid(runc_pid, NULL, WNOHANG) != runc_pid;
        snprintf(rolled_dir, sizeof(rolled_dir), "%s", dir);
        rolled_names[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                strncat(rolled_names, names[i], sizeof(rolled_names) - strlen(rolled_names) - 2);
                strcat(rolled_names, " ");
        }
        return rollback_rc < 0 ? em_error_set(err, EIO, "stand-in roll-back failed") : 0;
}

/* The stand-in settling of a restore: counted, and the same record. */
static int fake_restore(const struct em_config *cfg, const char *dir, char **names, size_t n,
                        em_error_t *err)
{
        restores++;
        rollbacks--;
        return fake_rollback(cfg, dir, names, n, err);
}

static const struct em_pod_recovery rec = {fake_rollback, fake_restore};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;

        strcpy(f->dir, "/tmp/test_pod_journal.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(em_config_init(&f->cfg, f->dir, &err), 0);
        f->ck = em_path_join(f->dir, "ck");
        f->journal = em_path_join(f->dir, "pod-checkpoints/web.json");
        assert_int_equal(em_mkdir_p(f->ck, 0700, &err), 0);
        rollbacks = rollback_rc = restores = 0;
        runc_pid = 0;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;

        em_rm_rf(f->dir, &err);
        em_config_free(&f->cfg);
        free(f->ck);
        free(f->journal);
        free(f);
        return 0;
}

static char *const names[] = {"db", "side", "web", NULL};

static int begin(struct fixture *f)
{
        em_error_t err = NULL;
        int fd = -1;

        assert_int_equal(em_pod_journal_begin(&f->cfg, "web", f->ck, names, &fd, &err), 0);
        assert_true(fd >= 0);
        return fd;
}

static int recover(struct fixture *f, int want)
{
        em_error_t err = NULL;
        int n = em_pod_journal_recover(&f->cfg, &rec, 60000, NULL, &err);

        assert_int_equal(n, want);
        em_error_free(&err);
        return n;
}

static void test_begin_writes_and_refuses_second(void **state)
{
        struct fixture *f = *state;
        cleanup_json json_t *j = NULL;
        em_error_t err = NULL;
        int fd = begin(f), fd2 = -1;

        assert_int_equal(em_json_load_file(f->journal, 4096, &j, &err), 0);
        assert_string_equal(em_json_str(j, "pod"), "web");
        assert_string_equal(em_json_str(j, "dir"), f->ck);
        assert_int_equal(json_array_size(json_object_get(j, "names")), 3);
        assert_int_equal(em_pod_journal_begin(&f->cfg, "web", f->ck, names, &fd2, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_non_null(strstr(em_error_msg(err), "edgemig recover"));
        em_error_free(&err);
        em_pod_journal_end(&f->cfg, "web", &fd);
        assert_int_equal(fd, -1);
        assert_false(em_path_exists(f->journal));
        recover(f, 0);
}

static void test_live_journal_left_alone(void **state)
{
        struct fixture *f = *state;
        int fd = begin(f);

        recover(f, 0);
        assert_int_equal(rollbacks, 0);
        assert_true(em_path_exists(f->journal));
        em_pod_journal_end(&f->cfg, "web", &fd);
}

static void test_crash_rolled_back_once(void **state)
{
        struct fixture *f = *state;

        close(begin(f)); /* the process died: its lock went with it */
        recover(f, 1);
        assert_int_equal(rollbacks, 1);
        assert_string_equal(rolled_dir, f->ck);
        assert_string_equal(rolled_names, "db side web ");
        assert_false(em_path_exists(f->journal));
        recover(f, 0);
        assert_int_equal(rollbacks, 1);
}

static void test_failed_rollback_kept_for_retry(void **state)
{
        struct fixture *f = *state;

        close(begin(f));
        rollback_rc = -1;
        recover(f, -1);
        assert_true(em_path_exists(f->journal));
        rollback_rc = 0;
        recover(f, 1);
        assert_int_equal(rollbacks, 2);
        assert_false(em_path_exists(f->journal));
}

/* A restore's journal goes to the restore's settling, never to the
 * checkpoint's roll-back (its pod.json exists: the checkpoint it restores
 * from), and stays while its process lives. */
static void test_restore_settled(void **state)
{
        struct fixture *f = *state;
        cleanup_free char *done = em_path_join(f->ck, "pod.json");
        cleanup_json json_t *j = NULL;
        em_error_t err = NULL;
        int fd = -1;

        assert_int_equal(em_write_file_atomic(done, "{}", 2, 0600, &err), 0);
        assert_int_equal(em_pod_journal_begin_restore(&f->cfg, "web", f->ck, names, &fd, &err), 0);
        assert_int_equal(em_json_load_file(f->journal, 4096, &j, &err), 0);
        assert_string_equal(em_json_str(j, "op"), "restore");
        recover(f, 0);
        assert_int_equal(restores, 0);
        close(fd);
        recover(f, 1);
        assert_int_equal(restores, 1);
        assert_int_equal(rollbacks, 0);
        assert_string_equal(rolled_names, "db side web ");
        assert_false(em_path_exists(f->journal));
}

static void test_completed_checkpoint_dropped(void **state)
{
        struct fixture *f = *state;
        cleanup_free char *done = em_path_join(f->ck, "pod.json");
        em_error_t err = NULL;

        close(begin(f));
        assert_int_equal(em_write_file_atomic(done, "{}", 2, 0600, &err), 0);
        recover(f, 1);
        assert_int_equal(rollbacks, 0);
        assert_false(em_path_exists(f->journal));
}

/* A process that looks like `runc ... --log <root>/containers/NAME/LOG
 * VERB ...` for a second. */
static pid_t fake_runc_as(const struct fixture *f, const char *name, const char *log_leaf,
                          const char *verb)
{
        char log[160];
        char *argv[] = {"sh", "-c",         "sleep 1",    "runc", "--log",
                        log,  (char *)verb, (char *)name, NULL};

        snprintf(log, sizeof(log), "%s/containers/%s/%s", f->dir, name, log_leaf);
        return em_test_exec_child(argv);
}

/* A `runc checkpoint` as checkpoint.c runs it. */
static pid_t fake_runc(const struct fixture *f, const char *name)
{
        return fake_runc_as(f, name, "runc.log", "checkpoint");
}

/* Killed mid-dump, the checkpoint left runc going on: recovery waits. */
static void test_waits_for_runc(void **state)
{
        struct fixture *f = *state;

        close(begin(f));
        runc_pid = fake_runc(f, "side");
        recover(f, 1);
        assert_int_equal(rollbacks, 1);
        assert_false(runc_ran_on);
}

/* edgemigd's start (wait 0) does not wait for that runc: the journal
 * stays, counted as pending, with its roll-back not run, and the next
 * try once runc is done rolls it back. */
static void test_start_does_not_wait(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        size_t pending = 9;

        close(begin(f));
        runc_pid = fake_runc(f, "side");
        assert_int_equal(em_pod_journal_recover(&f->cfg, &rec, 0, &pending, &err), 0);
        assert_null(err);
        assert_int_equal(pending, 1);
        assert_int_equal(rollbacks, 0);
        assert_true(em_pod_journal_exists(&f->cfg, "web"));
        assert_int_equal(waitpid(runc_pid, NULL, 0), runc_pid);
        runc_pid = 0;
        assert_int_equal(em_pod_journal_recover(&f->cfg, &rec, 0, &pending, &err), 1);
        assert_int_equal(pending, 0);
        assert_int_equal(rollbacks, 1);
        assert_false(em_pod_journal_exists(&f->cfg, "web"));
}

/* `edgemig recover` waits a bounded time, then fails naming itself. */
static void test_wait_bounded(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        size_t pending = 0;

        close(begin(f));
        runc_pid = fake_runc(f, "side");
        assert_int_equal(em_pod_journal_recover(&f->cfg, &rec, 200, &pending, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "could not be recovered"));
        em_error_free(&err);
        assert_int_equal(pending, 1);
        assert_int_equal(rollbacks, 0);
        assert_true(em_pod_journal_exists(&f->cfg, "web"));
        waitpid(runc_pid, NULL, 0);
}

/* A restore killed while runc restored a member (pod_member.c gives it
 * the log in the member's criu-work) or the infra (its own log) leaves
 * runc going on: settled before it is done, the roll-back could miss a
 * member that comes back after it. Not waited for at edgemigd's start
 * (pending), waited for by `edgemig recover`. */
static void test_restore_waits_for_runc(void **state)
{
        struct fixture *f = *state;
        em_error_t err = NULL;
        size_t pending = 0;
        int fd = -1;

        assert_int_equal(em_pod_journal_begin_restore(&f->cfg, "web", f->ck, names, &fd, &err), 0);
        close(fd);
        runc_pid = fake_runc_as(f, "side", "criu-work/runc.log", "restore");
        assert_int_equal(em_pod_journal_recover(&f->cfg, &rec, 0, &pending, &err), 0);
        assert_null(err);
        assert_int_equal(pending, 1);
        assert_int_equal(restores, 0);
        assert_int_equal(waitpid(runc_pid, NULL, 0), runc_pid);
        runc_pid = fake_runc_as(f, "web", "runc.log", "restore");
        recover(f, 1);
        assert_int_equal(restores, 1);
        assert_false(runc_ran_on);
}

/* A runc of a container of another pod is none of its business. */
static void test_other_runc_ignored(void **state)
{
        struct fixture *f = *state;
        pid_t other = fake_runc(f, "other");

        close(begin(f));
        runc_pid = other;
        recover(f, 1);
        assert_true(runc_ran_on);
        waitpid(other, NULL, 0);
}

static void journal(struct fixture *f, const char *text)
{
        cleanup_free char *d = em_path_join(f->dir, "pod-checkpoints");
        em_error_t err = NULL;

        assert_int_equal(em_mkdir_p(d, 0700, &err), 0);
        assert_int_equal(em_write_file_atomic(f->journal, text, strlen(text), 0600, &err), 0);
}

static void test_bad_journals_not_acted_on(void **state)
{
        struct fixture *f = *state;
        static const char *const bad[] = {
            "{\"format\": 1, \"pod\": \"web\", \"dir\": \"/x\", \"names\": [\"../db\", \"web\"]}",
            "{\"format\": 1, \"pod\": \"web\", \"dir\": \"/x\", \"names\": [\"web\", \"db\"]}",
            "{\"format\": 1, \"pod\": \"web\", \"dir\": \"/x\", \"names\": []}",
            "{\"format\": 1, \"pod\": \"web\", \"dir\": \"x\", \"names\": [\"web\"]}",
            "{\"format\": 2, \"pod\": \"web\", \"dir\": \"/x\", \"names\": [\"web\"]}",
            "{\"format\": 1, \"pod\": \"../w\", \"dir\": \"/x\", \"names\": [\"../w\"]}",
            "not json",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                journal(f, bad[i]);
                recover(f, -1);
                assert_int_equal(rollbacks, 0);
                assert_true(em_path_exists(f->journal));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_begin_writes_and_refuses_second, setup, teardown),
            cmocka_unit_test_setup_teardown(test_live_journal_left_alone, setup, teardown),
            cmocka_unit_test_setup_teardown(test_crash_rolled_back_once, setup, teardown),
            cmocka_unit_test_setup_teardown(test_failed_rollback_kept_for_retry, setup, teardown),
            cmocka_unit_test_setup_teardown(test_completed_checkpoint_dropped, setup, teardown),
            cmocka_unit_test_setup_teardown(test_restore_settled, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_journals_not_acted_on, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waits_for_runc, setup, teardown),
            cmocka_unit_test_setup_teardown(test_restore_waits_for_runc, setup, teardown),
            cmocka_unit_test_setup_teardown(test_other_runc_ignored, setup, teardown),
            cmocka_unit_test_setup_teardown(test_start_does_not_wait, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wait_bounded, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
