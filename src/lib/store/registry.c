/* OCI distribution client (libcurl): pull and push with Basic auth and the
 * bearer-token flow, per-registry CA bundles and multi-arch indexes. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/osarch.h"
#include "store/ref.h"
#include "store/regauth.h"
#include "store/store_int.h"
#include "util/cleanup.h"
#include "util/conffile.h"
#include "util/json.h"
#include "util/log.h"

#define ACCEPT_MANIFESTS                                                                           \
        "Accept: " EM_MT_OCI_MANIFEST ", " EM_MT_DOCKER_MANIFEST ", " EM_MT_OCI_INDEX              \
        ", " EM_MT_DOCKER_LIST

struct client {
        CURL *curl;
        struct em_ref ref;
        char *base; /* scheme://host */
        bool plain; /* plain HTTP (a loopback test registry) */
        char *token;
        bool basic;              /* the registry asked for Basic auth */
        struct em_reg_cred cred; /* from the auth file; user NULL: anonymous */
        char *ca_file;           /* NULL: the system's CAs */
        const struct em_registry_opts *o;
};

struct resp {
        long status;
        char *body;
        size_t len, max;
        char *ctype, *digest, *auth, *location;
        /* Blob download target (else the body is kept in memory). */
        struct blob_writer *w;
        em_error_t *werr;
        const char *what;
        uint64_t resume_from;
        bool checked_status;
};

static void resp_clear(struct resp *r)
{
        free(r->body);
        free(r->ctype);
        free(r->digest);
        free(r->auth);
        free(r->location);
        memset(r, 0, sizeof(*r));
}

static void client_free(struct client *c)
{
        if (c->curl != NULL)
                curl_easy_cleanup(c->curl);
        em_ref_free(&c->ref);
        free(c->base);
        free(c->token);
        free(c->ca_file);
        em_reg_cred_clear(&c->cred);
}

static void set_header(char **dst, const char *v, size_t n)
{
        while (n > 0 && (*v == ' ' || *v == '\t'))
                v++, n--;
        while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
                n--;
        free(*dst);
        *dst = strndup(v, n);
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
        struct resp *r = ud;
        size_t len = size * n;
        static const struct {
                const char *name;
                size_t off;
        } hs[] = {{"content-type:", offsetof(struct resp, ctype)},
                  {"docker-content-digest:", offsetof(struct resp, digest)},
                  {"www-authenticate:", offsetof(struct resp, auth)},
                  {"location:", offsetof(struct resp, location)}};

        for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
                size_t hl = strlen(hs[i].name);
                if (len > hl && strncasecmp(buf, hs[i].name, hl) == 0)
                        set_header((char **)((char *)r + hs[i].off), buf + hl, len - hl);
        }
        return len;
}

/* Restarts a resumed download when the server answered 200 instead of 206. */
static int check_resume(struct resp *r, CURL *curl)
{
        long code = 0;

        r->checked_status = true;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200 && r->w->n > 0)
                return blob_writer_reset(r->w, r->werr);
        return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
        struct resp *r = ((void **)ud)[0];
        CURL *curl = ((void **)ud)[1];
        size_t len = size * n;
        long code = 0;

        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        if (r->w != NULL && code / 100 == 2) {
                if (!r->checked_status && check_resume(r, curl) < 0)
                        return 0;
                return blob_writer_write(r->w, buf, len, r->werr) < 0 ? 0 : len;
        }
        if (r->len + len > r->max)
                return 0;
        char *nb = realloc(r->body, r->len + len + 1);
        if (nb == NULL)
                return 0;
        r->body = nb;
        memcpy(r->body + r->len, buf, len);
        r->len += len;
        r->body[r->len] = '\0';
        return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
        struct client *c = ((void **)ud)[2];
        struct resp *r = ((void **)ud)[0];

        if (c->o->progress != NULL && r->what != NULL) {
                uint64_t done = (uint64_t)(dlnow ? dlnow : ulnow) + r->resume_from;
                uint64_t total = (uint64_t)(dltotal ? dltotal : ultotal);
                c->o->progress(c->o->progress_ud, r->what, done,
                               total ? total + r->resume_from : 0);
        }
        return 0;
}

