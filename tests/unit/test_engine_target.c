/* The target side of the migration engine (migrate/target/target.c), driven in one
 * process over a socketpair: the test plays the source frame by frame, the
 * target serves the session in a forked child (em_migrate_target_serve, as
 * edgemigd's child does), with a stand-in restore behind em_target_ops and
 * no root. The state root has a feature cache (so HELLO needs no probes),
 * a tiny OCI image built here, a security policy allowing unconfined
 * seccomp, and the CRIU images of a real dump in a user namespace
 * (tests/unit/data) travel as the final images.
 *
 * Covered: every phase (handshake, layers, pre-copy round, final, commit,
 * and prepare's end; once with the source's own sync engine reading a live
 * process and a writable layer), every frame a source may send where it does not
 * belong (the target refuses with a protocol error and removes only what
 * the session created), and the target's fault points (util/fault.h). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <archive.h>
#include <archive_entry.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/features.h"
#include "checkpoint/runc.h"
#include "delta/pages.h"
#include "migrate/migrate.h"
#include "migrate/common/outcome.h"
#include "migrate/common/proto.h"
#include "migrate/common/session.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/upper_send.h"
#include "migrate/target/sync_target.h"
#include "store/manifest.h"
#include "store/store.h"
#include "transfer/handshake.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

/* A real CRIU 4.2.1 dump of a busybox container in its own user namespace
 * (IDs 100000+65536), as the target's default policy requires. */
#define DUMP "tests/unit/data/criu-4.2.1-userns"

/* A library call that must succeed; on failure the test names its error. */
#define ok(call)                                                                                   \
        do {                                                                                       \
                if ((call) < 0)                                                                    \
                        fail_msg("%s: %s", #call, em_error_msg(err));                              \
        } while (0)
#define NAME "web"

struct fx {
        char dir[64], layout[96], root[96];
        struct em_config cfg;
        char manifest[EM_DIGEST_STR_LEN + 1], layer[EM_DIGEST_STR_LEN + 1];
        char diff_id[EM_DIGEST_STR_LEN + 1], config[EM_DIGEST_STR_LEN + 1];
        uint8_t session[16];
        char session_hex[33];
        em_conn_t *src; /* the test's end: the source */
        pid_t target;
        pid_t workload; /* test_source_sync's process, if running */
};

/* ---- a tiny OCI image (one gzip layer) for the target's store ---- */

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
        size_t tlen, glen;

        snprintf(path, sizeof(path), "%s/blobs/sha256", f->layout);
        ok(em_mkdir_p(path, 0755, &err));
        tlen = archive_one("hello\n", 6, false, tar, sizeof(tar));
        em_sha256_buf(tar, tlen, f->diff_id);
        glen = archive_one(tar, tlen, true, gz, sizeof(gz));
        write_blob(f, gz, glen, f->layer);
        snprintf(buf, sizeof(buf),
                 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/hello\"]},"
                 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                 f->diff_id);
        size_t clen = strlen(buf);
        write_blob(f, buf, clen, f->config);
        snprintf(buf, sizeof(buf),
                 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                 "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
                 "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%zu}]}",
                 EM_MT_OCI_MANIFEST, EM_MT_OCI_CONFIG, f->config, clen, f->layer, glen);
        size_t mlen = strlen(buf);
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

/* ---- the target's host: state root, feature cache, image ---- */

/* What `edgemig check` would have cached on a host that can migrate. */
static void write_feature_cache(struct fx *f)
{
        json_t *key = em_features_cache_key(&f->cfg);
        json_t *c =
            json_pack("{s:o, s:{s:[{s:s, s:s, s:b, s:s}]}}", "key", key, "features", "probes",
                      "name", "criu", "status", "ok", "required", 1, "value", "4.2.1");
        char *path = em_config_path(&f->cfg, "check-cache.json");
        em_error_t err = NULL;

        assert_non_null(c);
        ok(em_json_write_file(path, c, &err));
        json_decref(c);
        free(path);
}

static int group_setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        struct em_store *s = NULL;
        struct em_image_info *info = NULL;
        em_error_t err = NULL;

        em_log_setup(EM_LOG_ERROR, false, 2, "test");
        signal(SIGPIPE, SIG_IGN);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_engine.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->layout, sizeof(f->layout), "%s/layout", f->dir);
        snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
        make_layout(f);
        ok(em_config_init(&f->cfg, f->root, &err));
        write_feature_cache(f);
        /* The dump's tasks have no seccomp filter: this host allows that. */
        char *pol = em_config_path(&f->cfg, "security.json");
        const char *allow = "{\"allow_seccomp_unconfined\": true}";
        ok(em_write_file_atomic(pol, allow, strlen(allow), 0600, &err));
        free(pol);
        ok(em_store_open(f->root, &s, &err));
        ok(em_store_import(s, f->layout, "app:1", &info, &err));
        em_image_info_free(&info);
        em_store_close(&s);
        *state = f;
        return 0;
}

static int group_teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        em_rm_rf(f->dir, &err);
        em_error_free(&err);
        em_config_free(&f->cfg);
        free(f);
        return 0;
}

/* ---- the target, in a child ---- */

/* The stand-in for `runc restore`: checks it got the staged images (to
 * move, not copy) and leaves a mark the test looks for. */
static int fake_restore(const struct em_config *cfg, const char *name, const json_t *spec,
                        const char *images_dir, const char *upper_dir,
                        const struct em_restore_opts *ro, em_error_t *err)
{
        char path[256];

        (void)spec;
        /* The session's staged upper is renamed into place: a copy (an exec
         * of cp -a) would lengthen the downtime. */
        if (ro->copy_upper)
                return em_error_set(err, EINVAL, "the staged upper would be copied, not moved");
        /* What the pre-warm made is kept, not made again. */
        snprintf(path, sizeof(path), "%s/prewarmed-%s", cfg->root, name);
        if (em_path_exists(path) && !ro->net_ready)
                return em_error_set(err, EINVAL, "the pre-warmed network namespace is dropped");
        snprintf(path, sizeof(path), "%s/inventory.img", images_dir);
        if (!em_path_exists(path))
                return em_error_set(err, ENOENT, "no inventory.img in %s", images_dir);
        snprintf(path, sizeof(path), "%s/restored-%s", cfg->root, name);
        if (em_write_file_atomic(path, images_dir, strlen(images_dir), 0600, err) < 0)
                return -1;
        /* What the writable layer brought, for test_source_sync. */
        char src[256], *data = NULL;
        size_t len = 0;
        snprintf(src, sizeof(src), "%s/data.txt", upper_dir);
        if (!em_path_exists(src))
                return 0;
        snprintf(path, sizeof(path), "%s/restored-%s.upper", cfg->root, name);
        int rc = em_read_file(src, 4096, &data, &len, err) < 0 ||
                         em_write_file_atomic(path, data, len, 0600, err) < 0
                     ? -1
                     : 0;
        free(data);
        return rc;
}

/* The stand-in for em_target_prewarm_runc: a mark, and a network
 * namespace the restore may keep. */
static int fake_prewarm(const struct em_config *cfg, const char *name, const json_t *spec,
                        bool *net_ready, em_error_t *err)
{
        char path[256];

        if (em_json_str(spec, "ip") == NULL)
                return em_error_set(err, EINVAL, "pre-warm without the spec");
        snprintf(path, sizeof(path), "%s/prewarmed-%s", cfg->root, name);
        *net_ready = true;
        return em_write_file_atomic(path, "", 0, 0600, err);
}

/* The stand-in for em_pod_restore: checks the staged pod and leaves a
 * mark, and restored-pod-db.upper with db's upper/keep.txt and data.txt
 * one after the other, if staged. */
static int fake_restore_pod(const struct em_config *cfg, const char *dir, em_error_t *err)
{
        char path[256], text[64] = "";

        snprintf(path, sizeof(path), "%s/pod.json", dir);
        if (!em_path_exists(path))
                return em_error_set(err, ENOENT, "no pod.json in %s", dir);
        for (size_t i = 0; i < 2; i++) {
                char *data = NULL;
                size_t len = 0;
                snprintf(path, sizeof(path), "%s/db/upper/%s", dir, i ? "data.txt" : "keep.txt");
                if (em_read_file(path, 16, &data, &len, err) == 0)
                        strncat(text, data, sizeof(text) - strlen(text) - 1);
                em_error_free(err);
                free(data);
        }
        snprintf(path, sizeof(path), "%s/restored-pod-db.upper", cfg->root);
        if (*text && em_write_file_atomic(path, text, strlen(text), 0600, err) < 0)
                return -1;
        snprintf(path, sizeof(path), "%s/restored-pod", cfg->root);
        return em_write_file_atomic(path, dir, strlen(dir), 0600, err);
}

