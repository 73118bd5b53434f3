#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/userns_img.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

/* userns-14.img as CRIU 4.2.1 wrote it for "0 100000 65536". */
static const uint8_t real_img[] = {0x19, 0x43, 0x56, 0x54, 0x06, 0x49, 0x47, 0x55, 0x18,
                                   0x00, 0x00, 0x00, 0x0a, 0x0a, 0x08, 0x00, 0x10, 0xa0,
                                   0x8d, 0x06, 0x18, 0x80, 0x80, 0x04, 0x12, 0x0a, 0x08,
                                   0x00, 0x10, 0xa0, 0x8d, 0x06, 0x18, 0x80, 0x80, 0x04};

static void test_decode_encode(void **state)
{
        struct em_ck_userns m;
        uint8_t out[512];
        em_error_t err = NULL;
        (void)state;

        assert_int_equal(em_userns_img_decode(real_img, sizeof(real_img), &m, &err), 0);
        assert_int_equal(m.n_uid, 1);
        assert_int_equal(m.n_gid, 1);
        assert_int_equal(m.uid[0].first, 0);
        assert_int_equal(m.uid[0].lower_first, 100000);
        assert_int_equal(m.uid[0].count, 65536);
        size_t n = em_userns_img_encode(&m, 0x55474906, out);
        assert_int_equal(n, sizeof(real_img));
        assert_memory_equal(out, real_img, n);
}

static void test_move(void **state)
{
        struct em_ck_userns m;
        const struct em_idrange from = {100000, 65536}, to = {1u << 30, 65536};
        const struct em_idrange host_root = {0, 65536};
        em_error_t err = NULL;
        (void)state;

        assert_int_equal(em_userns_img_decode(real_img, sizeof(real_img), &m, &err), 0);
        assert_int_equal(em_userns_map_move(&m, &from, &to, &err), 0);
        assert_int_equal(m.uid[0].lower_first, 1u << 30);
        assert_int_equal(m.gid[0].lower_first, 1u << 30);
        /* A map outside the range the spec claims is refused. */
        assert_int_equal(em_userns_img_decode(real_img, sizeof(real_img), &m, &err), 0);
        assert_int_equal(em_userns_map_move(&m, &host_root, &to, &err), -1);
        assert_int_equal(em_error_status(err), EPERM);
        em_error_free(&err);
        /* ... and so is one wider than the target's range or shifted in it. */
        assert_int_equal(em_userns_img_decode(real_img, sizeof(real_img), &m, &err), 0);
        m.uid[0].count = 70000;
        assert_int_equal(em_userns_map_move(&m, &(struct em_idrange){100000, 1u << 20}, &to, &err),
                         -1);
        em_error_free(&err);
        assert_int_equal(em_userns_img_decode(real_img, sizeof(real_img), &m, &err), 0);
        m.uid[0].first = 1;
        assert_int_equal(em_userns_map_move(&m, &from, &to, &err), -1);
        em_error_free(&err);
}

static void test_malformed(void **state)
{
        struct em_ck_userns m;
        uint8_t b[sizeof(real_img)];
        em_error_t err = NULL;
        (void)state;

        for (size_t cut = 0; cut < sizeof(real_img); cut++) {
                assert_int_equal(em_userns_img_decode(real_img, cut, &m, &err), -1);
                em_error_free(&err);
        }
        memcpy(b, real_img, sizeof(b));
        b[0] ^= 1;
        assert_int_equal(em_userns_img_decode(b, sizeof(b), &m, &err), -1);
        em_error_free(&err);
        memcpy(b, real_img, sizeof(b));
        b[12] = 0x08; /* uid_map as a varint, not an extent message */
        assert_int_equal(em_userns_img_decode(b, sizeof(b), &m, &err), -1);
        assert_int_equal(em_error_status(err), EBADMSG);
        em_error_free(&err);
        memcpy(b, real_img, sizeof(b));
        b[14] = 0x10; /* uid_map extent with "lower_first" twice */
        assert_int_equal(em_userns_img_decode(b, sizeof(b), &m, &err), -1);
        assert_int_equal(em_error_status(err), EBADMSG);
        em_error_free(&err);
}

static void test_remap_dir(void **state)
{
        char dir[] = "/tmp/test_userns_img.XXXXXX";
        cleanup_free char *path = NULL;
        const struct em_idrange from = {100000, 65536}, to = {200000 - 200000 % 65536, 65536};
        struct em_ck_userns m;
        uint8_t buf[512];
        em_error_t err = NULL;
        (void)state;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(em_userns_img_remap(dir, &from, &to, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        path = em_path_join(dir, "userns-14.img");
        assert_int_equal(em_write_file_atomic(path, real_img, sizeof(real_img), 0600, &err), 0);
        assert_int_equal(em_userns_img_remap(dir, &from, &from, &err), 0);
        assert_int_equal(em_userns_img_remap(dir, &from, &to, &err), 0);
        int fd = open(path, O_RDONLY);
        ssize_t n = read(fd, buf, sizeof(buf));
        close(fd);
        assert_int_equal(em_userns_img_decode(buf, (size_t)n, &m, &err), 0);
        assert_int_equal(m.uid[0].lower_first, to.base);
        /* Now it no longer lies in the old range. */
        assert_int_equal(em_userns_img_remap(dir, &from, &to, &err), -1);
        em_error_free(&err);
        em_rm_rf(dir, &err);
}

/* The widest map the decoder takes grows when moved high (lower_first
 * needs 5 bytes): the rewrite must still fit its buffer. */
static void test_remap_widest(void **state)
{
        char dir[] = "/tmp/test_userns_img.XXXXXX";
        cleanup_free char *path = NULL;
        const struct em_idrange from = {0, 65536}, to = {1u << 30, 65536};
        struct em_ck_userns m = {0};
        uint8_t buf[1024];
        em_error_t err = NULL;
        (void)state;

        for (size_t i = 0; i < EM_USERNS_IMG_MAX_EXTENTS; i++) {
                m.uid[i].first = m.uid[i].lower_first = m.uid[i].count = 16384;
                m.gid[i] = m.uid[i];
        }
        m.n_uid = m.n_gid = EM_USERNS_IMG_MAX_EXTENTS;
        size_t n = em_userns_img_encode(&m, 0x55474906, buf);
        assert_non_null(mkdtemp(dir));
        path = em_path_join(dir, "userns-14.img");
        assert_int_equal(em_write_file_atomic(path, buf, n, 0600, &err), 0);
        assert_int_equal(em_userns_img_remap(dir, &from, &to, &err), 0);
        int fd = open(path, O_RDONLY);
        ssize_t r = read(fd, buf, sizeof(buf));
        close(fd);
        assert_true(r > 512);
        em_rm_rf(dir, &err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_decode_encode), cmocka_unit_test(test_move),
            cmocka_unit_test(test_malformed),     cmocka_unit_test(test_remap_dir),
            cmocka_unit_test(test_remap_widest),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
