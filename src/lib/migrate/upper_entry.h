/* One entry of the writable-layer manifest, as JSON:
 *   {"path", "type": f|d|l|c|b|p, "mode", "uid", "gid", "size",
 *    "mtime": [s, ns], "ctime": [s, ns], "ino", "rdev": [maj, min],
 *    "target" (symlinks), "xattrs": {name: hex}}
 * ctime and ino only detect changes; they are never applied. */
#ifndef EDGEMIG_MIGRATE_UPPER_ENTRY_H
#define EDGEMIG_MIGRATE_UPPER_ENTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "util/error.h"

#define EM_UPPER_PATH_MAX 4095

json_t *em_upper_entry_from_stat(const char *fpath, const char *rel, const struct stat *sb,
                                 em_error_t *err);
bool em_upper_entry_same_type(const json_t *a, const json_t *b);
bool em_upper_entry_is_file(const json_t *e);
/* Sorts entries by path, so that parents come before their children. */
void em_upper_entries_sort(json_t *entries);
/* A relative path without empty, "." or ".." components, NUL or a leading '/'. */
bool em_upper_path_ok(const json_t *s);

/* Opens the parent directory of rel beneath rootfd without following any
 * symlink; *base points into rel at the last component. */
int em_upper_open_parent(int rootfd, const char *rel, const char **base, em_error_t *err);
/* Creates a non-regular entry (dir, symlink, device, fifo) and applies its
 * metadata; a regular file's metadata is applied by em_upper_apply_meta. */
int em_upper_create(int rootfd, const json_t *e, em_error_t *err);
/* Owner, mode, xattrs and (unless skip_times) mtime of an open entry. */
int em_upper_apply_meta(int fd, const json_t *e, bool skip_times, em_error_t *err);
int em_upper_apply_times(int rootfd, const json_t *e, em_error_t *err);

#endif