static const struct em_target_ops fake_ops = {
    .restore = fake_restore, .prewarm = fake_prewarm, .restore_pod = fake_restore_pod};

/* Starts the target on one end of a socketpair; fault: EDGEMIG_FAULT for
 * the target only (NULL: none). */
static void start_target(struct fx *f, const char *fault)
{
        int sp[2];
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        ok(em_session_new(f->session, &err));
        em_session_hex(f->session, f->session_hex);
        fflush(NULL); /* the child exits through exit(): gcov writes its counts */
        f->target = fork();
        assert_true(f->target >= 0);
        if (f->target == 0) {
                struct em_target_opts o;
                em_conn_t *c = NULL;
                close(sp[0]);
                if (fault != NULL)
                        setenv("EDGEMIG_FAULT", fault, 1);
                em_target_opts_init(&o);
                o.ops = &fake_ops;
                o.io_timeout_ms = 10000;
                o.commit_timeout_ms = 5000;
                if (em_conn_from_fd(sp[1], "source", &c, &err) < 0)
                        exit(2);
                int rc = em_migrate_target_serve(&f->cfg, c, &o, &err);
                em_conn_free(&c);
                em_error_free(&err);
                exit(rc == 0 ? 0 : 1);
        }
        close(sp[1]);
        ok(em_conn_from_fd(sp[0], "target", &f->src, &err));
        em_conn_set_timeout(f->src, 20000);
}

/* The target's exit status (0: session committed or prepared). */
static int wait_target(struct fx *f)
{
        int st = 0;

        em_conn_free(&f->src);
        assert_int_equal(waitpid(f->target, &st, 0), f->target);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The target's info log goes to <dir>/target.log (the forked target
 * inherits it) until log_text, which returns what was logged. */
static int log_capture(struct fx *f)
{
        char path[128];

        snprintf(path, sizeof(path), "%s/target.log", f->dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        em_log_setup(EM_LOG_INFO, false, fd, "test");
        return fd;
}

static char *log_text(struct fx *f, int fd)
{
        char path[128], *text = NULL;
        em_error_t err = NULL;

        em_log_setup(EM_LOG_ERROR, false, 2, "test");
        close(fd);
        snprintf(path, sizeof(path), "%s/target.log", f->dir);
        ok(em_read_file(path, 1 << 20, &text, NULL, &err));
        return text;
}

/* ---- the source's side of the protocol ---- */

static void send_hello(struct fx *f, const char *name, const char *mode)
{
        struct em_hello h = {0};
        char *hello = NULL;
        em_error_t err = NULL;

        ok(em_session_local_hello(&f->cfg, &h, &err));
        memcpy(h.session, f->session, 16);
        h.container = strdup(name);
        h.mode = strdup(mode);
        ok(em_hello_build(&h, &hello, &err));
        ok(em_conn_send_str(f->src, EM_FRAME_HELLO, hello, &err));
        free(hello);
        em_hello_free(&h);
}

/* HELLO -> HELLO_ACK; returns whether the target accepted. */
static bool handshake(struct fx *f, const char *name, const char *mode)
{
        cleanup_frame struct em_frame fr = {0};
        char *reason = NULL;
        bool ok = false;
        em_error_t err = NULL;

        send_hello(f, name, mode);
        ok(em_proto_recv(f->src, &fr, &err));
        assert_int_equal(fr.hdr.type, EM_FRAME_HELLO_ACK);
        ok(em_hello_ack_parse((const char *)fr.payload, fr.length, f->session, &ok, &reason, &err));
        free(reason);
        em_conn_set_session(f->src, em_frame_session_tag(f->session));
        return ok;
}

static json_t *plan(struct fx *f, const char *name)
{
        return json_pack("{s:{s:s, s:s, s:[s], s:{}, s:{s:i, s:i}, s:{s:s}}, s:{s:s, s:s, "
                         "s:[{s:s}, {s:s}, {s:s, s:s}]}}",
                         "spec", "name", name, "ip", "10.66.7.7", "diff_ids", f->diff_id,
                         "image_config", "userns", "base", 100000, "size", 65536, "security",
                         "seccomp", "unconfined", "image", "name", "localhost/app:1",
                         "manifest_digest", f->manifest, "blobs", "digest", f->manifest, "digest",
                         f->config, "digest", f->layer, "diff_id", f->diff_id);
}

/* LAYERS_HAVE both ways, then the target's page hashes (into st, as the
 * source keeps them, or just read). */
static void layers_into(struct fx *f, struct em_sync_state *st)
{
        json_t *p = plan(f, NAME), *ack = NULL;
        cleanup_frame struct em_frame fr = {0};
        em_error_t err = NULL;

        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, p, &err));
        ok(em_proto_recv_json(f->src, EM_FRAME_LAYERS_HAVE, &ack, &err));
        /* Every blob is in the target's store already. */
        assert_int_equal(json_array_size(json_object_get(ack, "missing")), 0);
        /* Whether it restores with lazy pages: as its options say (edgemigd:
         * its userfaultfd probe), false here. */
        assert_true(json_is_false(json_object_get(ack, "lazy_pages")));
        if (st != NULL) {
                ok(em_sync_state_recv_hashes(st, f->src, EM_SYNC_HASHES_MAX, &err));
                goto out;
        }
        do {
                em_frame_clear(&fr);
                ok(em_proto_recv(f->src, &fr, &err));
                assert_int_equal(fr.hdr.type, EM_FRAME_PAGES_HASHES);
        } while (!(fr.hdr.flags & EM_FRAME_F_LAST));
out:
        json_decref(ack);
        json_decref(p);
}

static void layers(struct fx *f)
{
        layers_into(f, NULL);
}

/* ROUND_END with payload, and the target's echo. */
static void round_trip(struct fx *f, const char *payload)
{
        cleanup_frame struct em_frame fr = {0};
        em_error_t err = NULL;

        ok(em_conn_send_str(f->src, EM_FRAME_ROUND_END, payload, &err));
        ok(em_proto_recv(f->src, &fr, &err));
        assert_int_equal(fr.hdr.type, EM_FRAME_ROUND_END);
        assert_memory_equal(fr.payload, payload, strlen(payload));
        em_frame_clear(&fr);
}

/* One pre-copy round: a prefill section with one page. */
static void precopy(struct fx *f)
{
        uint8_t d[2 + EM_PAGE_SIZE + 1];
        em_error_t err = NULL;

        d[0] = EM_OP_PREFILL;
        d[1] = EM_OP_DATA;
        memset(d + 2, 0x42, EM_PAGE_SIZE);
        d[2 + EM_PAGE_SIZE] = EM_OP_END_PREFILL;
        ok(em_conn_send(f->src, EM_FRAME_PAGES_DATA, 0, 0, d, sizeof(d), 0, &err));
        round_trip(f, "{\"round\":1}");
}

/* The files of the dump. */
static const char *const dump_files[] = {
    "core-1.img",         "core-8.img", "fdinfo-2.img",  "fdinfo-3.img",
    "files.img",          "ids-1.img",  "ids-8.img",     "inventory.img",
    "mm-1.img",           "mm-8.img",   "pagemap-1.img", "pagemap-8.img",
    "mountpoints-13.img", "pstree.img", "seccomp.img",   "userns-14.img"};

/* The dump's files as IMAGE_FILE, then FINAL naming them. */
static void send_final(struct fx *f)
{
        json_t *files = json_object();
        em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(dump_files) / sizeof(dump_files[0]); i++) {
                char path[256], digest[EM_DIGEST_STR_LEN + 1];
                uint64_t raw = 0;
                snprintf(path, sizeof(path), "%s/%s", DUMP, dump_files[i]);
                ok(em_sha256_file(path, digest, NULL, &err));
                json_object_set_new(files, dump_files[i], json_string(digest));
                ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, path, dump_files[i], 0, &raw,
                                      &err));
        }
        json_t *final = json_pack("{s:o}", "files", files);
        ok(em_proto_send_json(f->src, EM_FRAME_FINAL, final, &err));
        json_decref(final);
}

static void expect_frame(struct fx *f, uint16_t type)
{
        json_t *j = NULL;
        em_error_t err = NULL;

        if (em_proto_recv_json(f->src, type, &j, &err) < 0)
                fail_msg("expected %s: %s", em_frame_type_name(type), em_error_msg(err));
        json_decref(j);
}

/* Whatever the source sends next, the target's answer is an ABORT whose
 * reason contains want. */
