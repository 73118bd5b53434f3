/* The store handle, layers, image records and garbage collection. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/ref.h"
#include "store/store_int.h"
#include "store/unpack.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define RECORD_MAX (1u << 20)

static int open_dir(struct em_store *s, const char *rel, int *out, em_error_t *err)
{
        cleanup_free char *path = em_path_join(s->root, rel);

        if (path == NULL)
                return em_error_set(err, ENOMEM, "path");
        if (em_mkdir_p(path, 0700, err) < 0)
                return -1;
        *out = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (*out < 0)
                return em_error_set(err, errno, "opening %s", path);
        return 0;
}

int em_store_open(const char *root, struct em_store **out, em_error_t *err)
{
        struct em_store *s = calloc(1, sizeof(*s));

        if (s == NULL)
                return em_error_set(err, ENOMEM, "store");
        s->root_fd = s->blobs_fd = s->layers_fd = s->images_fd = s->locks_fd = -1;
        s->root = realpath(root, NULL);
        if (s->root == NULL) {
                em_error_set(err, errno, "opening store at %s", root);
                em_store_close(&s);
                return -1;
        }
        if (open_dir(s, ".", &s->root_fd, err) < 0 ||
            open_dir(s, "blobs/sha256", &s->blobs_fd, err) < 0 ||
            open_dir(s, "layers/sha256", &s->layers_fd, err) < 0 ||
            open_dir(s, "images", &s->images_fd, err) < 0 ||
            open_dir(s, "locks", &s->locks_fd, err) < 0) {
                em_store_close(&s);
                return em_error_wrap(err, "opening store at %s", root);
        }
        *out = s;
        return 0;
}

void em_store_close(struct em_store **sp)
{
        struct em_store *s = *sp;

        if (s == NULL)
                return;
        em_cleanup_closep(&s->root_fd);
        em_cleanup_closep(&s->blobs_fd);
        em_cleanup_closep(&s->layers_fd);
        em_cleanup_closep(&s->images_fd);
        em_cleanup_closep(&s->locks_fd);
        free(s->root);
        free(s);
        *sp = NULL;
}

const char *em_store_root(struct em_store *s)
{
        return s->root;
}

int store_lock(struct em_store *s, int how, em_error_t *err)
{
        cleanup_close int fd =
            openat(s->root_fd, "store.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd < 0)
                return em_error_set(err, errno, "opening %s/store.lock", s->root);
        while (flock(fd, how) < 0) {
                if (errno != EINTR)
                        return em_error_set(err, errno, "locking %s/store.lock", s->root);
        }
        return steal_fd(&fd);
}

bool em_store_has_layer(struct em_store *s, const char *diff_id)
{
        const char *hex = em_digest_hex(diff_id);
        struct stat st;

        return hex != NULL && fstatat(s->layers_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISDIR(st.st_mode);
}

bool em_store_holds(struct em_store *s, const char *digest, const char *diff_id)
{
        struct stat st;

        if (diff_id != NULL && em_store_has_layer(s, diff_id))
                return true;
        return em_digest_valid(digest) &&
               fstatat(s->blobs_fd, em_digest_hex(digest), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISREG(st.st_mode);
}

char *em_store_layer_path(struct em_store *s, const char *diff_id)
{
        const char *hex = em_digest_hex(diff_id);
        char *p = NULL;

        if (hex == NULL || asprintf(&p, "%s/layers/sha256/%s", s->root, hex) < 0)
                return NULL;
        return p;
}

static int layer_lock(struct em_store *s, const char *hex, em_error_t *err)
{
        char name[EM_SHA256_HEX_LEN + 8];
        snprintf(name, sizeof(name), "%s.lock", hex);
        cleanup_close int fd =
            openat(s->locks_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd < 0)
                return em_error_set(err, errno, "opening lock %s", name);
        while (flock(fd, LOCK_EX) < 0) {
                if (errno != EINTR)
                        return em_error_set(err, errno, "locking %s", name);
        }
        return steal_fd(&fd);
}

int store_layer_ensure(struct em_store *s, const struct em_descriptor *layer, const char *diff_id,
                       em_error_t *err)
{
        const char *hex = em_digest_hex(diff_id);
        struct em_unpack_opts o = {.expected_diff_id = diff_id, .durable = true};
        struct em_unpack_stats st;

        if (hex == NULL)
                return em_error_set(err, EINVAL, "invalid diff-id '%s'", diff_id);
        if (em_store_has_layer(s, diff_id))
                return 0;
        if (em_layer_compression(layer->media_type, &o.comp, err) < 0)
                return -1;
        cleanup_close int lock = layer_lock(s, hex, err);
        if (lock < 0)
                return -1;
        if (em_store_has_layer(s, diff_id)) /* a concurrent pull finished it */
                return 0;
        cleanup_close int fd = store_blob_open(s, layer->digest, err);
        if (fd < 0 || em_layer_unpack(fd, &o, s->layers_fd, hex, NULL, &st, err) < 0)
                return em_error_wrap(err, "unpacking layer %s", layer->digest);
        em_log_debug("unpacked layer %s (%llu entries, %llu bytes) to layers/sha256/%s",
                     layer->digest, (unsigned long long)st.entries,
                     (unsigned long long)st.tar_bytes, hex);
        return 0;
}

