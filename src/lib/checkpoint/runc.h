/* Checkpoint and restore of edgemig containers through runc + CRIU.
 *
 * Two levels:
 *  - em_container_checkpoint / em_container_restore_from work on CRIU image
 *    directories and an upper dir that may come from anywhere (a migration
 *    receives them over the network);
 *  - em_checkpoint_save / em_checkpoint_load are the local `edgemig
 *    checkpoint NAME --to DIR` / `restore DIR` with this layout:
 *        DIR/criu/           CRIU images (plus dump.log)
 *        DIR/upper/          the writable layer, trusted.* xattrs and 0/0
 *                            whiteout devices included
 *        DIR/container.json  the container spec (container.h) + "format" */
#ifndef EDGEMIG_CHECKPOINT_RUNC_H
#define EDGEMIG_CHECKPOINT_RUNC_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "util/config.h"
#include "util/error.h"

#define EM_CHECKPOINT_FORMAT 1

struct em_checkpoint_opts {
        bool leave_running;
        bool tcp_established;            /* default true */
        bool file_locks;                 /* default true */
        const char *manage_cgroups_mode; /* default "soft" */
        const char *work_dir;            /* CRIU logs; NULL: the images dir */
        const char *parent_path;         /* --parent-path (pre-dump chains), or NULL */
        bool lazy_pages;                 /* post-copy: with page_server and status_fd */
        const char *page_server;         /* "ADDR:PORT" or NULL */
        int status_fd;                   /* -1: none */
        /* Network namespace (path) runc and CRIU run in, where the page
         * server listens: a private one keeps its port away from others. */
        const char *netns;
        /* One of a whole pod's dumps (pod_ckpt.h); otherwise a pod's
         * container is refused: dumped alone it would split the pod. */
        bool whole_pod;
};
void em_checkpoint_opts_init(struct em_checkpoint_opts *o);

/* How long one runc checkpoint or restore (CRIU inside) may take. */
#define EM_CRIU_TIMEOUT_MS (10 * 60 * 1000)

struct em_restore_opts {
        bool tcp_established;            /* default true */
        bool file_locks;                 /* default true */
        const char *manage_cgroups_mode; /* default "soft" */
        const char *work_dir;            /* CRIU logs; NULL: <container dir>/criu-work */
        bool lazy_pages;                 /* pages come from `criu lazy-pages` */
        bool copy_upper;                 /* copy upper_dir (true) or move it (rename) */
        /* A log to continue (the source's, after a migration): moved into
         * place before the log forwarder appends to it; NULL: none. */
        const char *prior_log;
        /* em_container_prewarm made the container's network namespace for
         * this restore: no teardown first, no new one (the name was this
         * restore's alone, so there is no runc state or mount to clear). */
        bool net_ready;
};
void em_restore_opts_init(struct em_restore_opts *o);

/* Dumps a running container's processes into images_dir via runc. The
 * container becomes "checkpointed" unless leave_running. The overlay and
 * the network namespace (which keeps CRIU's network lock, so peers see no
 * RST) are left in place: release them with em_container_release() once the
 * checkpoint is no longer needed for a roll-back. */
int em_container_checkpoint(const struct em_config *cfg, const char *name, const char *images_dir,
                            const struct em_checkpoint_opts *opts, em_error_t *err);

/* The same, asynchronously, for a lazy (post-copy) dump, whose runc only
 * returns after the last page was served: start it; once o->status_fd says
 * ready, the tasks are frozen for good: mark the container checkpointed
 * (_ready); finish waits for runc (a failure quotes the CRIU log). */
int em_container_checkpoint_start(const struct em_config *cfg, const char *name,
                                  const char *images_dir, const struct em_checkpoint_opts *o,
                                  pid_t *pid, em_error_t *err);
int em_container_checkpoint_ready(const struct em_config *cfg, const char *name, em_error_t *err);
int em_container_checkpoint_finish(const struct em_config *cfg, const char *name,
                                   const char *images_dir, const struct em_checkpoint_opts *o,
                                   pid_t pid, int timeout_ms, em_error_t *err);

/* Restores container `name` from images_dir on this host: installs upper_dir
 * as its writable layer (NULL: keep the container's own), prepares overlay,
 * network namespace (service IP + routes) and config.json from `spec`, then
 * runs `runc restore`. Creates or reuses the state row (which must not be
 * running). On failure, CRIU's lock rules are flushed, the runtime
 * resources released and the row left "checkpointed", so it can be retried
 * from the same files. */
int em_container_restore_from(const struct em_config *cfg, const char *name, const json_t *spec,
                              const char *images_dir, const char *upper_dir,
                              const struct em_restore_opts *opts, em_error_t *err);

/* The container's spec (container.h) with its current service IP. */
int em_container_spec_get(const struct em_config *cfg, const char *name, json_t **out,
                          em_error_t *err);

/* Copies an upper dir with xattrs (trusted.* too) and device whiteouts. */
int em_upper_copy(const char *src, const char *dst, em_error_t *err);

int em_checkpoint_save(const struct em_config *cfg, const char *name, const char *dir,
                       const struct em_checkpoint_opts *opts, em_error_t *err);
/* name_override may be NULL (use the checkpointed name). */
int em_checkpoint_load(const struct em_config *cfg, const char *dir, const char *name_override,
                       const struct em_restore_opts *opts, em_error_t *err);

#endif