static void expect_abort(struct fx *f, const char *want)
{
        cleanup_frame struct em_frame fr = {0};
        em_error_t err = NULL;

        assert_int_equal(em_proto_recv(f->src, &fr, &err), -1);
        if (strstr(em_error_msg(err), want) == NULL)
                fail_msg("target's answer \"%s\" does not say \"%s\"", em_error_msg(err), want);
        em_error_free(&err);
}

/* ---- what the session left on the target ---- */

/* Whether <root>/<rel><arg> exists. */
static bool root_has(struct fx *f, const char *rel, const char *arg)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s%s", f->root, rel, arg);
        return em_path_exists(path);
}

static enum em_outcome_state outcome(struct fx *f)
{
        struct em_outcome o;
        em_error_t err = NULL;

        if (em_outcome_load(f->root, f->session_hex, &o, &err) < 0)
                fail_msg("outcome of %s: %s", f->session_hex, em_error_msg(err));
        return o.state;
}

/* A refused session left nothing but its aborted record. */
static void assert_rolled_back(struct fx *f)
{
        assert_int_equal(outcome(f), EM_OUTCOME_ABORTED);
        assert_false(root_has(f, "containers/", NAME));
        assert_false(root_has(f, "incoming/", f->session_hex));
        assert_false(root_has(f, "restored-", NAME));
}

/* A committed session's container is the target's; a session that ends
 * by test is cleaned up here so the next test can use the name. */
static void forget_container(struct fx *f)
{
        char path[256];
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/containers/%s", f->root, NAME);
        em_rm_rf(path, &err);
        em_error_free(&err);
        snprintf(path, sizeof(path), "%s/restored-%s", f->root, NAME);
        unlink(path);
        snprintf(path, sizeof(path), "%s/prewarmed-%s", f->root, NAME);
        unlink(path);
}

/* A process whose memory the source reads: 64 pages of a pattern. */
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

static void stop_workload(pid_t pid)
{
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* After each test, even a failed one: no child left, the name free. */
static int test_teardown(void **state)
{
        struct fx *f = *state;

        if (f->workload > 0)
                stop_workload(f->workload);
        f->workload = 0;
        if (f->src != NULL) {
                kill(f->target, SIGKILL);
                wait_target(f);
        }
        forget_container(f);
        return 0;
}

/* ---- phases ---- */

static void test_whole_migration(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        int logfd = log_capture(f);
        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        assert_true(root_has(f, "containers/", NAME)); /* the name is reserved at HELLO */
        layers(f);
        round_trip(f, "{\"layers_done\":true}");
        precopy(f);
        send_final(f);
        expect_frame(f, EM_FRAME_RESTORE_OK);
        assert_int_equal(outcome(f), EM_OUTCOME_RESTORED);
        assert_true(root_has(f, "restored-", NAME));
        json_t *done = json_pack("{s:b}", "commit", 1);
        ok(em_proto_send_json(f->src, EM_FRAME_DONE, done, &err));
        json_decref(done);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        char *log = log_text(f, logfd);
        assert_non_null(strstr(log, ": " NAME " committed"));
        free(log);
        assert_int_equal(outcome(f), EM_OUTCOME_COMMITTED);
        assert_false(root_has(f, "incoming/", f->session_hex));
        forget_container(f);
}

/* The round that ends the layers pre-warms the target, before FINAL;
 * RESTORE_OK says how long that took, apart from the downtime's steps. A
 * prepare pre-warms nothing. */
static void test_prewarm_before_final(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        json_t *ok_ = NULL;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        layers(f);
        assert_false(root_has(f, "prewarmed-", NAME));
        round_trip(f, "{\"layers_done\":true}");
        assert_true(root_has(f, "prewarmed-", NAME));
        precopy(f);
        send_final(f);
        ok(em_proto_recv_json(f->src, EM_FRAME_RESTORE_OK, &ok_, &err));
        json_t *timing = json_object_get(ok_, "timing");
        assert_true(json_is_integer(json_object_get(timing, "prewarm_ms")));
        assert_true(em_json_int(timing, "prewarm_lead_ms", -1) >= 0);
        assert_true(json_is_integer(json_object_get(timing, "restore_ms")));
        json_decref(ok_);
        json_t *done = json_pack("{s:b}", "commit", 1);
        ok(em_proto_send_json(f->src, EM_FRAME_DONE, done, &err));
        json_decref(done);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        forget_container(f);
}

static void test_prepare_fills_the_cache(void **state)
{
        struct fx *f = *state;
        em_pagecache_t *pc = NULL;
        em_error_t err = NULL;
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;

        int logfd = log_capture(f);
        start_target(f, NULL);
        assert_true(handshake(f, NAME, "prepare"));
        layers(f);
        round_trip(f, "{\"layers_done\":true}");
        precopy(f);
        json_t *done = json_object();
        ok(em_proto_send_json(f->src, EM_FRAME_DONE, done, &err));
        json_decref(done);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        assert_false(root_has(f, "prewarmed-", NAME));
        /* The log says what a prepare did: it commits nothing. */
        char *log = log_text(f, logfd);
        assert_non_null(strstr(log, ": " NAME " prepared"));
        assert_null(strstr(log, "committed"));
        free(log);
        char *dir = em_session_cache_dir(&f->cfg, NAME, NULL);
        ok(em_pagecache_open(dir, &pc, &err));
        memset(page, 0x42, sizeof(page));
        em_page_hash(page, &h);
        assert_true(em_pagecache_has(pc, &h));
        em_pagecache_free(&pc);
        em_rm_rf(dir, &err);
        free(dir);
        forget_container(f);
}

/* A pre-check session: the plan and the link probe in, the answer out;
 * the target's log says it checked, not that it committed. */
static void test_check_session(void **state)
{
        struct fx *f = *state;
        json_t *plan = json_pack("{s:{}}", "spec"), *answer = NULL;
        em_error_t err = NULL;

        int logfd = log_capture(f);
        start_target(f, NULL);
        assert_true(handshake(f, NAME, EM_PRECHECK_MODE));
        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, plan, &err));
        json_decref(plan);
        ok(em_conn_send_str(f->src, EM_FRAME_ROUND_END, "probe", &err));
        ok(em_proto_recv_json(f->src, EM_FRAME_LAYERS_HAVE, &answer, &err));
        assert_true(json_is_array(json_object_get(answer, "problems")));
        json_decref(answer);
        assert_int_equal(wait_target(f), 0);
        char *log = log_text(f, logfd);
        assert_non_null(strstr(log, ": " NAME " checked"));
        assert_null(strstr(log, "committed"));
        free(log);
}

/* A name in use here is refused at HELLO, and the refusal leaves the
 * existing container's directory alone. */
static void test_refused_name(void **state)
{
        struct fx *f = *state;
        char path[256];

        snprintf(path, sizeof(path), "%s/containers/%s", f->root, NAME);
        assert_int_equal(mkdir(path, 0700), 0);
        start_target(f, NULL);
        assert_false(handshake(f, NAME, "precopy"));
        assert_int_equal(wait_target(f), 1);
        assert_true(root_has(f, "containers/", NAME));
        assert_false(root_has(f, "outcomes/", f->session_hex));
        assert_false(root_has(f, "incoming/", f->session_hex));
        forget_container(f);
}

/* The final images: the dump plus a pages file with pages the
 * target holds (the workload's), zero pages and new ones. */
static void make_images(struct fx *f, char *dir, size_t len)
{
        uint8_t pages[8][EM_PAGE_SIZE] = {{0}};
        em_error_t err = NULL;
        char src[256], dst[256];

        snprintf(dir, len, "%s/images", f->dir);
        ok(em_mkdir_p(dir, 0700, &err));
        for (size_t i = 0; i < sizeof(dump_files) / sizeof(dump_files[0]); i++) {
                char *data = NULL;
                size_t n = 0;
                snprintf(src, sizeof(src), "%s/%s", DUMP, dump_files[i]);
                snprintf(dst, sizeof(dst), "%s/%s", dir, dump_files[i]);
                ok(em_read_file(src, 1 << 20, &data, &n, &err));
                ok(em_write_file_atomic(dst, data, n, 0600, &err));
                free(data);
        }
        for (size_t i = 0; i < 4; i++)
                memset(pages[i], (int)(i * 7 + 1), EM_PAGE_SIZE); /* the workload's */
        for (size_t k = 0; k < EM_PAGE_SIZE; k++) { /* not constant: not the workload's */
                pages[6][k] = (uint8_t)k;
                pages[7][k] = (uint8_t)(k * 3);
        }
        snprintf(dst, sizeof(dst), "%s/pages-99.img", dir);
        ok(em_write_file_atomic(dst, pages, sizeof(pages), 0600, &err));
}

