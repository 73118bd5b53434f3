/* Runs as root (whiteout devices, trusted.* xattrs, chown), like CI. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/blocks.h"
#include "delta/upper.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

static char tmp[64], src[96], dst[96];

static int setup(void **state)
{
        if (geteuid() != 0) {
                fprintf(stderr, "test_upper needs root\n");
                return -1;
        }
        strcpy(tmp, "/tmp/em-upper-XXXXXX");
        assert_non_null(mkdtemp(tmp));
        snprintf(src, sizeof(src), "%s/src", tmp);
        snprintf(dst, sizeof(dst), "%s/dst", tmp);
        return 0;
}

static int teardown(void **state)
{
        em_error_t err = NULL;

        em_rm_rf(tmp, &err);
        em_error_free(&err);
        return 0;
}

static void sh(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        assert_int_equal(system(cmd), 0);
}

static void xattr(const char *rel, const char *name, const char *value)
{
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", src, rel);
        if (value == NULL)
                assert_int_equal(lremovexattr(path, name), 0);
        else
                assert_int_equal(lsetxattr(path, name, value, strlen(value), 0), 0);
}

static void make_upper(void)
{
        sh("mkdir -p %s/etc/app %s/opaque/sub %s/var && cd %s && "
           "printf 'hello' > etc/app/conf && printf 'big%%.0s' $(seq 1 5000) > var/data && "
           "ln var/data var/data.link && ln -s ../etc/app/conf var/conf.sym && "
           "mknod etc/deleted c 0 0 && mkfifo var/fifo && "
           "chown 1234:5678 etc/app/conf && chmod 4750 etc/app/conf",
           src, src, src, src);
        xattr("opaque", "trusted.overlay.opaque", "y");
        xattr("etc/app/conf", "user.note", "x=1");
        sh("cd %s && touch -h -d '2020-01-02 03:04:05.123456789' var/conf.sym etc/app/conf opaque",
           src);
}

static const struct em_upper_entry *find(const struct em_upper_manifest *m, const char *p)
{
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->e[i].path, p) == 0)
                        return &m->e[i];
        fail_msg("%s is not in the manifest", p);
        abort(); /* not reached */
}

/* Streams a file's content from the source tree, as FILE_DATA would. */
static void send_file(int root, const struct em_upper_entry *e)
{
        char path[512];
        uint8_t buf[3000];
        cleanup_close int fd = -1;
        em_upper_file_t *f = NULL;
        em_error_t err = NULL;
        ssize_t n;

        snprintf(path, sizeof(path), "%s/%s", src, e->path);
        fd = open(path, O_RDONLY);
        assert_int_equal(em_upper_file_begin(root, e, &f, &err), 0);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                assert_int_equal(em_upper_file_write(f, buf, (size_t)n, &err), 0);
        assert_int_equal(em_upper_file_commit(&f, &err), 0);
        assert_null(f);
}

static void apply(const struct em_upper_manifest *m, const struct em_upper_diff *d)
{
        cleanup_close int root = -1;
        em_error_t err = NULL;

        assert_int_equal(em_upper_open_root(dst, &root, &err), 0);
        for (size_t i = 0; i < d->ndeleted; i++)
                assert_int_equal(em_upper_apply_delete(root, d->deleted[i], &err), 0);
        for (size_t i = 0; i < d->nchanged; i++) {
                const struct em_upper_entry *e = &m->e[d->changed[i]];
                if (d->content[i])
                        send_file(root, e);
                else if (em_upper_apply_entry(root, e, &err) < 0)
                        fail_msg("%s: %s", e->path, em_error_msg(err));
        }
        assert_int_equal(em_upper_apply_dir_times(root, m, &err), 0);
}

