/* `image import`: an OCI image layout directory, or a `docker save` tar (classic
 * manifest.json form, or the OCI layout that newer Docker writes). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/ref.h"
#include "store/store_int.h"
#include "store/unpack.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static void free_archive(struct archive **a)
{
        if (*a != NULL)
                archive_read_free(*a);
        *a = NULL;
}
#define cleanup_archive __attribute__((cleanup(free_archive)))

/* "busybox" -> "localhost/busybox:latest"; a name with a registry is kept. */
static char *canonical_name(const char *name, const char *tag)
{
        struct em_ref r;
        em_error_t e = NULL;
        char *out = NULL;

        if (em_ref_parse(name, &r, &e) < 0) {
                em_error_free(&e);
                return NULL;
        }
        if (!r.has_registry) {
                bool has_tag =
                    strrchr(name, ':') != NULL && strchr(strrchr(name, ':'), '/') == NULL;
                if (asprintf(&out, "localhost/%s%s%s", name, has_tag ? "" : ":",
                             has_tag ? "" : (tag != NULL ? tag : "latest")) < 0)
                        out = NULL;
        } else {
                out = em_ref_string(&r);
        }
        em_ref_free(&r);
        return out;
}

static int copy_layout_blob(struct em_store *s, int dirfd, const struct em_descriptor *d,
                            em_error_t *err)
{
        char rel[EM_SHA256_HEX_LEN + 16];

        if (store_has_blob(s, d->digest))
                return 0;
        snprintf(rel, sizeof(rel), "blobs/sha256/%s", em_digest_hex(d->digest));
        cleanup_close int fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return em_error_set(err, errno, "layout blob %s", d->digest);
        return store_blob_put_fd(s, d->digest, d->size, fd, err);
}

