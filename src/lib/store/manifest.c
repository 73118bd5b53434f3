#include "store/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/json.h"

static void descriptor_clear(struct em_descriptor *d)
{
        free(d->media_type);
        free(d->digest);
        free(d->os);
        free(d->arch);
        free(d->variant);
        free(d->ref_name);
        memset(d, 0, sizeof(*d));
}

static char *dup_opt(const char *s)
{
        return s != NULL ? strdup(s) : NULL;
}

/* Fills d from a JSON descriptor; `what` names it in errors. */
static int descriptor_parse(const json_t *j, struct em_descriptor *d, const char *what,
                            em_error_t *err)
{
        if (!json_is_object(j))
                return em_error_set(err, EINVAL, "%s: descriptor is not an object", what);
        const char *digest = em_json_str(j, "digest");
        const char *mt = em_json_str(j, "mediaType");
        json_t *size = json_object_get(j, "size");

        if (digest == NULL || !em_digest_valid(digest))
                return em_error_set(err, EINVAL, "%s: missing or unsupported digest", what);
        if (!json_is_integer(size) || json_integer_value(size) < 0)
                return em_error_set(err, EINVAL, "%s: missing or negative size", what);
        d->digest = strdup(digest);
        d->media_type = strdup(mt != NULL ? mt : "");
        d->size = (uint64_t)json_integer_value(size);
        json_t *plat = json_object_get(j, "platform");
        if (json_is_object(plat)) {
                d->os = dup_opt(em_json_str(plat, "os"));
                d->arch = dup_opt(em_json_str(plat, "architecture"));
                d->variant = dup_opt(em_json_str(plat, "variant"));
        }
        json_t *ann = json_object_get(j, "annotations");
        if (json_is_object(ann))
                d->ref_name = dup_opt(em_json_str(ann, "org.opencontainers.image.ref.name"));
        if (d->digest == NULL || d->media_type == NULL)
                return em_error_set(err, ENOMEM, "%s", what);
        return 0;
}

enum em_doc_kind em_doc_kind_of(const char *buf, size_t len, const char *content_type)
{
        cleanup_json json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
        const char *mt = j != NULL ? em_json_str(j, "mediaType") : NULL;

        if (mt == NULL || *mt == '\0')
                mt = content_type;
        if (mt != NULL) {
                if (strcmp(mt, EM_MT_OCI_INDEX) == 0 || strcmp(mt, EM_MT_DOCKER_LIST) == 0)
                        return EM_DOC_INDEX;
                if (strcmp(mt, EM_MT_OCI_MANIFEST) == 0 || strcmp(mt, EM_MT_DOCKER_MANIFEST) == 0)
                        return EM_DOC_MANIFEST;
        }
        if (!json_is_object(j))
                return EM_DOC_UNKNOWN;
        if (json_is_array(json_object_get(j, "manifests")))
                return EM_DOC_INDEX;
        if (json_is_array(json_object_get(j, "layers")))
                return EM_DOC_MANIFEST;
        return EM_DOC_UNKNOWN;
}

static int check_schema(const json_t *j, const char *what, em_error_t *err)
{
        if (!json_is_object(j))
                return em_error_set(err, EINVAL, "%s is not a JSON object", what);
        if (em_json_int(j, "schemaVersion", -1) != 2)
                return em_error_set(err, EPROTONOSUPPORT, "%s: schemaVersion is not 2", what);
        return 0;
}

static int parse_doc(const char *buf, size_t len, size_t max, const char *what, json_t **out,
                     em_error_t *err)
{
        if (len > max)
                return em_error_set(err, EFBIG, "%s larger than %zu bytes", what, max);
        return em_json_parse(buf, len, what, out, err);
}

void em_manifest_free(struct em_manifest **m)
{
        if (*m == NULL)
                return;
        for (size_t i = 0; i < (*m)->n_layers; i++)
                descriptor_clear(&(*m)->layers[i]);
        free((*m)->layers);
        descriptor_clear(&(*m)->config);
        free((*m)->media_type);
        free(*m);
        *m = NULL;
}