struct req {
        const char *method; /* GET, HEAD, POST, PUT */
        const char *url;
        const char *accept;
        const char *ctype;
        const void *body; /* PUT/POST in-memory body */
        size_t body_len;
        FILE *upload; /* PUT from a file */
        uint64_t upload_len;
        const char *range;
        bool basic; /* the auth file's credentials even unasked (a token server) */
};

/* CA bundle or no verification; Basic credentials when the registry asked
 * for them or the request wants them (libcurl drops them on a redirect to
 * another host). */
static void set_tls_and_auth(struct client *c, CURL *h, bool basic)
{
        if (c->o->tls_no_verify) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        } else if (c->ca_file != NULL) {
                curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        }
        if (basic && c->cred.user != NULL) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERNAME, c->cred.user);
                curl_easy_setopt(h, CURLOPT_PASSWORD, c->cred.pass);
        }
}

static int setup_req(struct client *c, const struct req *q, struct curl_slist **hdrs, void **ctx)
{
        CURL *h = c->curl;
        char buf[4096];

        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, q->url);
        /* Registries, their blob redirects and token realms are HTTPS (or
         * plain HTTP for a --registry-http one), never any
         * other protocol libcurl speaks (file, gopher, ...). */
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->plain ? "http,https" : "https");
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, c->plain ? "http,https" : "https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "edgemig");
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, ctx[0]);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, ctx);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, ctx);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        set_tls_and_auth(c, h, c->basic || q->basic);
        if (strcmp(q->method, "HEAD") == 0)
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        else if (strcmp(q->method, "GET") != 0)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
        if (q->upload != NULL) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_READDATA, q->upload);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->upload_len);
        } else if (q->body != NULL || strcmp(q->method, "POST") == 0 ||
                   strcmp(q->method, "PUT") == 0) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body != NULL ? q->body : "");
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        }
        if (q->accept != NULL)
                *hdrs = curl_slist_append(*hdrs, q->accept);
        if (q->ctype != NULL && snprintf(buf, sizeof(buf), "Content-Type: %s", q->ctype) > 0)
                *hdrs = curl_slist_append(*hdrs, buf);
        if (c->token != NULL &&
            snprintf(buf, sizeof(buf), "Authorization: Bearer %s", c->token) > 0)
                *hdrs = curl_slist_append(*hdrs, buf);
        if (q->range != NULL)
                curl_easy_setopt(h, CURLOPT_RANGE, q->range);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
        return 0;
}

static int perform(struct client *c, const struct req *q, struct resp *r, em_error_t *err)
{
        struct curl_slist *hdrs = NULL;
        void *ctx[3] = {r, c->curl, c};

        if (r->max == 0)
                r->max = EM_MANIFEST_MAX_BYTES;
        if (q->upload != NULL)
                rewind(q->upload);
        setup_req(c, q, &hdrs, ctx);
        CURLcode rc = curl_easy_perform(c->curl);
        curl_slist_free_all(hdrs);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
        if (rc != CURLE_OK) {
                if (r->werr != NULL && *r->werr != NULL)
                        return -1;
                return em_error_set(err, EIO, "%s %s: %s", q->method, q->url,
                                    curl_easy_strerror(rc));
        }
        return 0;
}

/* Bearer realm="...",service="...",scope="..." -> fetches a token. */
static char *auth_param(const char *h, const char *key)
{
        char pat[32];
        snprintf(pat, sizeof(pat), "%s=\"", key);
        const char *p = strcasestr(h, pat);

        if (p == NULL)
                return NULL;
        p += strlen(pat);
        const char *e = strchr(p, '"');
        return e != NULL ? strndup(p, (size_t)(e - p)) : NULL;
}

