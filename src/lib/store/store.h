/* Content-addressed image store: blobs by digest, layers unpacked once by
 * diff-id, images by name. The same layer has the same path name on every
 * host, which is what lets a migration skip layers the target already has.
 *
 * On disk, under the state root:
 *   blobs/sha256/<hex>          verified blobs (manifests, configs, layer tars)
 *   layers/sha256/<diffid-hex>/ unpacked, read-only overlay lower dirs
 *   images/<escaped-name>.json  name -> manifest digest (+ cached info)
 *   locks/<hex>.lock            per-layer unpack locks; store.lock: shared by
 *                               pulls/imports, exclusive for prune
 * Blobs are written to blobs/sha256/.partial-<hex> (flock'ed, kept for a
 * resume) and layers to layers/sha256/.tmp-XXXX, then renamed into place, so
 * concurrent pulls of one image are safe and nothing half-done has a final name.
 */
#ifndef EDGEMIG_STORE_STORE_H
#define EDGEMIG_STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct em_store;

int em_store_open(const char *root, struct em_store **out, em_error_t *err);
void em_store_close(struct em_store **s);
#define cleanup_store __attribute__((cleanup(em_store_close)))

/* Everything a container or a migration needs to know about one image. */
struct em_image_info {
        char *name;            /* canonical reference, e.g. 127.0.0.1:5000/edgemig/redis:latest */
        char *manifest_digest; /* sha256:… */
        char *config_digest;   /* sha256:… */
        size_t n_layers;
        char **layer_digests; /* compressed blob digests, bottom first */
        char **diff_ids;      /* uncompressed diff-ids, bottom first */
        char **layer_dirs;    /* absolute unpacked layer dirs, bottom first */
        uint64_t size;        /* sum of layer blob sizes */
        json_t *config;       /* the OCI image config's "config" object (Env, Cmd, ...) */
};
/* Whether digest is one of the image's blobs (manifest, config or a layer). */
bool em_image_info_names(const struct em_image_info *im, const char *digest);
void em_image_info_free(struct em_image_info **info);
#define cleanup_image_info __attribute__((cleanup(em_image_info_free)))

/* Looks an image up by full reference, by "name:tag" or by bare "name"
 * (matching the repository's last path component, tag "latest"), or by a
 * manifest digest prefix. ENOENT when absent. */
int em_store_image_get(struct em_store *s, const char *name, struct em_image_info **out,
                       em_error_t *err);

bool em_store_has_layer(struct em_store *s, const char *diff_id);
/* Whether this store holds the blob `digest` (blobs/sha256), or the
 * unpacked layer `diff_id` (may be NULL) that makes the blob unneeded. */
bool em_store_holds(struct em_store *s, const char *digest, const char *diff_id);
/* malloc'd absolute path of layers/sha256/<hex> (whether or not it exists). */
char *em_store_layer_path(struct em_store *s, const char *diff_id);

/* Layer transfer between hosts without a registry: export writes the layer's
 * compressed blob to fd; import reads exactly `size` bytes of a blob of the
 * given digest from fd and verifies size and digest (a present blob is
 * drained and skipped). The layer is unpacked safely, with its diff-id
 * verified, by em_store_image_add, which knows media type and diff-id. */
int em_store_blob_export(struct em_store *s, const char *digest, int fd, em_error_t *err);
int em_store_blob_import(struct em_store *s, const char *digest, uint64_t size, int fd,
                         em_error_t *err);
/* Registers an image whose manifest and config blobs are already present
 * (used by the migration target once all layers are in place). Layers whose
 * blobs are present but not yet unpacked are unpacked (diff-id verified). */
int em_store_image_add(struct em_store *s, const char *name, const char *manifest_digest,
                       em_error_t *err);
/* The same for an image a peer names: it is recorded under the digest
 * reference <registry>/<repository>@<manifest_digest> (the peer's tag is
 * dropped), so a peer can never repoint a tag of this host. *registered
 * (malloc'd, may be NULL) receives that name. */
int em_store_image_add_pinned(struct em_store *s, const char *name, const char *manifest_digest,
                              char **registered, em_error_t *err);

/* The root this store lives in (borrowed). */
const char *em_store_root(struct em_store *s);

/* All images, sorted by name. */
int em_store_image_list(struct em_store *s, struct em_image_info ***out, size_t *n,
                        em_error_t *err);
void em_image_info_list_free(struct em_image_info **list, size_t n);
/* Forgets an image name (looked up like em_store_image_get); blobs and layers
 * stay until em_store_prune. Returns the removed canonical name in *removed. */
int em_store_image_remove(struct em_store *s, const char *name, char **removed, em_error_t *err);

struct em_prune_result {
        size_t blobs_removed, layers_removed;
        uint64_t bytes_freed; /* blob bytes (layer dirs are not measured) */
};
/* Removes blobs and layers that no image uses and whose diff-id is not in
 * in_use_diff_ids (NULL-terminated, may be NULL: layers used by containers),
 * plus leftovers of interrupted pulls. Takes the store lock exclusively. */
int em_store_prune(struct em_store *s, const char *const *in_use_diff_ids,
                   struct em_prune_result *res, em_error_t *err);

/* Progress of one blob transfer; total is 0 when unknown. */
typedef void (*em_progress_fn)(void *ud, const char *what, uint64_t done, uint64_t total);

struct em_registry_opts {
        bool plain_http;         /* http:// instead of https:// (loopback test registries) */
        bool tls_no_verify;      /* HTTPS without verifying the certificate (--tls-verify=false) */
        const char *ca_file;     /* CA bundle; NULL: <certs_dir>/HOST[:PORT]/ca.crt when it
                                    exists, else the system's CAs */
        const char *certs_dir;   /* NULL: EM_SYSCONFDIR/edgemig/certs.d */
        const char *auth_file;   /* NULL: /etc/edgemig/auth.json, then Docker's config.json
                                    (store/regauth.h) */
        const char *platform;    /* "os/arch[/variant]" to pick from an index; NULL: this host's */
        em_progress_fn progress; /* may be NULL */
        void *progress_ud;
};

/* Pulls REF ([registry/]repo[:tag][@digest]) over the OCI distribution API:
 * manifest (an index -> the entry for the platform), config, layers (skipping
 * present blobs and layers, resuming partial blobs), then registers the
 * image. Basic and Bearer authentication with the credentials of the auth
 * file. */
int em_store_pull(struct em_store *s, const char *ref, const struct em_registry_opts *o,
                  struct em_image_info **out, em_error_t *err);
/* Pushes a stored image (looked up by name) to dest_ref (default: its name). */
int em_store_push(struct em_store *s, const char *name, const char *dest_ref,
                  const struct em_registry_opts *o, em_error_t *err);
/* Imports an OCI image layout directory or a `docker save` tar. name may be
 * NULL: the layout's ref.name annotation / the tar's RepoTags decide. */
int em_store_import(struct em_store *s, const char *path, const char *name,
                    struct em_image_info **out, em_error_t *err);

#endif
