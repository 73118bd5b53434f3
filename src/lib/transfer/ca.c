#include "transfer/ca.h"

#include <ctype.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

/* Certificates start 5 minutes in the past: edge hosts' clocks drift. */
#define CLOCK_SLACK_S 300

void em_x509_freep(X509 **x)
{
        X509_free(*x);
        *x = NULL;
}

void em_pkey_freep(EVP_PKEY **k)
{
        EVP_PKEY_free(*k);
        *k = NULL;
}

static void bio_freep(BIO **b)
{
        BIO_free(*b);
        *b = NULL;
}
#define cleanup_bio __attribute__((cleanup(bio_freep)))

int em_ssl_error(em_error_t *err, int status, const char *fmt, ...)
{
        char msg[1024], line[256];
        size_t off;
        unsigned long e;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        off = strlen(msg);
        for (int n = 0; (e = ERR_get_error()) != 0; n++) {
                ERR_error_string_n(e, line, sizeof(line));
                if (off + 3 < sizeof(msg))
                        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s",
                                                n == 0 ? ": " : "; ", line);
        }
        if (off >= sizeof(msg))
                off = sizeof(msg) - 1;
        msg[off] = '\0';
        /* The status without its strerror text: OpenSSL's words say more. */
        return em_error_set_code(err, status, "%s", msg);
}

int em_cert_name_check(const char *name, em_error_t *err)
{
        size_t len = strlen(name), label = 0;

        if (len == 0 || len > EM_CERT_NAME_MAX)
                return em_error_set(err, EINVAL, "certificate name must be 1 to %d characters",
                                    EM_CERT_NAME_MAX);
        for (size_t i = 0; i <= len; i++) {
                char ch = name[i];
                if (ch == '.' || ch == '\0') {
                        if (label == 0 || name[i - 1] == '-')
                                goto bad;
                        label = 0;
                        continue;
                }
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-') ||
                    (ch == '-' && label == 0) || ++label > 63)
                        goto bad;
        }
        if (strcmp(name, "ca") == 0)
                return em_error_set(err, EINVAL, "'ca' is the CA's own file name");
        return 0;
bad:
        return em_error_set(err, EINVAL,
                            "bad certificate name '%s': use a host name (letters, digits, '-' "
                            "and '.', labels of 1-63 characters not starting or ending with '-')",
                            name);
}

/* Writes a file that must not exist yet (O_EXCL: never replaces a key). */
static int write_new_file(const char *path, BIO *mem, mode_t mode, em_error_t *err)
{
        cleanup_close int fd = -1;
        char *data = NULL;
        long len = BIO_get_mem_data(mem, &data);

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return em_error_set(err, errno, "creating %s", path);
        if (fchmod(fd, mode) < 0 || em_write_all(fd, data, (size_t)len, err) < 0 || fsync(fd) < 0) {
                int e = errno;
                unlink(path);
                if (*err == NULL)
                        em_error_set(err, e, "writing %s", path);
                return em_error_wrap(err, "writing %s", path);
        }
        return 0;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *k, em_error_t *err)
{
        cleanup_bio BIO *mem = BIO_new(BIO_s_mem());

        if (mem == NULL)
                return em_ssl_error(err, ENOMEM, "allocating a buffer");
        if (x != NULL && PEM_write_bio_X509(mem, x) != 1)
                return em_ssl_error(err, EIO, "encoding certificate %s", path);
        if (k != NULL && PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) != 1)
                return em_ssl_error(err, EIO, "encoding key %s", path);
        return write_new_file(path, mem, k != NULL ? 0600 : 0644, err);
}

int em_x509_load(const char *path, X509 **out, em_error_t *err)
{
        cleanup_bio BIO *b = BIO_new_file(path, "r");

        if (b == NULL)
                return em_ssl_error(err, errno ? errno : ENOENT, "opening certificate %s", path);
        *out = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (*out == NULL)
                return em_ssl_error(err, EINVAL, "reading certificate %s", path);
        return 0;
}

