/* The container's log over a migration connection (socketpair): sent
 * whole, cut to its tail from a line start, refused when a peer names it
 * otherwise or announces more than the cap. */
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

#include "migrate/common/logsync.h"
#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

struct fx {
        char dir[64], log[96], rx[96];
        em_conn_t *a, *b;
        int rx_fd;
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;
        int sv[2];

        strcpy(f->dir, "/tmp/test_logsync.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->log, sizeof(f->log), "%s/src.log", f->dir);
        snprintf(f->rx, sizeof(f->rx), "%s/rx", f->dir);
        assert_int_equal(mkdir(f->rx, 0700), 0);
        f->rx_fd = open(f->rx, O_RDONLY | O_DIRECTORY);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", &f->a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "b", &f->b, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        em_conn_free(&f->a);
        em_conn_free(&f->b);
        close(f->rx_fd);
        em_rm_rf(f->dir, &err);
        free(f);
        return 0;
}

struct sender {
        struct fx *f;
        uint64_t raw;
        int ret;
};

static void *send_thread(void *arg)
{
        struct sender *s = arg;
        em_error_t err = NULL;

        s->ret = em_logsync_send(s->f->a, s->f->log, s->f->dir, 3, &s->raw, &err);
        em_error_free(&err);
        return NULL;
}

/* Sends f->log in a thread and receives it into rx/log. */
static uint64_t transfer(struct fx *f)
{
        struct sender s = {.f = f};
        cleanup_json json_t *hdr = NULL;
        cleanup_error em_error_t err = NULL;
        pthread_t th;

        assert_int_equal(pthread_create(&th, NULL, send_thread, &s), 0);
        assert_int_equal(em_proto_recv_json(f->b, EM_FRAME_LOG_FILE, &hdr, &err), 0);
        if (em_logsync_recv(f->b, hdr, f->rx_fd, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        pthread_join(th, NULL);
        assert_int_equal(s.ret, 0);
        return s.raw;
}

static char *rx_log(struct fx *f, size_t *len)
{
        char path[128];
        char *text = NULL;
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/log", f->rx);
        assert_int_equal(em_read_file(path, 64u << 20, &text, len, &err), 0);
        return text;
}

static void test_small_log_whole(void **state)
{
        struct fx *f = *state;
        const char *text = "one\ntwo\n";
        em_error_t err = NULL;
        size_t len;

        assert_int_equal(em_write_file_atomic(f->log, text, strlen(text), 0640, &err), 0);
        assert_int_equal(transfer(f), strlen(text));
        cleanup_free char *got = rx_log(f, &len);
        assert_string_equal(got, text);
}

/* Over the cap: the last EM_LOGSYNC_MAX bytes, from the first line start. */
static void test_large_log_tail(void **state)
{
        struct fx *f = *state;
        size_t total = EM_LOGSYNC_MAX + (1u << 20), len;
        cleanup_free char *text = malloc(total);
        em_error_t err = NULL;

        for (size_t i = 0; i < total; i++)
                text[i] = i % 100 == 99 ? '\n' : (char)('a' + i % 26);
        assert_int_equal(em_write_file_atomic(f->log, text, total, 0640, &err), 0);
        transfer(f);
        cleanup_free char *got = rx_log(f, &len);
        size_t start = total - EM_LOGSYNC_MAX;
        start += 100 - start % 100; /* the next line start */
        assert_int_equal(len, total - start);
        assert_memory_equal(got, text + start, len);
}

static void test_no_log_sends_nothing(void **state)
{
        struct fx *f = *state;
        cleanup_error em_error_t err = NULL;
        uint64_t raw = 0;

        assert_int_equal(em_logsync_send(f->a, f->log, f->dir, 3, &raw, &err), 0);
        assert_int_equal(raw, 0);
}

/* A peer cannot put another file in the staging dir, nor announce more
 * than the cap. */
static void test_hostile_headers(void **state)
{
        struct fx *f = *state;
        const char *names[] = {"config.json", "../log", "images", ""};
        cleanup_error em_error_t err = NULL;

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                cleanup_json json_t *hdr =
                    json_pack("{s:s, s:i, s:s}", "file", names[i], "size", 3, "digest", "x");
                assert_int_equal(em_logsync_recv(f->b, hdr, f->rx_fd, &err), -1);
                assert_int_equal(em_error_status(err), EPROTO);
                em_error_free(&err);
        }
        cleanup_json json_t *big = json_pack("{s:s, s:I, s:s}", "file", "log", "size",
                                             (json_int_t)EM_LOGSYNC_MAX + 1, "digest", "x");
        assert_int_equal(em_logsync_recv(f->b, big, f->rx_fd, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "at most"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_small_log_whole, setup, teardown),
            cmocka_unit_test_setup_teardown(test_large_log_tail, setup, teardown),
            cmocka_unit_test_setup_teardown(test_no_log_sends_nothing, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hostile_headers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
