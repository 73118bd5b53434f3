/* The controller reads a client certificate's names with GnuTLS
 * (transfer/cert_names.h), edgemigd with OpenSSL (em_x509_names): the same
 * certificate must give the same identities, or an edge could be one name
 * to the controller and another to its peers. */
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/x509.h>

#include "transfer/cert_names.h"
#include "transfer/ca.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

struct san {
        gnutls_x509_subject_alt_name_t type;
        const char *data;
        size_t len;
};

/* A self-signed certificate with these SANs and CN (NULL: none), as DER. */
static gnutls_datum_t make_cert(const struct san *sans, size_t n, const char *cn)
{
        gnutls_x509_privkey_t key;
        gnutls_x509_crt_t crt;
        gnutls_datum_t der = {NULL, 0};

        assert_int_equal(gnutls_x509_privkey_init(&key), 0);
        assert_int_equal(
            gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
            0);
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        gnutls_x509_crt_set_version(crt, 3);
        gnutls_x509_crt_set_serial(crt, "\x01", 1);
        gnutls_x509_crt_set_activation_time(crt, 0);
        gnutls_x509_crt_set_expiration_time(crt, 4000000000);
        if (cn != NULL)
                assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                                               cn, strlen(cn)),
                                 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, sans[i].type,
                                                                      sans[i].data, sans[i].len,
                                                                      GNUTLS_FSAN_APPEND),
                                 0);
        gnutls_x509_crt_set_key(crt, key);
        assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
        assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
        gnutls_x509_crt_deinit(crt);
        gnutls_x509_privkey_deinit(key);
        return der;
}

/* Both readers on der; returns GnuTLS's names joined by ',' after checking
 * they equal OpenSSL's. */
static char *both(const gnutls_datum_t *der)
{
        cleanup_strv char **g = NULL, **o = NULL;
        gnutls_x509_crt_t crt;
        const unsigned char *p = der->data;
        X509 *x = d2i_X509(NULL, &p, (long)der->size);
        char *out = calloc(1, 4096);

        assert_non_null(x);
        assert_int_equal(em_x509_names(x, &o, NULL), 0);
        X509_free(x);
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        assert_int_equal(gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER), 0);
        assert_int_equal(em_gnutls_crt_names(crt, &g, NULL), 0);
        gnutls_x509_crt_deinit(crt);
        for (size_t i = 0; g[i] || o[i]; i++) {
                if (!g[i] || !o[i] || strcmp(g[i], o[i]) != 0)
                        fail_msg("name %zu: GnuTLS '%s', OpenSSL '%s'", i, g[i] ? g[i] : "(none)",
                                 o[i] ? o[i] : "(none)");
                strcat(out, i ? "," : "");
                strcat(out, g[i]);
        }
        return out;
}

/* Turns the 'Z' of "goodZ.evil" and "badZcn" in der into a NUL: names
 * with an embedded NUL, which the GnuTLS setters would cut (the signature
 * breaks; neither reader checks it). */
static void embed_nuls(gnutls_datum_t *der)
{
        static const char *const marks[] = {"goodZ.evil", "badZcn"};

        for (size_t m = 0; m < 2; m++) {
                size_t len = strlen(marks[m]);
                for (unsigned i = 0; i + len <= der->size; i++)
                        if (memcmp(der->data + i, marks[m], len) == 0)
                                der->data[i + strcspn(marks[m], "Z")] = 0;
        }
}

static void check(const struct san *sans, size_t n, const char *cn, const char *want)
{
        gnutls_datum_t der = make_cert(sans, n, cn);
        embed_nuls(&der);
        char *got = both(&der);

        assert_string_equal(got, want);
        free(got);
        gnutls_free(der.data);
}

static void test_same_names(void **state)
{
        const struct san mixed[] = {
            {GNUTLS_SAN_DNSNAME, "h1.edge", 7},
            {GNUTLS_SAN_IPADDRESS, "\x0a\x00\x00\x01", 4},
            {GNUTLS_SAN_URI, "spiffe://platform/edge/h1", 25},
            {GNUTLS_SAN_DNSNAME, "H1.EDGE", 7},
            {GNUTLS_SAN_RFC822NAME, "ops@example.org", 15},
        };
        const struct san nul[] = {{GNUTLS_SAN_DNSNAME, "goodZ.evil", 10},
                                  {GNUTLS_SAN_DNSNAME, "second", 6}};

        check(mixed, 5, "h1", "h1.edge,spiffe://platform/edge/h1,h1");
        check(mixed, 5, "H1.edge", "h1.edge,spiffe://platform/edge/h1");
        check(NULL, 0, "only-cn", "only-cn");
        check(mixed + 1, 1, NULL, "");
        check(NULL, 0, "badZcn", "");
        check(nul, 2, "cn", "second,cn");
}

/* A certificate as `edgemig ca issue` makes it. */
static void test_issued(void **state)
{
        char tmp[] = "/tmp/em-cert-names-XXXXXX", path[128];
        cleanup_free char *pem = NULL;
        gnutls_datum_t in, der;
        gnutls_x509_crt_t crt;
        size_t len;

        assert_non_null(mkdtemp(tmp));
        assert_int_equal(em_ca_init(tmp, 30, NULL), 0);
        assert_int_equal(em_ca_issue(tmp, "edge7", tmp, 1, NULL, NULL), 0);
        snprintf(path, sizeof(path), "%s/edge7.crt", tmp);
        assert_int_equal(em_read_file(path, 1 << 20, &pem, &len, NULL), 0);
        in = (gnutls_datum_t){(unsigned char *)pem, (unsigned)len};
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        assert_int_equal(gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM), 0);
        assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
        gnutls_x509_crt_deinit(crt);
        char *got = both(&der);
        assert_string_equal(got, "edge7");
        free(got);
        gnutls_free(der.data);
        em_rm_rf(tmp, NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_same_names),
            cmocka_unit_test(test_issued),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