static int read_index(struct em_store *s, int dirfd, const char *path, struct em_index **ix,
                      em_error_t *err)
{
        cleanup_free char *buf = NULL;
        cleanup_close int fd = openat(dirfd, "index.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return em_error_set(err, errno, "%s/index.json (not an OCI image layout?)", path);
        buf = malloc(EM_MANIFEST_MAX_BYTES + 1);
        if (buf == NULL)
                return em_error_set(err, ENOMEM, "index");
        ssize_t n = em_read_all(fd, buf, EM_MANIFEST_MAX_BYTES + 1, err);
        if (n < 0)
                return -1;
        return em_index_parse(buf, (size_t)n, ix, err);
}

/* Picks the manifest of an index: by tag when the name has one, else linux/amd64. */
static const struct em_descriptor *pick(const struct em_index *ix, const char *tag)
{
        const struct em_descriptor *d = NULL;

        if (tag != NULL)
                d = em_index_select(ix, "linux", "amd64", tag);
        if (d == NULL && tag != NULL) {
                for (size_t i = 0; i < ix->n && d == NULL; i++)
                        if (ix->manifests[i].ref_name &&
                            strcmp(ix->manifests[i].ref_name, tag) == 0)
                                d = &ix->manifests[i];
        }
        if (d == NULL)
                d = em_index_select(ix, "linux", "amd64", NULL);
        if (d == NULL && ix->n == 1)
                d = &ix->manifests[0];
        return d;
}

static const char *name_tag(const char *name)
{
        const char *c = name != NULL ? strrchr(name, ':') : NULL;
        return c != NULL && strchr(c, '/') == NULL ? c + 1 : NULL;
}

/* Copies manifest, config and layer blobs of one manifest from a layout dir. */
static int import_manifest_blobs(struct em_store *s, int dirfd, const struct em_descriptor *md,
                                 em_error_t *err)
{
        cleanup_manifest struct em_manifest *m = NULL;
        cleanup_free char *buf = NULL;
        size_t len;

        if ((dirfd >= 0 && copy_layout_blob(s, dirfd, md, err) < 0) ||
            store_blob_read(s, md->digest, EM_MANIFEST_MAX_BYTES, &buf, &len, err) < 0 ||
            em_manifest_parse(buf, len, &m, err) < 0)
                return em_error_wrap(err, "manifest %s", md->digest);
        if (dirfd < 0)
                return 0;
        if (copy_layout_blob(s, dirfd, &m->config, err) < 0)
                return -1;
        for (size_t i = 0; i < m->n_layers; i++) {
                if (copy_layout_blob(s, dirfd, &m->layers[i], err) < 0)
                        return -1;
        }
        return 0;
}

/* Registers the image an index names; dirfd < 0 when the blobs are already in. */
static int import_from_index(struct em_store *s, int dirfd, const char *path,
                             const struct em_index *ix, const char *name, char **name_out,
                             em_error_t *err)
{
        const struct em_descriptor *d = pick(ix, name_tag(name));
        cleanup_free char *base = strdup(path), *canon = NULL;

        if (d == NULL)
                return em_error_set(err, ENOENT, "%s: no linux/amd64 image in index.json", path);
        if (base == NULL)
                return em_error_set(err, ENOMEM, "name");
        if (name != NULL)
                canon = canonical_name(name, NULL);
        else if (d->ref_name != NULL && (strchr(d->ref_name, '/') || strchr(d->ref_name, ':')))
                canon = canonical_name(d->ref_name, NULL);
        else
                canon = canonical_name(basename(base), d->ref_name);
        if (canon == NULL)
                return em_error_set(err, EINVAL, "cannot derive an image name for %s; use --name",
                                    path);
        if (import_manifest_blobs(s, dirfd, d, err) < 0 ||
            store_image_register(s, canon, d->digest, err) < 0)
                return -1;
        *name_out = steal_pointer(&canon);
        return 0;
}

static int import_layout_dir(struct em_store *s, const char *path, const char *name,
                             char **name_out, em_error_t *err)
{
        cleanup_close int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_index struct em_index *ix = NULL;

        if (dirfd < 0)
                return em_error_set(err, errno, "opening %s", path);
        if (faccessat(dirfd, "oci-layout", F_OK, 0) < 0)
                return em_error_set(err, errno, "%s/oci-layout (not an OCI image layout)", path);
        if (read_index(s, dirfd, path, &ix, err) < 0)
                return -1;
        return import_from_index(s, dirfd, path, ix, name, name_out, err);
}

/* Streams one tar member into the blob store under its own digest. */
static int tar_member_blob(struct em_store *s, struct archive *a,
                           char digest[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        cleanup_close int fd = openat(s->blobs_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
        cleanup_sha256 em_sha256_t *h = em_sha256_new();
        const void *buf;
        size_t size;
        la_int64_t off;
        int rc;

        if (fd < 0 || h == NULL)
                return em_error_set(err, fd < 0 ? errno : ENOMEM, "temporary blob");
        while ((rc = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
                if (pwrite(fd, buf, size, off) != (ssize_t)size)
                        return em_error_set(err, errno, "writing temporary blob");
                em_sha256_update(h, buf, size);
        }
        if (rc != ARCHIVE_EOF)
                return em_error_set(err, EIO, "reading tar: %s", archive_error_string(a));
        em_sha256_final(h, digest);
        if (fdatasync(fd) < 0)
                return em_error_set(err, errno, "fdatasync");
        if (linkat(fd, "", s->blobs_fd, digest + 7, AT_EMPTY_PATH) < 0 && errno != EEXIST)
                return em_error_set(err, errno, "storing blob %s", digest);
        return 0;
}

/* Every regular member becomes a blob; returns member name -> digest. */
static int ingest_tar(struct em_store *s, const char *path, json_t *map, em_error_t *err)
{
        cleanup_archive struct archive *a = archive_read_new();
        struct archive_entry *e;
        int rc;

        if (a == NULL)
                return em_error_set(err, ENOMEM, "archive");
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_zstd(a);
        archive_read_support_format_tar(a);
        if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK)
                return em_error_set(err, EIO, "opening %s: %s", path, archive_error_string(a));
        while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                char name[PATH_MAX], digest[EM_DIGEST_STR_LEN + 1];
                if (archive_entry_filetype(e) != AE_IFREG)
                        continue;
                if (em_tarpath_clean(archive_entry_pathname(e) ?: "", name, sizeof(name), err) <
                        0 ||
                    tar_member_blob(s, a, digest, err) < 0)
                        return em_error_wrap(err, "%s", path);
                json_object_set_new(map, name, json_string(digest));
        }
        if (rc != ARCHIVE_EOF)
                return em_error_set(err, EIO, "reading %s: %s", path, archive_error_string(a));
        return 0;
}

static const char *sniff_layer_type(struct em_store *s, const char *digest)
{
        unsigned char m[4] = {0};
        em_error_t e = NULL;
        cleanup_close int fd = store_blob_open(s, digest, &e);

        em_error_free(&e);
        if (fd >= 0 && pread(fd, m, sizeof(m), 0) == 4) {
                if (m[0] == 0x1f && m[1] == 0x8b)
                        return EM_MT_DOCKER_LAYER_GZ;
                if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
                        return "application/vnd.docker.image.rootfs.diff.tar.zstd";
        }
        return EM_MT_DOCKER_LAYER;
}

static json_t *descriptor_json(struct em_store *s, const char *mt, const char *digest)
{
        struct stat st;

        if (digest == NULL || em_digest_hex(digest) == NULL ||
            fstatat(s->blobs_fd, em_digest_hex(digest), &st, 0) < 0)
                return NULL;
        return json_pack("{s:s, s:I, s:s}", "mediaType", mt, "size", (json_int_t)st.st_size,
                         "digest", digest);
}

/* Builds a Docker v2 manifest for a classic `docker save` entry and stores it. */
static int synth_manifest(struct em_store *s, json_t *map, const json_t *entry,
                          char digest[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        const char *cfg =
            json_string_value(json_object_get(map, em_json_str(entry, "Config") ?: ""));
        cleanup_json json_t *layers = json_array();
        size_t i;
        json_t *l;

        json_array_foreach(json_object_get(entry, "Layers"), i, l)
        {
                const char *d = json_string_value(json_object_get(map, json_string_value(l) ?: ""));
                json_t *desc = d != NULL ? descriptor_json(s, sniff_layer_type(s, d), d) : NULL;
                if (desc == NULL)
                        return em_error_set(err, ENOENT, "docker save: layer %zu is missing", i);
                json_array_append_new(layers, desc);
        }
        json_t *cdesc = descriptor_json(s, EM_MT_DOCKER_CONFIG, cfg);
        if (cdesc == NULL)
                return em_error_set(err, ENOENT, "docker save: config is missing");
        cleanup_json json_t *m =
            json_pack("{s:i, s:s, s:o, s:O}", "schemaVersion", 2, "mediaType",
                      EM_MT_DOCKER_MANIFEST, "config", cdesc, "layers", layers);
        cleanup_free char *text = m != NULL ? json_dumps(m, JSON_COMPACT) : NULL;
        if (text == NULL)
                return em_error_set(err, ENOMEM, "manifest");
        return store_blob_put_buf(s, text, strlen(text), NULL, digest, err);
}

static int import_docker_manifest(struct em_store *s, json_t *map, const char *name,
                                  char **name_out, em_error_t *err)
{
        cleanup_free char *buf = NULL, *canon = NULL;
        cleanup_json json_t *arr = NULL;
        char digest[EM_DIGEST_STR_LEN + 1];
        size_t len;

        if (store_blob_read(s, json_string_value(json_object_get(map, "manifest.json")), 1 << 20,
                            &buf, &len, err) < 0 ||
            em_json_parse(buf, len, "manifest.json", &arr, err) < 0)
                return -1;
        const json_t *entry = json_array_get(arr, 0);
        if (!json_is_object(entry))
                return em_error_set(err, EINVAL, "docker save: manifest.json has no image");
        const char *tag0 = json_string_value(json_array_get(json_object_get(entry, "RepoTags"), 0));
        canon = canonical_name(name ?: tag0 ?: "imported", NULL);
        if (canon == NULL)
                return em_error_set(err, EINVAL, "cannot derive an image name; use --name");
        if (synth_manifest(s, map, entry, digest, err) < 0 ||
            store_image_register(s, canon, digest, err) < 0)
                return -1;
        *name_out = steal_pointer(&canon);
        return 0;
}

static int import_tar(struct em_store *s, const char *path, const char *name, char **name_out,
                      em_error_t *err)
{
        cleanup_json json_t *map = json_object();
        cleanup_index struct em_index *ix = NULL;
        cleanup_free char *buf = NULL;
        size_t len;

        if (map == NULL || ingest_tar(s, path, map, err) < 0)
                return -1;
        if (json_object_get(map, "manifest.json") != NULL)
                return import_docker_manifest(s, map, name, name_out, err);
        const char *ixd = json_string_value(json_object_get(map, "index.json"));
        if (ixd == NULL)
                return em_error_set(err, EINVAL, "%s has neither manifest.json nor index.json",
                                    path);
        if (store_blob_read(s, ixd, EM_MANIFEST_MAX_BYTES, &buf, &len, err) < 0 ||
            em_index_parse(buf, len, &ix, err) < 0)
                return -1;
        return import_from_index(s, -1, path, ix, name, name_out, err);
}

int em_store_import(struct em_store *s, const char *path, const char *name,
                    struct em_image_info **out, em_error_t *err)
{
        cleanup_close int lock = store_lock(s, LOCK_SH, err);
        cleanup_free char *stored = NULL;
        struct stat st;

        if (lock < 0)
                return -1;
        if (stat(path, &st) < 0)
                return em_error_set(err, errno, "importing %s", path);
        int rc = S_ISDIR(st.st_mode) ? import_layout_dir(s, path, name, &stored, err)
                                     : import_tar(s, path, name, &stored, err);
        if (rc < 0)
                return em_error_wrap(err, "importing %s", path);
        if (out != NULL)
                return em_store_image_get(s, stored, out, err);
        return 0;
}
