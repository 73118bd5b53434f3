/* Block-level deltas of large files: block lists, the receiver's checks of
 * a FILE_BLOCKS stream from a hostile peer, and the patch applied to a
 * copy (in place, into a new file, never through a link). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/blocks.h"
#include "delta/pagefmt.h"
#include "delta/upper.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define BS EM_BLOCK_SIZE

static void test_counts(void **state)
{
        (void)state;
        assert_int_equal(em_blocks_count(0), 0);
        assert_int_equal(em_blocks_count(1), 1);
        assert_int_equal(em_blocks_count(BS), 1);
        assert_int_equal(em_blocks_count(BS + 1), 2);
        assert_int_equal(em_block_len(BS + 5, 0), BS);
        assert_int_equal(em_block_len(BS + 5, BS), 5);
        assert_int_equal(em_block_len(BS + 5, 2 * BS), 0);
        assert_int_equal(em_block_len(UINT64_MAX, UINT64_MAX - 3), 3);
}

static void make_list(struct em_blocks *b, size_t n)
{
        uint8_t blk[64];
        em_error_t err = NULL;

        for (size_t i = 0; i < n; i++) {
                memset(blk, (int)i, sizeof(blk));
                assert_int_equal(em_blocks_append(b, blk, sizeof(blk), &err), 0);
        }
}

static void test_list_round_trip(void **state)
{
        struct em_blocks b = {0}, back = {0};
        em_error_t err = NULL;

        (void)state;
        make_list(&b, 3);
        cleanup_free char *s = em_blocks_encode(&b);
        assert_non_null(s);
        assert_int_equal(em_blocks_decode(s, strlen(s), 2 * BS + 1, &back, &err), 0);
        assert_int_equal(back.n, 3);
        assert_memory_equal(back.h, b.h, 3 * 16);
        em_blocks_free(&back);
        em_blocks_free(&b);
}

/* A hostile list: the wrong count for the size, a size no list can match,
 * whitespace, bad padding or characters, and never an allocation sized
 * by the peer's claim. */
static void test_list_hostile(void **state)
{
        struct em_blocks b = {0}, out = {0};
        em_error_t err = NULL;
        char buf[256];

        (void)state;
        make_list(&b, 2);
        cleanup_free char *s = em_blocks_encode(&b);
        size_t n = strlen(s);
        const uint64_t sizes[] = {0, 1, 3 * BS, UINT64_MAX, (uint64_t)INT64_MAX};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
                assert_int_equal(em_blocks_decode(s, n, sizes[i], &out, &err), -1);
                assert_int_equal(em_error_status(err), EPROTO);
                assert_null(out.h);
                em_error_free(&err);
        }
        snprintf(buf, sizeof(buf), " %.*s", (int)n - 1, s); /* same length, whitespace */
        assert_int_equal(em_blocks_decode(buf, n, 2 * BS, &out, &err), -1);
        em_error_free(&err);
        snprintf(buf, sizeof(buf), "%s", s);
        buf[n - 1] = 'A'; /* the padding replaced */
        assert_int_equal(em_blocks_decode(buf, n, 2 * BS, &out, &err), -1);
        em_error_free(&err);
        buf[n - 1] = '=';
        buf[3] = '*';
        assert_int_equal(em_blocks_decode(buf, n, 2 * BS, &out, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_blocks_decode(s, n - 4, 2 * BS, &out, &err), -1);
        em_error_free(&err);
        em_blocks_free(&b);
}

/* Feeds one payload (offset, then len bytes) to r. */
static int feed(struct em_blocks_rx *r, uint64_t off, size_t len, em_error_t *err)
{
        cleanup_free uint8_t *p = calloc(1, EM_BLOCK_HDR + len);
        const uint8_t *data;
        uint64_t o;
        size_t l;

        em_le_put(p, off, 8);
        int rc = em_blocks_rx_next(r, p, EM_BLOCK_HDR + len, &o, &data, &l, err);
        if (rc == 0) {
                assert_int_equal(o, off);
                assert_int_equal(l, len);
        }
        return rc;
}