static int fetch_token(struct client *c, const char *challenge, em_error_t *err)
{
        cleanup_free char *realm = auth_param(challenge, "realm");
        cleanup_free char *service = auth_param(challenge, "service");
        cleanup_free char *scope = auth_param(challenge, "scope");
        cleanup_free char *url = NULL;
        cleanup_json json_t *j = NULL;
        struct resp r = {0};

        if (strncasecmp(challenge, "Bearer ", 7) != 0 || realm == NULL)
                return em_error_set(err, EACCES, "registry wants unsupported auth: %s", challenge);
        char *es = curl_easy_escape(c->curl, service ?: "", 0);
        char *esc = curl_easy_escape(c->curl, scope ?: "", 0);
        int n = asprintf(&url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
                         es ?: "", esc ?: "");
        curl_free(es);
        curl_free(esc);
        if (n < 0)
                return em_error_set(err, ENOMEM, "token url");
        free(c->token);
        c->token = NULL;
        /* The token server takes the auth file's credentials. */
        struct req q = {.method = "GET", .url = url, .basic = true};
        int rc = perform(c, &q, &r, err);
        if (rc == 0 && r.status != 200)
                rc = em_error_set(err, EACCES, "token server %s: HTTP %ld%s", realm, r.status,
                                  c->cred.user == NULL ? " (no credentials for this registry in "
                                                         "the auth file)"
                                                       : "");
        if (rc == 0 && em_json_parse(r.body ?: "", r.len, "token response", &j, err) == 0) {
                const char *t = em_json_str(j, "token") ?: em_json_str(j, "access_token");
                c->token = t != NULL ? strdup(t) : NULL;
                if (c->token == NULL)
                        rc = em_error_set(err, EACCES, "token server %s sent no token", realm);
        } else if (rc == 0) {
                rc = -1;
        }
        resp_clear(&r);
        return rc;
}

/* Answers a 401's challenge: Basic with the auth file's credentials, or a
 * Bearer token fetched with them (or anonymously). */
static int authenticate(struct client *c, const char *challenge, em_error_t *err)
{
        if (strncasecmp(challenge, "Basic", 5) != 0)
                return fetch_token(c, challenge, err);
        if (c->cred.user == NULL)
                return em_error_set(err, EACCES,
                                    "the registry wants a user name and password: add them for "
                                    "%s to /etc/edgemig/auth.json (`podman login --authfile`) or "
                                    "name a Docker config.json with --registry-auth",
                                    c->ref.registry);
        if (c->basic)
                return em_error_set(err, EACCES, "the registry refused the credentials for %s",
                                    c->ref.registry);
        c->basic = true;
        return 0;
}

/* Performs q; on 401 with a Bearer challenge fetches a token and retries once. */
static int request(struct client *c, const struct req *q, struct resp *r, em_error_t *err)
{
        struct resp keep = *r;

        if (perform(c, q, r, err) < 0)
                return -1;
        if (r->status != 401 || r->auth == NULL)
                return 0;
        cleanup_free char *challenge = strdup(r->auth);
        resp_clear(r);
        *r = (struct resp){.max = keep.max,
                           .w = keep.w,
                           .werr = keep.werr,
                           .what = keep.what,
                           .resume_from = keep.resume_from};
        if (challenge == NULL || authenticate(c, challenge, err) < 0)
                return em_error_wrap(err, "authenticating to %s", c->ref.registry);
        if (perform(c, q, r, err) < 0)
                return -1;
        if (r->status == 401 && c->basic)
                return em_error_set(err, EACCES,
                                    "the registry refused the credentials for %s (check the "
                                    "auth file's entry)",
                                    c->ref.registry);
        return 0;
}

/* --registry-ca, else <certs.d>/HOST[:PORT]/ca.crt as containers and
 * podman keep them, else the system's CAs. */
static int find_ca(struct client *c, em_error_t *err)
{
        const char *dir = c->o->certs_dir ?: EM_SYSCONFDIR "/edgemig/certs.d";
        const char *host = c->ref.registry;

        if (c->o->ca_file != NULL) {
                if (access(c->o->ca_file, R_OK) < 0)
                        return em_error_set(err, errno, "registry CA bundle %s", c->o->ca_file);
                c->ca_file = strdup(c->o->ca_file);
                return c->ca_file != NULL ? 0 : em_error_set(err, ENOMEM, "ca");
        }
        /* A registry name never climbs out of the directory. */
        if (strchr(host, '/') != NULL || host[0] == '.')
                return 0;
        if (asprintf(&c->ca_file, "%s/%s/ca.crt", dir, host) < 0)
                return em_error_set(err, ENOMEM, "ca");
        if (access(c->ca_file, R_OK) == 0)
                return 0;
        free(c->ca_file);
        c->ca_file = NULL;
        return 0;
}

