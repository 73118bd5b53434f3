/* The source side of the migration engine (migrate/source/source.c, phases.c)
 * driven in one process without root: em_migrate_source_run runs in the
 * test process against
 *   - the real target engine (em_migrate_target_serve in a forked child, as
 *     edgemigd's child runs it, with a stand-in restore behind
 *     em_target_ops), or
 *   - a scripted target (a thread) that answers one step wrongly: another
 *     frame type, a truncated frame, an oversized length, early EOF, or a
 *     bad answer in a valid frame;
 * over a socketpair, with stand-ins behind em_source_ops: the connection is
 * the socketpair (an OUTCOME request gets a fresh one served by
 * em_outcome_serve in a thread), runc's state is a forked process whose
 * memory the source reads, the dump copies a real CRIU dump
 * (tests/unit/data) plus a pages file, and the roll-back and the removal
 * after a commit change the container's state row as the real ones do.
 *
 * Covered: every phase (and stop-and-copy, prepare and the migration that
 * uses or drops its page-cache record), every source fault point with the
 * actions a test process survives, every frame a target can answer with
 * where it does not belong, a failing restore on either side, an
 * unreachable target, a container runc does not run, a cancel, and the
 * bound on the target's page hashes. Every case checks the source's
 * journal where the stand-ins see it and that the service ends on exactly
 * one side: running here (never stopped, or rolled back) or restored/
 * committed in the target's outcome record. The one exception is a failed
 * roll-back, which keeps the checkpoint for a human. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/features.h"
#include "checkpoint/lazy_fit.h"
#include "checkpoint/runc.h"
#include "delta/pages.h"
#include "migrate/common/journal.h"
#include "migrate/common/outcome.h"
#include "migrate/common/proto.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/precheck.h"
#include "migrate/migrate.h"
#include "state/state.h"
#include "store/manifest.h"
#include "store/store.h"
#include "transfer/handshake.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "support/fixture.h"

/* A real CRIU 4.2.1 dump of a busybox container in its own user namespace
 * (IDs 100000+65536), as the target's default policy requires. */
#define DUMP "tests/unit/data/criu-4.2.1-userns"
#define NAME "web"
#define IP   "10.66.7.7"
#define PEER "target.test:7000"

#define ok(call)                                                                                   \
        do {                                                                                       \
                if ((call) < 0)                                                                    \
                        fail_msg("%s: %s", #call, em_error_msg(err));                              \
        } while (0)

/* The journal markers of the outgoing session, as a stand-in saw them. */
enum { J_FINAL = 1, J_COMMITTING = 2, J_COMMITTED = 4 };

/* Where a scripted target misbehaves, and how. */
enum step {
        AT_HELLO_ACK,
        AT_PLAN,
        AT_HASHES,
        AT_LAYERS_ECHO,
        AT_ROUND_ECHO,
        AT_RESTORE_OK,
        AT_DONE_ACK,
        AT_NONE
};
enum bad {
        BAD_TYPE,
        BAD_TRUNC,
        BAD_LENGTH,
        BAD_EOF,
        BAD_REFUSE,
        BAD_SESSION,
        BAD_BLOB,
        BAD_HASHES,
        BAD_STALE /* AT_PLAN: hashes_from matches no record the source has */
};

struct script {
        int fd;
        enum step at;
        enum bad bad;
        uint16_t type; /* BAD_TYPE: what it sends instead */
};

#define MAX_RESPONDERS 8

struct fx {
        char dir[64], layout[96], sroot[96], troot[96];
        struct em_config scfg, tcfg;
        char manifest[EM_DIGEST_STR_LEN + 1], layer[EM_DIGEST_STR_LEN + 1];
        char diff_id[EM_DIGEST_STR_LEN + 1], config[EM_DIGEST_STR_LEN + 1];
        pid_t workload;      /* "the container": its memory is what the source reads */
        int session_fd;      /* the source's end of the session, for fake_connect */
        pid_t target;        /* the real target's session process, or 0 */
        int target_status;   /* its wait status once reaped */
        bool scripted;       /* this test's target is the scripted one */
        bool script_running; /* script_thread to join */
        pthread_t script_thread;
        struct script script;
        pthread_t responders[MAX_RESPONDERS];
        int n_responders;
        /* The scripted target's outcome record (OUTCOME answers). */
        enum em_outcome_state scripted_state;
        bool target_restore_fails, restore_here_fails;
        bool connect_refused; /* the session's connect fails */
        bool cancel;          /* the rounds leave a "cancel" file (edgemig migrate --cancel) */
        int cancel_at;        /* the `runc state` call (from 0) that cancels (0: 1) */
        pthread_mutex_t lock; /* progress, written by the monitor's thread */
        char progress[256];   /* the phases the progress callback saw, space-separated */
        bool compress_auto;   /* --compress auto (default: none) */
        /* What the stand-ins saw. */
        bool stopped, restored_here, removed, announced, withdrawn;
        int journal_at_restore, journal_at_remove;
        int checkpoints;
        int states; /* `runc state` calls */
};

static struct fx *g; /* the stand-ins behind the ops tables take no user data */

/* ---- a tiny OCI image (one gzip layer) ---- */

static void write_blob(struct fx *f, const void *buf, size_t len,
                       char digest[EM_DIGEST_STR_LEN + 1])
{
        char path[256];
        em_error_t err = NULL;

        em_sha256_buf(buf, len, digest);
        snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->layout, digest + 7);
        ok(em_write_file_atomic(path, buf, len, 0644, &err));
}

static size_t archive_one(const void *data, size_t len, bool gzip, char *out, size_t cap)
{
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        size_t used = 0;

        if (gzip) {
                archive_write_set_format_raw(a);
                archive_write_add_filter_gzip(a);
        } else {
                archive_write_set_format_pax_restricted(a);
                archive_entry_set_pathname(e, "hello.txt");
                archive_entry_set_perm(e, 0644);
        }
        archive_write_set_bytes_in_last_block(a, 1);
        archive_write_open_memory(a, out, cap, &used);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)len);
        archive_write_header(a, e);
        archive_write_data(a, data, len);
        archive_entry_free(e);
        archive_write_close(a);
        archive_write_free(a);
        return used;
}

static void make_layout(struct fx *f)
{
        static char tar[65536], gz[65536];
        char buf[2048], path[256];
        em_error_t err = NULL;
        size_t tlen, glen, clen, mlen;

        snprintf(path, sizeof(path), "%s/blobs/sha256", f->layout);
        ok(em_mkdir_p(path, 0755, &err));
        tlen = archive_one("hello\n", 6, false, tar, sizeof(tar));
        em_sha256_buf(tar, tlen, f->diff_id);
        glen = archive_one(tar, tlen, true, gz, sizeof(gz));
        write_blob(f, gz, glen, f->layer);
        clen = (size_t)snprintf(
            buf, sizeof(buf),
            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/hello\"]},"
            "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
            f->diff_id);
        write_blob(f, buf, clen, f->config);
        mlen = (size_t)snprintf(
            buf, sizeof(buf),
            "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
            "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
            "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%zu}]}",
            EM_MT_OCI_MANIFEST, EM_MT_OCI_CONFIG, f->config, clen, f->layer, glen);
        write_blob(f, buf, mlen, f->manifest);
        snprintf(buf, sizeof(buf),
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
                 "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}",
                 EM_MT_OCI_MANIFEST, f->manifest, mlen);
        snprintf(path, sizeof(path), "%s/index.json", f->layout);
        ok(em_write_file_atomic(path, buf, strlen(buf), 0644, &err));
        snprintf(path, sizeof(path), "%s/oci-layout", f->layout);
        const char *ol = "{\"imageLayoutVersion\":\"1.0.0\"}";
        ok(em_write_file_atomic(path, ol, strlen(ol), 0644, &err));
}

/* ---- the two hosts ---- */

/* What `edgemig check` would have cached on a host that can migrate. */
static void write_feature_cache(struct em_config *cfg)
{
        json_t *key = em_features_cache_key(cfg);
        json_t *c =
            json_pack("{s:o, s:{s:[{s:s, s:s, s:b, s:s}]}}", "key", key, "features", "probes",
                      "name", "criu", "status", "ok", "required", 1, "value", "4.2.1");
        char *path = em_config_path(cfg, "check-cache.json");
        em_error_t err = NULL;

        assert_non_null(c);
        ok(em_json_write_file(path, c, &err));
        json_decref(c);
        free(path);
}

/* The source host: the image in its store, the container's writable layer
 * and log (its state row is made per test, src_row). */
static void source_host(struct fx *f)
{
        struct em_store *s = NULL;
        struct em_image_info *info = NULL;
        char path[256];
        em_error_t err = NULL;

        ok(em_config_init(&f->scfg, f->sroot, &err));
        write_feature_cache(&f->scfg);
        ok(em_store_open(f->sroot, &s, &err));
        ok(em_store_import(s, f->layout, "app:1", &info, &err));
        em_image_info_free(&info);
        em_store_close(&s);
        snprintf(path, sizeof(path), "%s/containers/%s/upper/etc", f->sroot, NAME);
        ok(em_mkdir_p(path, 0755, &err));
        snprintf(path, sizeof(path), "%s/containers/%s/upper/etc/motd", f->sroot, NAME);
        ok(em_write_file_atomic(path, "hello\n", 6, 0644, &err));
        snprintf(path, sizeof(path), "%s/containers/%s/log", f->sroot, NAME);
        ok(em_write_file_atomic(path, "started\n", 8, 0600, &err));
}