/* images/<name with everything outside [A-Za-z0-9._-] %-escaped>.json */
static char *record_file(const char *name)
{
        size_t n = strlen(name);
        char *out = malloc(n * 3 + 6), *o = out;

        if (out == NULL)
                return NULL;
        for (const char *p = name; *p; p++) {
                unsigned char c = (unsigned char)*p;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-')
                        *o++ = (char)c;
                else
                        o += sprintf(o, "%%%02X", c);
        }
        strcpy(o, ".json");
        return out;
}

static json_t *layers_json(const struct em_manifest *m, const struct em_image_config *c)
{
        json_t *arr = json_array();

        for (size_t i = 0; arr != NULL && i < m->n_layers; i++)
                json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s}", "digest",
                                                     m->layers[i].digest, "diff_id", c->diff_ids[i],
                                                     "size", (json_int_t)m->layers[i].size,
                                                     "media_type", m->layers[i].media_type));
        return arr;
}

static int write_record(struct em_store *s, const char *name, const char *manifest_digest,
                        const struct em_manifest *m, const struct em_image_config *c,
                        em_error_t *err)
{
        cleanup_free char *file = record_file(name);
        cleanup_free char *path = NULL;
        json_int_t size = 0;

        for (size_t i = 0; i < m->n_layers; i++)
                size += (json_int_t)m->layers[i].size;
        cleanup_json json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:I, s:I}", "name", name, "manifest_digest", manifest_digest,
            "manifest_media_type", m->media_type, "config_digest", m->config.digest, "layers",
            layers_json(m, c), "size", size, "added", (json_int_t)time(NULL));
        if (file == NULL || j == NULL || asprintf(&path, "%s/images/%s", s->root, file) < 0)
                return em_error_set(err, ENOMEM, "image record");
        return em_json_write_file(path, j, err);
}

static int load_docs(struct em_store *s, const char *manifest_digest, struct em_manifest **m,
                     struct em_image_config **c, em_error_t *err)
{
        cleanup_free char *mbuf = NULL, *cbuf = NULL;
        size_t mlen, clen;

        if (store_blob_read(s, manifest_digest, EM_MANIFEST_MAX_BYTES, &mbuf, &mlen, err) < 0 ||
            em_manifest_parse(mbuf, mlen, m, err) < 0)
                return em_error_wrap(err, "manifest %s", manifest_digest);
        if (store_blob_read(s, (*m)->config.digest, EM_CONFIG_MAX_BYTES, &cbuf, &clen, err) < 0 ||
            em_image_config_parse(cbuf, clen, c, err) < 0)
                return em_error_wrap(err, "config %s", (*m)->config.digest);
        if ((*c)->n_diff_ids != (*m)->n_layers)
                return em_error_set(err, EINVAL,
                                    "manifest %s has %zu layers, its config %zu "
                                    "diff_ids",
                                    manifest_digest, (*m)->n_layers, (*c)->n_diff_ids);
        return 0;
}