/* The source's own sync engine (migrate/pagesync.c, upper_sync.c) against
 * the target: two pre-copy rounds of live memory and the writable layer,
 * then the final images with a pages file rebuilt from the page cache. */
static void test_source_sync(void **state)
{
        struct fx *f = *state;
        struct em_sync_state *st = NULL;
        struct em_sync_stats s1 = {0}, s2 = {0}, s3 = {0};
        char upper[128], images[128], path[256];
        em_error_t err = NULL;
        pid_t work = f->workload = start_workload();

        snprintf(upper, sizeof(upper), "%s/upper", f->dir);
        snprintf(path, sizeof(path), "%s/data.txt", upper);
        ok(em_mkdir_p(upper, 0755, &err));
        ok(em_write_file_atomic(path, "v1\n", 3, 0644, &err));
        make_images(f, images, sizeof(images));
        ok(em_sync_state_new(&st, &err));
        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        layers_into(f, st);
        round_trip(f, "{\"layers_done\":true}");
        ok(em_sync_push_memory(f->src, st, &work, 1, 0, &s1, &err));
        ok(em_sync_send_upper(f->src, st, upper, true, 0, &s1, &err));
        round_trip(f, "{\"round\":1}");
        assert_true(s1.pages_sent >= 64);
        assert_int_equal(s1.files_sent, 1);
        /* Nothing changed: the second round sends no page and no file. */
        ok(em_write_file_atomic(path, "v2\n", 3, 0644, &err));
        ok(em_sync_push_memory(f->src, st, &work, 1, 0, &s2, &err));
        ok(em_sync_send_upper(f->src, st, upper, false, 0, &s2, &err));
        round_trip(f, "{\"round\":2}");
        assert_int_equal(s2.pages_sent, 0);
        assert_int_equal(s2.files_sent, 1); /* data.txt changed */
        json_t *files = json_object();
        ok(em_sync_send_images(f->src, st, images, 0, files, &s3, &err));
        json_t *final = json_pack("{s:o}", "files", files);
        ok(em_proto_send_json(f->src, EM_FRAME_FINAL, final, &err));
        json_decref(final);
        /* RESTORE_OK: the target rebuilt pages-99.img to its digest. */
        expect_frame(f, EM_FRAME_RESTORE_OK);
        assert_int_equal(s3.pages_sent, 2); /* the two new pages; the rest known or zero */
        assert_int_equal(s3.pages_known, 4);
        assert_int_equal(s3.pages_zero, 2);
        char *got = NULL;
        size_t n = 0;
        snprintf(path, sizeof(path), "%s/restored-%s.upper", f->root, NAME);
        ok(em_read_file(path, 64, &got, &n, &err));
        assert_int_equal(n, 3);
        assert_memory_equal(got, "v2\n", 3);
        free(got);
        unlink(path);
        json_t *done = json_object();
        ok(em_proto_send_json(f->src, EM_FRAME_DONE, done, &err));
        json_decref(done);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        em_sync_state_free(&st);
        forget_container(f);
}

/* Plans one more blob than the store has (content unique to the session)
 * and checks the target asks for exactly it; its file goes to path. */
static void plan_extra_blob(struct fx *f, char *path, size_t len, char hex[65])
{
        json_t *p = plan(f, NAME), *ack = NULL;
        cleanup_frame struct em_frame fr = {0};
        char digest[EM_DIGEST_STR_LEN + 1];
        em_error_t err = NULL;

        snprintf(path, len, "%s/blob-%s", f->dir, f->session_hex);
        ok(em_write_file_atomic(path, f->session_hex, 32, 0600, &err));
        ok(em_sha256_file(path, digest, NULL, &err));
        memcpy(hex, digest + 7, 65);
        json_array_append_new(json_object_get(json_object_get(p, "image"), "blobs"),
                              json_pack("{s:s}", "digest", digest));
        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, p, &err));
        ok(em_proto_recv_json(f->src, EM_FRAME_LAYERS_HAVE, &ack, &err));
        json_t *missing = json_object_get(ack, "missing");
        assert_int_equal(json_array_size(missing), 1);
        assert_string_equal(json_string_value(json_array_get(missing, 0)), digest);
        do {
                em_frame_clear(&fr);
                ok(em_proto_recv(f->src, &fr, &err));
        } while (!(fr.hdr.flags & EM_FRAME_F_LAST));
        json_decref(ack);
        json_decref(p);
}

/* Layers: a blob the target lacks is streamed and lands in its store. */
static void test_missing_blob_streamed(void **state)
{
        struct fx *f = *state;
        char path[256], hex[65], have[256];
        uint64_t raw = 0;
        em_error_t err = NULL;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        plan_extra_blob(f, path, sizeof(path), hex);
        ok(em_proto_send_file(f->src, EM_FRAME_LAYER_BLOB, path, hex, 0, &raw, &err));
        round_trip(f, "{\"layers_done\":true}");
        snprintf(have, sizeof(have), "%s/blobs/sha256/%s", f->root, hex);
        assert_true(em_path_exists(have));
        unlink(have);
        /* The source goes away: the session is rolled back. */
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* A blob whose bytes are not its name's digest is refused. */
static void test_blob_not_its_digest(void **state)
{
        struct fx *f = *state;
        char path[256], hex[65], have[256];
        uint64_t raw = 0;
        em_error_t err = NULL;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        plan_extra_blob(f, path, sizeof(path), hex);
        ok(em_write_file_atomic(path, "something else", 14, 0600, &err));
        ok(em_proto_send_file(f->src, EM_FRAME_LAYER_BLOB, path, hex, 0, &raw, &err));
        expect_abort(f, "digest mismatch");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        snprintf(have, sizeof(have), "%s/blobs/sha256/%s", f->root, hex);
        assert_false(em_path_exists(have));
}

/* ---- frames out of order ---- */

static void test_first_frame_not_hello(void **state)
{
        struct fx *f = *state;
        json_t *p = plan(f, NAME);
        em_error_t err = NULL;

        start_target(f, NULL);
        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, p, &err));
        json_decref(p);
        expect_abort(f, "expected HELLO");
        assert_int_equal(wait_target(f), 1);
        /* Nothing was claimed: no record, no reserved name. */
        assert_false(root_has(f, "outcomes/", f->session_hex));
        assert_false(root_has(f, "containers/", NAME));
}

/* Frames a source never sends after HELLO, instead of the plan. */
static void test_no_plan(void **state)
{
        static const uint16_t types[] = {EM_FRAME_HELLO, EM_FRAME_FINAL, EM_FRAME_DONE,
                                         EM_FRAME_ROUND_END, EM_FRAME_RESTORE_OK};
        struct fx *f = *state;
        em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                start_target(f, NULL);
                assert_true(handshake(f, NAME, "precopy"));
                ok(em_conn_send_str(f->src, types[i], "{}", &err));
                expect_abort(f, "protocol error");
                assert_int_equal(wait_target(f), 1);
                assert_rolled_back(f);
        }
}

/* Frames that have no place between the plan and FINAL. */
static void test_unexpected_in_rounds(void **state)
{
        static const uint16_t types[] = {
            EM_FRAME_HELLO,      EM_FRAME_HELLO_ACK, EM_FRAME_LAYERS_HAVE,   EM_FRAME_PAGES_HASHES,
            EM_FRAME_RESTORE_OK, EM_FRAME_CONTROL,   EM_FRAME_CONTROL_REPLY, EM_FRAME_LAZY_PAGES,
            EM_FRAME_OUTCOME,    EM_FRAME_DONE};
        struct fx *f = *state;
        em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                start_target(f, NULL);
                assert_true(handshake(f, NAME, "precopy"));
                layers(f);
                round_trip(f, "{\"layers_done\":true}");
                ok(em_conn_send_str(f->src, types[i], "{}", &err));
                expect_abort(f, "protocol error");
                assert_int_equal(wait_target(f), 1);
                assert_rolled_back(f);
        }
}

