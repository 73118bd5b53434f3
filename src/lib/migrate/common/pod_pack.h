/* A pod's checkpoint as one tar stream, for the pod session of a migration
 * (migrate/source/pod_source.h, migrate/target/pod_target.h).
 *
 * `pod checkpoint` leaves DIR/<container>/{criu,upper,container.json} per
 * container and DIR/pod.json (checkpoint/pod_ckpt.h). Only criu/ and upper/
 * travel: the target writes container.json and pod.json itself from the
 * specs its policy checked, so nothing the peer sends decides what runs
 * besides the images it validates as for any container.
 *
 * Each container's log travels too, as <container>/log (a regular file)
 * when DIR/<container>/log exists: the source links the container's log
 * there after the checkpoint, and the target installs it as the
 * container's log before the restore's forwarder appends to it.
 *
 * The tar is pax (numeric owners, xattrs, 0/0 whiteout devices). The
 * unpacker takes it from a peer that may send anything: every entry must
 * lie under <one of the named containers>/criu or /upper (or be its log),
 * with no "." or
 * ".." component and no absolute or over-long path; it may be a regular
 * file, directory, symlink (extracted without following any), FIFO or a
 * 0/0 character device (an overlay whiteout), never a hard link, another
 * device or a socket; its only xattrs are overlay's (trusted.overlay.*,
 * user.overlay.*); at most EM_POD_PACK_MAX_ENTRIES entries. Anything else
 * fails the whole unpack. */
#ifndef EDGEMIG_MIGRATE_POD_PACK_H
#define EDGEMIG_MIGRATE_POD_PACK_H

#include <stdbool.h>

#include "util/error.h"

#define EM_POD_PACK_MAX_ENTRIES (1u << 20)
#define EM_POD_PACK_MAX_PATH    4096
#define EM_POD_PACK_LOG         "log"

/* Writes the tar of dir/<name>/criu and dir/<name>/upper (unless !trees:
 * a pre-copied pod's images travel as page deltas and its writable
 * layers as manifest diffs, pod_source.h) and dir/<name>/log for each of
 * the NULL-terminated names into out (created, mode 0600). Sockets are
 * left out (CRIU restores none from a file system). */
int em_pod_pack(const char *dir, char *const *names, bool trees, const char *out, em_error_t *err);

/* Extracts the tar read from fd into dir (an existing directory), checking
 * every entry as above against the NULL-terminated names. dir/<name> is
 * created (0711) for each name first. On failure dir may hold part of it:
 * the caller removes it. */
int em_pod_unpack(int fd, const char *dir, char *const *names, em_error_t *err);

#endif