int store_image_register(struct em_store *s, const char *name, const char *manifest_digest,
                         em_error_t *err)
{
        cleanup_manifest struct em_manifest *m = NULL;
        cleanup_image_config struct em_image_config *c = NULL;
        struct em_ref ref;
        cleanup_free char *canon = NULL;

        if (em_ref_parse(name, &ref, err) < 0)
                return -1;
        canon = em_ref_string(&ref);
        em_ref_free(&ref);
        if (canon == NULL)
                return em_error_set(err, ENOMEM, "name");
        if (load_docs(s, manifest_digest, &m, &c, err) < 0)
                return -1;
        for (size_t i = 0; i < m->n_layers; i++) {
                if (em_store_has_layer(s, c->diff_ids[i]))
                        continue;
                if (!store_has_blob(s, m->layers[i].digest))
                        return em_error_set(err, ENOENT, "layer %s (diff-id %s) is missing",
                                            m->layers[i].digest, c->diff_ids[i]);
                if (store_layer_ensure(s, &m->layers[i], c->diff_ids[i], err) < 0)
                        return -1;
        }
        return write_record(s, canon, manifest_digest, m, c, err);
}

int em_store_image_add(struct em_store *s, const char *name, const char *manifest_digest,
                       em_error_t *err)
{
        cleanup_close int lock = store_lock(s, LOCK_SH, err);

        if (lock < 0 || store_image_register(s, name, manifest_digest, err) < 0)
                return em_error_wrap(err, "adding image %s", name);
        return 0;
}

int em_store_image_add_pinned(struct em_store *s, const char *name, const char *manifest_digest,
                              char **registered, em_error_t *err)
{
        cleanup_free char *pinned = NULL;

        if (em_ref_pin(name, NULL, manifest_digest, &pinned, err) < 0)
                return em_error_wrap(err, "image name from the peer");
        if (em_store_image_add(s, pinned, manifest_digest, err) < 0)
                return -1;
        if (registered != NULL)
                *registered = steal_pointer(&pinned);
        return 0;
}

bool em_image_info_names(const struct em_image_info *im, const char *digest)
{
        if (digest == NULL)
                return false;
        if (strcmp(digest, im->manifest_digest) == 0 || strcmp(digest, im->config_digest) == 0)
                return true;
        for (size_t i = 0; i < im->n_layers; i++)
                if (strcmp(digest, im->layer_digests[i]) == 0)
                        return true;
        return false;
}

void em_image_info_free(struct em_image_info **ip)
{
        struct em_image_info *info = *ip;

        if (info == NULL)
                return;
        for (size_t i = 0; i < info->n_layers; i++) {
                free(info->layer_digests[i]);
                free(info->diff_ids[i]);
                free(info->layer_dirs[i]);
        }
        free(info->layer_digests);
        free(info->diff_ids);
        free(info->layer_dirs);
        free(info->name);
        free(info->manifest_digest);
        free(info->config_digest);
        json_decref(info->config);
        free(info);
        *ip = NULL;
}

static int info_layers(struct em_store *s, const json_t *layers, struct em_image_info *info,
                       em_error_t *err)
{
        size_t n = json_array_size(layers);

        info->layer_digests = calloc(n + 1, sizeof(char *));
        info->diff_ids = calloc(n + 1, sizeof(char *));
        info->layer_dirs = calloc(n + 1, sizeof(char *));
        if (info->layer_digests == NULL || info->diff_ids == NULL || info->layer_dirs == NULL)
                return em_error_set(err, ENOMEM, "image info");
        for (size_t i = 0; i < n; i++) {
                const json_t *l = json_array_get(layers, i);
                const char *d = em_json_str(l, "digest"), *id = em_json_str(l, "diff_id");
                if (d == NULL || id == NULL || !em_digest_valid(id))
                        return em_error_set(err, EINVAL, "image record: bad layer %zu", i);
                info->n_layers = i + 1;
                info->layer_digests[i] = strdup(d);
                info->diff_ids[i] = strdup(id);
                info->layer_dirs[i] = em_store_layer_path(s, id);
                if (!info->layer_digests[i] || !info->diff_ids[i] || !info->layer_dirs[i])
                        return em_error_set(err, ENOMEM, "image info");
        }
        return 0;
}