static int manifest_layers(const json_t *layers, struct em_manifest *m, em_error_t *err)
{
        size_t n = json_array_size(layers);

        if (!json_is_array(layers))
                return em_error_set(err, EINVAL, "manifest: layers is not an array");
        if (n > EM_MAX_LAYERS)
                return em_error_set(err, E2BIG, "manifest: %zu layers (max %d)", n, EM_MAX_LAYERS);
        m->layers = calloc(n + 1, sizeof(*m->layers));
        if (m->layers == NULL)
                return em_error_set(err, ENOMEM, "manifest layers");
        for (size_t i = 0; i < n; i++) {
                char what[48];
                enum em_compression c;

                snprintf(what, sizeof(what), "manifest layer %zu", i);
                m->n_layers = i + 1;
                if (descriptor_parse(json_array_get(layers, i), &m->layers[i], what, err) < 0)
                        return -1;
                if (em_layer_compression(m->layers[i].media_type, &c, err) < 0)
                        return em_error_wrap(err, "%s", what);
        }
        return 0;
}

int em_manifest_parse(const char *buf, size_t len, struct em_manifest **out, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        struct em_manifest *m;

        if (parse_doc(buf, len, EM_MANIFEST_MAX_BYTES, "manifest", &j, err) < 0 ||
            check_schema(j, "manifest", err) < 0)
                return -1;
        const char *mt = em_json_str(j, "mediaType");
        if (mt != NULL && strcmp(mt, EM_MT_OCI_MANIFEST) != 0 &&
            strcmp(mt, EM_MT_DOCKER_MANIFEST) != 0)
                return em_error_set(err, EPROTONOSUPPORT, "manifest: unsupported mediaType '%s'",
                                    mt);
        m = calloc(1, sizeof(*m));
        if (m == NULL)
                return em_error_set(err, ENOMEM, "manifest");
        m->media_type = strdup(mt != NULL ? mt : EM_MT_OCI_MANIFEST);
        if (descriptor_parse(json_object_get(j, "config"), &m->config, "manifest config", err) <
                0 ||
            manifest_layers(json_object_get(j, "layers"), m, err) < 0) {
                em_manifest_free(&m);
                return -1;
        }
        *out = m;
        return 0;
}

void em_index_free(struct em_index **ix)
{
        if (*ix == NULL)
                return;
        for (size_t i = 0; i < (*ix)->n; i++)
                descriptor_clear(&(*ix)->manifests[i]);
        free((*ix)->manifests);
        free((*ix)->media_type);
        free(*ix);
        *ix = NULL;
}

int em_index_parse(const char *buf, size_t len, struct em_index **out, em_error_t *err)
{
        cleanup_json json_t *j = NULL;

        if (parse_doc(buf, len, EM_MANIFEST_MAX_BYTES, "index", &j, err) < 0 ||
            check_schema(j, "index", err) < 0)
                return -1;
        json_t *arr = json_object_get(j, "manifests");
        size_t n = json_array_size(arr);
        if (!json_is_array(arr))
                return em_error_set(err, EINVAL, "index: manifests is not an array");
        if (n > EM_MAX_INDEX_ENTRIES)
                return em_error_set(err, E2BIG, "index: %zu entries", n);
        struct em_index *ix = calloc(1, sizeof(*ix));
        if (ix == NULL || (ix->manifests = calloc(n + 1, sizeof(*ix->manifests))) == NULL) {
                free(ix);
                return em_error_set(err, ENOMEM, "index");
        }
        const char *mt = em_json_str(j, "mediaType");
        ix->media_type = strdup(mt != NULL ? mt : EM_MT_OCI_INDEX);
        for (size_t i = 0; i < n; i++) {
                char what[48];

                snprintf(what, sizeof(what), "index entry %zu", i);
                ix->n = i + 1;
                if (descriptor_parse(json_array_get(arr, i), &ix->manifests[i], what, err) < 0) {
                        em_index_free(&ix);
                        return -1;
                }
        }
        *out = ix;
        return 0;
}

static bool str_eq(const char *a, const char *b)
{
        return a != NULL && b != NULL && strcmp(a, b) == 0;
}

const struct em_descriptor *em_index_select(const struct em_index *ix, const char *os,
                                            const char *arch, const char *ref_name)
{
        const struct em_descriptor *untagged = NULL;

        for (size_t i = 0; i < ix->n; i++) {
                const struct em_descriptor *d = &ix->manifests[i];

                if (ref_name != NULL && !str_eq(d->ref_name, ref_name))
                        continue;
                /* Attestation manifests and nested indexes are not images. */
                if (str_eq(d->media_type, EM_MT_OCI_INDEX) ||
                    str_eq(d->media_type, EM_MT_DOCKER_LIST))
                        continue;
                if (str_eq(d->os, os) && str_eq(d->arch, arch))
                        return d;
                if (d->os == NULL && d->arch == NULL && untagged == NULL)
                        untagged = d;
        }
        return untagged;
}

