/* Storage a container mounts besides its root file system (docs/volumes.md).
 *
 * `run -v` and `--tmpfs` become the spec's "mounts" array, one object each:
 *   {"type": "volume", "name": N, "destination": D, "ro": B}
 *       a named volume, the directory <root>/volumes/N, created on first use
 *       and kept until `volume rm` (a container's rm keeps it);
 *   {"type": "bind", "source": S, "destination": D, "ro": B}
 *       a host directory, allowed only under a prefix listed in this host's
 *       <root>/volumes.json: {"bind_prefixes": ["/srv/data", ...]};
 *   {"type": "tmpfs", "destination": D, "size": BYTES}   (size 0: default)
 * The spec carries only names and paths: each host resolves them itself
 * when it prepares the container (em_mounts_apply), so an incoming spec is
 * held to the target's allow-list, never the source's. */
#ifndef EDGEMIG_CONTAINER_VOLUME_H
#define EDGEMIG_CONTAINER_VOLUME_H

#include <jansson.h>
#include <stdbool.h>

#include "util/config.h"
#include "util/error.h"

#define EM_VOLUMES_CONF  "volumes.json"
#define EM_VOLUMES_KNOB  "bind_prefixes"
#define EM_MOUNTS_MAX    64
#define EM_MOUNT_DST_MAX 1024

/* The spec's "mounts" from `-v SRC:DST[:ro|rw]` and `--tmpfs DST[:size=N]`
 * arguments (each NULL-terminated, may be NULL). *out is NULL when there
 * are none. */
int em_mounts_from_args(const char *const *vols, const char *const *tmpfs, json_t **out,
                        em_error_t *err);
/* Checks a spec's "mounts" (NULL: none) as a peer might send it: shape,
 * names, absolute normalised paths, no destination over /proc, /sys or
 * /dev, no destination twice. Says nothing about this host's allow-list. */
int em_mounts_check(const json_t *mounts, em_error_t *err);

/* This host's bind prefixes (NULL-terminated, free with em_strv_free);
 * an empty list without <root>/volumes.json. */
int em_bind_prefixes_load(const struct em_config *cfg, char ***out, em_error_t *err);
/* 0 when path lies at or under one of prefixes, else EPERM with an error
 * that names the knob. */
int em_bind_allowed(char *const *prefixes, const char *path, em_error_t *err);

/* Creates the spec's named volumes that do not exist yet (owned by the
 * root of the spec's ID range, "userns"), checks its bind sources against
 * this host's allow-list and appends the OCI mounts to config's "mounts". */
int em_mounts_apply(const struct em_config *cfg, const json_t *spec, json_t *config,
                    em_error_t *err);

/* For a container arriving by migration, before anything moves: its bind
 * sources must be allowed here, and its named volumes (which travel with
 * it) must not exist here yet. */
int em_mounts_admit(const struct em_config *cfg, const json_t *spec, em_error_t *err);
/* Before container `name` migrates: a named volume that another container
 * of this host also mounts cannot move with it (EBUSY, naming them). */
int em_volumes_movable(const struct em_config *cfg, const json_t *spec, const char *name,
                       em_error_t *err);
/* The same for containers that move together (a pod): every container
 * that mounts one of spec's named volumes must be one of names
 * (NULL-terminated). */
int em_volumes_movable_among(const struct em_config *cfg, const json_t *spec, char *const *names,
                             em_error_t *err);
/* After the container left this host: removes its named volumes that no
 * other container of the host mounts (they moved with it). */
int em_volumes_release(const struct em_config *cfg, const json_t *spec, em_error_t *err);
/* The name of mount i of spec if it is a named volume, else NULL. */
const char *em_spec_volume(const json_t *spec, size_t i);

/* The destinations of spec's volumes and bind mounts (*binds) and of its
 * tmpfs mounts (*tmpfs), NULL-terminated (em_strv_free). */
int em_mounts_points(const json_t *spec, char ***binds, char ***tmpfs, em_error_t *err);

/* <root>/volumes/NAME, NULL on OOM. */
char *em_volume_path(const struct em_config *cfg, const char *name);
/* [{"name", "path", "bytes", "used_by": [container...]}] for every volume. */
int em_volume_list(const struct em_config *cfg, json_t **out, em_error_t *err);
int em_volume_inspect(const struct em_config *cfg, const char *name, json_t **out, em_error_t *err);
/* Removes a volume; EBUSY, naming the containers, while any container of
 * this host (running or not) mounts it. */
int em_volume_rm(const struct em_config *cfg, const char *name, em_error_t *err);
/* Removes every volume no container mounts; *removed lists their names. */
int em_volume_prune(const struct em_config *cfg, json_t **removed, em_error_t *err);

#endif