static int client_init(struct client *c, const char *ref, const struct em_registry_opts *o,
                       em_error_t *err)
{
        memset(c, 0, sizeof(*c));
        c->o = o;
        if (em_ref_parse(ref, &c->ref, err) < 0)
                return -1;
        const char *host =
            strcmp(c->ref.registry, "docker.io") == 0 ? "registry-1.docker.io" : c->ref.registry;
        c->plain = o->plain_http;
        if (asprintf(&c->base, "%s://%s", c->plain ? "http" : "https", host) < 0)
                return em_error_set(err, ENOMEM, "url");
        if (em_regauth_find(o->auth_file, c->ref.registry, &c->cred, err) < 0 ||
            find_ca(c, err) < 0)
                return -1;
        c->curl = curl_easy_init();
        if (c->curl == NULL)
                return em_error_set(err, ENOMEM, "curl_easy_init");
        return 0;
}

static int http_error(const struct req *q, const struct resp *r, em_error_t *err)
{
        int e = r->status == 404 ? ENOENT : r->status == 401 || r->status == 403 ? EACCES : EIO;
        int n = r->body != NULL ? (int)strcspn(r->body, "\r\n") : 0;

        return em_error_set(err, e, "%s %s: HTTP %ld%s%.*s", q->method, q->url, r->status,
                            n > 0 ? ": " : "", n > 200 ? 200 : n, n > 0 ? r->body : "");
}