/* The target host: no image yet (the source streams it), a policy that
 * allows the dump's unconfined seccomp. */
static void target_host(struct fx *f)
{
        const char *allow = "{\"allow_seccomp_unconfined\": true}";
        em_error_t err = NULL;
        char *pol;

        ok(em_config_init(&f->tcfg, f->troot, &err));
        write_feature_cache(&f->tcfg);
        pol = em_config_path(&f->tcfg, "security.json");
        ok(em_write_file_atomic(pol, allow, strlen(allow), 0600, &err));
        free(pol);
}

/* A process with 64 pages of a pattern: what the source's rounds read. */
static pid_t start_workload(void)
{
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                uint8_t *buf = aligned_alloc(EM_PAGE_SIZE, 64 * EM_PAGE_SIZE);
                for (size_t i = 0; buf != NULL && i < 64 * EM_PAGE_SIZE; i++)
                        buf[i] = (uint8_t)(i / EM_PAGE_SIZE * 7 + 1);
                for (;;)
                        pause();
        }
        return pid;
}

static int group_setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        em_log_setup(getenv("TEST_VERBOSE") ? EM_LOG_DEBUG : EM_LOG_ERROR, false, 2, "test");
        signal(SIGPIPE, SIG_IGN);
        /* In memory where there is such a place: the sessions fsync their
         * journals and records, which on a busy disk costs seconds. */
        snprintf(f->dir, sizeof(f->dir), "%s/test_engsrc.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->layout, sizeof(f->layout), "%s/layout", f->dir);
        snprintf(f->sroot, sizeof(f->sroot), "%s/src", f->dir);
        snprintf(f->troot, sizeof(f->troot), "%s/tgt", f->dir);
        make_layout(f);
        source_host(f);
        target_host(f);
        f->session_fd = -1;
        pthread_mutex_init(&f->lock, NULL);
        /* Forked while this process is small: its memory is what every
         * session's rounds read. */
        f->workload = start_workload();
        g = f;
        *state = f;
        return 0;
}

static int group_teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        kill(f->workload, SIGKILL);
        waitpid(f->workload, NULL, 0);
        pthread_mutex_destroy(&f->lock);
        em_rm_rf(f->dir, &err);
        em_error_free(&err);
        em_config_free(&f->scfg);
        em_config_free(&f->tcfg);
        free(f);
        return 0;
}

/* ---- the container on the source host ---- */

/* Replaces the state row of container name under root (spec NULL: only
 * removes it), as a run or a restore leaves it. */
static int set_row(const char *root, const char *name, const json_t *spec, enum em_cstate state,
                   em_error_t *err)
{
        struct em_state *st = NULL;
        char *js = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
        struct em_container_rec rec = {.name = (char *)name,
                                       .image = "app:1",
                                       .image_digest = (char *)em_json_str(spec, "image_digest"),
                                       .ip = IP,
                                       .spec = js,
                                       .state = state};
        em_error_t e = NULL;
        int rc = em_state_open(root, &st, err);

        if (rc == 0 && em_state_container_delete(st, name, &e) < 0)
                em_error_free(&e);
        if (rc == 0 && spec != NULL)
                rc = js == NULL ? em_error_set(err, ENOMEM, "spec")
                                : em_state_container_insert(st, &rec, NULL, err);
        em_state_close(&st);
        free(js);
        return rc;
}

/* The container's state row here, running with the workload as its init. */
static void src_row(struct fx *f)
{
        struct em_state *st = NULL;
        em_error_t err = NULL;
        json_t *spec =
            json_pack("{s:s, s:s, s:s, s:[s], s:{}, s:{s:i, s:i}, s:{s:s}}", "name", NAME, "image",
                      "app:1", "image_digest", f->manifest, "diff_ids", f->diff_id, "image_config",
                      "userns", "base", 100000, "size", 65536, "security", "seccomp", "unconfined");

        ok(set_row(f->sroot, NAME, spec, EM_CSTATE_RUNNING, &err));
        json_decref(spec);
        ok(em_state_open(f->sroot, &st, &err));
        ok(em_state_container_transition(st, NAME, EM_CSTATE_ANY, EM_CSTATE_RUNNING, f->workload,
                                         NULL, &err));
        em_state_close(&st);
}

/* The container's state here, or -1 if it has no row (removed). */
static int src_state(struct fx *f)
{
        struct em_state *st = NULL;
        struct em_container_rec *rec = NULL;
        em_error_t err = NULL;
        int s = -1;

        ok(em_state_open(f->sroot, &st, &err));
        if (em_state_container_get(st, NAME, &rec, &err) == 0)
                s = (int)rec->state;
        em_error_free(&err);
        em_container_rec_free(&rec);
        em_state_close(&st);
        return s;
}

/* <sroot>/outgoing/<session>: the one session of the test. */
static bool outgoing_dir(struct fx *f, char *out, size_t len)
{
        char path[128];
        struct dirent *e;
        int n = 0;

        snprintf(path, sizeof(path), "%s/outgoing", f->sroot);
        DIR *d = opendir(path);
        while (d != NULL && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(out, len, "%s/%.40s", path, e->d_name); /* a session: 32 hex */
                n++;
        }
        if (d != NULL)
                closedir(d);
        return n == 1;
}

static int journal_bits(struct fx *f)
{
        char dir[320];

        if (!outgoing_dir(f, dir, sizeof(dir)))
                return -1;
        return (em_journal_has(dir, "final") ? J_FINAL : 0) |
               (em_journal_has(dir, "committing") ? J_COMMITTING : 0) |
               (em_journal_has(dir, "committed") ? J_COMMITTED : 0);
}

/* ---- stand-ins behind em_source_ops ---- */

static void *outcome_responder(void *arg);

/* The session's connection is the socketpair; each later one (an OUTCOME
 * request) is a fresh socketpair served in a thread, once the session's
 * target has ended (it holds the record's lock while it restores). */
static int fake_connect(em_tls_ctx_t *tls, const char *target, int timeout_ms, em_conn_t **conn,
                        char **identity, em_error_t *err)
{
        int sp[2];

        (void)tls;
        (void)timeout_ms;
        *identity = NULL;
        if (g->connect_refused)
                return em_error_set(err, ECONNREFUSED, "connect %s", target);
        if (g->session_fd >= 0) {
                int fd = g->session_fd;
                g->session_fd = -1;
                return em_conn_from_fd(fd, target, conn, err);
        }
        if (g->target > 0) {
                waitpid(g->target, &g->target_status, 0);
                g->target = 0;
        }
        if (g->n_responders == MAX_RESPONDERS)
                return em_error_set(err, EMFILE, "too many OUTCOME requests");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return em_error_set(err, errno, "socketpair");
        intptr_t fd = sp[1];
        assert_int_equal(
            pthread_create(&g->responders[g->n_responders++], NULL, outcome_responder, (void *)fd),
            0);
        return em_conn_from_fd(sp[0], target, conn, err);
}

static int fake_state(const struct em_config *cfg, const char *name, char **status, int *pid,
                      em_error_t *err)
{
        (void)cfg;
        (void)name;
        /* `edgemig migrate --cancel SESSION` meanwhile: at a round's call,
         * not at those beside the handshake (the checks' thread: one, a
         * pod's one per container), where a cancel may come before the
         * target heard of the session. */
        if (g->cancel && g->states >= (g->cancel_at ? g->cancel_at : 1)) {
                char dir[320], path[400];
                em_error_t e = NULL;
                if (outgoing_dir(g, dir, sizeof(dir))) {
                        snprintf(path, sizeof(path), "%s/cancel", dir);
                        em_write_file_atomic(path, "", 0, 0600, &e);
                        em_error_free(&e);
                }
        }
        g->states++;
        *status = strdup(g->stopped ? "stopped" : "running");
        *pid = g->workload;
        return *status ? 0 : em_error_set(err, ENOMEM, "state");
}

/* The files of the dump, and a pages file: the workload's first pages
 * (known to the target after a round), zero pages and new ones. */
static const char *const dump_files[] = {
    "core-1.img",         "core-8.img", "fdinfo-2.img",  "fdinfo-3.img",
    "files.img",          "ids-1.img",  "ids-8.img",     "inventory.img",
    "mm-1.img",           "mm-8.img",   "pagemap-1.img", "pagemap-8.img",
    "mountpoints-13.img", "pstree.img", "seccomp.img",   "userns-14.img"};