static void expect_refused(struct em_blocks_rx *r, uint64_t off, size_t len)
{
        em_error_t err = NULL;

        assert_int_equal(feed(r, off, len, &err), -1);
        assert_int_equal(em_error_status(err), EPROTO);
        em_error_free(&err);
}

static void test_rx_accepts_changed_blocks(void **state)
{
        struct em_blocks_rx r;
        em_error_t err = NULL;

        (void)state;
        /* The receiver holds all 3 blocks: any subset, ascending. */
        em_blocks_rx_init(&r, 2 * BS + 10, 2 * BS + 10);
        assert_int_equal(feed(&r, BS, BS, &err), 0);
        assert_int_equal(feed(&r, 2 * BS + 10, 0, &err), 1);
        /* It held 1.5 blocks of a file that grew to 3: blocks 1 and 2 must come. */
        em_blocks_rx_init(&r, 2 * BS + 10, BS + BS / 2);
        assert_int_equal(feed(&r, BS, BS, &err), 0);
        assert_int_equal(feed(&r, 2 * BS, 10, &err), 0);
        assert_int_equal(feed(&r, 2 * BS + 10, 0, &err), 1);
        /* It shrank: nothing is required. */
        em_blocks_rx_init(&r, BS, 5 * BS);
        assert_int_equal(feed(&r, BS, 0, &err), 1);
        assert_null(err);
}

static void test_rx_hostile(void **state)
{
        struct em_blocks_rx r;
        em_error_t err = NULL;
        const uint8_t shortp[4] = {0};
        const uint8_t *data;
        uint64_t off;
        size_t len;

        (void)state;
        em_blocks_rx_init(&r, 3 * BS, 3 * BS);
        assert_int_equal(em_blocks_rx_next(&r, shortp, sizeof(shortp), &off, &data, &len, &err),
                         -1);
        em_error_free(&err);
        expect_refused(&r, 1, BS);         /* not aligned */
        expect_refused(&r, 3 * BS, BS);    /* past the end */
        expect_refused(&r, UINT64_MAX, 0); /* a terminator for another size */
        expect_refused(&r, 0, BS - 1);     /* short block */
        expect_refused(&r, 0, 0);          /* empty block */
        assert_int_equal(feed(&r, BS, BS, &err), 0);
        expect_refused(&r, BS, BS); /* again */
        expect_refused(&r, 0, BS);  /* backwards */
        /* A last block longer than the file's rest. */
        em_blocks_rx_init(&r, BS + 10, BS + 10);
        expect_refused(&r, BS, BS);
        /* A new file (holds nothing): a skipped block, an early end. */
        em_blocks_rx_init(&r, 3 * BS, 0);
        expect_refused(&r, BS, BS);
        assert_int_equal(feed(&r, 0, BS, &err), 0);
        expect_refused(&r, 3 * BS, 0);
        /* Growing a copy by a huge size needs the bytes. */
        em_blocks_rx_init(&r, (uint64_t)1 << 60, BS);
        expect_refused(&r, (uint64_t)1 << 60, 0);
        expect_refused(&r, 2 * BS, BS);
}

/* ---- the patch on disk ---- */

static char tmp[64];

static int setup(void **state)
{
        (void)state;
        strcpy(tmp, "/tmp/em-blocks-XXXXXX");
        assert_non_null(mkdtemp(tmp));
        return 0;
}

static int teardown(void **state)
{
        em_error_t err = NULL;

        (void)state;
        em_rm_rf(tmp, &err);
        em_error_free(&err);
        return 0;
}

