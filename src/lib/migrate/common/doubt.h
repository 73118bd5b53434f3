/* Migrations in doubt that need a human: the other host did not answer.
 * `edgemig recover` lists them and takes the operator's word for which
 * copy to keep (docs/protocol.md, "Commit rule and failure handling"). */
#ifndef EDGEMIG_MIGRATE_DOUBT_H
#define EDGEMIG_MIGRATE_DOUBT_H

#include <jansson.h>

#include "migrate/common/resolve.h"
#include "util/config.h"
#include "util/error.h"

/* The sessions in doubt on this host whose process is gone, as a JSON array
 * of {"side": "source"|"target", "session", "container", "target"|"peer",
 * "fix"}: as source, FINAL sent and no settled outcome (the container is
 * stopped here); as target, restored and neither committed nor aborted
 * (the container runs here). */
int em_migrate_in_doubt(const struct em_config *cfg, json_t **out, em_error_t *err);

/* Source: the target is gone for good; restore the container here from the
 * session's checkpoint. Refused while the target answers (then `edgemig
 * recover` settles it) or when this host never sent FINAL for it. The
 * session's journal stays as a tombstone ("kept-local", no images): should
 * the target come back after all, recovery aborts the session there, which
 * removes its copy. */
int em_migrate_keep_local(const struct em_config *cfg, const struct em_resolve_opts *ro,
                          const char *session, em_error_t *err);

/* Target: keep the restored container of a session in doubt (commit it).
 * Always safe: the source never runs its copy without this host's abort,
 * which the commit refuses from now on. */
int em_migrate_keep_here(const struct em_config *cfg, const char *session, em_error_t *err);

#endif
