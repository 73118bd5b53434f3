#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/digest.h"

#define EMPTY   "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define ABC     "sha256:" ABC_HEX
#define ABC448  "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

static void test_vectors(void **state)
{
        char out[EM_DIGEST_STR_LEN + 1];
        em_sha256_buf("", 0, out);
        assert_string_equal(out, EMPTY);
        em_sha256_buf("abc", 3, out);
        assert_string_equal(out, ABC);
        const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        em_sha256_buf(m, strlen(m), out);
        assert_string_equal(out, ABC448);
}

static void test_streaming_equals_oneshot(void **state)
{
        char a[EM_DIGEST_STR_LEN + 1], b[EM_DIGEST_STR_LEN + 1];
        em_sha256_t *h = em_sha256_new();
        assert_non_null(h);
        em_sha256_update(h, "a", 1);
        em_sha256_update(h, "bc", 2);
        em_sha256_final(h, a);
        em_sha256_free(&h);
        assert_null(h);
        assert_string_equal(a, ABC);
        /* A million 'a's, the FIPS 180-2 long vector, through a file. */
        char path[] = "/tmp/em-digest-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        char *buf = malloc(1000000);
        memset(buf, 'a', 1000000);
        assert_int_equal(write(fd, buf, 1000000), 1000000);
        free(buf);
        close(fd);
        uint64_t size = 0;
        em_error_t err = NULL;
        assert_int_equal(em_sha256_file(path, b, &size, &err), 0);
        assert_int_equal(size, 1000000);
        assert_string_equal(
            b, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        unlink(path);
        assert_int_equal(em_sha256_file(path, b, &size, &err), -1);
        assert_non_null(strstr(em_error_msg(err), path));
        em_error_free(&err);
}

static void test_valid(void **state)
{
        assert_true(em_digest_valid(ABC));
        assert_string_equal(em_digest_hex(ABC), ABC + 7);
        assert_false(em_digest_valid(NULL));
        assert_false(em_digest_valid(""));
        assert_false(em_digest_valid("sha256:"));
        assert_false(em_digest_valid(ABC "0")); /* 65 digits */
        assert_false(em_digest_valid("sha512:" ABC_HEX));
        assert_false(em_digest_valid("SHA256:" ABC_HEX));
        assert_false(em_digest_valid(ABC_HEX));
        char upper[] = ABC;
        upper[10] = 'A';
        assert_false(em_digest_valid(upper)); /* uppercase hex */
        char shortd[] = ABC;
        shortd[EM_DIGEST_STR_LEN - 1] = '\0';
        assert_false(em_digest_valid(shortd));
        assert_false(em_digest_valid("sha256:../../../etc/passwd"));
        assert_null(em_digest_hex("sha256:zz"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_vectors),
            cmocka_unit_test(test_streaming_equals_oneshot),
            cmocka_unit_test(test_valid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