/* A page delta op out of its place (a REF outside any file). */
static void test_delta_out_of_order(void **state)
{
        struct fx *f = *state;
        uint8_t d[17] = {EM_OP_REF};
        em_error_t err = NULL;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        layers(f);
        ok(em_conn_send(f->src, EM_FRAME_PAGES_DATA, 0, 0, d, sizeof(d), 0, &err));
        expect_abort(f, "REF outside a file");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* After RESTORE_OK only DONE may come: anything else leaves the restored
 * container running, in doubt, for the source's OUTCOME to settle. */
static void test_not_done_after_restore(void **state)
{
        struct fx *f = *state;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        layers(f);
        round_trip(f, "{\"layers_done\":true}");
        send_final(f);
        expect_frame(f, EM_FRAME_RESTORE_OK);
        em_error_t err = NULL;
        ok(em_conn_send_str(f->src, EM_FRAME_ROUND_END, "{}", &err));
        expect_abort(f, "expected DONE");
        assert_int_equal(wait_target(f), 1);
        assert_int_equal(outcome(f), EM_OUTCOME_RESTORED);
        assert_true(root_has(f, "restored-", NAME));
        forget_container(f);
}

/* FINAL naming a file that never came. */
static void test_final_missing_file(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        layers(f);
        round_trip(f, "{\"layers_done\":true}");
        json_t *final =
            json_pack("{s:{s:s}}", "files", "pages-1.img",
                      "sha256:0000000000000000000000000000000000000000000000000000000000000000");
        ok(em_proto_send_json(f->src, EM_FRAME_FINAL, final, &err));
        json_decref(final);
        expect_abort(f, "missing after transfer");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* FINAL before the layers were done: the spec's image was never pinned
 * to the plan's manifest, so nothing may be restored from it. */
static void test_final_before_layers(void **state)
{
        struct fx *f = *state;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "precopy"));
        layers(f);
        send_final(f);
        expect_abort(f, "protocol error");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* ---- fault points ---- */

/* Runs a whole session with EDGEMIG_FAULT=<point>=error in the target and
 * checks where it stops and what it leaves. */
static void run_to_fault(struct fx *f, const char *point)
{
        char spec[128];
        em_error_t err = NULL;

        snprintf(spec, sizeof(spec), "%s=error", point);
        start_target(f, spec);
        assert_true(handshake(f, NAME, "precopy"));
        if (strcmp(point, "target.after-hello") == 0)
                goto refused;
        layers(f);
        if (strcmp(point, "target.after-layers") == 0 || strcmp(point, "target.round-end") == 0 ||
            strcmp(point, "target.after-prewarm") == 0) {
                ok(em_conn_send_str(f->src, EM_FRAME_ROUND_END, "{\"layers_done\":true}", &err));
                goto refused;
        }
        round_trip(f, "{\"layers_done\":true}");
        send_final(f);
        if (strcmp(point, "target.after-final") == 0 || strcmp(point, "target.before-restore") == 0)
                goto refused;
        expect_frame(f, EM_FRAME_RESTORE_OK);
        json_t *done = json_object();
        ok(em_proto_send_json(f->src, EM_FRAME_DONE, done, &err));
        json_decref(done);
        expect_abort(f, "injected fault");
        assert_int_equal(wait_target(f), 1);
        /* The target had restored: its copy stays (in doubt, or committed
         * when the fault came after DONE was recorded). */
        assert_int_equal(outcome(f), strcmp(point, "target.before-ack") == 0 ? EM_OUTCOME_COMMITTED
                                                                             : EM_OUTCOME_RESTORED);
        assert_true(root_has(f, "restored-", NAME));
        forget_container(f);
        return;
refused:
        expect_abort(f, "injected fault");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

static void test_faults(void **state)
{
        static const char *const points[] = {"target.after-hello",   "target.after-layers",
                                             "target.after-prewarm", "target.round-end",
                                             "target.after-final",   "target.before-restore",
                                             "target.after-done",    "target.before-ack"};

        for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
                run_to_fault(*state, points[i]);
}

/* target.after-restore: the restore ran, RESTORE_OK never went out. */
static void test_fault_after_restore(void **state)
{
        struct fx *f = *state;

        start_target(f, "target.after-restore=error");
        assert_true(handshake(f, NAME, "precopy"));
        layers(f);
        round_trip(f, "{\"layers_done\":true}");
        send_final(f);
        expect_abort(f, "injected fault");
        assert_int_equal(wait_target(f), 1);
        assert_int_equal(outcome(f), EM_OUTCOME_RESTORED);
        assert_true(root_has(f, "restored-", NAME));
        forget_container(f);
}

/* ---- pod sessions (migrate/target/pod_target.h) ---- */

/* HELLO mode pod for pod web with member db, the plan and its answer
 * (no page hashes), then the layers' round. */
static json_t *pod_plan(struct fx *f)
{
        json_t *p = plan(f, NAME);
        json_t *member = json_deep_copy(json_object_get(p, "spec"));

        json_object_set_new(json_object_get(p, "spec"), "pod_infra", json_true());
        json_object_set_new(member, "name", json_string("db"));
        json_object_set_new(member, "pod", json_string(NAME));
        json_object_set_new(member, "ip", json_null());
        json_object_set_new(p, "pod",
                            json_pack("{s:[{s:o, s:O}]}", "members", "spec", member, "image",
                                      json_object_get(p, "image")));
        return p;
}

/* The member's spec in a pod plan. */
static json_t *member_spec(json_t *p)
{
        return json_object_get(
            json_array_get(json_object_get(json_object_get(p, "pod"), "members"), 0), "spec");
}

/* Plan p (taken) sent; prepare: it asks for a prepare; layers: the
 * layers' round too. The plan's answer into *ackp, if not NULL. */
static void pod_begin_ack(struct fx *f, json_t *p, bool prepare, bool layers, json_t **ackp)
{
        json_t *ack = NULL;
        em_error_t err = NULL;

        if (prepare)
                json_object_set_new(p, "prepare", json_true());
        start_target(f, NULL);
        assert_true(handshake(f, NAME, "pod"));
        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, p, &err));
        ok(em_proto_recv_json(f->src, EM_FRAME_LAYERS_HAVE, &ack, &err));
        assert_int_equal(json_array_size(json_object_get(ack, "missing")), 0);
        assert_null(json_object_get(ack, "hashes_from"));
        if (ackp != NULL)
                *ackp = json_incref(ack);
        json_decref(ack);
        json_decref(p);
        if (layers)
                round_trip(f, "{\"layers_done\":true}");
}

static void pod_begin_plan(struct fx *f, json_t *p, bool prepare, bool layers)
{
        pod_begin_ack(f, p, prepare, layers, NULL);
}

/* A pre-copy's plan: the writable layers as diffs ("uppers"). */
static json_t *pod_plan_uppers(struct fx *f)
{
        json_t *p = pod_plan(f);

        json_object_set_new(p, "uppers", json_true());
        return p;
}

static void pod_begin(struct fx *f, bool prepare, bool layers)
{
        pod_begin_plan(f, pod_plan(f), prepare, layers);
}

static void pod_start(struct fx *f)
{
        pod_begin(f, false, true);
}

/* FILE_ROOT {"member": name}. */
static void pod_select(struct fx *f, const char *name)
{
        char m[64];
        em_error_t err = NULL;

        snprintf(m, sizeof(m), "{\"member\":\"%s\"}", name);
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_ROOT, m, &err));
}

static void send_done(struct fx *f)
{
        json_t *done = json_object();
        em_error_t err = NULL;

        ok(em_proto_send_json(f->src, EM_FRAME_DONE, done, &err));
        json_decref(done);
}

/* A tar with one entry at path, sent as pod.tar; returns its digest. */
static void send_pod_tar(struct fx *f, const char *path, char digest[EM_DIGEST_STR_LEN + 1])
{
        char tar[160];
        struct archive *w = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        uint64_t raw = 0;
        em_error_t err = NULL;

        snprintf(tar, sizeof(tar), "%s/pod.tar", f->dir);
        archive_write_set_format_pax_restricted(w);
        assert_int_equal(archive_write_open_filename(w, tar), ARCHIVE_OK);
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 1);
        archive_write_header(w, e);
        archive_write_data(w, "X", 1);
        archive_entry_free(e);
        archive_write_close(w);
        archive_write_free(w);
        ok(em_sha256_file(tar, digest, NULL, &err));
        ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, tar, "pod.tar", 0, &raw, &err));
        unlink(tar);
}

static void pod_final(struct fx *f, const char *digest)
{
        json_t *final = json_pack("{s:{s:s}}", "files", "pod.tar", digest);
        em_error_t err = NULL;

        ok(em_proto_send_json(f->src, EM_FRAME_FINAL, final, &err));
        json_decref(final);
}

