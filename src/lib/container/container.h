/* Containers on layered storage, run by runc (`runc --root <root>/runc`, so
 * several edgemig roots — emulated hosts — coexist on one machine).
 *
 * A container NAME lives in <root>/containers/NAME/:
 *   upper/ work/   the overlay's writable layer (the only file system state
 *                  that a migration moves) and its work dir
 *   rootfs/        the overlay mount point (lower = image layers, top first)
 *   bundle/        config.json for runc
 *   spec.json      what the container was created from (see em_container_spec)
 *   log            stdout+stderr, appended by a detached log forwarder that
 *                  reads a pipe (container stdio never points at host files,
 *                  or CRIU could not dump it)
 * and its network namespace in <root>/netns/NAME (see netns.h).
 *
 * The spec JSON carries everything needed to rebuild the container on any
 * host that has its layers: {"name", "image", "image_digest", "diff_ids",
 * "image_config", "env", "cmd", "memory", "cpus", "ip", "security"}, the
 * host ID range it runs with, "userns" {"base", "size"} (security.h), and,
 * when not "no", the restart policy "restart" (restart.h), with -v or
 * --tmpfs "mounts" (volume.h), and in a pod "pod" (the pod's name) or
 * "pod_infra": true (pod.h). */
#ifndef EDGEMIG_CONTAINER_CONTAINER_H
#define EDGEMIG_CONTAINER_CONTAINER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "state/state.h"
#include "util/config.h"
#include "util/error.h"

#define EM_NAME_MAX 63

/* [A-Za-z0-9][A-Za-z0-9_.-]{0,62}: safe as a path component and runc id. */
bool em_container_name_valid(const char *name);

struct em_container_paths {
        char *dir, *upper, *work, *rootfs, *bundle, *config, *spec, *log, *netns;
        char *runc_root;
        char *cgroup;    /* cgroupsPath for config.json, unique per root and name */
        char *host_veth; /* host side veth name, unique per root and name (<= 15 chars) */
};
/* runc_root is <root>/runc, or <dir>/EM_POD_MEMBER_RUNC_DIR where that
 * exists (a restored pod member's, checkpoint/pod_member.h). */
#define EM_POD_MEMBER_RUNC_DIR "runc"
int em_container_paths_init(const struct em_config *cfg, const char *name,
                            struct em_container_paths *p, em_error_t *err);
void em_container_paths_free(struct em_container_paths *p);
#define cleanup_container_paths __attribute__((cleanup(em_container_paths_free)))

struct em_run_opts {
        const char *name;
        const char *image;
        const char *ip;         /* "a.b.c.d[/len]" or NULL to allocate from the subnet */
        const char *subnet;     /* NULL: $EDGEMIG_SUBNET, em_host_service_range or 10.66.0.0/16 */
        const char *const *env; /* "K=V", NULL-terminated, may be NULL */
        const char *const *cmd; /* replaces the image's Cmd, NULL-terminated, may be NULL */
        uint64_t memory;        /* bytes, 0: unlimited */
        double cpus;            /* 0: unlimited */
        const char *restart;    /* restart policy (restart.h), NULL: "no" */
        const char *const *volumes; /* -v SRC:DST[:ro], NULL-terminated, may be NULL */
        const char *const *tmpfs;   /* --tmpfs DST[:size=N], NULL-terminated, may be NULL */
        /* Loosening or tightening the default security profile (security.h);
         * the host policy decides what is allowed. */
        const char *const *cap_add, *const *cap_drop; /* NULL-terminated, may be NULL */
        bool seccomp_unconfined;
        uint32_t pids_limit, nofile; /* 0: the host policy's default */
        /* Pods (pod.h): join pod NAME's namespaces and service IP (ip must
         * be NULL), or be pod NAME's infra container (pod_infra). */
        const char *pod;
        bool pod_infra;
};

/* Creates and starts a detached container. On failure nothing is left behind. */
int em_container_run(const struct em_config *cfg, const struct em_run_opts *o, em_error_t *err);
/* SIGTERM, then SIGKILL after timeout_s; then releases runc state, cgroups,
 * the overlay mount and the network namespace. Files stay until rm. */
int em_container_stop(const struct em_config *cfg, const char *name, int timeout_s,
                      em_error_t *err);
/* Starts a stopped (or created) container again on its writable layer:
 * sets up the overlay, network namespace and service IP as run does and
 * appends to the same log. A container whose process died is stopped first
 * (its runtime resources released). EBUSY if it is running or a migration
 * owns it; on failure it stays stopped. */
int em_container_start(const struct em_config *cfg, const char *name, em_error_t *err);
/* stop (if running) with timeout_s, then start. */
int em_container_restart(const struct em_config *cfg, const char *name, int timeout_s,
                         em_error_t *err);
/* Sends signal sig ("TERM", "SIGKILL", "9", ...) to the container's init.
 * The container's state follows what the process does: if it dies, it is
 * "stopped" and its restart policy applies (see restart.h). */
int em_container_kill(const struct em_config *cfg, const char *name, const char *sig,
                      em_error_t *err);
/* Parses a signal name (with or without SIG) or number 1..64. */
int em_signal_parse(const char *s, int *out, em_error_t *err);
/* Removes a container that migrated away and keeps its service IP reserved
 * on this host (state.h: em_state_ip_reserve). */