/* GETs a manifest or index by tag or digest, verifying a digest reference. */
static int get_manifest(struct client *c, const char *reference, struct resp *r,
                        char digest[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        cleanup_free char *url = NULL;

        if (asprintf(&url, "%s/v2/%s/manifests/%s", c->base, c->ref.repo, reference) < 0)
                return em_error_set(err, ENOMEM, "url");
        struct req q = {.method = "GET", .url = url, .accept = ACCEPT_MANIFESTS};
        if (request(c, &q, r, err) < 0)
                return -1;
        if (r->status != 200)
                return http_error(&q, r, err);
        em_sha256_buf(r->body ?: "", r->len, digest);
        if (strncmp(reference, "sha256:", 7) == 0 && strcmp(reference, digest) != 0)
                return em_error_set(err, EBADMSG, "manifest %s: content hashes to %s", reference,
                                    digest);
        return 0;
}

/* The index entry for --platform or this host's platform. */
static int pick_from_index(struct client *c, const struct resp *r, const char *reference,
                           char want[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        cleanup_index struct em_index *ix = NULL;
        struct em_osarch p;
        char ps[96];

        if (c->o->platform != NULL) {
                if (em_osarch_parse(c->o->platform, &p, err) < 0)
                        return -1;
        } else {
                em_osarch_host(&p);
        }
        if (em_index_parse(r->body, r->len, &ix, err) < 0)
                return -1;
        const struct em_descriptor *d = em_osarch_select(ix, &p);
        if (d == NULL)
                return em_error_set(err, ENOENT,
                                    "%s: the index has no manifest for %s (choose another with "
                                    "--platform OS/ARCH[/VARIANT])",
                                    reference, em_osarch_str(&p, ps, sizeof(ps)));
        em_log_debug("%s: %s selects %s", reference, em_osarch_str(&p, ps, sizeof(ps)), d->digest);
        snprintf(want, EM_DIGEST_STR_LEN + 1, "%s", d->digest);
        return 0;
}

/* Resolves REF to an image manifest (following an index to the platform's). */
static int resolve_manifest(struct client *c, struct em_store *s,
                            char digest[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        struct resp r = {0};
        const char *reference = c->ref.digest ?: c->ref.tag;
        char want[EM_DIGEST_STR_LEN + 1];

        if (get_manifest(c, reference, &r, digest, err) < 0)
                goto fail;
        if (em_doc_kind_of(r.body ?: "", r.len, r.ctype) == EM_DOC_INDEX) {
                if (pick_from_index(c, &r, reference, want, err) < 0)
                        goto fail;
                resp_clear(&r);
                if (get_manifest(c, want, &r, digest, err) < 0)
                        goto fail;
        }
        if (store_blob_put_buf(s, r.body ?: "", r.len, NULL, digest, err) < 0)
                goto fail;
        resp_clear(&r);
        return 0;
fail:
        resp_clear(&r);
        return -1;
}

static void progress_name(const char *digest, char out[24])
{
        snprintf(out, 24, "%.19s", digest);
}

/* Downloads a blob unless present; resumes a partial one with Range. */
static int fetch_blob(struct client *c, struct em_store *s, const struct em_descriptor *d,
                      em_error_t *err)
{
        struct blob_writer w;
        cleanup_free char *url = NULL;
        char range[40], what[24];

        if (store_has_blob(s, d->digest))
                return 0;
        int rc = blob_writer_begin(s, d->digest, true, &w, err);
        if (rc != 0)
                return rc < 0 ? -1 : 0;
        progress_name(d->digest, what);
        struct resp r = {.w = &w, .werr = err, .what = what, .resume_from = w.n};
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)w.n);
        if (asprintf(&url, "%s/v2/%s/blobs/%s", c->base, c->ref.repo, d->digest) < 0) {
                blob_writer_abort(&w, true);
                return em_error_set(err, ENOMEM, "url");
        }
        if (w.n > 0)
                em_log_info("resuming %s at %llu bytes", d->digest, (unsigned long long)w.n);
        struct req q = {.method = "GET", .url = url, .range = w.n > 0 ? range : NULL};
        rc = request(c, &q, &r, err);
        if (rc == 0 && r.status != 200 && r.status != 206)
                rc = http_error(&q, &r, err);
        resp_clear(&r);
        if (rc < 0) {
                blob_writer_abort(&w, true); /* keep what we have for a resume */
                return em_error_wrap(err, "downloading %s", d->digest);
        }
        return blob_writer_commit(s, &w, d->size, err);
}

static int pull_layers(struct client *c, struct em_store *s, const char *manifest_digest,
                       em_error_t *err)
{
        cleanup_manifest struct em_manifest *m = NULL;
        cleanup_image_config struct em_image_config *cfg = NULL;
        cleanup_free char *mbuf = NULL, *cbuf = NULL;
        size_t mlen, clen;

        if (store_blob_read(s, manifest_digest, EM_MANIFEST_MAX_BYTES, &mbuf, &mlen, err) < 0 ||
            em_manifest_parse(mbuf, mlen, &m, err) < 0 || fetch_blob(c, s, &m->config, err) < 0 ||
            store_blob_read(s, m->config.digest, EM_CONFIG_MAX_BYTES, &cbuf, &clen, err) < 0 ||
            em_image_config_parse(cbuf, clen, &cfg, err) < 0)
                return -1;
        if (cfg->n_diff_ids != m->n_layers)
                return em_error_set(err, EINVAL, "manifest has %zu layers, config %zu diff_ids",
                                    m->n_layers, cfg->n_diff_ids);
        for (size_t i = 0; i < m->n_layers; i++) {
                if (em_store_has_layer(s, cfg->diff_ids[i])) {
                        em_log_debug("layer %s already present", cfg->diff_ids[i]);
                        continue;
                }
                if (fetch_blob(c, s, &m->layers[i], err) < 0 ||
                    store_layer_ensure(s, &m->layers[i], cfg->diff_ids[i], err) < 0)
                        return -1;
        }
        return 0;
}

int em_store_pull(struct em_store *s, const char *ref, const struct em_registry_opts *o,
                  struct em_image_info **out, em_error_t *err)
{
        static const struct em_registry_opts defaults = {0};
        cleanup_close int lock = store_lock(s, LOCK_SH, err);
        struct client c;
        char digest[EM_DIGEST_STR_LEN + 1];
        cleanup_free char *name = NULL;

        if (lock < 0)
                return -1;
        int rc = client_init(&c, ref, o ?: &defaults, err);
        if (rc == 0)
                rc = resolve_manifest(&c, s, digest, err);
        if (rc == 0)
                rc = pull_layers(&c, s, digest, err);
        if (rc == 0 && (name = em_ref_string(&c.ref)) == NULL)
                rc = em_error_set(err, ENOMEM, "name");
        if (rc == 0)
                rc = store_image_register(s, name, digest, err);
        client_free(&c);
        if (rc < 0)
                return em_error_wrap(err, "pulling %s", ref);
        return out != NULL ? em_store_image_get(s, name, out, err) : 0;
}

static int upload_blob(struct client *c, struct em_store *s, const char *digest, em_error_t *err)
{
        cleanup_free char *url = NULL, *put = NULL;
        cleanup_close int fd = -1;
        cleanup_fclose FILE *f = NULL;
        struct resp r = {0};
        struct stat st;
        char what[24];

        if (asprintf(&url, "%s/v2/%s/blobs/%s", c->base, c->ref.repo, digest) < 0)
                return em_error_set(err, ENOMEM, "url");
        struct req head = {.method = "HEAD", .url = url};
        if (request(c, &head, &r, err) < 0)
                return -1;
        bool present = r.status == 200;
        resp_clear(&r);
        if (present)
                return 0;
        free(url);
        if (asprintf(&url, "%s/v2/%s/blobs/uploads/", c->base, c->ref.repo) < 0)
                return em_error_set(err, ENOMEM, "url");
        struct req post = {.method = "POST", .url = url};
        if (request(c, &post, &r, err) < 0 || (r.status != 202 && http_error(&post, &r, err)))
                goto fail;
        if (r.location == NULL) {
                em_error_set(err, EIO, "POST %s: no Location header", url);
                goto fail;
        }
        if (asprintf(&put, "%s%s%sdigest=%s", r.location[0] == '/' ? c->base : "", r.location,
                     strchr(r.location, '?') ? "&" : "?", digest) < 0)
                goto fail;
        resp_clear(&r);
        fd = store_blob_open(s, digest, err);
        if (fd < 0 || fstat(fd, &st) < 0 || (f = fdopen(fd, "rb")) == NULL)
                goto fail;
        fd = -1;
        progress_name(digest, what);
        r.what = what;
        struct req q = {.method = "PUT",
                        .url = put,
                        .ctype = "application/octet-stream",
                        .upload = f,
                        .upload_len = (uint64_t)st.st_size};
        if (request(c, &q, &r, err) < 0 || (r.status != 201 && http_error(&q, &r, err)))
                goto fail;
        resp_clear(&r);
        return 0;
fail:
        resp_clear(&r);
        return em_error_wrap(err, "uploading %s", digest);
}

static int push_manifest(struct client *c, struct em_store *s, const char *digest, em_error_t *err)
{
        cleanup_manifest struct em_manifest *m = NULL;
        cleanup_free char *buf = NULL, *url = NULL;
        struct resp r = {0};
        size_t len;

        if (store_blob_read(s, digest, EM_MANIFEST_MAX_BYTES, &buf, &len, err) < 0 ||
            em_manifest_parse(buf, len, &m, err) < 0)
                return -1;
        for (size_t i = 0; i < m->n_layers; i++) {
                if (upload_blob(c, s, m->layers[i].digest, err) < 0)
                        return -1;
        }
        if (upload_blob(c, s, m->config.digest, err) < 0)
                return -1;
        if (asprintf(&url, "%s/v2/%s/manifests/%s", c->base, c->ref.repo,
                     c->ref.tag ?: c->ref.digest) < 0)
                return em_error_set(err, ENOMEM, "url");
        struct req q = {
            .method = "PUT", .url = url, .ctype = m->media_type, .body = buf, .body_len = len};
        int rc = request(c, &q, &r, err);
        if (rc == 0 && r.status != 201)
                rc = http_error(&q, &r, err);
        resp_clear(&r);
        return rc;
}

int em_store_push(struct em_store *s, const char *name, const char *dest_ref,
                  const struct em_registry_opts *o, em_error_t *err)
{
        static const struct em_registry_opts defaults = {0};
        cleanup_image_info struct em_image_info *info = NULL;
        struct client c;

        if (em_store_image_get(s, name, &info, err) < 0)
                return -1;
        int rc = client_init(&c, dest_ref ?: info->name, o ?: &defaults, err);
        if (rc == 0)
                rc = push_manifest(&c, s, info->manifest_digest, err);
        client_free(&c);
        return rc < 0 ? em_error_wrap(err, "pushing %s", dest_ref ?: info->name) : 0;
}
