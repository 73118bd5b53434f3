/* Internal to src/lib/store: the store handle and helpers shared by its modules. */
#ifndef EDGEMIG_STORE_STORE_INT_H
#define EDGEMIG_STORE_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/manifest.h"
#include "store/store.h"
#include "util/digest.h"
#include "util/error.h"

struct em_store {
        char *root;
        int root_fd;
        int blobs_fd;  /* blobs/sha256 */
        int layers_fd; /* layers/sha256 */
        int images_fd; /* images */
        int locks_fd;  /* locks: per-layer unpack locks */
};

/* Store-wide lock (flock on <root>/store.lock): LOCK_SH for pulls and imports,
 * LOCK_EX for prune. Returns an fd that releases the lock when closed. */
int store_lock(struct em_store *s, int how, em_error_t *err);

/* A blob being written: blobs/sha256/.partial-<hex>, locked with flock so two
 * writers of the same blob serialize; a later writer finds it already done. */
struct blob_writer {
        int fd;
        char hex[EM_SHA256_HEX_LEN + 1];
        em_sha256_t *h;
        uint64_t n; /* bytes so far (resumed + written) */
};
/* Returns 1 when the blob is already present (nothing to write), 0 when the
 * writer is ready; with resume the partial content is kept and hashed. */
int blob_writer_begin(struct em_store *s, const char *digest, bool resume, struct blob_writer *w,
                      em_error_t *err);
int blob_writer_write(struct blob_writer *w, const void *buf, size_t len, em_error_t *err);
/* Checks size (unless UINT64_MAX) and digest, then renames into place. */
int blob_writer_commit(struct em_store *s, struct blob_writer *w, uint64_t size, em_error_t *err);
/* Starts over (the server ignored a Range request). */
int blob_writer_reset(struct blob_writer *w, em_error_t *err);
/* Drops the partial content (after a mismatch) and closes. */
void blob_writer_abort(struct blob_writer *w, bool keep_partial);

bool store_has_blob(struct em_store *s, const char *digest);
int store_blob_open(struct em_store *s, const char *digest, em_error_t *err);
/* Reads a small blob and re-verifies its digest. */
int store_blob_read(struct em_store *s, const char *digest, size_t max, char **out, size_t *len,
                    em_error_t *err);
/* Stores a buffer; digest_out may be NULL. Verifies against want if non-NULL. */
int store_blob_put_buf(struct em_store *s, const void *buf, size_t len, const char *want,
                       char digest_out[EM_DIGEST_STR_LEN + 1], em_error_t *err);
/* Copies exactly `size` bytes (or to EOF if size is UINT64_MAX) from fd. */
int store_blob_put_fd(struct em_store *s, const char *digest, uint64_t size, int fd,
                      em_error_t *err);

/* Unpacks one layer from its present blob unless diff_id is already there. */
int store_layer_ensure(struct em_store *s, const struct em_descriptor *layer, const char *diff_id,
                       em_error_t *err);

/* Unpacks missing layers from present blobs, then writes the image record. */
int store_image_register(struct em_store *s, const char *name, const char *manifest_digest,
                         em_error_t *err);

#endif
