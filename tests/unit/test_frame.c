#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "transfer/frame.h"
#include "util/cleanup.h"

static uint8_t *encode_two(size_t *len)
{
        struct em_frame_writer w = {.session = 0x1122334455667788ull};
        uint8_t *buf = NULL;
        em_error_t err = NULL;

        *len = 0;
        assert_int_equal(
            em_frame_encode(&w, EM_FRAME_HELLO, 0, 0, "{\"a\":1}", 7, 7, &buf, len, &err), 0);
        assert_int_equal(em_frame_encode(&w, EM_FRAME_PAGES_DATA, EM_FRAME_F_LAST, 3, "xyz", 3, 3,
                                         &buf, len, &err),
                         0);
        assert_int_equal(*len, 2 * EM_FRAME_HDR_LEN + 10);
        return buf;
}

static int decode_status(const uint8_t *buf, size_t len)
{
        struct em_frame_reader r = {0};
        struct em_frame f cleanup_frame = {0};
        cleanup_error em_error_t err = NULL;
        size_t used = 0;

        if (em_frame_decode(&r, buf, len, &f, &used, &err) == 0)
                return 0;
        assert_non_null(err);
        return em_error_status(err);
}

static void test_roundtrip(void **state)
{
        size_t len, used = 0;
        cleanup_free uint8_t *buf = encode_two(&len);
        struct em_frame_reader r = {0};
        struct em_frame f cleanup_frame = {0};
        em_error_t err = NULL;

        /* Header fields are little-endian on the wire. */
        assert_memory_equal(buf, "EMF1", 4);
        assert_int_equal(buf[4], EM_FRAME_HELLO);
        assert_int_equal(buf[8], 0x88);
        assert_int_equal(em_frame_decode(&r, buf, len, &f, &used, &err), 0);
        assert_int_equal(used, EM_FRAME_HDR_LEN + 7);
        assert_int_equal(f.hdr.type, EM_FRAME_HELLO);
        assert_int_equal(f.hdr.seq, 1);
        assert_string_equal((char *)f.payload, "{\"a\":1}");
        assert_int_equal(em_frame_decode(&r, buf + used, len - used, &f, &used, &err), 0);
        assert_int_equal(f.hdr.type, EM_FRAME_PAGES_DATA);
        assert_int_equal(f.hdr.stream, 3);
        assert_int_equal(f.hdr.flags, EM_FRAME_F_LAST);
        assert_int_equal(f.hdr.seq, 2);
        assert_int_equal(f.length, 3);
        assert_memory_equal(f.payload, "xyz", 3);
        assert_int_equal(r.session, 0x1122334455667788ull);
}

static void test_names(void **state)
{
        assert_string_equal(em_frame_type_name(EM_FRAME_ROUND_END), "ROUND_END");
        assert_string_equal(em_frame_type_name(EM_FRAME_ERROR), "ERROR");
        assert_null(em_frame_type_name(0));
        assert_null(em_frame_type_name(999));
        assert_int_equal(em_frame_type_from_name("pages_hashes"), EM_FRAME_PAGES_HASHES);
        assert_int_equal(em_frame_type_from_name("nope"), -1);
        for (int t = 1; t <= EM_FRAME_TYPE_MAX; t++)
                assert_int_equal(em_frame_type_from_name(em_frame_type_name(t)), t);
}

static void test_bad_magic(void **state)
{
        size_t len;
        cleanup_free uint8_t *buf = encode_two(&len);

        buf[0] = 'X';
        assert_int_equal(decode_status(buf, len), EM_FRAME_E_MAGIC);
}

static void test_unknown_type_and_flags(void **state)
{
        size_t len;
        cleanup_free uint8_t *buf = encode_two(&len);

        buf[4] = 77;
        assert_int_equal(decode_status(buf, len), EM_FRAME_E_TYPE);
        buf[4] = EM_FRAME_HELLO;
        buf[7] = 0x80;
        assert_int_equal(decode_status(buf, len), EM_FRAME_E_TYPE);
}

static void test_length_overflow_before_alloc(void **state)
{
        size_t len;
        cleanup_free uint8_t *buf = encode_two(&len);

        /* 0xffffffff: must fail on the header alone, without allocating 4 GiB. */
        memset(buf + 28, 0xff, 4);
        memset(buf + 32, 0xff, 4);
        assert_int_equal(decode_status(buf, EM_FRAME_HDR_LEN), EM_FRAME_E_LENGTH);
}

static void test_truncated(void **state)
{
        size_t len;
        cleanup_free uint8_t *buf = encode_two(&len);

        assert_int_equal(decode_status(buf, 0), EM_FRAME_E_TRUNC);
        assert_int_equal(decode_status(buf, 20), EM_FRAME_E_TRUNC);
        assert_int_equal(decode_status(buf, EM_FRAME_HDR_LEN + 3), EM_FRAME_E_TRUNC);
}

