/* The writable-layer (overlay upper dir) manifest and diff.
 *
 * scan → manifest (sorted by path) → JSON for FILE_MANIFEST frames → diff of
 * two manifests → apply on the receiver. Everything the receiver writes goes
 * through a parent directory opened with openat2(RESOLVE_IN_ROOT |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so a hostile
 * manifest cannot escape the target dir; the decoder already refuses paths
 * that are absolute, contain "." / ".." / empty components or NUL.
 *
 * JSON: {"version":1,"entries":[{"p":"etc/x","t":"f","m":420,"u":0,"g":0,
 *   "s":12,"mt":1700000000,"mn":5,"h":"<xxh3-128 hex>","l":"<symlink target>",
 *   "hl":"<earlier path, same inode>","r":<rdev>,"o":1,"x":{"user.a":"79"},
 *   "b":"<base64 block hashes, delta/blocks.h>"}]}
 * Types: f regular, d dir, l symlink, c (only rdev 0: an overlay whiteout),
 * p fifo, s socket. Xattr values are hex. Overlay's own xattrs never travel:
 * "o" marks an opaque directory, and the receiver sets the opaque xattr
 * itself; a manifest with a device node, a "trusted.overlay." or
 * "user.overlay." xattr, or "o" on a non-directory is refused, the rules
 * of layer unpacking (store/unpack.c). */
#ifndef EDGEMIG_DELTA_UPPER_H
#define EDGEMIG_DELTA_UPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/blocks.h"
#include "util/error.h"

#define EM_UPPER_MAX_ENTRIES  (1u << 20)
#define EM_UPPER_MAX_PATH     4096
#define EM_UPPER_MAX_XATTRS   64
#define EM_UPPER_MAX_XATTR_V  65536
#define EM_UPPER_MAX_MANIFEST (256u << 20)

struct em_xattr {
        char *name;
        uint8_t *value;
        size_t len;
};

struct em_upper_entry {
        char *path;    /* relative, no leading "/" */
        char type;     /* f d l c b p s */
        uint32_t mode; /* permission bits incl. suid/sgid/sticky (07777) */
        uint32_t uid, gid;
        uint64_t size;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        uint64_t rdev;
        char hash[33];  /* regular files: XXH3-128 of the content, hex */
        char *target;   /* symlinks */
        char *hardlink; /* regular files: an earlier entry with the same inode */
        bool opaque;    /* directories: overlay opaque (hides the layers below) */
        size_t nx;
        struct em_xattr *x; /* sorted by name */
        uint64_t dev, ino;  /* set by scan for files with several links; not serialized */
        /* Regular files of at least EM_BLOCK_MIN bytes: the hash of each
         * block, from the same read as hash (scan), or as a receiver
         * reported its copy ("b"). */
        struct em_blocks blocks;
};

struct em_upper_manifest {
        size_t n;
        struct em_upper_entry *e; /* sorted by path (parents first) */
};
void em_upper_manifest_free(struct em_upper_manifest *m);
#define cleanup_manifest __attribute__((cleanup(em_upper_manifest_free)))

/* Walks dir without following symlinks or crossing mounts. */
int em_upper_scan(const char *dir, struct em_upper_manifest *m, em_error_t *err);
/* with_blocks: each file's block hashes too (a receiver's report). */
int em_upper_manifest_to_json(const struct em_upper_manifest *m, bool with_blocks, char **out,
                              size_t *len, em_error_t *err);
/* Strict: bounded sizes, validated paths, names and types, strictly sorted,
 * hardlinks only to earlier regular files, block lists only on regular
 * files and of exactly their size's blocks. */
int em_upper_manifest_from_json(const char *buf, size_t len, struct em_upper_manifest *m,
                                em_error_t *err);

struct em_upper_diff {
        size_t nchanged;
        size_t *changed; /* indices into the new manifest, in order */
        bool *content;   /* per changed entry: file data must be sent */
        size_t ndeleted;
        char **deleted; /* paths only in the old manifest, children first */
};
void em_upper_diff_free(struct em_upper_diff *d);
int em_upper_diff(const struct em_upper_manifest *old_m, const struct em_upper_manifest *new_m,
                  struct em_upper_diff *d, em_error_t *err);
/* The entry for path (binary search), or NULL. */
const struct em_upper_entry *em_upper_manifest_find(const struct em_upper_manifest *m,
                                                    const char *path);

/* Receiver side. root_fd: an O_PATH|O_DIRECTORY fd of the target upper dir. */
int em_upper_open_root(const char *dir, int *fd, em_error_t *err);
int em_upper_apply_delete(int root_fd, const char *path, em_error_t *err);
/* Creates or updates everything but regular-file content: dirs, symlinks,
 * devices/whiteouts, fifos, sockets, hardlinks, and the metadata of regular
 * files whose content did not change. Replaces an entry of another type. */
int em_upper_apply_entry(int root_fd, const struct em_upper_entry *e, em_error_t *err);
/* Regular-file content, streamed: written to a temp file next to the target,
 * checked (size and hash), given its metadata, then renamed into place. */
typedef struct em_upper_file em_upper_file_t;
int em_upper_file_begin(int root_fd, const struct em_upper_entry *e, em_upper_file_t **f,
                        em_error_t *err);
int em_upper_file_write(em_upper_file_t *f, const void *buf, size_t len, em_error_t *err);
int em_upper_file_commit(em_upper_file_t **f, em_error_t *err);
void em_upper_file_abort(em_upper_file_t **f);
/* A block patch (FILE_BLOCKS, delta/blocks.h) of e's file: in place if a
 * regular file with a single link is there (*have: its size), else into a
 * new temp file (*have = 0) renamed into place by the commit. */
int em_upper_patch_begin(int root_fd, const struct em_upper_entry *e, em_upper_file_t **f,
                         uint64_t *have, em_error_t *err);
int em_upper_patch_write(em_upper_file_t *f, uint64_t off, const void *buf, size_t len,
                         em_error_t *err);
/* Cuts the file to e's size; verify: its whole content must then hash to
 * e's (EILSEQ if not); then fsync, metadata, and the rename of a new file.
 * An aborted in-place patch leaves the blocks written so far. */
int em_upper_patch_commit(em_upper_file_t **f, bool verify, em_error_t *err);
/* Directory mtimes change whenever children change: set them last. */
int em_upper_apply_dir_times(int root_fd, const struct em_upper_manifest *m, em_error_t *err);

#endif