static int write_dump(const char *dir, em_error_t *err)
{
        static uint8_t pages[8][EM_PAGE_SIZE];
        char src[256], dst[256];

        for (size_t i = 0; i < sizeof(dump_files) / sizeof(dump_files[0]); i++) {
                char *data = NULL;
                size_t n = 0;
                snprintf(src, sizeof(src), "%s/%s", DUMP, dump_files[i]);
                snprintf(dst, sizeof(dst), "%s/%s", dir, dump_files[i]);
                int rc = em_read_file(src, 1 << 20, &data, &n, err) < 0 ||
                                 em_write_file_atomic(dst, data, n, 0600, err) < 0
                             ? -1
                             : 0;
                free(data);
                if (rc < 0)
                        return -1;
        }
        memset(pages, 0, sizeof(pages));
        for (size_t i = 0; i < 4; i++)
                memset(pages[i], (int)(i * 7 + 1), EM_PAGE_SIZE);
        for (size_t k = 0; k < EM_PAGE_SIZE; k++) {
                pages[6][k] = (uint8_t)k;
                pages[7][k] = (uint8_t)(k * 3);
        }
        snprintf(dst, sizeof(dst), "%s/pages-99.img", dir);
        return em_write_file_atomic(dst, pages, sizeof(pages), 0600, err);
}

/* runc checkpoint: the service stops here, the dump lands in images_dir. */
static int fake_checkpoint_start(const struct em_config *cfg, const char *name,
                                 const char *images_dir, const struct em_checkpoint_opts *o,
                                 pid_t *pid, em_error_t *err)
{
        (void)cfg;
        (void)name;
        (void)o;
        g->stopped = true;
        g->checkpoints++;
        *pid = 0;
        return write_dump(images_dir, err);
}

static int fake_checkpoint_finish(const struct em_config *cfg, const char *name,
                                  const char *images_dir, const struct em_checkpoint_opts *o,
                                  pid_t pid, int timeout_ms, em_error_t *err)
{
        char path[256];

        (void)cfg;
        (void)name;
        (void)o;
        (void)timeout_ms;
        snprintf(path, sizeof(path), "%s/inventory.img", images_dir);
        if (pid != 0 || !em_path_exists(path))
                return em_error_set(err, EINVAL, "finish without its start");
        return 0;
}

/* The roll-back: the container runs here again (its row as the real
 * restore leaves it). */
static int fake_restore_here(const struct em_config *cfg, const char *name, const json_t *spec,
                             const char *images_dir, const char *upper_dir,
                             const struct em_restore_opts *ro, em_error_t *err)
{
        struct em_state *st = NULL;
        char path[256];
        int rc;

        (void)spec;
        (void)ro;
        (void)upper_dir;
        g->journal_at_restore = journal_bits(g);
        snprintf(path, sizeof(path), "%s/inventory.img", images_dir);
        if (!em_path_exists(path))
                return em_error_set(err, ENOENT, "no checkpoint in %s", images_dir);
        if (g->restore_here_fails)
                return em_error_set(err, EIO, "runc restore failed (stand-in)");
        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        rc = em_state_container_transition(st, name, EM_CSTATE_BIT(EM_CSTATE_CHECKPOINTED),
                                           EM_CSTATE_RUNNING, g->workload, NULL, err);
        em_state_close(&st);
        g->stopped = rc < 0;
        g->restored_here = rc == 0;
        return rc;
}

static int fake_remove(const struct em_config *cfg, const char *name, em_error_t *err)
{
        struct em_state *st = NULL;
        int rc;

        g->journal_at_remove = journal_bits(g);
        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        rc = em_state_container_delete(st, name, err);
        em_state_close(&st);
        g->removed = rc == 0;
        return rc;
}

/* `announce` after a roll-back; `withdraw` once the target announced. */
static int fake_route_hook(const char *hook, const char *verb, const char *ip, em_error_t *err)
{
        bool announce = strcmp(verb, "announce") == 0;

        if (hook == NULL || (!announce && strcmp(verb, "withdraw") != 0) || strcmp(ip, IP) != 0)
                return em_error_set(err, EINVAL, "route hook %s %s %s", hook, verb, ip);
        if (announce)
                g->announced = true;
        else
                g->withdrawn = true;
        return 0;
}

static const struct em_source_ops fake_source_ops = {
    .connect = fake_connect,
    .state = fake_state,
    .checkpoint_start = fake_checkpoint_start,
    .checkpoint_ready = em_container_checkpoint_ready, /* only the state row */
    .checkpoint_finish = fake_checkpoint_finish,
    .restore = fake_restore_here,
    .remove = fake_remove,
    .route_hook = fake_route_hook,
};

/* ---- the real target, in a child ---- */

/* The stand-in for `runc restore` on the target: checks it got the staged
 * images and leaves a mark. */
static int fake_restore_there(const struct em_config *cfg, const char *name, const json_t *spec,
                              const char *images_dir, const char *upper_dir,
                              const struct em_restore_opts *ro, em_error_t *err)
{
        char path[256];

        (void)spec;
        (void)ro;
        snprintf(path, sizeof(path), "%s/etc/motd", upper_dir);
        if (!em_path_exists(path))
                return em_error_set(err, ENOENT, "the writable layer did not arrive");
        snprintf(path, sizeof(path), "%s/pages-99.img", images_dir);
        if (!em_path_exists(path))
                return em_error_set(err, ENOENT, "no pages-99.img in %s", images_dir);
        if (g->target_restore_fails)
                return em_error_set(err, EIO, "runc restore failed (stand-in)");
        return set_row(cfg->root, name, spec, EM_CSTATE_RUNNING, err);
}

static const struct em_target_ops fake_target_ops = {.restore = fake_restore_there};

static void start_target(struct fx *f, int fd)
{
        fflush(NULL); /* the child exits through exit(): gcov writes its counts */
        f->target = fork();
        assert_true(f->target >= 0);
        if (f->target == 0) {
                struct em_target_opts o;
                em_conn_t *c = NULL;
                em_error_t err = NULL;
                close(f->session_fd);
                em_target_opts_init(&o);
                o.ops = &fake_target_ops;
                o.io_timeout_ms = 10000;
                o.commit_timeout_ms = 5000;
                if (em_conn_from_fd(fd, "source", &c, &err) < 0)
                        exit(2);
                int rc = em_migrate_target_serve(&f->tcfg, c, &o, &err);
                em_conn_free(&c);
                em_error_free(&err);
                exit(rc == 0 ? 0 : 1);
        }
        close(fd);
}

/* ---- OUTCOME requests ---- */

/* The scripted target's record, moved as em_outcome_serve would. */
static json_t *scripted_outcome(const json_t *req)
{
        const char *d = em_json_str(req, "decision");
        enum em_outcome_state s = g->scripted_state;
        bool ok = true;

        if (d != NULL && strcmp(d, "commit") == 0) {
                ok = s == EM_OUTCOME_RESTORED || s == EM_OUTCOME_COMMITTED;
                if (ok)
                        g->scripted_state = EM_OUTCOME_COMMITTED;
        } else if (d != NULL && strcmp(d, "abort") == 0) {
                ok = s != EM_OUTCOME_COMMITTED;
                if (ok)
                        g->scripted_state = EM_OUTCOME_ABORTED;
        }
        return json_pack("{s:s?, s:s, s:s, s:b}", "session", em_json_str(req, "session"), "state",
                         em_outcome_state_name(g->scripted_state), "container", NAME, "ok", ok);
}

static void *outcome_responder(void *arg)
{
        struct em_frame fr = {0};
        em_conn_t *c = NULL;
        em_error_t err = NULL;
        json_t *req = NULL, *ans = NULL;

        if (em_conn_from_fd((int)(intptr_t)arg, "source", &c, &err) < 0 ||
            em_conn_recv(c, &fr, &err) <= 0)
                goto out;
        if (!g->scripted) {
                em_outcome_serve(&g->tcfg, c, "", NULL, &fr, &err);
                goto out;
        }
        if (em_proto_frame_json(&fr, EM_FRAME_OUTCOME, &req, &err) == 0 &&
            (ans = scripted_outcome(req)) != NULL)
                em_proto_send_json(c, EM_FRAME_OUTCOME, ans, &err);
out:
        json_decref(req);
        json_decref(ans);
        em_frame_clear(&fr);
        em_conn_free(&c);
        em_error_free(&err);
        return NULL;
}

/* ---- the scripted target ---- */

/* A frame header with the given length, and fewer payload bytes than it
 * says (trunc), or a length over the limit. */
static void raw_frame(int fd, uint16_t type, bool trunc)
{
        struct em_frame_hdr h = {.type = type, .session = 0, .seq = 1, .stream = 0};
        uint8_t hdr[EM_FRAME_HDR_LEN];

        h.length = h.raw_len = trunc ? 100 : EM_FRAME_MAX_PAYLOAD + 1;
        em_frame_hdr_pack(&h, hdr);
        (void)!write(fd, hdr, sizeof(hdr));
        if (trunc)
                (void)!write(fd, "{\"ok\":true", 10);
}

static void misbehave(em_conn_t *c, struct script *sc, uint16_t expected)
{
        em_error_t err = NULL;

        switch (sc->bad) {
        case BAD_TYPE:
                em_conn_send_str(c, sc->type, "{\"reason\":\"scripted\"}", &err);
                break;
        case BAD_TRUNC:
        case BAD_LENGTH:
                raw_frame(em_conn_fd(c), expected, sc->bad == BAD_TRUNC);
                break;
        default: /* BAD_EOF */
                break;
        }
        em_error_free(&err);
        shutdown(em_conn_fd(c), SHUT_WR);
}