static void test_checksum(void **state)
{
        size_t len;
        cleanup_free uint8_t *buf = encode_two(&len);

        buf[EM_FRAME_HDR_LEN + 2] ^= 1; /* payload bit flip */
        assert_int_equal(decode_status(buf, len), EM_FRAME_E_CHECKSUM);
        buf[EM_FRAME_HDR_LEN + 2] ^= 1;
        buf[16] ^= 4; /* header (sequence) bit flip is covered too */
        assert_int_equal(decode_status(buf, len), EM_FRAME_E_CHECKSUM);
}

static void test_order_and_replay(void **state)
{
        size_t len, used;
        cleanup_free uint8_t *buf = encode_two(&len);
        struct em_frame_reader r = {0};
        struct em_frame f cleanup_frame = {0};
        cleanup_error em_error_t err = NULL;
        size_t first = EM_FRAME_HDR_LEN + 7;

        /* The second frame alone: sequence 2 where 1 is expected. */
        assert_int_equal(em_frame_decode(&r, buf + first, len - first, &f, &used, &err), -1);
        assert_int_equal(em_error_status(err), EM_FRAME_E_ORDER);
        assert_non_null(strstr(em_error_msg(err), "out of order"));
        em_error_free(&err);
        /* Replaying frame 1 after it was accepted. */
        memset(&r, 0, sizeof(r));
        assert_int_equal(em_frame_decode(&r, buf, len, &f, &used, &err), 0);
        assert_int_equal(em_frame_decode(&r, buf, len, &f, &used, &err), -1);
        assert_int_equal(em_error_status(err), EM_FRAME_E_ORDER);
        em_error_free(&err);
        /* A frame of another session on a bound reader. */
        r = (struct em_frame_reader){.session = 42};
        assert_int_equal(em_frame_decode(&r, buf, len, &f, &used, &err), -1);
        assert_int_equal(em_error_status(err), EM_FRAME_E_SESSION);
}

static void test_send_limits(void **state)
{
        struct em_frame_writer w = {0};
        uint8_t *buf = NULL;
        size_t len = 0;
        em_error_t err = NULL;

        assert_int_equal(em_frame_encode(&w, 0, 0, 0, "", 0, 0, &buf, &len, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_frame_encode(&w, EM_FRAME_DONE, 0, 0, "ab", 2, 3, &buf, &len, &err),
                         -1);
        em_error_free(&err);
        assert_int_equal(w.seq, 0);
        assert_int_equal(em_frame_encode(&w, EM_FRAME_DONE, 0, 0, NULL, 0, 0, &buf, &len, &err), 0);
        assert_int_equal(len, EM_FRAME_HDR_LEN);
        free(buf);
}

static void test_fd_roundtrip_and_timeout(void **state)
{
        int sv[2];
        struct em_frame_writer w = {0};
        struct em_frame_reader r = {0};
        struct em_frame f cleanup_frame = {0};
        cleanup_free uint8_t *big = malloc(1 << 20);
        em_error_t err = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        memset(big, 0xab, 1 << 20);
        if (fork() == 0) {
                close(sv[0]);
                em_frame_write_fd(&w, sv[1], 5000, EM_FRAME_LAYER_BLOB, 0, 1, big, 1 << 20, &err);
                _exit(err != NULL);
        }
        close(sv[1]);
        assert_int_equal(em_frame_read_fd(&r, sv[0], 5000, &f, &err), 1);
        assert_int_equal(f.length, 1 << 20);
        assert_memory_equal(f.payload, big, 1 << 20);
        /* Clean end of stream between frames. */
        assert_int_equal(em_frame_read_fd(&r, sv[0], 5000, &f, &err), 0);
        close(sv[0]);

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(write(sv[1], "EMF1", 4), 4); /* then silence */
        assert_int_equal(em_frame_read_fd(&r, sv[0], 100, &f, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        close(sv[0]);
        close(sv[1]);
        /* EOF in the middle of a header: truncated. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(write(sv[1], "EMF1", 4), 4);
        close(sv[1]);
        assert_int_equal(em_frame_read_fd(&r, sv[0], 100, &f, &err), -1);
        assert_int_equal(em_error_status(err), EM_FRAME_E_TRUNC);
        em_error_free(&err);
        close(sv[0]);
}

/* The one poll wait of the fd loops and the TLS backends. */
static void test_fd_wait(void **state)
{
        int sv[2];
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(em_fd_wait(sv[0], POLLOUT, 100, &err), 0);
        assert_int_equal(em_fd_wait(sv[0], POLLIN, 20, &err), -1);
        assert_int_equal(em_error_status(err), ETIMEDOUT);
        em_error_free(&err);
        assert_int_equal(write(sv[1], "x", 1), 1);
        assert_int_equal(em_fd_wait(sv[0], POLLIN, 100, &err), 0);
        close(sv[0]);
        close(sv[1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_roundtrip),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_bad_magic),
            cmocka_unit_test(test_unknown_type_and_flags),
            cmocka_unit_test(test_length_overflow_before_alloc),
            cmocka_unit_test(test_truncated),
            cmocka_unit_test(test_checksum),
            cmocka_unit_test(test_order_and_replay),
            cmocka_unit_test(test_send_limits),
            cmocka_unit_test(test_fd_roundtrip_and_timeout),
            cmocka_unit_test(test_fd_wait),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