int em_container_rm_migrated(const struct em_config *cfg, const char *name, em_error_t *err);
/* This host's share of the fleet's service IPs, where `run` allocates from
 * (unless --ip or $EDGEMIG_SUBNET): "service_range" of <root>/network.json,
 * e.g. {"service_range": "10.66.1.0/24"}; *out NULL without that file. */
#define EM_NETWORK_CONF "network.json"
int em_host_service_range(const struct em_config *cfg, char **out, em_error_t *err);
/* Removes a stopped/created/checkpointed container (force: stops it first). */
int em_container_rm(const struct em_config *cfg, const char *name, bool force, em_error_t *err);
/* Array of inspect-like objects for every container; running ones whose
 * process died are reconciled to "stopped" first. */
int em_container_list(const struct em_config *cfg, json_t **out, em_error_t *err);
int em_container_inspect(const struct em_config *cfg, const char *name, json_t **out,
                         em_error_t *err);
/* Runs argv inside the running container with the given stdio fds. */
int em_container_exec(const struct em_config *cfg, const char *name, const char *const *argv,
                      int in_fd, int out_fd, int err_fd, int *exit_code, em_error_t *err);
/* Copies the log to out_fd, from its last `tail` lines (tail < 0: all of
 * it); with follow, keeps copying until the container stops running. */
int em_container_logs(const struct em_config *cfg, const char *name, bool follow, int64_t tail,
                      int out_fd, em_error_t *err);
/* Layer diff-ids used by any container of this root (for `image prune`).
 * Returns a NULL-terminated strv (free with em_strv_free). */
int em_container_layers_in_use(const struct em_config *cfg, char ***out, em_error_t *err);

/* ---- Building blocks, also used by checkpoint/restore and migration ---- */

/* Builds the spec JSON of a new container from the run options and the image. */
int em_container_spec_new(const struct em_run_opts *o, const char *image_name,
                          const char *manifest_digest, char *const *diff_ids, size_t n_layers,
                          const json_t *image_config, const char *ip, json_t **out,
                          em_error_t *err);

/* Prepares a container on this host without starting it: directories, the
 * overlay (lower = the store's dirs for spec's diff_ids, which must exist),
 * the network namespace with spec's service IP and routes, config.json.
 * An existing upper/ is kept (it may have been received by a migration).
 * Undo with em_container_release(). */
int em_container_prepare(const struct em_config *cfg, const char *name, const json_t *spec,
                         em_error_t *err);
/* The same; net_ready: keep the network namespace em_container_prewarm
 * made (fresh, without CRIU's lock rules) instead of making a new one. */
int em_container_prepare_with(const struct em_config *cfg, const char *name, const json_t *spec,
                              bool net_ready, em_error_t *err);
/* What of prepare needs neither the container's files nor its images, for
 * a migration's target to do before the freeze: the directories and, for
 * a container without its own user namespace (or pod), the network
 * namespace with the service IP and its routes (*net_ready then). On
 * failure nothing is left. Undo with em_container_release(). */
int em_container_prewarm(const struct em_config *cfg, const char *name, const json_t *spec,
                         bool *net_ready, em_error_t *err);
/* Tears down what prepare set up and runc left: runc state (runc delete -f),
 * the overlay mount and the network namespace. Idempotent. Keeps files. */
int em_container_release(const struct em_config *cfg, const char *name, em_error_t *err);
/* Removes <root>/containers/NAME entirely (after release). */
int em_container_remove_files(const struct em_config *cfg, const char *name, em_error_t *err);

/* Starts a detached log forwarder appending to log_path; *write_fd is the
 * pipe end to give the container as stdout and stderr. */
int em_logger_start(const char *log_path, int *write_fd, em_error_t *err);
/* Waits up to timeout_ms until no forwarder appends to log_path any more:
 * once the container's processes are gone, the last one reads to the end
 * of its pipe, writes it out and exits. false if one still runs. */
bool em_logger_wait_drained(const char *log_path, int timeout_ms);
/* Gives the pipe end write_fd to the root of the container in dir: in its
 * user namespace (dir's group is its range's first id, prepare.c), so that
 * it can reopen its stdout (/dev/stdout, /proc/1/fd/1), which the kernel
 * checks against the pipe's owner. Nothing to do without one. */
int em_logger_give(int write_fd, const char *dir, em_error_t *err);

/* argv prefix for runc of this root: {runc, --root, R, [--criu, C,] NULL}
 * with room for `extra` more entries (the caller fills them and the NULL). */
const char **em_runc_argv(const struct em_config *cfg, const struct em_container_paths *p,
                          bool with_criu, size_t extra, size_t *used);
/* Reads runc's view of a container: status ("running", "stopped", ...) and
 * pid. status "" and pid 0 if runc does not know it. */
int em_runc_state(const struct em_config *cfg, const struct em_container_paths *p, const char *name,
                  char **status, int *pid, em_error_t *err);
/* Writes JSON via tmp + rename, without fsync: for files that are
 * regenerated whenever needed (config.json, spec copies), where an fsync
 * would only add latency to checkpoint/restore. */
int em_json_write_fast(const char *path, const json_t *j, em_error_t *err);
/* Reads an integer pid file written by runc. */
int em_read_pid_file(const char *path, int *pid, em_error_t *err);

#endif