int em_pkey_load(const char *path, EVP_PKEY **out, em_error_t *err)
{
        cleanup_bio BIO *b = BIO_new_file(path, "r");

        if (b == NULL)
                return em_ssl_error(err, errno ? errno : ENOENT, "opening key %s", path);
        *out = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        if (*out == NULL)
                return em_ssl_error(err, EINVAL, "reading key %s", path);
        return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, em_error_t *err)
{
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        int ok;

        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (ext == NULL)
                return em_ssl_error(err, EINVAL, "extension %s=%s", OBJ_nid2sn(nid), value);
        ok = X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        return ok == 1 ? 0 : em_ssl_error(err, ENOMEM, "adding extension %s", OBJ_nid2sn(nid));
}

/* Random 127-bit positive serial: no serial database to keep in sync. */
static int set_serial(X509 *x, em_error_t *err)
{
        BIGNUM *bn = BN_new();
        int ok = bn != NULL && BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 &&
                 BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;

        BN_free(bn);
        return ok ? 0 : em_ssl_error(err, EIO, "making a serial number");
}

struct cert_spec {
        const char *cn;
        X509 *issuer;       /* NULL: self-signed */
        EVP_PKEY *sign_key; /* the issuer's key */
        EVP_PKEY *pub;
        long days;
        bool ca;
        const char *const *ips; /* extra SAN IP addresses, NULL-terminated, or NULL */
};

static int cert_base(X509 *x, const struct cert_spec *s, em_error_t *err)
{
        X509_NAME *name = X509_get_subject_name(x);

        if (X509_set_version(x, 2) != 1 || set_serial(x, err) < 0)
                return em_ssl_error(err, EIO, "making certificate");
        if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"edgemig",
                                       -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1,
                                       -1, 0) != 1)
                return em_ssl_error(err, EINVAL, "subject CN=%s", s->cn);
        if (X509_set_issuer_name(x, s->issuer ? X509_get_subject_name(s->issuer) : name) != 1 ||
            X509_gmtime_adj(X509_getm_notBefore(x), -CLOCK_SLACK_S) == NULL ||
            X509_gmtime_adj(X509_getm_notAfter(x), s->days * 86400L) == NULL ||
            X509_set_pubkey(x, s->pub) != 1)
                return em_ssl_error(err, EIO, "making certificate %s", s->cn);
        /* Never outlive the issuer: a chain is only as valid as its CA. */
        if (s->issuer &&
            ASN1_TIME_compare(X509_get0_notAfter(s->issuer), X509_get0_notAfter(x)) < 0 &&
            X509_set1_notAfter(x, X509_get0_notAfter(s->issuer)) != 1)
                return em_ssl_error(err, EIO, "clamping validity of %s", s->cn);
        return 0;
}

static int make_cert(const struct cert_spec *s, X509 **out, em_error_t *err)
{
        cleanup_x509 X509 *x = X509_new();
        cleanup_free char *san = NULL;

        if (x == NULL)
                return em_ssl_error(err, ENOMEM, "allocating a certificate");
        if (cert_base(x, s, err) < 0 ||
            add_ext(x, s->issuer, NID_subject_key_identifier, "hash", err) < 0 ||
            add_ext(x, s->issuer, NID_authority_key_identifier, "keyid:always", err) < 0)
                return -1;
        if (s->ca) {
                if (add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err) <
                        0 ||
                    add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign", err) < 0)
                        return -1;
        } else {
                if (asprintf(&san, "DNS:%s", s->cn) < 0)
                        return em_error_set(err, ENOMEM, "allocating");
                for (const char *const *ip = s->ips; ip && *ip; ip++) {
                        char *more = NULL;
                        if (asprintf(&more, "%s,IP:%s", san, *ip) < 0)
                                return em_error_set(err, ENOMEM, "allocating");
                        free(san);
                        san = more;
                }
                if (add_ext(x, s->issuer, NID_basic_constraints, "critical,CA:FALSE", err) < 0 ||
                    add_ext(x, s->issuer, NID_key_usage, "critical,digitalSignature", err) < 0 ||
                    add_ext(x, s->issuer, NID_ext_key_usage, "serverAuth,clientAuth", err) < 0 ||
                    add_ext(x, s->issuer, NID_subject_alt_name, san, err) < 0)
                        return -1;
        }
        if (X509_sign(x, s->sign_key, EVP_sha256()) <= 0)
                return em_ssl_error(err, EIO, "signing certificate %s", s->cn);
        *out = steal_pointer(&x);
        return 0;
}