static int info_from_record(struct em_store *s, const json_t *rec, struct em_image_info **out,
                            em_error_t *err)
{
        struct em_image_info *info = calloc(1, sizeof(*info));
        cleanup_image_config struct em_image_config *c = NULL;
        cleanup_free char *cbuf = NULL;
        size_t clen;
        const char *name = em_json_str(rec, "name"), *md = em_json_str(rec, "manifest_digest"),
                   *cd = em_json_str(rec, "config_digest");

        if (info == NULL)
                return em_error_set(err, ENOMEM, "image info");
        if (name == NULL || md == NULL || cd == NULL || !em_digest_valid(md)) {
                em_image_info_free(&info);
                return em_error_set(err, EINVAL, "malformed image record");
        }
        info->name = strdup(name);
        info->manifest_digest = strdup(md);
        info->config_digest = strdup(cd);
        info->size = (uint64_t)em_json_int(rec, "size", 0);
        if (info_layers(s, json_object_get(rec, "layers"), info, err) < 0 ||
            store_blob_read(s, cd, EM_CONFIG_MAX_BYTES, &cbuf, &clen, err) < 0 ||
            em_image_config_parse(cbuf, clen, &c, err) < 0) {
                em_image_info_free(&info);
                return em_error_wrap(err, "image %s", name);
        }
        info->config = steal_pointer(&c->config);
        *out = info;
        return 0;
}

/* Calls fn for every image record (parsed); stops when fn returns non-zero. */
typedef int (*record_fn)(json_t *rec, void *ud);
static int for_each_record(struct em_store *s, record_fn fn, void *ud, em_error_t *err)
{
        cleanup_close int dfd = dup(s->images_fd);
        cleanup_dir DIR *d = NULL;
        struct dirent *de;

        if (dfd < 0 || (d = fdopendir(dfd)) == NULL)
                return em_error_set(err, errno, "listing %s/images", s->root);
        dfd = -1;
        rewinddir(d);
        while ((de = readdir(d)) != NULL) {
                size_t n = strlen(de->d_name);
                if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
                        continue;
                cleanup_free char *path = NULL;
                cleanup_json json_t *rec = NULL;
                em_error_t e = NULL;
                if (asprintf(&path, "%s/images/%s", s->root, de->d_name) < 0)
                        return em_error_set(err, ENOMEM, "path");
                if (em_json_load_file(path, RECORD_MAX, &rec, &e) < 0) {
                        em_log_warn("skipping image record: %s", em_error_msg(e));
                        em_error_free(&e);
                        continue;
                }
                int rc = fn(rec, ud);
                if (rc != 0)
                        return rc;
        }
        return 0;
}

struct lookup {
        const char *q;
        char *canon;      /* q as a full reference, if it names a registry */
        char *path, *tag; /* q split as path[:tag] */
        bool digest_like;
        json_t *found;
        size_t n_found;
        bool exact;
};

static bool is_hex(const char *s)
{
        return *s != '\0' && strspn(s, "0123456789abcdef") == strlen(s);
}

static bool record_matches(struct lookup *l, const char *name, const char *md)
{
        if (l->canon != NULL && strcmp(l->canon, name) == 0)
                return true;
        if (l->digest_like) {
                const char *q = strncmp(l->q, "sha256:", 7) == 0 ? l->q + 7 : l->q;
                return strncmp(md + 7, q, strlen(q)) == 0;
        }
        if (l->path == NULL)
                return false;
        struct em_ref r;
        em_error_t e = NULL;
        if (em_ref_parse(name, &r, &e) < 0) {
                em_error_free(&e);
                return false;
        }
        size_t rl = strlen(r.repo), pl = strlen(l->path);
        bool ok = r.tag != NULL && strcmp(r.tag, l->tag) == 0 &&
                  (strcmp(r.repo, l->path) == 0 || (rl > pl && r.repo[rl - pl - 1] == '/' &&
                                                    strcmp(r.repo + rl - pl, l->path) == 0));
        em_ref_free(&r);
        return ok;
}

