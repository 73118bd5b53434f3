/* OCI and Docker v2 manifests, indexes (manifest lists) and image configs.
 * Parsers validate every digest and size before anything becomes a path. */
#ifndef EDGEMIG_STORE_MANIFEST_H
#define EDGEMIG_STORE_MANIFEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define EM_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define EM_MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define EM_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define EM_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define EM_MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define EM_MT_DOCKER_LAYER    "application/vnd.docker.image.rootfs.diff.tar"
#define EM_MT_DOCKER_LAYER_GZ "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* Limits that keep hostile documents small. */
#define EM_MANIFEST_MAX_BYTES (4u << 20)
#define EM_CONFIG_MAX_BYTES   (8u << 20)
#define EM_MAX_LAYERS         512
#define EM_MAX_INDEX_ENTRIES  1024

enum em_doc_kind { EM_DOC_UNKNOWN = 0, EM_DOC_MANIFEST, EM_DOC_INDEX };
enum em_compression { EM_COMP_NONE = 0, EM_COMP_GZIP, EM_COMP_ZSTD };

struct em_descriptor {
        char *media_type;
        char *digest;
        uint64_t size;
        char *os, *arch, *variant; /* index entries only (platform) */
        char *ref_name;            /* org.opencontainers.image.ref.name annotation */
};

struct em_manifest {
        char *media_type; /* EM_MT_OCI_MANIFEST or EM_MT_DOCKER_MANIFEST */
        struct em_descriptor config;
        size_t n_layers;
        struct em_descriptor *layers;
};

struct em_index {
        char *media_type;
        size_t n;
        struct em_descriptor *manifests;
};

struct em_image_config {
        size_t n_diff_ids;
        char **diff_ids;
        char *os, *arch;
        json_t *config; /* the "config" object (may be an empty object) */
};

/* Classifies a document by its mediaType field, the HTTP Content-Type (may be
 * NULL) or, failing both, by its shape. */
enum em_doc_kind em_doc_kind_of(const char *buf, size_t len, const char *content_type);

int em_manifest_parse(const char *buf, size_t len, struct em_manifest **out, em_error_t *err);
void em_manifest_free(struct em_manifest **m);
#define cleanup_manifest __attribute__((cleanup(em_manifest_free)))

int em_index_parse(const char *buf, size_t len, struct em_index **out, em_error_t *err);
void em_index_free(struct em_index **ix);
#define cleanup_index __attribute__((cleanup(em_index_free)))
/* The manifest entry for os/arch (linux/amd64 preferred), else the only one,
 * or with ref_name when it is non-NULL. NULL when none fits. */
const struct em_descriptor *em_index_select(const struct em_index *ix, const char *os,
                                            const char *arch, const char *ref_name);

int em_image_config_parse(const char *buf, size_t len, struct em_image_config **out,
                          em_error_t *err);
void em_image_config_free(struct em_image_config **c);
#define cleanup_image_config __attribute__((cleanup(em_image_config_free)))

/* Layer media type -> compression; EPROTONOSUPPORT for anything else. */
int em_layer_compression(const char *media_type, enum em_compression *out, em_error_t *err);

#endif