/* What a pod session refuses in its frames; each refusal leaves nothing. */
static void test_pod_hostile_frames(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        pod_start(f); /* an image file of another name */
        ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, DUMP "/core-1.img", "core-1.img", 0,
                              &(uint64_t){0}, &err));
        expect_abort(f, "one image file, pod.tar");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* FINAL without the tar */
        pod_final(f, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
        expect_abort(f, "missing or does not match");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* pages before any FILE_ROOT said whose */
        ok(em_conn_send_str(f->src, EM_FRAME_PAGES_DATA, "x", &err));
        expect_abort(f, "PAGES_DATA before FILE_ROOT");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* a FILE_ROOT that names no container of the pod */
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_ROOT, "{\"member\":\"other\"}", &err));
        expect_abort(f, "FILE_ROOT names 'other', not a container of the pod");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* a volume the pod's containers do not mount */
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_ROOT, "{\"volume\":\"db\"}", &err));
        expect_abort(f, "FILE_ROOT names volume 'db', not one of the container's");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* a writable-layer frame: those travel in the tar */
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_DELETE, "{\"paths\":[\"x\"]}", &err));
        expect_abort(f, "FILE_DELETE before FILE_ROOT names a volume");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* a member's writable layer without the plan's "uppers" */
        pod_select(f, "db");
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_DELETE, "{\"paths\":[\"x\"]}", &err));
        expect_abort(f, "FILE_DELETE before FILE_ROOT names a volume");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_start(f); /* a volume the pod does not mount */
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_ROOT, "{\"volume\":\"etc\"}", &err));
        expect_abort(f, "names volume 'etc', not one of the container's");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* A pod whose member db mounts a volume named "member": its FILE_ROOT
 * {"volume": "member"} is the volume's (the round after it is echoed),
 * not a member's selection; a FILE_ROOT that is no JSON is refused. */
static void test_pod_volume_named_member(void **state)
{
        struct fx *f = *state;
        json_t *p = pod_plan(f);
        em_error_t err = NULL;

        json_object_set_new(member_spec(p), "mounts",
                            json_pack("[{s:s, s:s, s:s, s:b}]", "type", "volume", "name", "member",
                                      "destination", "/data", "ro", 0));
        pod_begin_plan(f, p, false, true);
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_ROOT, "{\"volume\":\"member\"}", &err));
        round_trip(f, "{\"round\":1}");
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_ROOT, "{\"member\":", &err));
        expect_abort(f, "parsing FILE_ROOT");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        char *dir = em_session_cache_dir(&f->cfg, NAME, NULL);
        em_rm_rf(dir, &err);
        free(dir);
}

/* The page hashes a plan asking for them gets after its answer: db's
 * (the members' first), then web's; true if db's held the 0x42 page. */
static bool pod_hashes(struct fx *f)
{
        cleanup_frame struct em_frame db = {0}, web = {0};
        em_error_t err = NULL;
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;

        ok(em_proto_recv(f->src, &db, &err));
        ok(em_proto_recv(f->src, &web, &err));
        assert_int_equal(db.hdr.type, EM_FRAME_PAGES_HASHES);
        assert_int_equal(web.hdr.type, EM_FRAME_PAGES_HASHES);
        assert_true(db.hdr.flags & EM_FRAME_F_LAST);
        assert_true(web.hdr.flags & EM_FRAME_F_LAST);
        assert_int_equal(web.length, 0);
        memset(page, 0x42, sizeof(page));
        em_page_hash(page, &h);
        return db.length == sizeof(h) && memcmp(db.payload, &h, sizeof(h)) == 0;
}

/* A pod's prepare: the layers and a round of db's memory, then DONE
 * answered with DONE; every name is free again and nothing was restored;
 * the log says prepared. The next session's plan hears what db's page
 * cache kept. */
static void test_pod_prepare(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        int logfd = log_capture(f);
        pod_begin(f, true, true);
        assert_true(root_has(f, "containers/", "db")); /* reserved meanwhile */
        pod_select(f, "db");
        precopy(f);
        send_done(f);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        char *log = log_text(f, logfd);
        assert_non_null(strstr(log, ": " NAME " prepared (images registered"));
        assert_null(strstr(log, "committed"));
        free(log);
        assert_rolled_back(f); /* its record aborted: nothing of it stays */
        assert_false(root_has(f, "containers/", "db"));
        assert_false(root_has(f, "restored-", "db"));

        json_t *p = pod_plan(f), *ack = NULL;
        json_object_set_new(p, "page_hashes", json_true());
        start_target(f, NULL);
        assert_true(handshake(f, NAME, "pod"));
        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, p, &err));
        ok(em_proto_recv_json(f->src, EM_FRAME_LAYERS_HAVE, &ack, &err));
        assert_true(json_is_true(json_object_get(ack, "page_hashes")));
        assert_true(pod_hashes(f));
        json_decref(ack);
        json_decref(p);
        wait_target(f);
        char *dir = em_session_cache_dir(&f->cfg, "db", NULL);
        em_rm_rf(dir, &err);
        free(dir);
}

/* A pod's stop-and-copy tar: each container's criu/ holds the dump's
 * files; its digest into digest. */
static void send_pod_dump_tar(struct fx *f, char digest[EM_DIGEST_STR_LEN + 1])
{
        static const char *const who[] = {"db", NAME};
        char tar[160], src[256], path[256];
        struct archive *w = archive_write_new();
        uint64_t raw = 0;
        em_error_t err = NULL;

        snprintf(tar, sizeof(tar), "%s/pod.tar", f->dir);
        archive_write_set_format_pax_restricted(w);
        assert_int_equal(archive_write_open_filename(w, tar), ARCHIVE_OK);
        for (size_t c = 0; c < 2; c++) {
                for (size_t i = 0; i < sizeof(dump_files) / sizeof(dump_files[0]); i++) {
                        char *data = NULL;
                        size_t len = 0;
                        struct archive_entry *e = archive_entry_new();
                        snprintf(src, sizeof(src), "%s/%s", DUMP, dump_files[i]);
                        snprintf(path, sizeof(path), "%s/criu/%s", who[c], dump_files[i]);
                        ok(em_read_file(src, 1 << 24, &data, &len, &err));
                        archive_entry_set_pathname(e, path);
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_perm(e, 0600);
                        archive_entry_set_size(e, (la_int64_t)len);
                        archive_write_header(w, e);
                        archive_write_data(w, data, len);
                        archive_entry_free(e);
                        free(data);
                }
        }
        archive_write_close(w);
        archive_write_free(w);
        ok(em_sha256_file(tar, digest, NULL, &err));
        ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, tar, "pod.tar", 0, &raw, &err));
        unlink(tar);
}

/* After a pod restored by fake_restore_pod: its mark and rows go. */
static void forget_pod(struct fx *f)
{
        char path[256];
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/restored-pod", f->root);
        unlink(path);
        snprintf(path, sizeof(path), "%s/containers/db", f->root);
        em_rm_rf(path, &err);
        forget_container(f);
}

/* A prepare fills db's page cache; the stop-and-copy migration after it
 * (no page hashes asked, nothing synced) restores the pod, and once
 * RESTORE_OK went back every container's cache is gone, as after a
 * pre-copy. */
static void test_pod_restore_drops_prepared_caches(void **state)
{
        struct fx *f = *state;
        char digest[EM_DIGEST_STR_LEN + 1];
        char *db = em_session_cache_dir(&f->cfg, "db", NULL);
        char *web = em_session_cache_dir(&f->cfg, NAME, NULL);

        pod_begin(f, true, true);
        pod_select(f, "db");
        precopy(f);
        send_done(f);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        assert_true(em_path_exists(db));

        pod_start(f);
        send_pod_dump_tar(f, digest);
        pod_final(f, digest);
        expect_frame(f, EM_FRAME_RESTORE_OK);
        assert_true(root_has(f, "restored-", "pod"));
        send_done(f);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        assert_int_equal(outcome(f), EM_OUTCOME_COMMITTED);
        assert_false(em_path_exists(db));
        assert_false(em_path_exists(web)); /* the infra's, its volumes' copies in it */
        free(db);
        free(web);
        forget_pod(f);
}

/* A volume of the pod's created here during the migration (a local `run
 * --rm -v data:...`, so no container mounts it) fails the install; the
 * session's abort leaves it, not being the copy this session installed,
 * and the copy stays in the cache. */