static int lookup_cb(json_t *rec, void *ud)
{
        struct lookup *l = ud;
        const char *name = em_json_str(rec, "name"), *md = em_json_str(rec, "manifest_digest");

        if (name == NULL || md == NULL || !em_digest_valid(md))
                return 0;
        if (strcmp(name, l->q) == 0 || (l->canon != NULL && strcmp(name, l->canon) == 0)) {
                json_decref(l->found);
                l->found = json_incref(rec);
                l->n_found = 1;
                l->exact = true;
                return 1;
        }
        if (!record_matches(l, name, md))
                return 0;
        /* Several names of one manifest (a tag and a peer's pinned
         * reference) are one image, not an ambiguity. */
        if (l->n_found > 0 && strcmp(md, em_json_str(l->found, "manifest_digest")) == 0)
                return 0;
        if (l->n_found++ == 0)
                l->found = json_incref(rec);
        return 0;
}

static void lookup_prepare(struct lookup *l, const char *q)
{
        struct em_ref r;
        em_error_t e = NULL;

        l->q = q;
        l->digest_like = (strncmp(q, "sha256:", 7) == 0 && is_hex(q + 7)) ||
                         (strlen(q) >= 4 && strlen(q) <= EM_SHA256_HEX_LEN && is_hex(q));
        if (em_ref_parse(q, &r, &e) == 0) {
                if (r.has_registry)
                        l->canon = em_ref_string(&r);
                em_ref_free(&r);
        }
        em_error_free(&e);
        if (strchr(q, '@') != NULL)
                return;
        l->path = strdup(q);
        if (l->path == NULL)
                return;
        char *colon = strrchr(l->path, ':');
        if (colon != NULL && strchr(colon, '/') == NULL)
                *colon = '\0';
        l->tag = strdup(colon != NULL && strchr(colon + 1, '/') == NULL ? colon + 1 : "latest");
}

static void lookup_clear(struct lookup *l)
{
        free(l->canon);
        free(l->path);
        free(l->tag);
        json_decref(l->found);
}

/* The record of an image, or ENOENT / EEXIST (ambiguous). */
static int find_record(struct em_store *s, const char *q, json_t **out, em_error_t *err)
{
        struct lookup l = {0};

        lookup_prepare(&l, q);
        int rc = for_each_record(s, lookup_cb, &l, err);
        if (rc < 0) {
                lookup_clear(&l);
                return -1;
        }
        if (l.n_found == 0 || (l.n_found > 1 && !l.exact)) {
                lookup_clear(&l);
                return l.n_found == 0 ? em_error_set(err, ENOENT, "no image '%s'", q)
                                      : em_error_set(err, EEXIST,
                                                     "'%s' matches %zu images; use the full "
                                                     "name or a longer digest",
                                                     q, l.n_found);
        }
        *out = steal_pointer(&l.found);
        lookup_clear(&l);
        return 0;
}

int em_store_image_get(struct em_store *s, const char *name, struct em_image_info **out,
                       em_error_t *err)
{
        cleanup_json json_t *rec = NULL;

        if (find_record(s, name, &rec, err) < 0)
                return -1;
        return info_from_record(s, rec, out, err);
}

struct list_ctx {
        struct em_store *s;
        struct em_image_info **v;
        size_t n, cap;
        em_error_t *err;
};

static int list_cb(json_t *rec, void *ud)
{
        struct list_ctx *c = ud;
        struct em_image_info *info = NULL;
        em_error_t e = NULL;

        if (info_from_record(c->s, rec, &info, &e) < 0) {
                em_log_warn("skipping image: %s", em_error_msg(e));
                em_error_free(&e);
                return 0;
        }
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 16;
                struct em_image_info **v = realloc(c->v, cap * sizeof(*v));
                if (v == NULL) {
                        em_image_info_free(&info);
                        return em_error_set(c->err, ENOMEM, "image list");
                }
                c->v = v, c->cap = cap;
        }
        c->v[c->n++] = info;
        return 0;
}

static int cmp_info(const void *a, const void *b)
{
        return strcmp((*(struct em_image_info *const *)a)->name,
                      (*(struct em_image_info *const *)b)->name);
}

void em_image_info_list_free(struct em_image_info **list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                em_image_info_free(&list[i]);
        free(list);
}