static void put(const char *name, char fill, size_t len)
{
        char path[128];
        cleanup_free char *buf = malloc(len + 1);
        em_error_t err = NULL;

        memset(buf, fill, len);
        snprintf(path, sizeof(path), "%s/%s", tmp, name);
        assert_int_equal(em_write_file_atomic(path, buf, len, 0644, &err), 0);
}

/* The entry of the file name would be after the patch, scanned from a
 * reference tree. */
static void entry_of(const char *name, char fill, size_t len, struct em_upper_manifest *m)
{
        char ref[128];
        em_error_t err = NULL;

        snprintf(ref, sizeof(ref), "%s/ref", tmp);
        assert_int_equal(em_mkdir_p(ref, 0755, &err), 0);
        char path[160];
        snprintf(path, sizeof(path), "%s/%s", ref, name);
        cleanup_free char *buf = malloc(len + 1);
        memset(buf, fill, len);
        memset(buf, 'B', len < BS ? len : BS); /* block 0 changed */
        assert_int_equal(em_write_file_atomic(path, buf, len, 0600, &err), 0);
        assert_int_equal(em_upper_scan(ref, m, &err), 0);
        assert_int_equal(m->n, 1);
}

static int patch(int root, const struct em_upper_entry *e, bool verify, uint64_t *have,
                 em_error_t *err)
{
        em_upper_file_t *f = NULL;
        cleanup_free uint8_t *blk = malloc(BS);

        memset(blk, 'B', BS);
        if (em_upper_patch_begin(root, e, &f, have, err) < 0)
                return -1;
        if (em_upper_patch_write(f, 0, blk, BS, err) < 0) {
                em_upper_file_abort(&f);
                return -1;
        }
        return em_upper_patch_commit(&f, verify, err);
}

static void test_patch_in_place(void **state)
{
        cleanup_manifest struct em_upper_manifest m = {0};
        cleanup_close int root = -1;
        em_error_t err = NULL;
        uint64_t have;
        struct stat st;
        char path[128];

        (void)state;
        put("f", 'A', 4 * BS);
        entry_of("f", 'A', 4 * BS, &m);
        assert_int_equal(m.e[0].blocks.n, 4);
        assert_int_equal(em_upper_open_root(tmp, &root, &err), 0);
        snprintf(path, sizeof(path), "%s/f", tmp);
        struct stat before;
        assert_int_equal(stat(path, &before), 0);
        assert_int_equal(patch(root, &m.e[0], true, &have, &err), 0);
        assert_int_equal(have, 4 * BS);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_ino, before.st_ino); /* in place */
        assert_int_equal(st.st_mode & 07777, 0600); /* the entry's metadata */
        assert_int_equal(st.st_mtim.tv_sec, m.e[0].mtime_sec);
        /* The final round checks the whole file: a copy that differs
         * elsewhere is refused. */
        put("f", 'C', 4 * BS);
        assert_int_equal(patch(root, &m.e[0], true, &have, &err), -1);
        assert_int_equal(em_error_status(err), EILSEQ);
        em_error_free(&err);
        /* A live round keeps what arrived. */
        assert_int_equal(patch(root, &m.e[0], false, &have, &err), 0);
}

/* A second link, a symlink or a directory at the name: never written
 * through; the patch goes to a new file (which then needs every block). */