/* Sends the right answer, or at sc->at the wrong one (then -1). */
static int answer(em_conn_t *c, struct script *sc, enum step at, uint16_t type, uint16_t flags,
                  const void *payload, size_t len)
{
        em_error_t err = NULL;
        int rc;

        if (at == sc->at && sc->bad <= BAD_EOF) {
                misbehave(c, sc, type);
                return -1;
        }
        rc = em_conn_send(c, type, flags, 0, payload, len, 0, &err);
        em_error_free(&err);
        return rc;
}

static int script_hello(em_conn_t *c, struct script *sc)
{
        struct em_frame fr = {0};
        struct em_hello h = {0};
        char *ack = NULL;
        em_error_t err = NULL;
        int rc = -1;

        if (em_conn_recv(c, &fr, &err) <= 0 ||
            em_hello_parse((const char *)fr.payload, fr.length, &h, &err) < 0)
                goto out;
        if (sc->at == AT_HELLO_ACK && sc->bad == BAD_SESSION)
                h.session[0] ^= 1;
        if (em_hello_ack_build(!(sc->at == AT_HELLO_ACK && sc->bad == BAD_REFUSE), "scripted",
                               h.session, &ack, &err) < 0 ||
            answer(c, sc, AT_HELLO_ACK, EM_FRAME_HELLO_ACK, 0, ack, strlen(ack)) < 0)
                goto out;
        h.session[0] ^= sc->at == AT_HELLO_ACK && sc->bad == BAD_SESSION;
        em_conn_set_session(c, em_frame_session_tag(h.session));
        rc = 0;
out:
        free(ack);
        em_hello_free(&h);
        em_frame_clear(&fr);
        em_error_free(&err);
        return rc;
}

/* The plan's answer: nothing missing (or, BAD_BLOB, a blob of no plan),
 * then the page hashes (BAD_HASHES: not a multiple of 16 bytes). */
static int script_plan(em_conn_t *c, struct script *sc)
{
        static const char none[] = "{\"missing\":[],\"hashes_from\":0,\"volumes\":{}}";
        static const char stale[] = "{\"missing\":[],\"hashes_from\":1,\"volumes\":{}}";
        static const char other[] =
            "{\"missing\":[\"sha256:"
            "0000000000000000000000000000000000000000000000000000000000000000"
            "\"],\"hashes_from\":0,\"volumes\":{}}";
        struct em_frame fr = {0};
        em_error_t err = NULL;
        bool blob = sc->at == AT_PLAN && sc->bad == BAD_BLOB;
        bool odd = sc->at == AT_HASHES && sc->bad == BAD_HASHES;
        const char *ans = blob ? other : sc->at == AT_PLAN && sc->bad == BAD_STALE ? stale : none;
        int rc = em_conn_recv(c, &fr, &err) <= 0 ? -1 : 0;

        em_frame_clear(&fr);
        em_error_free(&err);
        if (rc < 0 || answer(c, sc, AT_PLAN, EM_FRAME_LAYERS_HAVE, 0, ans, strlen(ans)) < 0)
                return -1;
        return answer(c, sc, AT_HASHES, EM_FRAME_PAGES_HASHES, EM_FRAME_F_LAST, "0123456789abcde",
                      odd ? 15 : 0);
}

/* Everything else: echo ROUND_END, answer FINAL and DONE. */
static void script_rest(em_conn_t *c, struct script *sc)
{
        int rounds = 0, a = 0;

        while (a == 0) {
                struct em_frame fr = {0};
                em_error_t err = NULL;
                int rc = em_conn_recv(c, &fr, &err);
                uint16_t t = fr.hdr.type;
                em_error_free(&err);
                if (rc <= 0 || t == EM_FRAME_ABORT)
                        a = -1;
                else if (t == EM_FRAME_ROUND_END)
                        a = answer(c, sc, rounds++ ? AT_ROUND_ECHO : AT_LAYERS_ECHO,
                                   EM_FRAME_ROUND_END, 0, fr.payload, fr.length);
                else if (t == EM_FRAME_FINAL)
                        a = answer(c, sc, AT_RESTORE_OK, EM_FRAME_RESTORE_OK, 0, "{\"ok\":true}",
                                   11);
                else if (t == EM_FRAME_DONE)
                        a = answer(c, sc, AT_DONE_ACK, EM_FRAME_DONE, 0, "{\"ok\":true}", 11) < 0
                                ? -1
                                : 1;
                em_frame_clear(&fr);
        }
}

static void *script_thread(void *arg)
{
        struct script *sc = arg;
        em_conn_t *c = NULL;
        em_error_t err = NULL;
        char buf[4096];

        if (em_conn_from_fd(sc->fd, "source", &c, &err) < 0) {
                em_error_free(&err);
                return NULL;
        }
        em_conn_set_timeout(c, 10000);
        if (script_hello(c, sc) == 0 && script_plan(c, sc) == 0)
                script_rest(c, sc);
        /* Whatever the source still sends (an ABORT), until it hangs up. */
        while (read(em_conn_fd(c), buf, sizeof(buf)) > 0)
                ;
        em_conn_free(&c);
        return NULL;
}

/* ---- one migration ---- */

/* The scripted target, sc, on fd (the session's other end). */
static void start_script(struct fx *f, const struct script *sc, int fd)
{
        f->scripted = true;
        f->script = *sc;
        f->script.fd = fd;
        f->scripted_state = sc->at == AT_DONE_ACK ? EM_OUTCOME_COMMITTED : EM_OUTCOME_STAGING;
        assert_int_equal(pthread_create(&f->script_thread, NULL, script_thread, &f->script), 0);
        f->script_running = true;
}

/* A fresh container here and a target: the real one (sc == NULL) or the
 * scripted one. */
static void begin(struct fx *f, const struct script *sc)
{
        int sp[2];

        f->stopped = f->restored_here = f->removed = f->announced = f->withdrawn = false;
        f->journal_at_restore = f->journal_at_remove = -1;
        f->checkpoints = 0;
        f->n_responders = 0;
        src_row(f);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        f->session_fd = sp[0];
        f->scripted = sc != NULL;
        f->target_status = 0;
        if (sc == NULL) {
                start_target(f, sp[1]);
                return;
        }
        start_script(f, sc, sp[1]);
}

/* `--progress`: notes each new phase the snapshots name. */
static void on_progress(void *ud, const json_t *p)
{
        struct fx *f = ud;
        const char *phase = em_json_str(p, "phase");
        size_t n;

        pthread_mutex_lock(&f->lock);
        n = strlen(f->progress);
        if (phase != NULL && (n == 0 || strstr(f->progress, phase) == NULL))
                snprintf(f->progress + n, sizeof(f->progress) - n, "%s%s", n ? " " : "", phase);
        pthread_mutex_unlock(&f->lock);
}

/* Runs the source with EDGEMIG_FAULT=fault (NULL: none) in this process
 * only; returns its result, *report its timeline, *err its error. */
static void migrate_opts(struct fx *f, enum em_migrate_mode mode, struct em_migrate_opts *o)
{
        em_migrate_opts_init(o);
        /* Calibrating zstd levels (--compress auto) costs CPU the cases
         * but one do not need. */
        o->compress.mode = f->compress_auto ? EM_COMPRESS_AUTO : EM_COMPRESS_NONE;
        o->ops = &fake_source_ops;
        o->target = PEER;
        o->mode = mode;
        o->route_hook = "route-hook";
        o->stop.max_rounds = 2;
        o->io_timeout_ms = 10000;
        o->progress = on_progress;
        o->progress_ud = f;
}

static int migrate(struct fx *f, enum em_migrate_mode mode, const char *fault, json_t **report,
                   em_error_t *err)
{
        struct em_migrate_opts o;
        int rc;

        migrate_opts(f, mode, &o);
        if (fault != NULL)
                setenv("EDGEMIG_FAULT", fault, 1);
        rc = em_migrate_source_run(&f->scfg, NAME, &o, report, err);
        unsetenv("EDGEMIG_FAULT");
        return rc;
}

/* Waits for the target (and OUTCOME responders) to finish; the real
 * target's exit status, or 0 for the scripted one. */