static void test_pod_local_volume_kept(void **state)
{
        struct fx *f = *state;
        json_t *p = pod_plan(f);
        char digest[EM_DIGEST_STR_LEN + 1], vol[256], mine[300];
        char *cache = em_session_cache_dir(&f->cfg, NAME, NULL);
        em_error_t err = NULL;

        json_object_set_new(member_spec(p), "mounts",
                            json_pack("[{s:s, s:s, s:s, s:b}]", "type", "volume", "name", "data",
                                      "destination", "/data", "ro", 0));
        pod_begin_plan(f, p, false, true);
        snprintf(vol, sizeof(vol), "%s/volumes/data", f->root);
        snprintf(mine, sizeof(mine), "%s/mine", vol);
        ok(em_mkdir_p(vol, 0755, &err));
        ok(em_write_file_atomic(mine, "local", 5, 0644, &err));
        send_pod_dump_tar(f, digest);
        pod_final(f, digest);
        expect_abort(f, "volume data was created on this host during the migration");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        assert_true(em_path_exists(mine));
        assert_true(em_path_exists(cache)); /* the session's copy, for a retry */
        em_rm_rf(vol, &err);
        em_rm_rf(cache, &err);
        free(cache);
}

/* What a prepare refuses, and DONE where no prepare was asked for. */
static void test_pod_prepare_hostile(void **state)
{
        struct fx *f = *state;
        char digest[EM_DIGEST_STR_LEN + 1];

        pod_begin(f, true, true); /* the tar of a migration */
        send_pod_tar(f, "db/criu/core-1.img", digest);
        expect_abort(f, "(a prepare none)");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_begin(f, true, true); /* FINAL */
        pod_final(f, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
        expect_abort(f, "FINAL in a prepare");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        pod_begin(f, true, false); /* DONE before the images are registered */
        send_done(f);
        expect_abort(f, "DONE before the layers");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        assert_false(root_has(f, "containers/", "db"));

        pod_start(f); /* a migration's session ended as if a prepare */
        send_done(f);
        expect_abort(f, "DONE before FINAL");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        assert_false(root_has(f, "containers/", "db"));
}

/* A pre-copied pod's images: db's core-1.img and web's core-8.img sent
 * as its image files, each after its FILE_ROOT; the tar with entry
 * path; FINAL naming them, db's with digest bad if asked. The session
 * starts with a plan asking for "uppers" if asked. */
static void pod_images_final(struct fx *f, const char *path, bool bad);
static void pod_precopied_final(struct fx *f, const char *path, bool bad, bool uppers)
{
        pod_begin_plan(f, uppers ? pod_plan_uppers(f) : pod_plan(f), false, true);
        pod_select(f, "db");
        precopy(f);
        pod_images_final(f, path, bad);
}

/* After db's FILE_ROOT: its image core-1.img, NAME's core-8.img, the tar
 * with entry path and FINAL (pod_precopied_final). */
static void pod_images_final(struct fx *f, const char *path, bool bad)
{
        char d1[EM_DIGEST_STR_LEN + 1], d8[EM_DIGEST_STR_LEN + 1], tar[EM_DIGEST_STR_LEN + 1];
        uint64_t raw = 0;
        em_error_t err = NULL;

        ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, DUMP "/core-1.img", "core-1.img", 0,
                              &raw, &err));
        pod_select(f, NAME);
        ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, DUMP "/core-8.img", "core-8.img", 0,
                              &raw, &err));
        ok(em_sha256_file(DUMP "/core-1.img", d1, NULL, &err));
        ok(em_sha256_file(DUMP "/core-8.img", d8, NULL, &err));
        send_pod_tar(f, path, tar);
        json_t *final =
            json_pack("{s:{s:s}, s:{s:{s:s}, s:{s:s}}}", "files", "pod.tar", tar, "criu", "db",
                      "core-1.img", bad ? d8 : d1, NAME, "core-8.img", d8);
        ok(em_proto_send_json(f->src, EM_FRAME_FINAL, final, &err));
        json_decref(final);
}

/* pod_precopied_final's session refused with want; nothing of it stays. */
static void precopied_refused(struct fx *f, const char *path, bool bad, bool uppers,
                              const char *want)
{
        pod_precopied_final(f, path, bad, uppers);
        expect_abort(f, want);
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* A pre-copied pod (pod_source.h): pages and image files per container
 * after its FILE_ROOT, rounds echoed; FINAL must list exactly what came
 * for each container, and the tar must not carry the images too. */
static void test_pod_precopy_hostile(void **state)
{
        struct fx *f = *state;
        char digest[EM_DIGEST_STR_LEN + 1];

        pod_start(f); /* rounds, then FINAL without the images' list */
        pod_select(f, "db");
        precopy(f);
        pod_select(f, NAME);
        round_trip(f, "{\"round\":2}");
        send_pod_tar(f, "db/upper/x", digest);
        pod_final(f, digest);
        expect_abort(f, "must name every container of the pod");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);

        /* db's digest is not its file's */
        precopied_refused(f, "db/log", true, true,
                          "the images of db are not those the source lists");
        /* the images in the tar too */
        precopied_refused(f, "db/criu/core-1.img", false, true,
                          "installing db/criu (the tar must not carry it too)");
        assert_false(root_has(f, "containers/", "db"));
        /* the writable layer in the tar too */
        precopied_refused(f, "db/upper/x", false, true,
                          "installing db/upper (the tar must not carry it too)");
        /* the writable layers not as diffs */
        precopied_refused(f, "db/log", false, false, "writable layers travel as diffs");

        em_error_t err = NULL;
        pod_begin(f, true, true); /* a prepare sends memory, not images */
        pod_select(f, "db");
        ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, DUMP "/core-1.img", "core-1.img", 0,
                              &(uint64_t){0}, &err));
        expect_abort(f, "an image file after the tar or in a prepare");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

/* The dump's files as one container's images (after its FILE_ROOT) into
 * criu[name]. */
static void send_dump_files(struct fx *f, const char *name, json_t *criu)
{
        json_t *files = json_object();
        em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(dump_files) / sizeof(dump_files[0]); i++) {
                char path[256], digest[EM_DIGEST_STR_LEN + 1];
                snprintf(path, sizeof(path), "%s/%s", DUMP, dump_files[i]);
                ok(em_sha256_file(path, digest, NULL, &err));
                json_object_set_new(files, dump_files[i], json_string(digest));
                ok(em_proto_send_file(f->src, EM_FRAME_IMAGE_FILE, path, dump_files[i], 0,
                                      &(uint64_t){0}, &err));
        }
        json_object_set_new(criu, name, files);
}

/* After db's FILE_ROOT: the dump as db's images and NAME's, a tar of
 * db's log and FINAL. */
static void pod_dump_final(struct fx *f)
{
        char tar[EM_DIGEST_STR_LEN + 1];
        json_t *criu = json_object();
        em_error_t err = NULL;

        send_dump_files(f, "db", criu);
        pod_select(f, NAME);
        send_dump_files(f, NAME, criu);
        send_pod_tar(f, "db/log", tar);
        json_t *final = json_pack("{s:{s:s}, s:o}", "files", "pod.tar", tar, "criu", criu);
        ok(em_proto_send_json(f->src, EM_FRAME_FINAL, final, &err));
        json_decref(final);
}

/* Sends what changed in dir since us's last send (its first: against
 * the copy that the plan's answer ack reports for db); *files of them. */
static void send_db_upper(struct fx *f, struct em_upper_state *us, const json_t *ack,
                          const char *dir, uint64_t *files)
{
        struct em_sync_stats st = {0};
        em_error_t err = NULL;

        if (ack != NULL)
                ok(em_upper_state_set_json(
                    us, json_object_get(json_object_get(ack, "uppers"), "db"), &err));
        pod_select(f, "db");
        ok(em_upper_send_tree(f->src, us, dir, ack == NULL, 0, &st, &err));
        *files = st.files_sent;
}

/* A pod's writable layers as diffs (the plan's "uppers"): a prepare's
 * round sends db's into its copy on the target, which the migration
 * after it hears of with the plan's answer: of two files only the one
 * changed since crosses, and the restore gets the copy as db's upper/
 * (then dropped with the page cache). */
