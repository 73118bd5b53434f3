/* The controller's HTTPS transport: a client certificate of the platform
 * CA is required at the TLS handshake (issue 15), so a client without one,
 * or with another CA's, gets no HTTP answer at all, and the refusal is
 * counted. Before, libmicrohttpd completed the handshake and the request
 * got a 403. */
#include <curl/curl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "platform/api.h"
#include "platform/api_http.h"
#include "platform/http.h"
#include "transfer/ca.h"
#include "util/fsutil.h"
#include "util/log.h"

static char tmp[] = "/tmp/em-api-http-XXXXXX";
static char url[64];
static struct em_api *api;
static struct em_api_http *http;

static const char *P(const char *rel)
{
        static char buf[4][256];
        static int n;
        char *b = buf[n++ % 4];

        snprintf(b, 256, "%s/%s", tmp, rel);
        return b;
}

static int setup(void **state)
{
        const char *const ips[] = {"127.0.0.1", NULL};
        const char *const admins[] = {"admin", NULL};
        static struct em_api_opts o;
        char listen[32];
        em_error_t err = NULL;

        if (mkdtemp(tmp) == NULL || em_ca_init(P("pki"), 30, &err) < 0 ||
            em_ca_issue_ips(P("pki"), "controller", ips, P("pki"), 1, NULL, &err) < 0 ||
            em_ca_issue(P("pki"), "admin", P("pki"), 1, NULL, &err) < 0 ||
            em_ca_init(P("other"), 30, &err) < 0 ||
            em_ca_issue(P("other"), "admin", P("other"), 1, NULL, &err) < 0)
                return -1;
        em_log_setup(EM_LOG_ERROR, false, 2, "unit");
        em_api_opts_init(&o);
        o.tls = true;
        o.admins = admins;
        if (em_api_open(P("state"), &o, &api, &err) < 0)
                return -1;
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        int port = 20000 + rand() % 30000;
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", port);
        struct em_api_http_tls tls = {strdup(P("pki/controller.crt")),
                                      strdup(P("pki/controller.key")), strdup(P("pki/ca.crt"))};
        int rc = em_api_http_start(api, listen, &tls, NULL, &http, &err);
        free((char *)tls.cert), free((char *)tls.key), free((char *)tls.ca);
        return rc;
}

static int teardown(void **state)
{
        em_api_http_stop(http);
        em_api_close(api);
        em_rm_rf(tmp, NULL);
        return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
        (void)p, (void)ud;
        return size * n;
}

/* GET /healthz with the client certificate in dir (NULL: none); returns
 * the HTTP status, 0 when no answer came. */
static long get(const char *dir)
{
        CURL *c = curl_easy_init();
        char cert[256], key[256];
        long status = 0;

        assert_non_null(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CAINFO, P("pki/ca.crt"));
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        if (dir != NULL) {
                snprintf(cert, sizeof(cert), "%s/admin.crt", P(dir));
                snprintf(key, sizeof(key), "%s/admin.key", P(dir));
                curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
                curl_easy_setopt(c, CURLOPT_SSLKEY, key);
        }
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        return status;
}

static long refused_total(void)
{
        struct em_api_request rq = {"GET", "/metrics", NULL, "", 0, false};
        struct em_api_reply r = {0};
        long n = -1;

        em_api_handle(api, &rq, &r);
        const char *p = r.text ? strstr(r.text, "\nedgemig_controller_refused_total ") : NULL;
        if (p != NULL)
                n = strtol(p + strlen("\nedgemig_controller_refused_total "), NULL, 10);
        em_api_reply_clear(&r);
        return n;
}

static void test_certificate_required_at_handshake(void **state)
{
        assert_int_equal(get("pki"), 200);
        assert_int_equal(refused_total(), 0);
        assert_int_equal(get(NULL), 0);    /* no answer, not even a 403 */
        assert_int_equal(get("other"), 0); /* another CA's certificate */
        for (int i = 0; i < 500 && refused_total() < 2; i++)
                usleep(20000); /* counted when the connection closes */
        assert_true(refused_total() >= 2);
        assert_int_equal(get("pki"), 200); /* and it lives on */
}

/* The platform's own client: with the host's certificate it is answered,
 * also through a share handle (the etcd client's way, kept across
 * requests); with the CA alone the handshake is refused: no status. */
static void test_client_request(void **state)
{
        struct em_http_tls tls = {P("pki/admin.crt"), P("pki/admin.key"), P("pki/ca.crt"), NULL};
        struct em_http_tls ca_only = {NULL, NULL, P("pki/ca.crt"), NULL};
        CURLSH *sh = curl_share_init();
        char *body = NULL;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_http_request(url, NULL, &tls, 10000, &body, &err), 200);
        assert_non_null(body);
        free(body);
        assert_non_null(sh);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        tls.share = sh;
        for (int i = 0; i < 2; i++)
                assert_int_equal(em_http_request(url, NULL, &tls, 10000, NULL, &err), 200);
        curl_share_cleanup(sh);
        assert_int_equal(em_http_request(url, NULL, &ca_only, 10000, NULL, &err), -1);
        assert_int_equal(em_error_status(err), EHOSTUNREACH);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_certificate_required_at_handshake),
            cmocka_unit_test(test_client_request),
        };
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = cmocka_run_group_tests(tests, setup, teardown);
        curl_global_cleanup();
        return rc;
}