static int end(struct fx *f)
{
        int st;

        if (f->session_fd >= 0)
                close(f->session_fd);
        f->session_fd = -1;
        if (f->target > 0)
                waitpid(f->target, &f->target_status, 0);
        f->target = 0;
        st = f->target_status;
        if (f->script_running)
                pthread_join(f->script_thread, NULL);
        f->script_running = false;
        for (int i = 0; i < f->n_responders; i++)
                pthread_join(f->responders[i], NULL);
        f->n_responders = 0;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static enum em_outcome_state target_record(struct fx *f, json_t *report)
{
        struct em_outcome o;
        em_error_t err = NULL;

        if (f->scripted)
                return f->scripted_state;
        if (em_outcome_load(f->troot, em_json_str(report, "id"), &o, &err) < 0) {
                em_error_free(&err);
                return EM_OUTCOME_UNKNOWN;
        }
        return o.state;
}

/* The rule: the service runs on exactly one host. */
static void assert_one_host(struct fx *f, json_t *report)
{
        enum em_outcome_state t = target_record(f, report);
        bool there = t == EM_OUTCOME_RESTORED || t == EM_OUTCOME_COMMITTED;
        bool here = src_state(f) == EM_CSTATE_RUNNING && !f->stopped;

        if (here == there)
                fail_msg("the service runs %s (source state %d, target record %s)",
                         here ? "on both hosts" : "nowhere", src_state(f),
                         em_outcome_state_name(t));
}

/* Nothing of the session stays behind here. */
static void assert_no_workdir(struct fx *f)
{
        char dir[320];

        assert_false(outgoing_dir(f, dir, sizeof(dir)));
}

static void rm_under(const char *root, const char *rel)
{
        char path[256];
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        em_rm_rf(path, &err);
        em_error_free(&err);
}

/* After each test, even a failed one: no thread or child left, both hosts
 * as before (the target's page cache and records may stay). */
static int test_teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        end(f);
        f->scripted = false;
        f->target_restore_fails = f->restore_here_fails = f->compress_auto = false;
        f->connect_refused = f->cancel = false;
        f->progress[0] = '\0';
        rm_under(f->sroot, "outgoing");
        rm_under(f->sroot, "known");
        rm_under(f->sroot, "containers/" NAME "/shadow");
        rm_under(f->troot, "containers/" NAME);
        set_row(f->troot, NAME, NULL, 0, &err);
        em_error_free(&err);
        rm_under(f->troot, "restored-" NAME);
        rm_under(f->troot, "pagecache");
        return 0;
}

/* Whether the error says want. */
static void assert_error(em_error_t *err, const char *want)
{
        if (*err == NULL || strstr(em_error_msg(*err), want) == NULL)
                fail_msg("error \"%s\" does not say \"%s\"", *err ? em_error_msg(*err) : "(none)",
                         want);
        em_error_free(err);
}

/* Committed: the target owns the service, the source removed its copy
 * after journalling every step, and kept nothing of the session. */
static void assert_committed(struct fx *f, json_t *report)
{
        assert_true(f->removed);
        assert_true(f->withdrawn); /* the service IP is routed to the target only */
        assert_int_equal(src_state(f), -1);
        assert_int_equal(f->journal_at_remove, J_FINAL | J_COMMITTING | J_COMMITTED);
        assert_int_equal(target_record(f, report), EM_OUTCOME_COMMITTED);
        assert_no_workdir(f);
        assert_one_host(f, report);
}

/* Never stopped: the container still runs here, the target has no copy. */
static void assert_never_stopped(struct fx *f, json_t *report)
{
        assert_int_equal(f->checkpoints, 0);
        assert_int_equal(src_state(f), EM_CSTATE_RUNNING);
        assert_false(f->restored_here);
        assert_no_workdir(f);
        assert_one_host(f, report);
}

/* A cancel before the final step: ECANCELED, the service never stopped
 * here, the target aborted, the timeline and the progress say so. */
static void assert_cancelled(struct fx *f, json_t *report, em_error_t *err)
{
        assert_int_equal(em_error_status(*err), ECANCELED);
        em_error_free(err);
        assert_true(json_is_true(json_object_get(report, "cancelled")));
        assert_never_stopped(f, report);
        assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
        assert_non_null(strstr(f->progress, "cancelled"));
}

/* Rolled back: restored here from the checkpoint (journal "final" only),
 * the route taken back, the target's record aborted. */
static void assert_rolled_back(struct fx *f, json_t *report)
{
        assert_int_equal(f->checkpoints, 1);
        assert_true(f->restored_here);
        assert_true(f->announced);
        assert_int_equal(f->journal_at_restore, J_FINAL);
        assert_int_equal(src_state(f), EM_CSTATE_RUNNING);
        assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
        assert_no_workdir(f);
        assert_one_host(f, report);
}

/* ---- phases ---- */

/* Handshake, layers (the target lacks the image: its blobs are streamed),
 * two pre-copy rounds, final, commit: committing, DONE, ack, committed. */