static int new_key(EVP_PKEY **out, em_error_t *err)
{
        *out = EVP_EC_gen("P-256");
        return *out ? 0 : em_ssl_error(err, EIO, "generating an EC P-256 key");
}

static int refuse_existing(const char *path, em_error_t *err)
{
        if (em_path_exists(path))
                return em_error_set(err, EEXIST, "%s already exists; refusing to overwrite it",
                                    path);
        return 0;
}

int em_ca_init(const char *dir, int days, em_error_t *err)
{
        cleanup_free char *crt = em_path_join(dir, EM_CA_CERT);
        cleanup_free char *key = em_path_join(dir, EM_CA_KEY);
        cleanup_pkey EVP_PKEY *k = NULL;
        cleanup_x509 X509 *x = NULL;
        unsigned char tag[4];
        char cn[64];

        if (crt == NULL || key == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        if (days <= 0)
                return em_error_set(err, EINVAL, "--days must be positive");
        if (refuse_existing(crt, err) < 0 || refuse_existing(key, err) < 0)
                return -1;
        if (em_mkdir_p(dir, 0700, err) < 0)
                return -1;
        if (RAND_bytes(tag, sizeof(tag)) != 1)
                return em_ssl_error(err, EIO, "random CA tag");
        snprintf(cn, sizeof(cn), "edgemig platform CA %02x%02x%02x%02x", tag[0], tag[1], tag[2],
                 tag[3]);
        struct cert_spec s = {.cn = cn, .days = days, .ca = true};
        if (new_key(&k, err) < 0)
                return -1;
        s.sign_key = s.pub = k;
        if (make_cert(&s, &x, err) < 0)
                return em_error_wrap(err, "creating CA in %s", dir);
        if (write_pem(key, NULL, k, err) < 0)
                return -1;
        if (write_pem(crt, x, NULL, err) < 0) {
                unlink(key);
                return -1;
        }
        return 0;
}

/* Loads the CA and checks that its key belongs to its certificate. */
static int load_ca(const char *dir, X509 **x, EVP_PKEY **k, em_error_t *err)
{
        cleanup_free char *crt = em_path_join(dir, EM_CA_CERT);
        cleanup_free char *key = em_path_join(dir, EM_CA_KEY);

        if (crt == NULL || key == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        if (em_x509_load(crt, x, err) < 0)
                return em_error_wrap(err, "no CA in %s (run `edgemig ca init`)", dir);
        if (k != NULL && em_pkey_load(key, k, err) < 0)
                return -1;
        if (k != NULL && X509_check_private_key(*x, *k) != 1)
                return em_ssl_error(err, EINVAL, "%s does not belong to %s", key, crt);
        return 0;
}

int em_ca_issue(const char *ca_dir, const char *name, const char *out_dir, int days,
                char **crt_path, em_error_t *err)
{
        return em_ca_issue_ips(ca_dir, name, NULL, out_dir, days, crt_path, err);
}

int em_ca_issue_ips(const char *ca_dir, const char *name, const char *const *ips,
                    const char *out_dir, int days, char **crt_path, em_error_t *err)
{
        cleanup_x509 X509 *ca = NULL;
        cleanup_pkey EVP_PKEY *ca_key = NULL;
        cleanup_pkey EVP_PKEY *k = NULL;
        cleanup_x509 X509 *x = NULL;
        cleanup_free char *crt = NULL;
        cleanup_free char *key = NULL;

        if (em_cert_name_check(name, err) < 0)
                return -1;
        for (const char *const *ip = ips; ip && *ip; ip++) {
                unsigned char buf[sizeof(struct in6_addr)];
                if (inet_pton(AF_INET, *ip, buf) != 1 && inet_pton(AF_INET6, *ip, buf) != 1)
                        return em_error_set(err, EINVAL,
                                            "'%s' is not an IPv4 or IPv6 address (--ip takes one "
                                            "address a client dials this host by)",
                                            *ip);
        }
        if (days <= 0)
                return em_error_set(err, EINVAL, "--days must be positive");
        if (asprintf(&crt, "%s/%s.crt", out_dir, name) < 0 ||
            asprintf(&key, "%s/%s.key", out_dir, name) < 0)
                return em_error_set(err, ENOMEM, "allocating");
        if (refuse_existing(crt, err) < 0 || refuse_existing(key, err) < 0)
                return -1;
        if (load_ca(ca_dir, &ca, &ca_key, err) < 0 || em_mkdir_p(out_dir, 0700, err) < 0 ||
            new_key(&k, err) < 0)
                return -1;
        struct cert_spec s = {
            .cn = name, .issuer = ca, .sign_key = ca_key, .pub = k, .days = days, .ips = ips};
        if (make_cert(&s, &x, err) < 0)
                return em_error_wrap(err, "issuing %s", name);
        if (write_pem(key, NULL, k, err) < 0)
                return -1;
        if (write_pem(crt, x, NULL, err) < 0) {
                unlink(key);
                return -1;
        }
        if (crt_path != NULL)
                *crt_path = steal_pointer(&crt);
        return 0;
}

char *em_x509_subject(X509 *x)
{
        cleanup_bio BIO *mem = BIO_new(BIO_s_mem());
        char *data = NULL;
        long len;

        if (mem == NULL || X509_NAME_print_ex(mem, X509_get_subject_name(x), 0,
                                              XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) < 0)
                return strdup("?");
        len = BIO_get_mem_data(mem, &data);
        return strndup(data, (size_t)len);
}

static int push_cn(X509 *x, char ***v, size_t *n)
{
        X509_NAME *sn = X509_get_subject_name(x);
        int i = X509_NAME_get_index_by_NID(sn, NID_commonName, -1);
        ASN1_STRING *d;

        if (i < 0)
                return 0;
        d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sn, i));
        /* An embedded NUL would let "good\0.evil" pass as "good". */
        if (memchr(ASN1_STRING_get0_data(d), 0, (size_t)ASN1_STRING_length(d)) != NULL)
                return 0;
        return em_strv_push_unique(v, n, (const char *)ASN1_STRING_get0_data(d),
                                   (size_t)ASN1_STRING_length(d));
}

