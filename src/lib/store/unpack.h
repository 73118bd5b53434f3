/* Safe, verified unpacking of one (untrusted) layer tar into a directory.
 *
 * Every file is created relative to the layer directory's fd with *at() calls
 * and openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
 * so no entry can create, change or follow anything outside it. Whiteouts are
 * converted to overlayfs form while unpacking. Device nodes (other than 0/0
 * whiteouts) are skipped with a warning: runc populates /dev itself. */
#ifndef EDGEMIG_STORE_UNPACK_H
#define EDGEMIG_STORE_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/manifest.h"
#include "util/digest.h"
#include "util/error.h"

/* Turns a tar member name into a clean relative path ("./a//b/" -> "a/b",
 * "./" -> ""). Rejects, with an error naming the entry: absolute paths, ".."
 * components, names >= PATH_MAX and components > NAME_MAX bytes. */
int em_tarpath_clean(const char *name, char *out, size_t out_size, em_error_t *err);

struct em_unpack_opts {
        enum em_compression comp;
        const char *expected_diff_id; /* NULL: compute only */
        bool durable;                 /* syncfs before the final rename */
};

struct em_unpack_stats {
        uint64_t entries;
        uint64_t tar_bytes;       /* uncompressed stream length */
        uint64_t skipped_devices; /* char/block nodes left out (not 0/0 whiteouts) */
};

/* Unpacks the layer read from blob_fd (a file, from offset 0) into parent_dirfd/.tmp-XXXX, checks
 * the diff-id (sha256 of the uncompressed stream) and renames it to final_name. If final_name
 * appears meanwhile (a concurrent unpack), the copy is dropped. On any error the partial directory
 * is removed. diff_id_out may be NULL. */
int em_layer_unpack(int blob_fd, const struct em_unpack_opts *opts, int parent_dirfd,
                    const char *final_name, char diff_id_out[EM_DIGEST_STR_LEN + 1],
                    struct em_unpack_stats *stats, em_error_t *err);

#endif