static void test_whole_migration(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        f->compress_auto = true;
        begin(f, NULL);
        ok(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_committed(f, report);
        assert_int_equal(f->checkpoints, 1);
        assert_non_null(json_object_get(report, "compress_calibration"));
        /* The progress callback heard of the end (the phases between are
         * snapshots of a thread that may skip one). */
        assert_non_null(strstr(f->progress, "done"));
        assert_true(json_array_size(json_object_get(report, "rounds")) >= 1);
        /* Each round says at which zstd levels its pages went. */
        json_t *r1 = json_array_get(json_object_get(report, "rounds"), 0);
        assert_true(json_is_object(json_object_get(r1, "raw_bytes_at_level")));
        assert_non_null(json_object_get(r1, "level_steps_down"));
        assert_int_equal(em_json_int(report, "layers_sent", -1), 3);
        json_decref(report);
}

/* One `runc state` per pre-copy round: the first round's estimate lists
 * the processes for the round, which does not list them again. The other
 * one lists them for the compression calibration, while the session
 * connects. */
static void test_one_state_per_round(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        f->compress_auto = true;
        f->states = 0;
        begin(f, NULL);
        ok(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_committed(f, report);
        size_t rounds = json_array_size(json_object_get(report, "rounds"));
        assert_true(rounds >= 1);
        assert_int_equal(f->states, 1 + (int)rounds);
        json_decref(report);
}

/* stop-and-copy: no pre-copy round, straight to the final dump. */
static void test_stop_and_copy(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        begin(f, NULL);
        ok(migrate(f, EM_MIGRATE_STOP_AND_COPY, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_committed(f, report);
        assert_int_equal(json_array_size(json_object_get(report, "rounds")), 0);
        json_decref(report);
}

/* A prepare of a fresh container to the real target, which then ends. */
static void prepare_first(struct fx *f)
{
        json_t *report = NULL;
        em_error_t err = NULL;

        begin(f, NULL);
        ok(migrate(f, EM_MIGRATE_PREPARE, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_never_stopped(f, report);
        json_decref(report);
}

/* A fresh real target for the session after a prepare; fault, when set,
 * is EDGEMIG_FAULT for that forked target only. */
static void next_target(struct fx *f, const char *fault)
{
        int sp[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        f->session_fd = sp[0];
        if (fault != NULL)
                setenv("EDGEMIG_FAULT", fault, 1);
        start_target(f, sp[1]);
        unsetenv("EDGEMIG_FAULT");
}

/* prepare: layers and rounds, DONE instead of FINAL, the container keeps
 * running here and the source records the target's page cache; the
 * migration that follows offers that record and the target accepts it. */
static void test_prepare_then_migrate(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;
        char path[256];

        prepare_first(f);
        snprintf(path, sizeof(path), "%s/known/%s", f->sroot, NAME);
        assert_true(em_path_exists(path));
        next_target(f, NULL);
        ok(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_true(json_is_true(json_object_get(report, "cache_record")));
        assert_committed(f, report);
        assert_false(em_path_exists(path)); /* the container left: its record too */
        json_decref(report);
}

/* Rewrites the dirt rate in the page-cache record prepare left; < 0
 * drops it, as in a record of an older edgemig. */
static void set_record_rate(struct fx *f, double bps)
{
        char dir[256], path[600] = "";
        cleanup_free char *data = NULL, *head_text = NULL, *buf = NULL;
        cleanup_json json_t *head = NULL;
        struct dirent *e;
        em_error_t err = NULL;
        size_t len = 0;
        DIR *d;

        snprintf(dir, sizeof(dir), "%s/known/%s", f->sroot, NAME);
        assert_non_null(d = opendir(dir));
        while ((e = readdir(d)) != NULL)
                if (strstr(e->d_name, ".bin") != NULL)
                        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        closedir(d);
        ok(em_read_file(path, 1 << 30, &data, &len, &err));
        char *nl = memchr(data, '\n', len);
        assert_non_null(nl);
        ok(em_json_parse(data, (size_t)(nl - data), path, &head, &err));
        assert_non_null(json_object_get(head, "left_wire_bps")); /* prepare measured it */
        if (bps < 0)
                json_object_del(head, "left_wire_bps");
        else
                json_object_set_new(head, "left_wire_bps", json_real(bps));
        assert_non_null(head_text = json_dumps(head, JSON_COMPACT));
        size_t hl = strlen(head_text), body = len - (size_t)(nl - data);
        assert_non_null(buf = malloc(hl + body));
        memcpy(buf, head_text, hl);
        memcpy(buf + hl, nl, body);
        ok(em_write_file_atomic(path, buf, hl + body, 0600, &err));
}

/* prepare, the record's rate set to rate (0: as prepare left it), then the
 * migration: committed, with the record used. */
static json_t *prepare_then_migrate(struct fx *f, double rate)
{
        json_t *report = NULL;
        em_error_t err = NULL;

        prepare_first(f);
        if (rate != 0)
                set_record_rate(f, rate);
        next_target(f, NULL);
        ok(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_committed(f, report);
        assert_true(json_is_true(json_object_get(report, "cache_record")));
        return report;
}

/* An idle service after a prepare: what it dirtied since fits the
 * downtime target by the rate prepare measured, so the final step starts
 * at once (no round), and its push during the dump sends the rest. */
static void test_prepared_freezes_at_once(void **state)
{
        json_t *report = prepare_then_migrate(*state, 0);

        assert_int_equal(json_array_size(json_object_get(report, "rounds")), 0);
        assert_true(em_json_int(report, "left_from_prepare", -1) >= 0);
        assert_string_equal(em_json_str(report, "stop_reason"), "fits-downtime-target");
        json_decref(report);
}

/* A service that dirtied fast during prepare (or a record without the
 * rate) gets a round; the round is small, and the final step starts
 * without waiting for the target's echo of it, read before RESTORE_OK. */
static void test_prepared_busy_gets_a_round(void **state)
{
        const double rates[] = {1e13, -1}; /* past any link the test measures */

        for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
                json_t *report = prepare_then_migrate(*state, rates[i]);
                json_t *rounds = json_object_get(report, "rounds");

                assert_int_equal(json_array_size(rounds), 1);
                assert_null(json_object_get(report, "left_from_prepare"));
                assert_true(
                    json_is_true(json_object_get(json_array_get(rounds, 0), "echo_deferred")));
                json_decref(report);
                test_teardown(state); /* the next one starts afresh */
        }
}

/* The target fails on the layers' ROUND_END, whose echo the source no
 * longer waits for after a prepare: it froze meanwhile, hears of the
 * failure later (a send fails, or at RESTORE_OK after FINAL, when it asks
 * the target, which has no copy) and restores the container here:
 * nothing lost, one host. */
static void test_deferred_echo_target_fails(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        prepare_first(f);
        next_target(f, "target.round-end=error");
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
        assert_int_equal(end(f), 1);
        /* Heard while sending (the target hung up) or at RESTORE_OK, after
         * FINAL: then the target's record settled it. */
        const char *settled = em_json_str(report, "settled");
        assert_true(settled == NULL || strcmp(settled, "aborted") == 0);
        assert_rolled_back(f, report);
        em_error_free(&err);
        json_decref(report);
}

/* A page-cache record the target no longer matches (its cache went):
 * the target answers with every hash, the source forgets the record and
 * migrates as on a first transfer. */
static void test_stale_cache_record(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        prepare_first(f);
        rm_under(f->troot, "pagecache");
        next_target(f, NULL);
        ok(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err));
        assert_int_equal(end(f), 0);
        assert_false(json_is_true(json_object_get(report, "cache_record")));
        assert_committed(f, report);
        json_decref(report);
}

/* A target whose cache matches the record only in part (hashes_from is
 * neither 0 nor the record's pages): the record is stale, and so is the
 * dirt rate it kept, however low; the migration gets a round instead of
 * freezing at once on that rate. */
static void test_stale_record_forgets_rate(void **state)
{
        struct fx *f = *state;
        struct script sc = {.at = AT_PLAN, .bad = BAD_STALE};
        json_t *report = NULL;
        em_error_t err = NULL;
        int sp[2];

        prepare_first(f);
        set_record_rate(f, 1); /* it would fit any downtime target */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        f->session_fd = sp[0];
        start_script(f, &sc, sp[1]);
        ok(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err));
        end(f);
        assert_null(json_object_get(report, "left_from_prepare"));
        assert_true(json_array_size(json_object_get(report, "rounds")) >= 1);
        json_decref(report);
}

/* The target cannot be reached: nothing stopped, nothing claimed there. */
static void test_connect_refused(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        f->connect_refused = true;
        begin(f, NULL);
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
        assert_error(&err, "is edgemigd running there?");
        end(f);
        assert_never_stopped(f, report);
        assert_int_equal(target_record(f, report), EM_OUTCOME_UNKNOWN);
        json_decref(report);
}

/* runc says the container is not running: the first round fails, the
 * target aborts, nothing was dumped. */
static void test_not_running(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        f->stopped = true;
        begin(f, NULL);
        f->stopped = true;
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
        assert_error(&err, "is not running (stopped)");
        assert_int_equal(end(f), 1);
        assert_int_equal(f->checkpoints, 0);
        assert_int_equal(src_state(f), EM_CSTATE_RUNNING); /* the row is as it was */
        assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
        assert_no_workdir(f);
        json_decref(report);
}

/* A workload whose page carries a memory protection key (where the
 * CPU or kernel has none: 0). */
static pid_t start_pkey_workload(void)
{
        long pk = syscall(SYS_pkey_alloc, 0, 0);
        int ready[2];
        char c = 0;
        pid_t pid;

        if (pk < 0)
                return 0;
        syscall(SYS_pkey_free, pk);
        assert_int_equal(pipe(ready), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                long k = syscall(SYS_pkey_alloc, 0, 0);
                void *p =
                    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                c = k >= 0 && p != MAP_FAILED &&
                    syscall(SYS_pkey_mprotect, p, 4096, PROT_READ | PROT_WRITE, k) == 0;
                (void)!write(ready[1], &c, 1);
                for (;;)
                        pause();
        }
        close(ready[1]);
        assert_int_equal(read(ready[0], &c, 1), 1);
        close(ready[0]);
        assert_true(c);
        return pid;
}

/* `edgemig migrate --cancel` during pre-copy: the migration ends before
 * the final step, the service stays here, the target aborts. */
static void test_cancel_before_final(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        f->cancel = true;
        f->states = 0;
        begin(f, NULL);
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
        assert_int_equal(end(f), 1);
        f->cancel = false;
        assert_cancelled(f, report, &err);
        json_decref(report);
}

/* The pre-check (`edgemig migrate --dry-run`, migrate/source/precheck.h)
 * against the real target: a "check" session that measures here, asks
 * there, and neither stops nor claims anything. */
static void test_precheck(void **state)
{
        struct fx *f = *state;
        struct em_migrate_opts o;
        json_t *report = NULL;
        em_error_t err = NULL;

        begin(f, NULL);
        migrate_opts(f, EM_MIGRATE_PRECOPY, &o);
        ok(em_precheck_run(&f->scfg, NAME, &o, &report, &err));
        assert_int_equal(end(f), 0);
        json_t *local = json_object_get(report, "local");
        assert_true(em_json_int(local, "processes", 0) >= 1);
        assert_true(em_json_int(local, "memory_bytes", 0) > 0);
        assert_true(json_is_array(json_object_get(report, "problems")));
        assert_int_equal(f->checkpoints, 0);
        assert_int_equal(src_state(f), EM_CSTATE_RUNNING);
        char path[256]; /* nothing was claimed there */
        snprintf(path, sizeof(path), "%s/containers/%s", f->troot, NAME);
        assert_false(em_path_exists(path));
        json_decref(report);
}

/* NAME made a pod's infra with member db, both running the workload. */
static void pod_rows(struct fx *f)
{
        cleanup_json json_t *infra = NULL, *db = NULL;
        cleanup_free char *js = NULL;
        struct em_state *st = NULL;
        em_error_t err = NULL;

        ok(em_container_spec_get(&f->scfg, NAME, &infra, &err));
        db = json_deep_copy(infra);
        json_object_set_new(infra, "pod_infra", json_true());
        json_object_set_new(db, "name", json_string("db"));
        json_object_set_new(db, "pod", json_string(NAME));
        json_object_set_new(db, "ip", json_null()); /* a member has the infra's */
        ok(set_row(f->sroot, NAME, infra, EM_CSTATE_RUNNING, &err));
        assert_non_null(js = json_dumps(db, JSON_COMPACT));
        struct em_container_rec rec = {.name = "db",
                                       .image = "app:1",
                                       .image_digest = (char *)em_json_str(db, "image_digest"),
                                       .spec = js,
                                       .state = EM_CSTATE_RUNNING};
        ok(em_state_open(f->sroot, &st, &err));
        ok(em_state_container_insert(st, &rec, NULL, &err));
        free(rec.ip); /* the address the insert allocated the member */
        ok(em_state_container_transition(st, NAME, EM_CSTATE_ANY, EM_CSTATE_RUNNING, f->workload,
                                         NULL, &err));
        ok(em_state_container_transition(st, "db", EM_CSTATE_ANY, EM_CSTATE_RUNNING, f->workload,
                                         NULL, &err));
        em_state_close(&st);
}

/* `check POD --mode precopy` where CRIU could not dump lazily (a process
 * holds a large reservation): no note of a hybrid hand-off, which a pod
 * never makes. */
static void test_precheck_pod_no_hybrid_note(void **state)
{
        struct fx *f = *state;
        struct em_migrate_opts o;
        json_t *report = NULL, *note;
        em_error_t err = NULL;
        pid_t big = em_test_reserving_child();
        size_t i;

        if (big == 0)
                skip();
        begin(f, NULL);
        pod_rows(f);
        migrate_opts(f, EM_MIGRATE_PRECOPY, &o);
        int rc = em_precheck_run(&f->scfg, NAME, &o, &report, &err);
        end(f);
        em_test_reap(big);
        ok(set_row(f->sroot, "db", NULL, EM_CSTATE_RUNNING, &err));
        ok(rc);
        assert_true(json_is_true(json_object_get(report, "pod")));
        json_array_foreach(json_object_get(report, "notes"), i, note)
        {
                if (strstr(json_string_value(note), "hybrid hand-off") != NULL)
                        fail_msg("a pod's pre-check notes: %s", json_string_value(note));
        }
        json_decref(report);
}

/* A pod's prepare: em_migrate_source_run of the pod's infra NAME and its
 * member db against the real target, their rounds under the stop rule
 * (opts: how it runs); the members' rows go again after. */
static int pod_prepare(struct fx *f, const struct em_migrate_opts *o, json_t **report,
                       em_error_t *e)
{
        em_error_t err = NULL;
        char upper[256];
        int rc;

        begin(f, NULL);
        pod_rows(f);
        snprintf(upper, sizeof(upper), "%s/containers/db/upper", f->sroot);
        ok(em_mkdir_p(upper, 0755, &err));
        rc = em_migrate_source_run(&f->scfg, NAME, o, report, e);
        end(f);
        ok(set_row(f->sroot, "db", NULL, EM_CSTATE_RUNNING, &err));
        return rc;
}

/* A pod's rounds stop by the single container's stop rule, its time
 * budget included: with a budget already spent after the first round
 * (and a downtime target nothing fits) one round, "time-budget"; a pod's
 * loop of its own went on to the round budget. */
static void test_pod_rounds_time_budget(void **state)
{
        struct fx *f = *state;
        struct em_migrate_opts o;
        json_t *report = NULL;
        em_error_t err = NULL;

        migrate_opts(f, EM_MIGRATE_PREPARE, &o);
        /* The first round (the workload's memory, a fork of this process)
         * measures the link at about 5 MB/s: the final overhead alone
         * then misses a downtime target of 0. */
        o.max_rate_bps = 40000000;
        o.stop.max_rounds = 4;
        o.stop.downtime_target_ms = 0;
        o.stop.time_budget_ms = 1;
        ok(pod_prepare(f, &o, &report, &err));
        assert_true(json_is_true(json_object_get(report, "pod")));
        assert_string_equal(em_json_str(report, "stop_reason"), "time-budget");
        assert_int_equal(json_array_size(json_object_get(report, "rounds")), 1);
        /* What the round left was measured (the scan), not guessed. */
        json_t *r1 = json_array_get(json_object_get(report, "rounds"), 0);
        assert_non_null(json_object_get(r1, "left_wire_bytes"));
        json_decref(report);
        /* Without a time budget: rounds until the round budget. */
        o.stop.time_budget_ms = 0;
        ok(pod_prepare(f, &o, &report, &err));
        assert_string_equal(em_json_str(report, "stop_reason"), "round-budget");
        assert_int_equal(json_array_size(json_object_get(report, "rounds")), 4);
        json_decref(report);
}

/* The checks of the container's own processes run in a thread beside the
 * connection and HELLO (phases.h, em_source_checks_start): their refusal
 * still ends the migration after the handshake, before the plan, and the
 * service never stops. A pod's, for each of its containers, as well: not
 * at its final dump, after the rounds. */
static void test_refused_by_checks(void **state)
{
        struct fx *f = *state;
        struct em_migrate_opts o;
        json_t *report = NULL;
        em_error_t err = NULL;
        pid_t keep = f->workload, pk = start_pkey_workload();

        if (pk == 0)
                skip();
        f->workload = pk;
        begin(f, NULL);
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
        assert_error(&err, "--no-wasm-memory-protection-keys");
        assert_int_equal(end(f), 1);
        assert_never_stopped(f, report);
        assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
        assert_null(json_object_get(report, "layers_sent")); /* no plan went out */
        json_decref(report);
        migrate_opts(f, EM_MIGRATE_PRECOPY, &o);
        assert_int_equal(pod_prepare(f, &o, &report, &err), -1);
        assert_error(&err, "--no-wasm-memory-protection-keys");
        assert_int_equal(f->checkpoints, 0);
        assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
        assert_null(json_object_get(report, "layers_sent"));
        assert_null(json_object_get(report, "rounds"));
        json_decref(report);
        f->workload = keep;
        kill(pk, SIGKILL);
        waitpid(pk, NULL, 0);
}

/* `migrate --cancel` of a pod's session in its rounds: it ends with
 * ECANCELED, the pod never stopped here, the target aborted the session,
 * and the progress lines went on to "cancelled". */
static void test_pod_cancel(void **state)
{
        struct fx *f = *state;
        struct em_migrate_opts o;
        json_t *report = NULL;
        em_error_t err = NULL;

        migrate_opts(f, EM_MIGRATE_PRECOPY, &o);
        f->progress[0] = '\0';
        f->cancel = true;
        /* Past the calls for db and the infra beside the handshake: at
         * the rounds' first. */
        f->states = 0;
        f->cancel_at = 2;
        assert_int_equal(pod_prepare(f, &o, &report, &err), -1);
        f->cancel = false;
        f->cancel_at = 0;
        assert_cancelled(f, report, &err);
        assert_non_null(strstr(f->progress, "precopy"));
        json_decref(report);
}

/* The target's restore fails: it aborts the session, so the source,
 * having sent FINAL, asks for the outcome, hears "aborted" and restores
 * its copy. */
static void test_target_restore_fails(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        f->target_restore_fails = true;
        begin(f, NULL);
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
        assert_error(&err, "runc restore failed");
        assert_int_equal(end(f), 1);
        assert_rolled_back(f, report);
        assert_string_equal(em_json_str(report, "settled"), "aborted");
        json_decref(report);
}

/* The roll-back itself fails: the checkpoint stays for a manual restore
 * (the one documented case where the service runs nowhere). */
static void test_roll_back_fails(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;
        char dir[320], path[400];

        f->restore_here_fails = true;
        begin(f, NULL);
        assert_int_equal(
            migrate(f, EM_MIGRATE_PRECOPY, "source.after-checkpoint=error", &report, &err), -1);
        assert_error(&err, "injected fault at source.after-checkpoint");
        assert_int_equal(end(f), 1);
        assert_int_equal(src_state(f), EM_CSTATE_CHECKPOINTED);
        assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
        assert_true(outgoing_dir(f, dir, sizeof(dir)));
        snprintf(path, sizeof(path), "%s/images/inventory.img", dir);
        assert_true(em_path_exists(path));
        json_decref(report);
}

/* ---- the source's fault points (util/fault.h) ---- */

/* Before the dump: the container never stopped, the target aborted. */
static void test_faults_before_dump(void **state)
{
        static const char *const points[] = {"source.after-handshake", "source.after-layers",
                                             "source.after-precopy"};
        struct fx *f = *state;

        for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
                char spec[96];
                json_t *report = NULL;
                em_error_t err = NULL;
                snprintf(spec, sizeof(spec), "%s=error", points[i]);
                begin(f, NULL);
                assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, spec, &report, &err), -1);
                assert_error(&err, points[i]);
                assert_int_equal(end(f), 1);
                assert_never_stopped(f, report);
                assert_int_equal(target_record(f, report), EM_OUTCOME_ABORTED);
                json_decref(report);
                test_teardown(state);
        }
}

/* After the dump, before FINAL: rolled back here. */
static void test_fault_after_checkpoint(void **state)
{
        struct fx *f = *state;
        json_t *report = NULL;
        em_error_t err = NULL;

        begin(f, NULL);
        assert_int_equal(
            migrate(f, EM_MIGRATE_PRECOPY, "source.after-checkpoint=error", &report, &err), -1);
        assert_error(&err, "source.after-checkpoint");
        assert_int_equal(end(f), 1);
        assert_rolled_back(f, report);
        json_decref(report);
}

/* After FINAL, with the target reachable for OUTCOME: every point settles
 * to a commit (the target restored: it runs the service). */
static void test_faults_after_final(void **state)
{
        static const char *const faults[] = {
            "source.after-final=error", "source.before-commit=error",
            "source.after-committing=error", "source.lose-done=drop", "source.after-done=error"};
        struct fx *f = *state;

        for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
                json_t *report = NULL;
                em_error_t err = NULL;
                begin(f, NULL);
                if (migrate(f, EM_MIGRATE_PRECOPY, faults[i], &report, &err) < 0)
                        fail_msg("%s: %s", faults[i], em_error_msg(err));
                end(f);
                assert_committed(f, report);
                assert_string_equal(em_json_str(report, "settled"), "committed");
                json_decref(report);
                test_teardown(state);
        }
}

/* After FINAL with no answer to OUTCOME: in doubt. The source stays
 * stopped with its checkpoint and journal kept; the target's restored copy
 * runs. */
static void in_doubt(struct fx *f, const char *fault, int journal)
{
        json_t *report = NULL;
        em_error_t err = NULL;
        char dir[320], path[400];

        begin(f, NULL);
        assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, fault, &report, &err), -1);
        assert_error(&err, "migration in doubt");
        assert_int_equal(end(f), 1);
        assert_int_equal(src_state(f), EM_CSTATE_CHECKPOINTED);
        assert_false(f->restored_here);
        assert_false(f->removed);
        assert_int_equal(journal_bits(f), journal);
        assert_true(outgoing_dir(f, dir, sizeof(dir)));
        snprintf(path, sizeof(path), "%s/images/pages-99.img", dir);
        assert_true(em_path_exists(path));
        assert_int_equal(target_record(f, report), EM_OUTCOME_RESTORED);
        assert_string_equal(em_json_str(report, "settled"), "in doubt");
        assert_one_host(f, report);
        json_decref(report);
}

