#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/x509v3.h>

#include "transfer/ca.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static char dir[] = "/tmp/em-ca-test-XXXXXX";

static int setup(void **state)
{
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        em_error_t err = NULL;

        em_rm_rf(dir, &err);
        em_error_free(&err);
        return 0;
}

static char *path(const char *rel)
{
        static char buf[4][512];
        static int n;
        char *b = buf[n++ % 4];

        snprintf(b, 512, "%s/%s", dir, rel);
        return b;
}

static mode_t mode_of(const char *p)
{
        struct stat st;

        assert_int_equal(stat(p, &st), 0);
        return st.st_mode & 07777;
}

static void test_name_check(void **state)
{
        static const char *good[] = {"edge1", "edge-2.example.org", "A", "x1.y2"};
        static const char *bad[] = {"",     "-edge", "edge-", "a..b", ".a", "a.",
                                    "../x", "a/b",   "a b",   "a_b",  "ca", "\xc3\xa9"};

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                assert_int_equal(em_cert_name_check(good[i], NULL), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                em_error_t err = NULL;
                if (em_cert_name_check(bad[i], &err) != -1)
                        fail_msg("accepted '%s'", bad[i]);
                em_error_free(&err);
        }
}

static void test_init_makes_a_ca_and_refuses_overwrite(void **state)
{
        cleanup_x509 X509 *x = NULL;
        cleanup_pkey EVP_PKEY *k = NULL;
        cleanup_free char *before = NULL;
        cleanup_free char *after = NULL;
        size_t bl, al;
        em_error_t err = NULL;

        assert_int_equal(em_ca_init(path("pki"), 100, &err), 0);
        assert_int_equal(mode_of(path("pki/ca.key")), 0600);
        assert_int_equal(mode_of(path("pki")), 0700);
        assert_int_equal(em_x509_load(path("pki/ca.crt"), &x, &err), 0);
        assert_int_equal(em_pkey_load(path("pki/ca.key"), &k, &err), 0);
        assert_int_equal(X509_check_private_key(x, k), 1);
        assert_true(X509_check_ca(x) > 0);
        assert_true(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
        assert_string_equal(EVP_PKEY_get0_type_name(k), "EC");
        assert_int_equal(EVP_PKEY_get_bits(k), 256);
        assert_int_equal(X509_check_issued(x, x), X509_V_OK); /* self-signed */
        assert_int_equal(X509_verify(x, k), 1);

        assert_int_equal(em_read_file(path("pki/ca.key"), 1 << 16, &before, &bl, &err), 0);
        assert_int_equal(em_ca_init(path("pki"), 100, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_non_null(strstr(em_error_msg(err), "refusing to overwrite"));
        em_error_free(&err);
        assert_int_equal(em_read_file(path("pki/ca.key"), 1 << 16, &after, &al, &err), 0);
        assert_string_equal(before, after);
}

static void test_issue_and_show(void **state)
{
        cleanup_x509 X509 *ca = NULL;
        cleanup_x509 X509 *x = NULL;
        cleanup_strv char **names = NULL;
        cleanup_free char *crt = NULL;
        cleanup_json json_t *j = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_ca_issue(path("pki"), "edge7", path("out"), 100000, &crt, &err), 0);
        assert_string_equal(crt, path("out/edge7.crt"));
        assert_int_equal(mode_of(path("out/edge7.key")), 0600);
        assert_int_equal(em_x509_load(path("pki/ca.crt"), &ca, &err), 0);
        assert_int_equal(em_x509_load(crt, &x, &err), 0);
        assert_int_equal(X509_check_ca(x), 0);
        assert_int_equal(X509_check_issued(ca, x), X509_V_OK);
        assert_int_equal(X509_verify(x, X509_get0_pubkey(ca)), 1);
        assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
        assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
        assert_int_equal(em_x509_names(x, &names, &err), 0);
        assert_string_equal(names[0], "edge7"); /* SAN and CN, once */
        assert_null(names[1]);
        /* 100000 days were asked for; the CA only lives 100. */
        assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)), 0);

        assert_int_equal(em_ca_issue(path("pki"), "edge7", path("out"), 10, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        em_error_free(&err);
        assert_int_equal(em_ca_issue(path("pki"), "../evil", path("out"), 10, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EINVAL);
        em_error_free(&err);
        assert_int_equal(em_ca_issue(path("nope"), "edge8", path("out"), 10, NULL, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "ca init"));
        em_error_free(&err);

        assert_int_equal(em_ca_issue(path("pki"), "edge8", path("pki"), 10, NULL, &err), 0);
        assert_int_equal(em_ca_show(path("pki"), &j, &err), 0);
        json_t *c = json_object_get(j, "ca");
        assert_true(json_is_true(json_object_get(c, "is_ca")));
        assert_non_null(strstr(em_json_str(c, "subject"), "edgemig platform CA"));
        assert_int_equal(json_array_size(json_object_get(j, "certificates")), 1);
        json_t *e = json_array_get(json_object_get(j, "certificates"), 0);
        assert_string_equal(em_json_str(e, "file"), "edge8.crt");
        assert_true(json_is_true(json_object_get(e, "signed_by_ca")));
        assert_false(json_is_true(json_object_get(e, "expired")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(e, "names"), 0)),
                            "edge8");
        assert_int_equal(strlen(em_json_str(e, "sha256")), 32 * 3 - 1);
}

/* A certificate of another CA, shown from this CA's directory, is flagged. */
static void test_show_flags_foreign_cert(void **state)
{
        cleanup_json json_t *j = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_ca_init(path("other"), 10, &err), 0);
        assert_int_equal(em_ca_issue(path("other"), "stranger", path("pki"), 10, NULL, &err), 0);
        assert_int_equal(em_ca_show(path("pki"), &j, &err), 0);
        json_t *certs = json_object_get(j, "certificates"), *e;
        size_t i;
        bool seen = false;
        json_array_foreach(certs, i, e)
        {
                if (strcmp(em_json_str(e, "file"), "stranger.crt") == 0) {
                        seen = true;
                        assert_false(json_is_true(json_object_get(e, "signed_by_ca")));
                }
        }
        assert_true(seen);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_name_check),
            cmocka_unit_test(test_init_makes_a_ca_and_refuses_overwrite),
            cmocka_unit_test(test_issue_and_show),
            cmocka_unit_test(test_show_flags_foreign_cert),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