int em_x509_names(X509 *x, char ***out, em_error_t *err)
{
        GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        cleanup_strv char **v = calloc(1, sizeof(char *));
        size_t n = 0;
        int rc = v ? 0 : -1;

        for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                if (g->type != GEN_DNS && g->type != GEN_URI)
                        continue;
                const ASN1_IA5STRING *s =
                    g->type == GEN_DNS ? g->d.dNSName : g->d.uniformResourceIdentifier;
                const unsigned char *p = ASN1_STRING_get0_data(s);
                size_t len = (size_t)ASN1_STRING_length(s);
                if (memchr(p, 0, len) == NULL)
                        rc = em_strv_push_unique(&v, &n, (const char *)p, len);
        }
        GENERAL_NAMES_free(gens);
        if (rc == 0)
                rc = push_cn(x, &v, &n);
        if (rc < 0)
                return em_error_set(err, ENOMEM, "listing certificate names");
        *out = steal_pointer(&v);
        return 0;
}

static void json_time(json_t *o, const char *key, const ASN1_TIME *t)
{
        struct tm tm;
        char buf[32] = "?";

        if (ASN1_TIME_to_tm(t, &tm) == 1)
                strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(o, key, json_string(buf));
}

static json_t *hex_json(const unsigned char *p, size_t n, const char *sep)
{
        char buf[3 * EVP_MAX_MD_SIZE + 1] = "";
        size_t off = 0;

        for (size_t i = 0; i < n && off + 4 < sizeof(buf); i++)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%02x", i > 0 ? sep : "",
                                        p[i]);
        return json_string(buf);
}

