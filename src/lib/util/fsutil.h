/* File system helpers: full-length I/O, atomic writes, recursive mkdir/remove. */
#ifndef EDGEMIG_UTIL_FSUTIL_H
#define EDGEMIG_UTIL_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Loops until all bytes are written/read; retries EINTR. read_all returns the
 * number of bytes read (< len only at EOF). */
int em_write_all(int fd, const void *buf, size_t len, em_error_t *err);
ssize_t em_read_all(int fd, void *buf, size_t len, em_error_t *err);

/* Writes path via path.tmp.XXXXXX + fsync + rename + fsync(dir). */
int em_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         em_error_t *err);
/* Reads a whole file (NUL-terminated for convenience); fails above max_len. */
int em_read_file(const char *path, size_t max_len, char **out, size_t *out_len, em_error_t *err);

int em_mkdir_p(const char *path, mode_t mode, em_error_t *err);
/* Removes a tree without following symlinks and without crossing mounts. */
int em_rm_rf(const char *path, em_error_t *err);
/* Removes a tree relative to dirfd (used for temp dirs inside a store). */
int em_rm_rf_at(int dirfd, const char *name, em_error_t *err);
int em_fsync_dir(const char *dir, em_error_t *err);
bool em_path_exists(const char *path);
/* The offset in fd (a regular file) where its last `lines` lines start: a
 * last line without a final newline counts as a line; 0 when the file has
 * no more lines than that; its size for 0 lines. Reads backwards from the end in blocks. */
int em_tail_offset(int fd, uint64_t lines, off_t *out, em_error_t *err);
/* The names in directory dirfd (not "." or ".."), sorted, for which keep
 * (NULL: all) is true, as a NULL-terminated vector. E2BIG when more than
 * max are kept; `what` names the directory in errors. Read from its start. */
int em_dir_names_at(int dirfd, bool (*keep)(const char *name), size_t max, const char *what,
                    char ***out, em_error_t *err);
/* Returns malloc'd "a/b"; never fails except on OOM (returns NULL). */
char *em_path_join(const char *a, const char *b);

/* Calls fn(path, name, ud, err) for each entry of dir whose name does not
 * start with '.', in readdir order, and sums what it returns (>= 0). An
 * entry whose fn fails is logged (its error as the message) and the walk
 * goes on: one bad entry never hides the others (recovery's walks of its
 * journals); then the walk fails with EIO, "N <what> could not be
 * recovered (see log)". A dir that does not exist holds nothing. Returns
 * the sum, or -1. */
typedef int (*em_dir_fn)(const char *path, const char *name, void *ud, em_error_t *err);
int em_dir_each(const char *dir, em_dir_fn fn, void *ud, const char *what, em_error_t *err);
/* Whether path is dir or lies beneath it, comparing the real paths (either
 * may not exist yet: its deepest existing ancestor is resolved, the rest
 * appended). */
int em_path_within(const char *path, const char *dir, bool *within, em_error_t *err);

#endif