void em_image_config_free(struct em_image_config **c)
{
        if (*c == NULL)
                return;
        for (size_t i = 0; i < (*c)->n_diff_ids; i++)
                free((*c)->diff_ids[i]);
        free((*c)->diff_ids);
        free((*c)->os);
        free((*c)->arch);
        json_decref((*c)->config);
        free(*c);
        *c = NULL;
}

static int config_diff_ids(const json_t *ids, struct em_image_config *c, em_error_t *err)
{
        size_t n = json_array_size(ids);

        if (!json_is_array(ids))
                return em_error_set(err, EINVAL, "image config: rootfs.diff_ids is not an array");
        if (n > EM_MAX_LAYERS)
                return em_error_set(err, E2BIG, "image config: %zu diff_ids", n);
        c->diff_ids = calloc(n + 1, sizeof(char *));
        if (c->diff_ids == NULL)
                return em_error_set(err, ENOMEM, "diff_ids");
        for (size_t i = 0; i < n; i++) {
                const char *d = json_string_value(json_array_get(ids, i));

                if (d == NULL || !em_digest_valid(d))
                        return em_error_set(err, EINVAL, "image config: diff_id %zu is invalid", i);
                c->diff_ids[i] = strdup(d);
                c->n_diff_ids = i + 1;
                if (c->diff_ids[i] == NULL)
                        return em_error_set(err, ENOMEM, "diff_ids");
        }
        return 0;
}

int em_image_config_parse(const char *buf, size_t len, struct em_image_config **out,
                          em_error_t *err)
{
        cleanup_json json_t *j = NULL;

        if (parse_doc(buf, len, EM_CONFIG_MAX_BYTES, "image config", &j, err) < 0)
                return -1;
        if (!json_is_object(j))
                return em_error_set(err, EINVAL, "image config is not a JSON object");
        json_t *rootfs = json_object_get(j, "rootfs");
        if (!json_is_object(rootfs) || !str_eq(em_json_str(rootfs, "type"), "layers"))
                return em_error_set(err, EINVAL, "image config: rootfs.type is not \"layers\"");
        struct em_image_config *c = calloc(1, sizeof(*c));
        if (c == NULL)
                return em_error_set(err, ENOMEM, "image config");
        if (config_diff_ids(json_object_get(rootfs, "diff_ids"), c, err) < 0) {
                em_image_config_free(&c);
                return -1;
        }
        json_t *cfg = json_object_get(j, "config");
        c->config = json_is_object(cfg) ? json_deep_copy(cfg) : json_object();
        c->os = dup_opt(em_json_str(j, "os"));
        c->arch = dup_opt(em_json_str(j, "architecture"));
        *out = c;
        return 0;
}

int em_layer_compression(const char *media_type, enum em_compression *out, em_error_t *err)
{
        static const struct {
                const char *mt;
                enum em_compression c;
        } table[] = {
            {"application/vnd.oci.image.layer.v1.tar", EM_COMP_NONE},
            {"application/vnd.oci.image.layer.v1.tar+gzip", EM_COMP_GZIP},
            {"application/vnd.oci.image.layer.v1.tar+zstd", EM_COMP_ZSTD},
            {"application/vnd.oci.image.layer.nondistributable.v1.tar", EM_COMP_NONE},
            {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", EM_COMP_GZIP},
            {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", EM_COMP_ZSTD},
            {EM_MT_DOCKER_LAYER, EM_COMP_NONE},
            {EM_MT_DOCKER_LAYER_GZ, EM_COMP_GZIP},
            {"application/vnd.docker.image.rootfs.diff.tar.zstd", EM_COMP_ZSTD},
            {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", EM_COMP_GZIP},
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                if (media_type != NULL && strcmp(media_type, table[i].mt) == 0) {
                        *out = table[i].c;
                        return 0;
                }
        }
        return em_error_set(err, EPROTONOSUPPORT, "unsupported layer media type '%s'",
                            media_type != NULL ? media_type : "(none)");
}