static void test_pod_upper_precopy(void **state)
{
        struct fx *f = *state;
        struct em_upper_state *us = NULL;
        char dir[128], path[256], *got = NULL;
        uint64_t files = 0;
        size_t n = 0;
        json_t *ack = NULL;
        em_error_t err = NULL;

        snprintf(dir, sizeof(dir), "%s/db-upper", f->dir);
        snprintf(path, sizeof(path), "%s/keep.txt", dir);
        ok(em_mkdir_p(dir, 0755, &err));
        ok(em_write_file_atomic(path, "kept\n", 5, 0644, &err));
        snprintf(path, sizeof(path), "%s/data.txt", dir);
        ok(em_write_file_atomic(path, "v1\n", 3, 0644, &err));

        pod_begin_ack(f, pod_plan_uppers(f), true, true, &ack);
        assert_non_null(json_object_get(json_object_get(ack, "uppers"), NAME));
        ok(em_upper_state_new(&us, &err));
        send_db_upper(f, us, ack, dir, &files);
        assert_int_equal(files, 2);
        round_trip(f, "{\"round\":1}");
        send_done(f);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        em_upper_state_free(&us);
        json_decref(ack);

        ok(em_write_file_atomic(path, "v2\n", 3, 0644, &err));
        pod_begin_ack(f, pod_plan_uppers(f), false, true, &ack);
        ok(em_upper_state_new(&us, &err));
        send_db_upper(f, us, ack, dir, &files);
        assert_int_equal(files, 1); /* data.txt; keep.txt is there */
        pod_dump_final(f);
        expect_frame(f, EM_FRAME_RESTORE_OK);
        snprintf(path, sizeof(path), "%s/restored-pod-db.upper", f->root);
        ok(em_read_file(path, 64, &got, &n, &err));
        assert_int_equal(n, 8);
        assert_memory_equal(got, "kept\nv2\n", 8);
        free(got);
        send_done(f);
        expect_frame(f, EM_FRAME_DONE);
        assert_int_equal(wait_target(f), 0);
        em_upper_state_free(&us);
        json_decref(ack);
        char *cache = em_session_cache_dir(&f->cfg, "db", NULL);
        assert_false(em_path_exists(cache));
        free(cache);
        unlink(path);
        em_rm_rf(dir, &err);
        forget_pod(f);
}

/* The pre-check of a pod (HELLO mode check, a pod session's plan): its
 * problems; nothing is reserved. */
static json_t *pod_check(struct fx *f)
{
        json_t *p = pod_plan(f), *ans = NULL;
        uint8_t *probe = calloc(1, EM_PRECHECK_PROBE);
        em_error_t err = NULL;

        start_target(f, NULL);
        assert_true(handshake(f, NAME, "check"));
        json_object_set_new(p, "need",
                            json_pack("{s:i, s:i}", "upper_bytes", 0, "memory_bytes", 0));
        ok(em_proto_send_json(f->src, EM_FRAME_LAYERS_HAVE, p, &err));
        ok(em_conn_send(f->src, EM_FRAME_ROUND_END, 0, 0, probe, EM_PRECHECK_PROBE, 0, &err));
        ok(em_proto_recv_json(f->src, EM_FRAME_LAYERS_HAVE, &ans, &err));
        assert_int_equal(wait_target(f), 0);
        free(probe);
        json_decref(p);
        return ans;
}

static bool says(const json_t *ans, const char *what)
{
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(ans, "problems"), i, v)
        {
                if (strstr(json_string_value(v), what) != NULL)
                        return true;
        }
        return false;
}

static void test_pod_check(void **state)
{
        struct fx *f = *state;
        char db[160];
        json_t *ans = pod_check(f);

        if (json_array_size(json_object_get(ans, "problems")) != 0)
                fail_msg("problems: %s", json_dumps(json_object_get(ans, "problems"), 0));
        assert_false(root_has(f, "containers/", "db"));
        assert_false(root_has(f, "containers/", NAME));
        json_decref(ans);
        snprintf(db, sizeof(db), "%s/containers/db", f->root);
        assert_int_equal(mkdir(db, 0700), 0);
        ans = pod_check(f);
        assert_true(says(ans, "a container named db already exists on the target"));
        json_decref(ans);
        rmdir(db);
}

/* Two sessions racing for a pod member's name: once the pod session's
 * plan was accepted the name is that session's, and a session for a
 * container of that name is refused at its HELLO (before, both passed
 * the check); the pod session's end gives the name back. */
static void test_pod_members_reserved(void **state)
{
        struct fx *f = *state;
        uint8_t session[16];
        char hex[33];
        em_error_t err = NULL;

        pod_start(f);
        em_conn_t *pod_src = f->src;

        f->src = NULL;
        pid_t pod_target = f->target;
        memcpy(session, f->session, sizeof(session));
        memcpy(hex, f->session_hex, sizeof(hex));
        assert_true(root_has(f, "containers/", "db"));

        start_target(f, NULL);
        assert_false(handshake(f, "db", "precopy"));
        wait_target(f);

        f->src = pod_src;
        f->target = pod_target;
        memcpy(f->session, session, sizeof(session));
        memcpy(f->session_hex, hex, sizeof(hex));
        ok(em_conn_send_str(f->src, EM_FRAME_FILE_DELETE, "{\"paths\":[\"x\"]}", &err));
        expect_abort(f, "FILE_DELETE before FILE_ROOT names a volume");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        assert_false(root_has(f, "containers/", "db"));
}

/* A target killed between the plan and the restore: the recovery's abort
 * (journal.c, as edgemigd runs it on start) gives the members' names back
 * with the pod's. */
static void test_pod_members_released_after_crash(void **state)
{
        struct fx *f = *state;
        int lock = -1;
        struct em_outcome o;
        em_error_t err = NULL;

        pod_start(f);
        kill(f->target, SIGKILL);
        wait_target(f);
        assert_true(root_has(f, "containers/", "db"));
        ok(em_outcome_lock(f->root, f->session_hex, 5000, &lock, &err));
        ok(em_outcome_load(f->root, f->session_hex, &o, &err));
        ok(em_outcome_abort(&f->cfg, &o, NULL, &err));
        close(lock);
        assert_false(root_has(f, "containers/", "db"));
        assert_false(root_has(f, "containers/", NAME));
}

/* A tar entry outside a container's criu/ or upper/ ends the session
 * before any restore, and nothing of it is written. */
static void test_pod_hostile_tar(void **state)
{
        struct fx *f = *state;
        char digest[EM_DIGEST_STR_LEN + 1], escaped[160];

        snprintf(escaped, sizeof(escaped), "%s/escaped", f->root);
        pod_start(f);
        send_pod_tar(f, "../../../escaped", digest);
        pod_final(f, digest);
        expect_abort(f, "refusing pod tar entry");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
        assert_false(em_path_exists(escaped));
        assert_false(root_has(f, "restored-", "db"));

        pod_start(f); /* a member's spec taken from the peer: refused */
        send_pod_tar(f, "db/container.json", digest);
        pod_final(f, digest);
        expect_abort(f, "refusing pod tar entry 'db/container.json'");
        assert_int_equal(wait_target(f), 1);
        assert_rolled_back(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_whole_migration, test_teardown),
            cmocka_unit_test_teardown(test_prewarm_before_final, test_teardown),
            cmocka_unit_test_teardown(test_prepare_fills_the_cache, test_teardown),
            cmocka_unit_test_teardown(test_check_session, test_teardown),
            cmocka_unit_test_teardown(test_source_sync, test_teardown),
            cmocka_unit_test_teardown(test_refused_name, test_teardown),
            cmocka_unit_test_teardown(test_missing_blob_streamed, test_teardown),
            cmocka_unit_test_teardown(test_blob_not_its_digest, test_teardown),
            cmocka_unit_test_teardown(test_first_frame_not_hello, test_teardown),
            cmocka_unit_test_teardown(test_no_plan, test_teardown),
            cmocka_unit_test_teardown(test_unexpected_in_rounds, test_teardown),
            cmocka_unit_test_teardown(test_delta_out_of_order, test_teardown),
            cmocka_unit_test_teardown(test_not_done_after_restore, test_teardown),
            cmocka_unit_test_teardown(test_final_missing_file, test_teardown),
            cmocka_unit_test_teardown(test_final_before_layers, test_teardown),
            cmocka_unit_test_teardown(test_faults, test_teardown),
            cmocka_unit_test_teardown(test_fault_after_restore, test_teardown),
            cmocka_unit_test_teardown(test_pod_hostile_frames, test_teardown),
            cmocka_unit_test_teardown(test_pod_hostile_tar, test_teardown),
            cmocka_unit_test_teardown(test_pod_volume_named_member, test_teardown),
            cmocka_unit_test_teardown(test_pod_local_volume_kept, test_teardown),
            cmocka_unit_test_teardown(test_pod_members_reserved, test_teardown),
            cmocka_unit_test_teardown(test_pod_check, test_teardown),
            cmocka_unit_test_teardown(test_pod_prepare, test_teardown),
            cmocka_unit_test_teardown(test_pod_prepare_hostile, test_teardown),
            cmocka_unit_test_teardown(test_pod_restore_drops_prepared_caches, test_teardown),
            cmocka_unit_test_teardown(test_pod_precopy_hostile, test_teardown),
            cmocka_unit_test_teardown(test_pod_upper_precopy, test_teardown),
            cmocka_unit_test_teardown(test_pod_members_released_after_crash, test_teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
