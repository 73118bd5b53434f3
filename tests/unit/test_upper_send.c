/* The writable-layer / volume sync end to end over a socketpair: a sender
 * thread runs em_upper_send_tree, the test applies the frames with
 * em_upper_rx_frame. Large files travel as blocks: a first send carries
 * all of them, a later one only the blocks that changed, and a sender that
 * starts from the receiver's reported manifest (a volume after `prepare`)
 * sends only what differs from it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/blocks.h"
#include "delta/upper.h"
#include "migrate/common/proto.h"
#include "migrate/source/upper_send.h"
#include "migrate/target/upper_recv.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define MIB (1u << 20)

static char tmp[64], src[96], dst[96];

static int setup(void **state)
{
        em_error_t err = NULL;

        (void)state;
        strcpy(tmp, "/tmp/em-upsend-XXXXXX");
        assert_non_null(mkdtemp(tmp));
        snprintf(src, sizeof(src), "%s/src", tmp);
        snprintf(dst, sizeof(dst), "%s/dst", tmp);
        assert_int_equal(em_mkdir_p(src, 0755, &err), 0);
        assert_int_equal(em_mkdir_p(dst, 0755, &err), 0);
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

/* Writes len bytes of a pattern seeded by seed at off of src/name. */
static void write_at(const char *name, uint64_t off, size_t len, unsigned seed)
{
        char path[160];
        cleanup_free uint8_t *buf = malloc(len);
        cleanup_close int fd = -1;

        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)((i * 2654435761u + seed * 40503u) >> 13);
        snprintf(path, sizeof(path), "%s/%s", src, name);
        fd = open(path, O_WRONLY | O_CREAT, 0644);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
}

struct sender {
        em_conn_t *c;
        struct em_upper_state *st;
        struct em_sync_stats stats;
        bool live;
        int ret;
};

static void *send_thread(void *arg)
{
        struct sender *s = arg;
        em_error_t err = NULL;

        s->ret = em_upper_send_tree(s->c, s->st, src, s->live, 0, &s->stats, &err);
        if (s->ret < 0)
                fprintf(stderr, "send: %s\n", em_error_msg(err));
        em_error_free(&err);
        return NULL;
}

/* One send of src (live if asked), applied to dst; gone, if not NULL,
 * is removed from src once the first frame arrived (the scan is done,
 * the sender blocked on a full socket); returns the payload bytes sent. */
static uint64_t sync_live(struct em_upper_state *st, em_conn_t *a, em_conn_t *b, bool live,
                          const char *gone)
{
        struct sender s = {.c = a, .st = st, .live = live};
        struct em_upper_rx *rx = NULL;
        em_error_t err = NULL;
        pthread_t th;
        char path[160];

        assert_int_equal(em_upper_rx_new(dst, &rx, &err), 0);
        assert_int_equal(pthread_create(&th, NULL, send_thread, &s), 0);
        for (;;) {
                cleanup_frame struct em_frame f = {0};
                assert_int_equal(em_proto_recv(b, &f, &err), 0);
                if (gone != NULL) {
                        snprintf(path, sizeof(path), "%s/%s", src, gone);
                        assert_int_equal(unlink(path), 0);
                        gone = NULL;
                }
                if (em_upper_rx_frame(rx, b, &f, &err) < 0)
                        fail_msg("apply: %s", em_error_msg(err));
                if (f.hdr.type == EM_FRAME_FILE_MANIFEST && (f.hdr.flags & EM_FRAME_F_LAST))
                        break;
        }
        pthread_join(th, NULL);
        assert_int_equal(s.ret, 0);
        assert_int_equal(em_upper_rx_finish(rx, &err), 0);
        em_upper_rx_free(&rx);
        return s.stats.raw_bytes;
}

static uint64_t sync_once(struct em_upper_state *st, em_conn_t *a, em_conn_t *b)
{
        return sync_live(st, a, b, false, NULL);
}

static void same_trees(void)
{
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "diff -r %s %s >/dev/null", src, dst);
        assert_int_equal(system(cmd), 0);
}