static json_t *cert_json(X509 *x, X509 *ca, const char *file)
{
        json_t *o = json_object(), *names = json_array();
        cleanup_free char *subj = em_x509_subject(x);
        char **v = NULL;
        unsigned char md[EVP_MAX_MD_SIZE];
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL);
        char *hex = NULL;
        unsigned int mdlen = 0;
        EVP_PKEY *pub = X509_get0_pubkey(x);

        json_object_set_new(o, "file", json_string(file));
        json_object_set_new(o, "subject", json_string(subj ? subj : "?"));
        if (em_x509_names(x, &v, NULL) == 0)
                for (char **p = v; *p; p++)
                        json_array_append_new(names, json_string(*p));
        em_strv_free(v);
        json_object_set_new(o, "names", names);
        if (bn != NULL && (hex = BN_bn2hex(bn)) != NULL) {
                for (char *p = hex; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                json_object_set_new(o, "serial", json_string(hex));
        }
        OPENSSL_free(hex);
        BN_free(bn);
        json_time(o, "not_before", X509_get0_notBefore(x));
        json_time(o, "not_after", X509_get0_notAfter(x));
        X509_digest(x, EVP_sha256(), md, &mdlen);
        json_object_set_new(o, "sha256", hex_json(md, mdlen, ":"));
        json_object_set_new(o, "key",
                            json_sprintf("%s %d", pub ? EVP_PKEY_get0_type_name(pub) : "?",
                                         pub ? EVP_PKEY_get_bits(pub) : 0));
        json_object_set_new(o, "is_ca", json_boolean(X509_check_ca(x) > 0));
        json_object_set_new(o, "expired",
                            json_boolean(X509_cmp_current_time(X509_get0_notAfter(x)) < 0));
        json_object_set_new(o, "signed_by_ca",
                            json_boolean(ca != NULL && X509_check_issued(ca, x) == X509_V_OK &&
                                         X509_verify(x, X509_get0_pubkey(ca)) == 1));
        return o;
}

static int dirent_is_crt(const struct dirent *d)
{
        size_t n = strlen(d->d_name);

        return n > 4 && strcmp(d->d_name + n - 4, ".crt") == 0 &&
               strcmp(d->d_name, EM_CA_CERT) != 0;
}

int em_ca_show(const char *dir, json_t **out, em_error_t *err)
{
        cleanup_x509 X509 *ca = NULL;
        cleanup_json json_t *o = NULL;
        struct dirent **ents = NULL;
        json_t *certs;
        int n;

        if (load_ca(dir, &ca, NULL, err) < 0)
                return -1;
        o = json_pack("{s:s, s:o, s:[]}", "dir", dir, "ca", cert_json(ca, ca, EM_CA_CERT),
                      "certificates");
        if (o == NULL)
                return em_error_set(err, ENOMEM, "building JSON");
        certs = json_object_get(o, "certificates");
        n = scandir(dir, &ents, dirent_is_crt, alphasort);
        if (n < 0)
                return em_error_set(err, errno, "listing %s", dir);
        for (int i = 0; i < n; i++) {
                cleanup_free char *path = em_path_join(dir, ents[i]->d_name);
                cleanup_x509 X509 *x = NULL;
                em_error_t e = NULL;
                if (path != NULL && em_x509_load(path, &x, &e) == 0)
                        json_array_append_new(certs, cert_json(x, ca, ents[i]->d_name));
                em_error_free(&e);
                free(ents[i]);
        }
        free(ents);
        *out = steal_pointer(&o);
        return 0;
}
