#include "platform/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/cleanup.h"

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
        return fwrite(p, sz, n, ud);
}

static void set_tls(CURL *c, const struct em_http_tls *tls)
{
        if (tls->cert != NULL) {
                curl_easy_setopt(c, CURLOPT_SSLCERT, tls->cert);
                curl_easy_setopt(c, CURLOPT_SSLKEY, tls->key);
        }
        if (tls->ca != NULL)
                curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca);
        if (tls->share != NULL)
                curl_easy_setopt(c, CURLOPT_SHARE, tls->share);
}

long em_http_request(const char *url, const char *body, const struct em_http_tls *tls,
                     int timeout_ms, char **resp, em_error_t *err)
{
        cleanup_free char *buf = NULL;
        size_t len = 0;
        cleanup_fclose FILE *f = open_memstream(&buf, &len);
        struct curl_slist *hdr = NULL;
        long status = 0;

        if (f == NULL)
                return em_error_set(err, errno, "open_memstream");
        CURL *c = curl_easy_init();
        if (c == NULL)
                return em_error_set(err, ENOMEM, "curl_easy_init");
        curl_easy_setopt(c, CURLOPT_URL, url);
        if (body != NULL) {
                hdr = curl_slist_append(hdr, "Content-Type: application/json");
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms / 2));
        curl_easy_setopt(c, CURLOPT_USERAGENT, "edgemig");
        if (tls != NULL)
                set_tls(c, tls);
        CURLcode rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        curl_slist_free_all(hdr);
        fclose(steal_pointer(&f));
        if (rc != CURLE_OK)
                return em_error_set(err, EHOSTUNREACH, "%s %s: %s", body ? "POST" : "GET", url,
                                    curl_easy_strerror(rc));
        if (resp != NULL)
                *resp = buf ? steal_pointer(&buf) : calloc(1, 1);
        return status;
}