static void test_patch_never_through_links(void **state)
{
        cleanup_manifest struct em_upper_manifest m = {0};
        cleanup_close int root = -1;
        em_error_t err = NULL;
        char path[128], other[128], outside[128];
        uint64_t have = 99;
        struct stat st;

        (void)state;
        put("f", 'A', BS);
        entry_of("f", 'A', BS, &m);
        assert_int_equal(em_upper_open_root(tmp, &root, &err), 0);
        snprintf(path, sizeof(path), "%s/f", tmp);
        snprintf(other, sizeof(other), "%s/g", tmp);
        assert_int_equal(link(path, other), 0);
        assert_int_equal(patch(root, &m.e[0], true, &have, &err), 0);
        assert_int_equal(have, 0);
        assert_int_equal(stat(other, &st), 0);
        assert_int_equal(st.st_nlink, 1); /* g kept the old content */
        /* a symlink to a file outside the copy */
        snprintf(outside, sizeof(outside), "%s.outside", tmp);
        assert_int_equal(unlink(path), 0);
        int fd = open(outside, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(symlink(outside, path), 0);
        assert_int_equal(patch(root, &m.e[0], false, &have, &err), 0);
        assert_int_equal(have, 0);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(stat(outside, &st), 0);
        assert_int_equal(st.st_size, 0); /* untouched */
        unlink(outside);
}

static void test_patch_path_escape(void **state)
{
        struct em_upper_entry e = {.path = "../escape", .type = 'f', .size = BS};
        cleanup_close int root = -1;
        em_upper_file_t *f = NULL;
        em_error_t err = NULL;
        uint64_t have;

        (void)state;
        assert_int_equal(em_upper_open_root(tmp, &root, &err), 0);
        assert_int_equal(em_upper_patch_begin(root, &e, &f, &have, &err), -1);
        assert_null(f);
        em_error_free(&err);
}

/* "b" in a manifest: only on a plain regular file, only its size's blocks. */
static void test_manifest_blocks(void **state)
{
        cleanup_manifest struct em_upper_manifest m = {0}, back = {0};
        cleanup_free char *js = NULL;
        em_error_t err = NULL;
        size_t len;

        (void)state;
        entry_of("f", 'A', 5 * BS + 1, &m);
        assert_int_equal(em_upper_manifest_to_json(&m, true, &js, &len, &err), 0);
        assert_non_null(strstr(js, "\"b\":"));
        assert_int_equal(em_upper_manifest_from_json(js, len, &back, &err), 0);
        assert_int_equal(back.e[0].blocks.n, 6);
        assert_memory_equal(back.e[0].blocks.h, m.e[0].blocks.h, 6 * 16);
        cleanup_free char *b = em_blocks_encode(&m.e[0].blocks);
        const char *bad[] = {
            "{\"version\":1,\"entries\":[{\"p\":\"d\",\"t\":\"d\",\"m\":493,\"u\":0,\"g\":0,"
            "\"s\":0,\"mt\":0,\"mn\":0,\"b\":\"",
            "{\"version\":1,\"entries\":[{\"p\":\"f\",\"t\":\"f\",\"m\":420,\"u\":0,\"g\":0,"
            "\"s\":99,\"mt\":0,\"mn\":0,\"h\":\"00000000000000000000000000000000\","
            "\"b\":\"",
            "{\"version\":1,\"entries\":[{\"p\":\"f\",\"t\":\"f\",\"m\":420,\"u\":0,\"g\":0,"
            "\"s\":9223372036854775807,\"mt\":0,\"mn\":0,"
            "\"h\":\"00000000000000000000000000000000\",\"b\":\"",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                cleanup_manifest struct em_upper_manifest x = {0};
                cleanup_free char *j = NULL;
                assert_true(asprintf(&j, "%s%s\"}]}", bad[i], b) > 0);
                assert_int_equal(em_upper_manifest_from_json(j, strlen(j), &x, &err), -1);
                assert_int_equal(em_error_status(err), EPROTO);
                em_error_free(&err);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_counts),
            cmocka_unit_test(test_list_round_trip),
            cmocka_unit_test(test_list_hostile),
            cmocka_unit_test(test_rx_accepts_changed_blocks),
            cmocka_unit_test(test_rx_hostile),
            cmocka_unit_test_setup_teardown(test_patch_in_place, setup, teardown),
            cmocka_unit_test_setup_teardown(test_patch_never_through_links, setup, teardown),
            cmocka_unit_test_setup_teardown(test_patch_path_escape, setup, teardown),
            cmocka_unit_test_setup_teardown(test_manifest_blocks, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
