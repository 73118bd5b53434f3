#include "transfer/cert_names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"

/* Appends s[0..len) unless it holds a NUL or is listed already. */
static int push(char ***v, size_t *n, const char *s, size_t len)
{
        if (memchr(s, 0, len) != NULL)
                return 0;
        return em_strv_push_unique(v, n, s, len);
}

/* SAN entry seq into buf; returns its type, or < 0 past the last one. */
static int san_at(gnutls_x509_crt_t crt, unsigned seq, char *buf, size_t *len)
{
        unsigned type = 0;
        int r = gnutls_x509_crt_get_subject_alt_name2(crt, seq, buf, len, &type, NULL);

        if (r == GNUTLS_E_SHORT_MEMORY_BUFFER)
                return GNUTLS_SAN_OTHERNAME; /* longer than any name we accept: skip */
        return r < 0 ? r : (int)type;
}

/* An entry GnuTLS cannot return (an embedded NUL, a bad encoding) is
 * skipped as em_x509_names skips it; the bound stops a malformed extension
 * that fails at every index. */
static int push_sans(gnutls_x509_crt_t crt, char ***v, size_t *n)
{
        char buf[1024];

        for (unsigned seq = 0; seq < 1024; seq++) {
                size_t len = sizeof(buf);
                int type = san_at(crt, seq, buf, &len);
                if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        return 0;
                if ((type == GNUTLS_SAN_DNSNAME || type == GNUTLS_SAN_URI) &&
                    push(v, n, buf, len) < 0)
                        return -1;
        }
        return 0;
}

/* The first CN's raw value, as em_x509_names takes it (not
 * gnutls_x509_crt_get_dn_by_oid's text, which turns an odd value into
 * "#<hex>"). */
static int push_cn(gnutls_x509_crt_t crt, char ***v, size_t *n)
{
        gnutls_x509_dn_t dn;
        gnutls_x509_ava_st ava;

        if (gnutls_x509_crt_get_subject(crt, &dn) < 0)
                return -1;
        for (int rdn = 0; gnutls_x509_dn_get_rdn_ava(dn, rdn, 0, &ava) == 0; rdn++) {
                for (int i = 0; i == 0 || gnutls_x509_dn_get_rdn_ava(dn, rdn, i, &ava) == 0; i++) {
                        /* The OID comes dotted, with its NUL counted in size. */
                        if (memchr(ava.oid.data, 0, ava.oid.size) != NULL &&
                            strcmp((const char *)ava.oid.data, GNUTLS_OID_X520_COMMON_NAME) == 0)
                                return push(v, n, (const char *)ava.value.data, ava.value.size);
                }
        }
        return 0;
}

int em_gnutls_crt_names(gnutls_x509_crt_t crt, char ***out, em_error_t *err)
{
        cleanup_strv char **v = calloc(1, sizeof(char *));
        size_t n = 0;

        if (v == NULL)
                return em_error_set(err, ENOMEM, "listing certificate names");
        if (push_sans(crt, &v, &n) < 0 || push_cn(crt, &v, &n) < 0)
                return em_error_set_code(err, EINVAL, "reading the certificate's names failed");
        *out = steal_pointer(&v);
        return 0;
}