static void pair(em_conn_t **a, em_conn_t **b)
{
        int sv[2];
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "src", a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "dst", b, &err), 0);
}

static void test_blocks_after_first_send(void **state)
{
        cleanup_conn em_conn_t *a = NULL, *b = NULL;
        struct em_upper_state *st = NULL;
        em_error_t err = NULL;

        (void)state;
        pair(&a, &b);
        assert_int_equal(em_upper_state_new(&st, &err), 0);
        write_at("big", 0, 4 * MIB, 1);
        write_at("small", 0, 1000, 2);
        assert_true(sync_once(st, a, b) >= 4 * MIB);
        same_trees();
        /* One block rewritten in place, one appended past the end. */
        write_at("big", 2 * MIB + 100, 10, 3);
        write_at("big", 4 * MIB, 5000, 4);
        uint64_t sent = sync_once(st, a, b);
        assert_true(sent >= EM_BLOCK_SIZE + 5000);
        assert_true(sent < 2 * EM_BLOCK_SIZE + 5000 + 4096); /* + manifests */
        same_trees();
        /* Cut short: the new last block and the size. */
        char path[160];
        snprintf(path, sizeof(path), "%s/big", src);
        assert_int_equal(truncate(path, MIB + 7), 0);
        assert_true(sync_once(st, a, b) < EM_BLOCK_SIZE + 4096);
        same_trees();
        em_upper_state_free(&st);
}

/* A volume after `prepare`: the target reports its copy (with block
 * hashes) and a new sender starts from that report. */
static void test_blocks_from_receivers_report(void **state)
{
        cleanup_conn em_conn_t *a = NULL, *b = NULL;
        cleanup_manifest struct em_upper_manifest have = {0}, back = {0};
        cleanup_free char *js = NULL;
        struct em_upper_state *st = NULL;
        em_error_t err = NULL;
        size_t len;

        (void)state;
        pair(&a, &b);
        assert_int_equal(em_upper_state_new(&st, &err), 0);
        write_at("ibdata1", 0, 8 * MIB, 5);
        sync_once(st, a, b);
        em_upper_state_free(&st);
        write_at("ibdata1", 3 * MIB, 16384, 6); /* one database page */
        assert_int_equal(em_upper_scan(dst, &have, &err), 0);
        assert_int_equal(em_upper_manifest_to_json(&have, true, &js, &len, &err), 0);
        assert_int_equal(em_upper_manifest_from_json(js, len, &back, &err), 0);
        assert_int_equal(em_upper_state_new(&st, &err), 0);
        em_upper_state_set_prev(st, &back);
        assert_true(sync_once(st, a, b) < EM_BLOCK_SIZE + 4096);
        same_trees();
        em_upper_state_free(&st);
}

/* A live round whose file is gone between the scan and the read (a
 * service renaming a temp file into place) sends the rest; the file
 * comes back exactly as the scan saw it (content and times), and the
 * next round sends it, the receiver never having had it. */
static void test_live_file_gone(void **state)
{
        cleanup_conn em_conn_t *a = NULL, *b = NULL;
        struct em_upper_state *st = NULL;
        em_error_t err = NULL;
        char path[160];
        struct stat sb;

        (void)state;
        pair(&a, &b);
        assert_int_equal(em_upper_state_new(&st, &err), 0);
        write_at("a", 0, 4 * MIB, 7); /* more than the socket holds */
        write_at("b.tmp", 0, 1000, 8);
        write_at("c", 0, 1000, 9);
        snprintf(path, sizeof(path), "%s/b.tmp", src);
        assert_int_equal(stat(path, &sb), 0);
        sync_live(st, a, b, true, "b.tmp");
        same_trees();
        write_at("b.tmp", 0, 1000, 8);
        struct timespec times[2] = {sb.st_atim, sb.st_mtim};
        assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
        assert_true(sync_once(st, a, b) >= 1000);
        same_trees();
        em_upper_state_free(&st);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_blocks_after_first_send, setup, teardown),
            cmocka_unit_test_setup_teardown(test_blocks_from_receivers_report, setup, teardown),
            cmocka_unit_test_setup_teardown(test_live_file_gone, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