static void test_fault_outcome_after_final(void **state)
{
        in_doubt(*state, "source.after-final=error,source.outcome=error", J_FINAL);
}

static void test_fault_outcome_after_committing(void **state)
{
        in_doubt(*state, "source.lose-done=drop,source.outcome=error", J_FINAL | J_COMMITTING);
}

/* ---- a target that answers wrongly ---- */

static const uint16_t expected_at[] = {
    [AT_HELLO_ACK] = EM_FRAME_HELLO_ACK,  [AT_PLAN] = EM_FRAME_LAYERS_HAVE,
    [AT_HASHES] = EM_FRAME_PAGES_HASHES,  [AT_LAYERS_ECHO] = EM_FRAME_ROUND_END,
    [AT_ROUND_ECHO] = EM_FRAME_ROUND_END, [AT_RESTORE_OK] = EM_FRAME_RESTORE_OK,
    [AT_DONE_ACK] = EM_FRAME_DONE};

/* One session against a target that misbehaves as sc says, and where the
 * service must end: here if the source never sent FINAL or the target
 * then had no copy; there if the source had its DONE acknowledged. */
static void misbehaving_target(struct fx *f, const struct script *sc)
{
        json_t *report = NULL;
        em_error_t err = NULL;
        int rc;

        begin(f, sc);
        rc = migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err);
        end(f);
        if (sc->at == AT_DONE_ACK) {
                if (rc < 0)
                        fail_msg("bad DONE ack %d/%u: %s", sc->bad, sc->type, em_error_msg(err));
                assert_committed(f, report);
        } else if (rc == 0) {
                fail_msg("step %d, bad %d (type %s): the source went on", sc->at, sc->bad,
                         em_frame_type_name(sc->type));
        } else if (sc->at == AT_RESTORE_OK) {
                assert_rolled_back(f, report);
        } else {
                assert_never_stopped(f, report);
        }
        em_error_free(&err);
        json_decref(report);
        test_teardown((void **)&f);
}

