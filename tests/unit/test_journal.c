/* Session journals and the commit's outcome records (migrate/common/journal.h,
 * migrate/common/outcome.h, migrate/common/resolve.h, migrate/common/doubt.h): an owner file
 * that is never replaced, exclusive session ids, the record's states and
 * fencing, OUTCOME requests answered only for the owning peer, the
 * source's decision against a real (forked) target over TCP, and a dead
 * pod session's recovery waiting for its pod's restore journal. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/pod_journal.h"
#include "migrate/common/doubt.h"
#include "migrate/common/journal.h"
#include "migrate/common/outcome.h"
#include "migrate/common/proto.h"
#include "migrate/common/resolve.h"
#include "migrate/common/session.h"
#include "migrate/common/volume_sync.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define SESSION "0123456789abcdef0123456789abcdef"

static char root[64];
static struct em_config cfg;

static int setup(void **state)
{
        em_error_t err = NULL;

        (void)state;
        strcpy(root, "/tmp/em-journal-XXXXXX");
        if (mkdtemp(root) == NULL || em_config_init(&cfg, root, &err) < 0)
                return -1;
        return 0;
}

static int teardown(void **state)
{
        em_error_t err = NULL;

        (void)state;
        em_rm_rf(root, &err);
        em_error_free(&err);
        em_config_free(&cfg);
        return 0;
}

static char *sub(const char *rel)
{
        char *p = em_path_join(root, rel);
        assert_non_null(p);
        return p;
}

/* A second owner fails and the first owner file (and its lock) stays. */
static void test_owner_never_replaced(void **state)
{
        cleanup_free char *dir = sub("s"), *owner = sub("s/owner"), *text = NULL;
        cleanup_error em_error_t err = NULL;
        int fd1 = -1, fd2 = -1;
        struct stat a, b;

        (void)state;
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(em_journal_own(dir, "web", &fd1, &err), 0);
        assert_true(em_journal_alive(dir));
        assert_int_equal(stat(owner, &a), 0);
        assert_int_equal(em_journal_own(dir, "evil", &fd2, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_int_equal(fd2, -1);
        assert_int_equal(stat(owner, &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_equal(em_read_file(owner, 4096, &text, NULL, &err), 0);
        assert_true(strncmp(text, "web ", 4) == 0);
        close(fd1);
        assert_false(em_journal_alive(dir));
}

static void test_markers(void **state)
{
        cleanup_free char *dir = sub("m");
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_false(em_journal_has(dir, "committing"));
        assert_int_equal(em_journal_write(dir, "committing", "web", &err), 0);
        assert_true(em_journal_has(dir, "committing"));
        assert_false(em_journal_has(dir, "committed"));
}

/* A container record for name, as a restore leaves it. */
static void container_row(const char *name)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_error em_error_t err = NULL;
        struct em_container_rec rec = {.name = (char *)name,
                                       .image = "busybox",
                                       .image_digest = "sha256:00",
                                       .ip = "10.66.0.9",
                                       .spec = "{}",
                                       .state = EM_CSTATE_RUNNING};

        assert_int_equal(em_state_open(root, &st, &err), 0);
        assert_int_equal(em_state_container_insert(st, &rec, NULL, &err), 0);
}

static struct em_outcome record(const char *container, const char *peer)
{
        struct em_outcome o = {.state = EM_OUTCOME_STAGING};

        strcpy(o.session, SESSION);
        snprintf(o.container, sizeof(o.container), "%s", container);
        snprintf(o.peer, sizeof(o.peer), "%s", peer);
        return o;
}

/* Creating a record claims the session id once; the states round-trip. */
static void test_outcome_states(void **state)
{
        struct em_outcome o = record("web", "h1"), got;
        cleanup_error em_error_t err = NULL;
        int lock = -1;

        (void)state;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        assert_int_equal(em_outcome_create(root, &o, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        em_error_free(&err);
        assert_int_equal(em_outcome_lock(root, SESSION, 1000, &lock, &err), 0);
        o.state = EM_OUTCOME_RESTORED;
        assert_int_equal(em_outcome_store(root, &o, &err), 0);
        assert_int_equal(em_outcome_load(root, SESSION, &got, &err), 0);
        assert_int_equal(got.state, EM_OUTCOME_RESTORED);
        assert_string_equal(got.container, "web");
        assert_string_equal(got.peer, "h1");
        close(lock);
        assert_int_equal(em_outcome_load(root, "ffffffffffffffffffffffffffffffff", &got, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        assert_int_equal(em_outcome_load(root, "../../etc/passwd", &got, &err), -1);
}

/* The lock is exclusive across descriptors (and so across processes). */
static void test_outcome_lock_waits(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_error em_error_t err = NULL;
        int a = -1, b = -1;

        (void)state;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        assert_int_equal(em_outcome_lock(root, SESSION, 1000, &a, &err), 0);
        assert_int_equal(em_outcome_lock(root, SESSION, 100, &b, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        close(a);
}

/* Aborting a staging session releases the name it reserved; a committed
 * one cannot be aborted. */
static void test_outcome_abort(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_free char *reserved = sub("containers/web");
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_mkdir_p(reserved, 0700, &err), 0);
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        assert_int_equal(em_outcome_abort(&cfg, &o, NULL, &err), 0);
        assert_int_equal(o.state, EM_OUTCOME_ABORTED);
        assert_false(em_path_exists(reserved));
        o.state = EM_OUTCOME_COMMITTED;
        assert_int_equal(em_outcome_abort(&cfg, &o, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
}

/* A pod session's volumes after a crash between their install and the
 * restore: the abort removes the copies it listed and installed, and
 * leaves a volume of a listed name that is not that copy (one made here
 * after it, as by `run --rm -v logs:...`). */
static void test_outcome_abort_own_volumes(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_free char *cache = sub("pagecache/web/peer"), *data = sub("volumes/data");
        cleanup_free char *logs = sub("volumes/logs"), *aside = sub("logs-installed");
        cleanup_free char *reserved = sub("containers/web");
        cleanup_free char *dir = em_session_incoming_dir(&cfg, SESSION);
        cleanup_free char *list = em_path_join(dir, EM_OUTCOME_VOLUMES);
        cleanup_json json_t *have = json_object();
        cleanup_json json_t *spec = json_pack(
            "{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "mounts", "type", "volume", "name", "data",
            "destination", "/data", "type", "volume", "name", "logs", "destination", "/logs");
        struct em_volume_rx *rx = NULL;
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_mkdir_p(reserved, 0700, &err), 0);
        assert_int_equal(em_mkdir_p(dir, 0700, &err), 0);
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        assert_int_equal(em_volume_rx_new(cache, spec, &rx, have, &err), 0);
        assert_int_equal(em_volume_rx_list(rx, list, &err), 0);
        assert_int_equal(em_volume_rx_install(rx, &cfg, false, &err), 0);
        em_volume_rx_free(&rx);
        /* The installed logs kept aside (its inode stays taken), and a
         * local volume of that name in its place. */
        assert_int_equal(rename(logs, aside), 0);
        assert_int_equal(mkdir(logs, 0755), 0);
        assert_int_equal(em_outcome_abort(&cfg, &o, NULL, &err), 0);
        assert_false(em_path_exists(data));
        assert_true(em_path_exists(logs));
        assert_false(em_path_exists(list));
}

/* A route hook that appends its arguments to <root>/hook.log. */
static char *log_hook(void)
{
        char *hook = sub("hook");
        cleanup_free char *log = sub("hook.log");
        FILE *f = fopen(hook, "w");

        assert_non_null(f);
        fprintf(f, "#!/bin/sh\necho \"$*\" >>%s\n", log);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(hook, 0700), 0);
        return hook;
}

/* Aborting a restored copy withdraws its service IP (the copy announced
 * it after its restore); a session that restored nothing runs no hook. */
static void test_outcome_abort_withdraws(void **state)
{
        struct em_outcome o = record("web", "h1"), s = record("db", "h1");
        cleanup_free char *hook = log_hook(), *log = sub("hook.log");
        cleanup_free char *reserved = sub("containers/db");
        cleanup_error em_error_t err = NULL;
        char line[64] = "";

        (void)state;
        strcpy(s.session, "fedcba9876543210fedcba9876543210");
        assert_int_equal(em_mkdir_p(reserved, 0700, &err), 0);
        assert_int_equal(em_outcome_create(root, &s, &err), 0);
        assert_int_equal(em_outcome_abort(&cfg, &s, hook, &err), 0);
        assert_false(em_path_exists(log));
        o.state = EM_OUTCOME_RESTORED;
        container_row("web");
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        em_outcome_abort(&cfg, &o, hook, &err); /* no runc here: rm may fail */
        FILE *f = fopen(log, "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof(line), f));
        fclose(f);
        assert_string_equal(line, "withdraw 10.66.0.9\n");
}

/* Sends an OUTCOME request on one end of a socketpair, serves it on the
 * other as `peer`, returns the reply. */
static json_t *ask(const char *peer, const char *session, const char *decision)
{
        int sv[2];
        cleanup_conn em_conn_t *client = NULL, *server = NULL;
        cleanup_frame struct em_frame f = {0};
        cleanup_json json_t *req =
            json_pack("{s:s, s:s}", "session", session, "decision", decision);
        cleanup_error em_error_t err = NULL;
        json_t *ans = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "client", &client, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "server", &server, &err), 0);
        assert_int_equal(em_proto_send_json(client, EM_FRAME_OUTCOME, req, &err), 0);
        assert_int_equal(em_conn_recv(server, &f, &err), 1);
        assert_int_equal(em_outcome_serve(&cfg, server, peer, NULL, &f, &err), 0);
        assert_int_equal(em_proto_recv_json(client, EM_FRAME_OUTCOME, &ans, &err), 0);
        return ans;
}

static void expect(json_t *ans, bool ok, const char *state)
{
        if (json_is_true(json_object_get(ans, "ok")) != ok ||
            strcmp(em_json_str(ans, "state"), state) != 0)
                fail_msg("got %s", json_dumps(ans, JSON_COMPACT));
        json_decref(ans);
}

/* Only the owner learns or decides; commit needs a restored copy; an abort
 * fences a later commit. */
static void test_outcome_serve(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        expect(ask("h1", "ffffffffffffffffffffffffffffffff", "query"), true, "unknown");
        expect(ask("h1", "ffffffffffffffffffffffffffffffff", "commit"), false, "unknown");
        expect(ask("h1", "ffffffffffffffffffffffffffffffff", "abort"), true, "unknown");
        expect(ask("h3", SESSION, "query"), false, "unknown");
        expect(ask("h3", SESSION, "abort"), false, "unknown");
        expect(ask(NULL, SESSION, "abort"), false, "unknown");
        expect(ask("h1", SESSION, "query"), true, "staging");
        expect(ask("h1", SESSION, "commit"), false, "staging");
        o.state = EM_OUTCOME_RESTORED;
        assert_int_equal(em_outcome_store(root, &o, &err), 0);
        container_row("web");
        expect(ask("h1", SESSION, "commit"), true, "committed");
        expect(ask("h1", SESSION, "abort"), false, "committed");
        expect(ask("h1", SESSION, "commit"), true, "committed");
}

static void test_outcome_abort_fences(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        expect(ask("h1", SESSION, "abort"), true, "aborted");
        expect(ask("h1", SESSION, "commit"), false, "aborted");
        expect(ask("h1", SESSION, "query"), true, "aborted");
}

/* A restored copy an operator removed cannot be committed: the record
 * turns aborted and the source keeps its own. */
static void test_outcome_copy_gone(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_error em_error_t err = NULL;

        (void)state;
        o.state = EM_OUTCOME_RESTORED;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        expect(ask("h1", SESSION, "query"), true, "aborted");
        expect(ask("h1", SESSION, "commit"), false, "aborted");
}

/* A bad request is a protocol error, not an answer. */
static void test_outcome_bad_request(void **state)
{
        int sv[2];
        cleanup_conn em_conn_t *client = NULL, *server = NULL;
        cleanup_frame struct em_frame f = {0};
        cleanup_error em_error_t err = NULL;

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "client", &client, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "server", &server, &err), 0);
        assert_int_equal(em_conn_send_str(client, EM_FRAME_OUTCOME,
                                          "{\"session\":\"../x\",\"decision\":\"abort\"}", &err),
                         0);
        assert_int_equal(em_conn_recv(server, &f, &err), 1);
        assert_int_equal(em_outcome_serve(&cfg, server, "h1", NULL, &f, &err), -1);
        assert_int_equal(em_error_status(err), EPROTO);
}

/* A forked "target" that serves n OUTCOME requests on a loopback port. */
static pid_t serve_target(int n, char *hostport, size_t len)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        socklen_t al = sizeof(a);
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pid_t pid;

        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
        snprintf(hostport, len, "127.0.0.1:%d", ntohs(a.sin_port));
        pid = fork();
        assert_true(pid >= 0);
        if (pid > 0) {
                close(lfd);
                return pid;
        }
        for (int i = 0; i < n; i++) {
                em_conn_t *c = NULL;
                struct em_frame f = {0};
                em_error_t e = NULL;
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0 || em_conn_from_fd(fd, "source", &c, &e) < 0 ||
                    em_conn_recv(c, &f, &e) != 1 || em_outcome_serve(&cfg, c, "", NULL, &f, &e) < 0)
                        _exit(1);
                em_frame_clear(&f);
                em_conn_free(&c);
        }
        _exit(0);
}

static void reap(pid_t pid)
{
        int status = 0;

        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The source's outgoing session directory, as send_final leaves it. */
static char *outgoing(const char *target)
{
        char *dir = sub("outgoing/" SESSION);
        em_error_t err = NULL;

        assert_int_equal(em_mkdir_p(dir, 0700, &err), 0);
        assert_int_equal(em_resolve_peer_save(dir, target, NULL, &err), 0);
        assert_int_equal(em_journal_write(dir, "final", "web", &err), 0);
        return dir;
}

static enum em_verdict settle(const char *dir, int expect_rc)
{
        struct em_resolve_opts ro;
        enum em_verdict v = EM_VERDICT_UNKNOWN;
        cleanup_error em_error_t err = NULL;

        em_resolve_opts_init(&ro);
        ro.attempts = 2;
        ro.retry_ms = 10;
        assert_int_equal(em_resolve_session(&ro, dir, SESSION, &v, &err), expect_rc);
        return v;
}

static enum em_outcome_state target_state(void)
{
        struct em_outcome o;
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_outcome_load(root, SESSION, &o, &err), 0);
        return o.state;
}

/* The target runs a restored copy: the source decides commit, and
 * journals "committing" before it asks. */
static void test_resolve_restored_commits(void **state)
{
        struct em_outcome o = record("web", "");
        cleanup_error em_error_t err = NULL;
        char hp[64];

        (void)state;
        o.state = EM_OUTCOME_RESTORED;
        container_row("web");
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        pid_t pid = serve_target(2, hp, sizeof(hp));
        cleanup_free char *dir = outgoing(hp);
        assert_int_equal(settle(dir, 0), EM_VERDICT_COMMIT);
        reap(pid);
        assert_true(em_journal_has(dir, "committing"));
        assert_int_equal(target_state(), EM_OUTCOME_COMMITTED);
}

/* No copy there: abort, and the target's record fences the session. */
static void test_resolve_staging_aborts(void **state)
{
        struct em_outcome o = record("web", "");
        cleanup_error em_error_t err = NULL;
        char hp[64];

        (void)state;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        pid_t pid = serve_target(2, hp, sizeof(hp));
        cleanup_free char *dir = outgoing(hp);
        assert_int_equal(settle(dir, 0), EM_VERDICT_ABORT);
        reap(pid);
        assert_false(em_journal_has(dir, "committing"));
        assert_int_equal(target_state(), EM_OUTCOME_ABORTED);
}

/* "committing" journalled: commit even if the target never saw DONE. */
static void test_resolve_committing_commits(void **state)
{
        struct em_outcome o = record("web", "");
        cleanup_error em_error_t err = NULL;
        char hp[64];

        (void)state;
        o.state = EM_OUTCOME_RESTORED;
        container_row("web");
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        pid_t pid = serve_target(1, hp, sizeof(hp));
        cleanup_free char *dir = outgoing(hp);
        assert_int_equal(em_journal_write(dir, "committing", "web", &err), 0);
        assert_int_equal(settle(dir, 0), EM_VERDICT_COMMIT);
        reap(pid);
        assert_int_equal(target_state(), EM_OUTCOME_COMMITTED);
}

/* Decided to commit, but the target fenced the session (aborted: it has no
 * copy and never will): restoring ours is safe. */
static void test_resolve_committing_fenced_aborts(void **state)
{
        struct em_outcome o = record("web", "");
        cleanup_error em_error_t err = NULL;
        char hp[64];

        (void)state;
        o.state = EM_OUTCOME_ABORTED;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        pid_t pid = serve_target(1, hp, sizeof(hp));
        cleanup_free char *dir = outgoing(hp);
        assert_int_equal(em_journal_write(dir, "committing", "web", &err), 0);
        assert_int_equal(settle(dir, 0), EM_VERDICT_ABORT);
        reap(pid);
}

/* Decided to commit, but the target does not know the session (it lost its
 * record): a human must look. */
static void test_resolve_contradiction(void **state)
{
        cleanup_error em_error_t err = NULL;
        char hp[64];

        (void)state;
        pid_t pid = serve_target(1, hp, sizeof(hp));
        cleanup_free char *dir = outgoing(hp);
        assert_int_equal(em_journal_write(dir, "committing", "web", &err), 0);
        settle(dir, -1);
        reap(pid);
}

/* Nobody answers: in doubt, nothing decided, and recover lists it. */
static void test_resolve_unreachable(void **state)
{
        cleanup_free char *dir = NULL;
        cleanup_json json_t *doubt = NULL;
        cleanup_error em_error_t err = NULL;
        char hp[64];

        (void)state;
        pid_t pid = serve_target(0, hp, sizeof(hp)); /* listens, then closes */
        reap(pid);
        dir = outgoing(hp);
        assert_int_equal(settle(dir, 0), EM_VERDICT_UNKNOWN);
        assert_false(em_journal_has(dir, "committing"));
        assert_int_equal(em_migrate_in_doubt(&cfg, &doubt, &err), 0);
        assert_int_equal(json_array_size(doubt), 1);
        assert_string_equal(em_json_str(json_array_get(doubt, 0), "side"), "source");
        assert_non_null(strstr(em_json_str(json_array_get(doubt, 0), "fix"), "--keep-local"));
}

/* After `recover --keep-local` the session's tombstone is not in doubt (the
 * container runs here); once the target answers, recovery aborts the
 * session there and the tombstone goes. */
static void test_kept_local_fences_target(void **state)
{
        struct em_outcome o = record("web", "");
        cleanup_json json_t *doubt = NULL;
        cleanup_error em_error_t err = NULL;
        struct em_resolve_opts ro;
        char hp[64];

        (void)state;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        pid_t pid = serve_target(1, hp, sizeof(hp));
        cleanup_free char *dir = outgoing(hp);
        assert_int_equal(em_journal_write(dir, "owner", "web", &err), 0);
        assert_int_equal(em_journal_write(dir, "kept-local", "web", &err), 0);
        assert_int_equal(em_migrate_in_doubt(&cfg, &doubt, &err), 0);
        assert_int_equal(json_array_size(doubt), 0);
        em_resolve_opts_init(&ro);
        ro.attempts = 1;
        assert_int_equal(em_migrate_source_recover(&cfg, &ro, &err), 1);
        reap(pid);
        assert_false(em_path_exists(dir));
        assert_int_equal(target_state(), EM_OUTCOME_ABORTED);
}

/* A restored session without its process is in doubt on the target;
 * --keep-here commits it, after which an abort is refused. */
static void test_keep_here(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_json json_t *doubt = NULL, *after = NULL;
        cleanup_error em_error_t err = NULL;

        (void)state;
        o.state = EM_OUTCOME_RESTORED;
        container_row("web");
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        assert_int_equal(em_migrate_in_doubt(&cfg, &doubt, &err), 0);
        assert_int_equal(json_array_size(doubt), 1);
        assert_string_equal(em_json_str(json_array_get(doubt, 0), "side"), "target");
        assert_int_equal(em_migrate_keep_here(&cfg, SESSION, &err), 0);
        assert_int_equal(target_state(), EM_OUTCOME_COMMITTED);
        expect(ask("h1", SESSION, "abort"), false, "committed");
        assert_int_equal(em_migrate_in_doubt(&cfg, &after, &err), 0);
        assert_int_equal(json_array_size(after), 0);
        assert_int_equal(em_migrate_keep_here(&cfg, "nonsense", &err), -1);
}

/* An OUTCOME abort of a pod session whose restore journal is not settled
 * (its process died while runc restored a member, which goes on alone)
 * is not answered: it would remove the pod under that runc. The source
 * retries; once the journal is settled the abort goes through. */
static void test_outcome_abort_waits_for_pod_journal(void **state)
{
        struct em_outcome o = record("web", "h1");
        cleanup_free char *reserved = sub("containers/web");
        cleanup_json json_t *req = json_pack("{s:s, s:s}", "session", SESSION, "decision", "abort");
        cleanup_error em_error_t err = NULL;
        char *const names[] = {"w", "web", NULL};
        int fd = -1, sv[2];

        (void)state;
        assert_int_equal(em_mkdir_p(reserved, 0700, &err), 0);
        o.state = EM_OUTCOME_RESTORING;
        assert_int_equal(em_outcome_create(root, &o, &err), 0);
        assert_int_equal(em_pod_journal_begin_restore(&cfg, "web", reserved, names, &fd, &err), 0);
        close(fd); /* unlocked: the session's process is gone */
        fd = -1;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cleanup_conn em_conn_t *client = NULL, *server = NULL;
        cleanup_frame struct em_frame f = {0};
        assert_int_equal(em_conn_from_fd(sv[0], "client", &client, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "server", &server, &err), 0);
        assert_int_equal(em_proto_send_json(client, EM_FRAME_OUTCOME, req, &err), 0);
        assert_int_equal(em_conn_recv(server, &f, &err), 1);
        assert_int_equal(em_outcome_serve(&cfg, server, "h1", NULL, &f, &err), -1);
        assert_int_equal(em_error_status(err), EBUSY);
        em_error_free(&err);
        struct em_outcome got;
        assert_int_equal(em_outcome_load(root, SESSION, &got, &err), 0);
        assert_int_equal(got.state, EM_OUTCOME_RESTORING);
        assert_true(em_path_exists(reserved));
        em_pod_journal_end(&cfg, "web", &fd);
        expect(ask("h1", SESSION, "abort"), true, "aborted");
        assert_false(em_path_exists(reserved));
}

/* A dead pod session on the target waits while its pod's restore
 * journal is not settled (a `runc restore` of a member may still run),
 * then is recovered; with pid -1 (edgemigd while sessions run) a session
 * without an owner file is left: it may be one being created. */
static void test_incoming_waits_for_pod_journal(void **state)
{
        cleanup_free char *dir = sub("incoming/" SESSION), *bare = sub("incoming/fresh");
        cleanup_error em_error_t err = NULL;
        char *const names[] = {"w", "web", NULL};
        int fd = -1;

        (void)state;
        assert_int_equal(em_mkdir_p(dir, 0700, &err), 0);
        assert_int_equal(em_mkdir_p(bare, 0700, &err), 0);
        /* Written unlocked: the session's process is gone. */
        assert_int_equal(em_journal_write(dir, "owner", "web", &err), 0);
        assert_int_equal(em_pod_journal_begin_restore(&cfg, "web", dir, names, &fd, &err), 0);
        close(fd);
        fd = -1;
        assert_int_equal(em_migrate_target_recover(&cfg, -1, NULL, &err), 0);
        assert_true(em_path_exists(dir));
        em_pod_journal_end(&cfg, "web", &fd);
        assert_int_equal(em_migrate_target_recover(&cfg, -1, NULL, &err), 1);
        assert_false(em_path_exists(dir));
        assert_true(em_path_exists(bare));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_owner_never_replaced, setup, teardown),
            cmocka_unit_test_setup_teardown(test_markers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_states, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_lock_waits, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_abort, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_abort_own_volumes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_abort_withdraws, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_serve, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_abort_fences, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_copy_gone, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_bad_request, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_restored_commits, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_staging_aborts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_committing_commits, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_committing_fenced_aborts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_contradiction, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resolve_unreachable, setup, teardown),
            cmocka_unit_test_setup_teardown(test_kept_local_fences_target, setup, teardown),
            cmocka_unit_test_setup_teardown(test_keep_here, setup, teardown),
            cmocka_unit_test_setup_teardown(test_incoming_waits_for_pod_journal, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outcome_abort_waits_for_pod_journal, setup,
                                            teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