static char *scan_json(const char *dir)
{
        struct em_upper_manifest m cleanup_manifest = {0};
        char *js = NULL;
        size_t len;
        em_error_t err = NULL;

        if (em_upper_scan(dir, &m, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        assert_int_equal(em_upper_manifest_to_json(&m, true, &js, &len, &err), 0);
        return js;
}

static void test_scan_fields(void **state)
{
        struct em_upper_manifest m cleanup_manifest = {0};
        const struct em_upper_entry *e;
        em_error_t err = NULL;

        make_upper();
        if (em_upper_scan(src, &m, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        for (size_t i = 1; i < m.n; i++)
                assert_true(strcmp(m.e[i - 1].path, m.e[i].path) < 0);
        e = find(&m, "etc/deleted");
        assert_non_null(e);
        assert_int_equal(e->type, 'c');
        assert_int_equal(e->rdev, 0);
        /* Opacity travels as a flag, not as overlay's xattr. */
        e = find(&m, "opaque");
        assert_true(e->opaque);
        assert_int_equal(e->nx, 0);
        e = find(&m, "etc/app/conf");
        assert_int_equal(e->mode, 04750);
        assert_int_equal(e->uid, 1234);
        assert_int_equal(e->gid, 5678);
        assert_int_equal(e->size, 5);
        assert_int_equal(e->mtime_nsec, 123456789);
        assert_int_equal(strlen(e->hash), 32);
        e = find(&m, "var/conf.sym");
        assert_string_equal(e->target, "../etc/app/conf");
        e = find(&m, "var/data.link");
        assert_string_equal(e->hardlink, "var/data");
        assert_int_equal(find(&m, "var/fifo")->type, 'p');
}

/* Block hashes for a file of EM_BLOCK_MIN bytes or more, one per block;
 * a smaller file travels whole and has none. */
static void test_block_lists(void **state)
{
        struct em_upper_manifest m cleanup_manifest = {0};
        em_error_t err = NULL;

        sh("mkdir -p %s && head -c 4096 /dev/zero >%s/small", src, src);
        sh("head -c %u /dev/zero >%s/min && head -c %u /dev/zero >%s/big", EM_BLOCK_MIN, src,
           EM_BLOCK_MIN + 1, src);
        if (em_upper_scan(src, &m, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        assert_int_equal(find(&m, "small")->blocks.n, 0);
        assert_int_equal(find(&m, "min")->blocks.n, em_blocks_count(EM_BLOCK_MIN));
        assert_int_equal(find(&m, "big")->blocks.n, em_blocks_count(EM_BLOCK_MIN + 1));
}

static void test_full_sync_then_delta(void **state)
{
        struct em_upper_manifest empty = {0}, m1 cleanup_manifest = {0}, m2 cleanup_manifest = {0},
                                 rt cleanup_manifest = {0};
        struct em_upper_diff d = {0};
        cleanup_free char *j1 = NULL;
        cleanup_free char *j2 = NULL;
        cleanup_free char *jd = NULL;
        size_t len;
        em_error_t err = NULL;
        struct stat st;

        make_upper();
        sh("mkdir -p %s", dst);
        if (em_upper_scan(src, &m1, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        /* Through JSON, as FILE_MANIFEST carries it. */
        assert_int_equal(em_upper_manifest_to_json(&m1, false, &j1, &len, &err), 0);
        assert_int_equal(em_upper_manifest_from_json(j1, len, &rt, &err), 0);
        assert_int_equal(rt.n, m1.n);
        assert_int_equal(em_upper_diff(&empty, &rt, &d, &err), 0);
        assert_int_equal(d.nchanged, rt.n);
        apply(&rt, &d);
        em_upper_diff_free(&d);
        free(j1);
        j1 = scan_json(src);
        jd = scan_json(dst);
        assert_string_equal(jd, j1);
        assert_int_equal(stat(strcat(strcpy((char[128]){0}, dst), "/var/data.link"), &st), 0);
        assert_int_equal(st.st_nlink, 2);

        /* Round 2: change, add, delete, drop the opaque marker, replace a file by a dir. */
        sh("cd %s && printf 'changed!' > etc/app/conf && rm -rf opaque/sub && "
           "echo new > var/new && rm var/fifo && mkdir var/fifo && chmod 0600 var/new",
           src);
        xattr("opaque", "trusted.overlay.opaque", NULL);
        assert_int_equal(em_upper_scan(src, &m2, &err), 0);
        assert_int_equal(em_upper_diff(&m1, &m2, &d, &err), 0);
        assert_int_equal(d.ndeleted, 1);
        assert_string_equal(d.deleted[0], "opaque/sub");
        size_t content = 0;
        for (size_t i = 0; i < d.nchanged; i++)
                content += d.content[i];
        assert_int_equal(content, 2); /* etc/app/conf and var/new only */
        assert_true(d.nchanged < m2.n);
        apply(&m2, &d);
        em_upper_diff_free(&d);
        j2 = scan_json(src);
        free(jd);
        jd = scan_json(dst);
        assert_string_equal(jd, j2);
}

static int parse_status(const char *js)
{
        struct em_upper_manifest m cleanup_manifest = {0};
        cleanup_error em_error_t err = NULL;

        if (em_upper_manifest_from_json(js, strlen(js), &m, &err) == 0)
                return 0;
        return em_error_status(err);
}

#define ENTRY(p, extra)                                                                            \
        "{\"p\":\"" p "\",\"t\":\"d\",\"m\":493,\"u\":0,\"g\":0,\"s\":0,\"mt\":1,\"mn\":0" extra "}"
#define MANIFEST(...) "{\"version\":1,\"entries\":[" __VA_ARGS__ "]}"

static void test_hostile_manifest(void **state)
{
        assert_int_equal(parse_status(MANIFEST(ENTRY("a", ""))), 0);
        const char *bad[] = {
            MANIFEST(ENTRY("../etc", "")),
            MANIFEST(ENTRY("/etc", "")),
            MANIFEST(ENTRY("a//b", "")),
            MANIFEST(ENTRY("a/./b", "")),
            MANIFEST(ENTRY("a/..", "")),
            MANIFEST(ENTRY("a/", "")),
            MANIFEST(ENTRY("", "")),
            MANIFEST(ENTRY("a\\u0000b", "")),
            MANIFEST(ENTRY("b", ""), ENTRY("a", "")), /* unsorted */
            MANIFEST(ENTRY("a", ""), ENTRY("a", "")), /* duplicate */
            MANIFEST(ENTRY("a", ",\"x\":{\"system.posix_acl_access\":\"00\"}")),
            MANIFEST(ENTRY("a", ",\"x\":{\"trusted.a\":\"zz\"}")),
            MANIFEST(ENTRY("a", ",\"m\":99999")),
            "{\"p\":\"a\"}",
            MANIFEST("{\"p\":\"a\",\"t\":\"f\",\"m\":420,\"u\":0,\"g\":0,\"s\":1,\"mt\":1,"
                     "\"mn\":0}"), /* regular file without a hash */
            MANIFEST("{\"p\":\"a\",\"t\":\"f\",\"m\":420,\"u\":0,\"g\":0,\"s\":0,\"mt\":1,"
                     "\"mn\":0,\"hl\":\"../../etc/shadow\"}"),
            MANIFEST("{\"p\":\"a\",\"t\":\"f\",\"m\":420,\"u\":0,\"g\":0,\"s\":0,\"mt\":1,"
                     "\"mn\":0,\"hl\":\"b\"}"), /* link to a later entry */
            MANIFEST("{\"p\":\"a\",\"t\":\"l\",\"m\":511,\"u\":0,\"g\":0,\"s\":0,\"mt\":1,"
                     "\"mn\":0}"), /* symlink without target */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (parse_status(bad[i]) != EPROTO)
                        fail_msg("accepted: %s", bad[i]);
}

/* The rules of layer unpacking: no device node but a 0/0 whiteout, none of
 * overlay's xattrs (a redirect or an origin could make the overlay look up
 * other files); opacity only as the "o" flag of a directory. */
#define NODE(t, r)                                                                                 \
        "{\"p\":\"n\",\"t\":\"" t                                                                  \
        "\",\"m\":420,\"u\":0,\"g\":0,\"s\":0,\"mt\":1,\"mn\":0,\"r\":" r "}"
static void test_upper_held_to_layer_rules(void **state)
{
        assert_int_equal(parse_status(MANIFEST(NODE("c", "0"))), 0);
        assert_int_equal(parse_status(MANIFEST(ENTRY("a", ",\"o\":1"))), 0);
        assert_int_equal(parse_status(MANIFEST(NODE("c", "2048"))), EPERM); /* 8:0 */
        assert_int_equal(parse_status(MANIFEST(NODE("c", "259"))), EPERM);  /* 1:3 */
        assert_int_equal(parse_status(MANIFEST(NODE("b", "0"))), EPERM);
        assert_int_equal(
            parse_status(MANIFEST(ENTRY("a", ",\"x\":{\"trusted.overlay.opaque\":\"79\"}"))),
            EPERM);
        assert_int_equal(
            parse_status(MANIFEST(ENTRY("a", ",\"x\":{\"trusted.overlay.redirect\":\"2f65\"}"))),
            EPERM);
        assert_int_equal(
            parse_status(MANIFEST(ENTRY("a", ",\"x\":{\"user.overlay.opaque\":\"79\"}"))), EPERM);
        assert_int_equal(parse_status(MANIFEST(NODE("c", "0") /* not a dir */)), 0);
        assert_int_equal(parse_status(MANIFEST("{\"p\":\"n\",\"t\":\"p\",\"m\":420,\"u\":0,\"g\":0,"
                                               "\"s\":0,\"mt\":1,\"mn\":0,\"o\":1}")),
                         EPROTO);
        assert_int_equal(parse_status(MANIFEST(ENTRY("a", ",\"o\":2"))), EPROTO);
}

/* An opaque directory arrives opaque: the receiver sets the xattr itself. */
static void test_opaque_flag_applied(void **state)
{
        struct em_upper_manifest m cleanup_manifest = {0};
        cleanup_close int root = -1;
        em_error_t err = NULL;
        char path[512], v[8];

        assert_int_equal(em_upper_manifest_from_json(MANIFEST(ENTRY("a", ",\"o\":1")),
                                                     strlen(MANIFEST(ENTRY("a", ",\"o\":1"))), &m,
                                                     &err),
                         0);
        sh("mkdir -p %s", dst);
        assert_int_equal(em_upper_open_root(dst, &root, &err), 0);
        assert_int_equal(em_upper_apply_entry(root, &m.e[0], &err), 0);
        snprintf(path, sizeof(path), "%s/a", dst);
        assert_int_equal(lgetxattr(path, "trusted.overlay.opaque", v, sizeof(v)), 1);
        assert_int_equal(v[0], 'y');
}

static void test_apply_cannot_escape(void **state)
{
        struct em_upper_entry e = {.path = "evil/passwd", .type = 'p', .mode = 0644};
        struct em_upper_entry h = {.path = "x", .type = 'f', .hardlink = "evil/passwd"};
        cleanup_close int root = -1;
        em_upper_file_t *f = NULL;
        em_error_t err = NULL;
        char outside[128];

        snprintf(outside, sizeof(outside), "%s/outside", tmp);
        sh("mkdir -p %s/t %s && ln -s %s %s/t/evil", tmp, outside, outside, tmp);
        snprintf(dst, sizeof(dst), "%s/t", tmp);
        assert_int_equal(em_upper_open_root(dst, &root, &err), 0);
        assert_int_equal(em_upper_apply_entry(root, &e, &err), -1);
        assert_int_equal(em_error_status(err), ELOOP);
        em_error_free(&err);
        e.type = 'f';
        assert_int_equal(em_upper_file_begin(root, &e, &f, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_upper_apply_delete(root, "evil/x", &err), -1);
        em_error_free(&err);
        assert_int_equal(em_upper_apply_entry(root, &h, &err), -1);
        em_error_free(&err);
        e.path = "../escape";
        assert_int_equal(em_upper_apply_entry(root, &e, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        em_error_free(&err);
        /* Nothing was created outside. */
        sh("test -z \"$(ls -A %s)\" && test ! -e %s/escape", outside, tmp);
        snprintf(dst, sizeof(dst), "%s/dst", tmp);
}

static void test_bad_content_is_rejected(void **state)
{
        struct em_upper_entry e = {.path = "f", .type = 'f', .mode = 0644, .size = 3};
        cleanup_close int root = -1;
        em_upper_file_t *f = NULL;
        em_error_t err = NULL;

        strcpy(e.hash, "00000000000000000000000000000000");
        sh("mkdir -p %s/c", tmp);
        snprintf(dst, sizeof(dst), "%s/c", tmp);
        assert_int_equal(em_upper_open_root(dst, &root, &err), 0);
        assert_int_equal(em_upper_file_begin(root, &e, &f, &err), 0);
        assert_int_equal(em_upper_file_write(f, "abcd", 4, &err), -1); /* over size */
        em_error_free(&err);
        assert_int_equal(em_upper_file_write(f, "abc", 3, &err), 0);
        assert_int_equal(em_upper_file_commit(&f, &err), -1); /* hash mismatch */
        assert_int_equal(em_error_status(err), EILSEQ);
        em_error_free(&err);
        sh("test -z \"$(ls -A %s)\"", dst); /* no temp file left behind */
        snprintf(dst, sizeof(dst), "%s/dst", tmp);
}

/* Another writer in the same tree keeps replacing the directory "d" with a
 * symlink to a file outside it while the directory entry is applied: the
 * chmod must reach the directory or fail, never the file (before the
 * descriptor was pinned, fchmodat followed the swapped-in symlink and made
 * the outside file setuid). */
struct swapper {
        char dir[128], victim[128];
        volatile int stop;
};

static void *swap_loop(void *arg)
{
        struct swapper *s = arg;
        char d[160];

        snprintf(d, sizeof(d), "%s/d", s->dir);
        while (!s->stop) {
                if (rmdir(d) == 0)
                        (void)!symlink(s->victim, d);
        }
        return NULL;
}

static void test_meta_not_redirected_by_symlink_swap(void **state)
{
        struct em_upper_entry e = {.path = "d", .type = 'd', .mode = 04777};
        struct swapper s = {0};
        cleanup_close int root = -1;
        em_error_t err = NULL;
        pthread_t th;
        struct stat st;

        snprintf(s.dir, sizeof(s.dir), "%s/race", tmp);
        snprintf(s.victim, sizeof(s.victim), "%s/victim", tmp);
        sh("mkdir -p %s && touch %s && chmod 0600 %s", s.dir, s.victim, s.victim);
        assert_int_equal(em_upper_open_root(s.dir, &root, &err), 0);
        assert_int_equal(pthread_create(&th, NULL, swap_loop, &s), 0);
        for (int i = 0; i < 20000; i++) {
                em_upper_apply_entry(root, &e, &err);
                em_error_free(&err);
        }
        s.stop = 1;
        pthread_join(th, NULL);
        assert_int_equal(stat(s.victim, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
}

struct churn {
        const char *dir;
        volatile bool stop;
};

/* As the pod tests' sidecar does: write n.tmp, rename it over n, and a
 * short-lived directory with a file in it, as fast as it can. */
static void *churn_main(void *arg)
{
        struct churn *ch = arg;
        char t[160], n[160], d[160], f[200];

        snprintf(t, sizeof(t), "%s/n.tmp", ch->dir);
        snprintf(n, sizeof(n), "%s/n", ch->dir);
        snprintf(d, sizeof(d), "%s/dir.tmp", ch->dir);
        snprintf(f, sizeof(f), "%s/f", d);
        while (!ch->stop) {
                int fd = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd >= 0 && write(fd, "x", 1) == 1)
                        rename(t, n);
                if (fd >= 0)
                        close(fd);
                if (mkdir(d, 0755) == 0) {
                        close(open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
                        unlink(f);
                        rmdir(d);
                }
        }
        return NULL;
}

/* A file or directory that vanishes between readdir and its stat, read
 * or descent is not in the manifest, and the scan does not fail (a live
 * pre-copy round of a running service; 28-migrate-pod-crash failed on
 * "stat www/n.tmp: No such file or directory"). */
static void test_scan_while_files_vanish(void **state)
{
        struct churn ch = {.dir = src};
        pthread_t th;
        em_error_t err = NULL;
        int failed = 0;

        (void)state;
        assert_true(mkdir(src, 0755) == 0 || errno == EEXIST);
        assert_int_equal(pthread_create(&th, NULL, churn_main, &ch), 0);
        for (int i = 0; i < 2000 && failed == 0; i++) {
                struct em_upper_manifest m = {0};
                if (em_upper_scan(src, &m, &err) < 0) {
                        print_message("scan %d: %s\n", i, em_error_msg(err));
                        em_error_free(&err);
                        failed++;
                }
                em_upper_manifest_free(&m);
        }
        ch.stop = true;
        pthread_join(th, NULL);
        assert_int_equal(failed, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_scan_fields, setup, teardown),
            cmocka_unit_test_setup_teardown(test_block_lists, setup, teardown),
            cmocka_unit_test_setup_teardown(test_full_sync_then_delta, setup, teardown),
            cmocka_unit_test(test_hostile_manifest),
            cmocka_unit_test(test_upper_held_to_layer_rules),
            cmocka_unit_test_setup_teardown(test_opaque_flag_applied, setup, teardown),
            cmocka_unit_test_setup_teardown(test_apply_cannot_escape, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_content_is_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(test_meta_not_redirected_by_symlink_swap, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_scan_while_files_vanish, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