/* At one step: every other frame type, a truncated frame, a length over
 * the limit, and EOF. */
static void every_bad_answer(struct fx *f, enum step at)
{
        struct script sc = {.at = at};

        for (uint16_t t = 1; t < 64; t++) {
                if (!em_frame_type_valid(t) || t == expected_at[at])
                        continue;
                sc.bad = BAD_TYPE;
                sc.type = t;
                misbehaving_target(f, &sc);
        }
        for (enum bad b = BAD_TRUNC; b <= BAD_EOF; b++) {
                sc.bad = b;
                misbehaving_target(f, &sc);
        }
}

static void test_bad_hello_ack(void **state)
{
        every_bad_answer(*state, AT_HELLO_ACK);
}

static void test_bad_plan_answer(void **state)
{
        every_bad_answer(*state, AT_PLAN);
}

static void test_bad_hashes(void **state)
{
        every_bad_answer(*state, AT_HASHES);
}

static void test_bad_layers_echo(void **state)
{
        every_bad_answer(*state, AT_LAYERS_ECHO);
}

static void test_bad_round_echo(void **state)
{
        every_bad_answer(*state, AT_ROUND_ECHO);
}

static void test_bad_restore_ok(void **state)
{
        every_bad_answer(*state, AT_RESTORE_OK);
}

static void test_bad_done_ack(void **state)
{
        every_bad_answer(*state, AT_DONE_ACK);
}

/* Valid frames with answers the source must refuse. */
static void test_bad_answers_in_valid_frames(void **state)
{
        static const struct {
                struct script sc;
                const char *want;
        } cases[] = {
            {{.at = AT_HELLO_ACK, .bad = BAD_REFUSE}, "refused the migration: scripted"},
            {{.at = AT_HELLO_ACK, .bad = BAD_SESSION}, "session"},
            {{.at = AT_PLAN, .bad = BAD_BLOB}, "not in the plan"},
            {{.at = AT_HASHES, .bad = BAD_HASHES}, "hash"},
        };
        struct fx *f = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *report = NULL;
                em_error_t err = NULL;
                begin(f, &cases[i].sc);
                assert_int_equal(migrate(f, EM_MIGRATE_PRECOPY, NULL, &report, &err), -1);
                end(f);
                assert_error(&err, cases[i].want);
                assert_never_stopped(f, report);
                json_decref(report);
                test_teardown(state);
        }
}

/* The target's page hashes are bounded: a stream of PAGES_HASHES frames
 * is refused once it passes the bound (EM_SYNC_HASHES_MAX in the engine),
 * not stored until this host runs out of memory. Three frames of four
 * hashes: taken whole with room for twelve, refused with room for eight. */
static void test_hashes_bounded(void **state)
{
        uint8_t h[4 * 16];
        int sp[2];
        em_conn_t *tx = NULL, *rx = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        ok(em_conn_from_fd(sp[0], "target", &tx, &err));
        ok(em_conn_from_fd(sp[1], "source", &rx, &err));
        for (size_t max = 12; max >= 8; max -= 4) {
                struct em_sync_state *st = NULL;
                ok(em_sync_state_new(&st, &err));
                for (uint8_t i = 0; i < 3; i++) {
                        memset(h, 0, sizeof(h));
                        for (uint8_t k = 0; k < 4; k++)
                                h[k * 16] = (uint8_t)(i * 4 + k + 1);
                        ok(em_conn_send(tx, EM_FRAME_PAGES_HASHES, i == 2 ? EM_FRAME_F_LAST : 0, 0,
                                        h, sizeof(h), 0, &err));
                }
                int rc = em_sync_state_recv_hashes(st, rx, max, &err);
                if (max == 12) {
                        ok(rc);
                        assert_int_equal(em_hashset_count(em_sync_state_known(st)), 12);
                } else {
                        assert_int_equal(rc, -1);
                        assert_int_equal(em_error_status(err), EMSGSIZE);
                        assert_error(&err, "more than 8 page hashes");
                }
                em_sync_state_free(&st);
        }
        em_conn_free(&tx);
        em_conn_free(&rx);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_whole_migration, test_teardown),
            cmocka_unit_test_teardown(test_one_state_per_round, test_teardown),
            cmocka_unit_test_teardown(test_stop_and_copy, test_teardown),
            cmocka_unit_test_teardown(test_prepare_then_migrate, test_teardown),
            cmocka_unit_test_teardown(test_prepared_freezes_at_once, test_teardown),
            cmocka_unit_test_teardown(test_prepared_busy_gets_a_round, test_teardown),
            cmocka_unit_test_teardown(test_deferred_echo_target_fails, test_teardown),
            cmocka_unit_test_teardown(test_stale_cache_record, test_teardown),
            cmocka_unit_test_teardown(test_stale_record_forgets_rate, test_teardown),
            cmocka_unit_test_teardown(test_precheck, test_teardown),
            cmocka_unit_test_teardown(test_precheck_pod_no_hybrid_note, test_teardown),
            cmocka_unit_test_teardown(test_pod_rounds_time_budget, test_teardown),
            cmocka_unit_test_teardown(test_pod_cancel, test_teardown),
            cmocka_unit_test_teardown(test_connect_refused, test_teardown),
            cmocka_unit_test_teardown(test_not_running, test_teardown),
            cmocka_unit_test_teardown(test_refused_by_checks, test_teardown),
            cmocka_unit_test_teardown(test_cancel_before_final, test_teardown),
            cmocka_unit_test_teardown(test_target_restore_fails, test_teardown),
            cmocka_unit_test_teardown(test_roll_back_fails, test_teardown),
            cmocka_unit_test_teardown(test_faults_before_dump, test_teardown),
            cmocka_unit_test_teardown(test_fault_after_checkpoint, test_teardown),
            cmocka_unit_test_teardown(test_faults_after_final, test_teardown),
            cmocka_unit_test_teardown(test_fault_outcome_after_final, test_teardown),
            cmocka_unit_test_teardown(test_fault_outcome_after_committing, test_teardown),
            cmocka_unit_test_teardown(test_bad_hello_ack, test_teardown),
            cmocka_unit_test_teardown(test_bad_plan_answer, test_teardown),
            cmocka_unit_test_teardown(test_bad_hashes, test_teardown),
            cmocka_unit_test_teardown(test_bad_layers_echo, test_teardown),
            cmocka_unit_test_teardown(test_bad_round_echo, test_teardown),
            cmocka_unit_test_teardown(test_bad_restore_ok, test_teardown),
            cmocka_unit_test_teardown(test_bad_done_ack, test_teardown),
            cmocka_unit_test_teardown(test_bad_answers_in_valid_frames, test_teardown),
            cmocka_unit_test(test_hashes_bounded),
        };
        if (getenv("TEST_FILTER") != NULL)
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