int em_store_image_list(struct em_store *s, struct em_image_info ***out, size_t *n, em_error_t *err)
{
        struct list_ctx c = {.s = s, .err = err};

        if (for_each_record(s, list_cb, &c, err) < 0) {
                em_image_info_list_free(c.v, c.n);
                return -1;
        }
        if (c.n > 0)
                qsort(c.v, c.n, sizeof(*c.v), cmp_info);
        *out = c.v;
        *n = c.n;
        return 0;
}

int em_store_image_remove(struct em_store *s, const char *name, char **removed, em_error_t *err)
{
        cleanup_json json_t *rec = NULL;

        if (find_record(s, name, &rec, err) < 0)
                return -1;
        cleanup_free char *file = record_file(em_json_str(rec, "name"));
        if (file == NULL)
                return em_error_set(err, ENOMEM, "record");
        if (unlinkat(s->images_fd, file, 0) < 0)
                return em_error_set(err, errno, "removing image record %s", file);
        if (removed != NULL)
                *removed = strdup(em_json_str(rec, "name"));
        return 0;
}

/* Hex names (blobs or diff-ids) that something uses, as a JSON set. */
static int mark_cb(json_t *rec, void *ud)
{
        json_t *keep = ud;
        const char *md = em_json_str(rec, "manifest_digest"),
                   *cd = em_json_str(rec, "config_digest");
        size_t i;
        json_t *l;

        if (md != NULL && em_digest_hex(md) != NULL)
                json_object_set_new(keep, em_digest_hex(md), json_true());
        if (cd != NULL && em_digest_hex(cd) != NULL)
                json_object_set_new(keep, em_digest_hex(cd), json_true());
        json_array_foreach(json_object_get(rec, "layers"), i, l)
        {
                const char *d = em_json_str(l, "digest"), *id = em_json_str(l, "diff_id");
                if (d != NULL && em_digest_hex(d) != NULL)
                        json_object_set_new(keep, em_digest_hex(d), json_true());
                if (id != NULL && em_digest_hex(id) != NULL)
                        json_object_set_new(keep, em_digest_hex(id), json_true());
        }
        return 0;
}

/* Removes every entry of dirfd not in keep (files count their bytes). */
static int sweep(int dirfd, const char *what, json_t *keep, size_t *count, uint64_t *bytes,
                 em_error_t *err)
{
        cleanup_close int dfd = dup(dirfd);
        cleanup_dir DIR *d = NULL;
        struct dirent *de;
        struct stat st;

        if (dfd < 0 || (d = fdopendir(dfd)) == NULL)
                return em_error_set(err, errno, "listing %s", what);
        dfd = -1;
        rewinddir(d);
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    (keep != NULL && json_object_get(keep, de->d_name) != NULL))
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISREG(st.st_mode) && bytes != NULL)
                        *bytes += (uint64_t)st.st_size;
                if (em_rm_rf_at(dirfd, de->d_name, err) < 0)
                        return em_error_wrap(err, "pruning %s", what);
                if (count != NULL && de->d_name[0] != '.')
                        (*count)++;
        }
        return 0;
}

int em_store_prune(struct em_store *s, const char *const *in_use_diff_ids,
                   struct em_prune_result *res, em_error_t *err)
{
        cleanup_close int lock = store_lock(s, LOCK_EX, err);
        cleanup_json json_t *keep = json_object();
        struct em_prune_result r = {0};

        if (lock < 0)
                return -1;
        if (keep == NULL)
                return em_error_set(err, ENOMEM, "prune");
        if (for_each_record(s, mark_cb, keep, err) < 0)
                return -1;
        for (size_t i = 0; in_use_diff_ids != NULL && in_use_diff_ids[i] != NULL; i++) {
                const char *hex = em_digest_hex(in_use_diff_ids[i]);
                if (hex != NULL)
                        json_object_set_new(keep, hex, json_true());
        }
        if (sweep(s->blobs_fd, "blobs", keep, &r.blobs_removed, &r.bytes_freed, err) < 0 ||
            sweep(s->layers_fd, "layers", keep, &r.layers_removed, NULL, err) < 0 ||
            sweep(s->locks_fd, "locks", NULL, NULL, NULL, err) < 0)
                return -1;
        if (res != NULL)
                *res = r;
        return 0;
}
