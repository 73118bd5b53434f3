/* Setting a container up on a host without starting it, and tearing the
 * runtime resources down again. Shared by run, restore and migration. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/bundle.h"
#include "container/container.h"
#include "container/idmap.h"
#include "container/masks.h"
#include "container/nethook.h"
#include "container/netns.h"
#include "container/overlay.h"
#include "container/pod.h"
#include "container/security.h"
#include "container/volume.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/subprocess.h"

/* The directories above the state root must let anyone pass (o+x): runc's
 * init resolves the rootfs path as the container's root. Checked rather
 * than changed: they are not edgemig's. */
static int ancestors_searchable(const char *root, uint32_t uid, em_error_t *err)
{
        char path[PATH_MAX];
        struct stat st;

        if (snprintf(path, sizeof(path), "%s", root) >= (int)sizeof(path))
                return em_error_set(err, ENAMETOOLONG, "state root");
        for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
                *slash = '\0';
                const char *dir = path[0] ? path : "/";
                if (stat(dir, &st) == 0 && !(st.st_mode & S_IXOTH))
                        return em_error_set(err, EACCES,
                                            "%s (mode %04o) is not searchable by others: a "
                                            "container's root (host uid %u) must pass it to "
                                            "reach its rootfs; chmod o+x it, or use a state "
                                            "root below searchable directories",
                                            dir, (unsigned)(st.st_mode & 07777), uid);
                if (path[0] == '\0')
                        break;
        }
        return 0;
}

/* runc's init resolves the rootfs path as the container's root, an
 * unprivileged host uid: it may pass through the state root and containers/
 * (search only), and into its own directory by its group; nobody else. */
static int open_path_to_rootfs(const struct em_config *cfg, const struct em_container_paths *p,
                               const struct em_idrange *ids, em_error_t *err)
{
        cleanup_free char *containers = em_config_path(cfg, "containers");
        struct stat st;

        if (containers == NULL)
                return em_error_set(err, ENOMEM, "container directories");
        if (ancestors_searchable(cfg->root, ids->base, err) < 0)
                return -1;
        if (chmod(cfg->root, 0711) < 0 || chmod(containers, 0711) < 0 ||
            chown(p->dir, 0, ids->base) < 0 || chmod(p->dir, 0710) < 0)
                return em_error_set(err, errno, "opening the path to %s for its user namespace",
                                    p->rootfs);
        /* The rootfs root is the upper dir's: the container's root owns it. */
        if (lstat(p->upper, &st) == 0 &&
            (st.st_uid < ids->base || st.st_uid - ids->base >= ids->size) &&
            chown(p->upper, ids->base, ids->base) < 0)
                return em_error_set(err, errno, "re-owning %s", p->upper);
        return 0;
}

static int make_dirs(const struct em_config *cfg, const struct em_container_paths *p,
                     const struct em_security_profile *prof, em_error_t *err)
{
        cleanup_free char *netns_dir = em_config_path(cfg, "netns");
        const char *dirs[] = {p->dir, p->upper, p->work, p->rootfs, p->bundle, netns_dir};

        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
                if (dirs[i] == NULL)
                        return em_error_set(err, ENOMEM, "container directories");
                if (em_mkdir_p(dirs[i], 0700, err) < 0)
                        return -1;
        }
        /* The rootfs root inherits the upper dir's mode: images expect 0755. */
        chmod(p->upper, 0755);
        chmod(p->rootfs, 0755);
        return prof->ids.size ? open_path_to_rootfs(cfg, p, &prof->ids, err) : 0;
}

/* The store's directories of spec's layers, bottom first; all must exist. */
static int layer_dirs(const struct em_config *cfg, const json_t *spec, char ***out, size_t *n,
                      em_error_t *err)
{
        json_t *ids = json_object_get(spec, "diff_ids");
        cleanup_store struct em_store *store = NULL;
        size_t count = json_array_size(ids), i;
        json_t *v;

        if (count == 0)
                return em_error_set(err, EINVAL, "the container spec names no layers");
        if (em_store_open(cfg->root, &store, err) < 0)
                return -1;
        cleanup_strv char **dirs = calloc(count + 1, sizeof(char *));
        if (dirs == NULL)
                return em_error_set(err, ENOMEM, "layer list");
        json_array_foreach(ids, i, v)
        {
                const char *id = json_string_value(v);
                if (id == NULL || !em_digest_valid(id))
                        return em_error_set(err, EINVAL, "invalid layer diff-id in spec");
                if (!em_store_has_layer(store, id))
                        return em_error_set(err, ENOENT, "layer %s is not in the store", id);
                if ((dirs[i] = em_store_layer_path(store, id)) == NULL)
                        return em_error_set(err, ENOMEM, "layer list");
        }
        *out = steal_pointer(&dirs);
        *n = count;
        return 0;
}

static int mount_rootfs(const struct em_config *cfg, const struct em_container_paths *p,
                        const json_t *spec, const struct em_idrange *ids, em_error_t *err)
{
        cleanup_strv char **dirs = NULL;
        cleanup_free char *stage = em_path_join(p->dir, "layers");
        size_t n = 0;

        if (em_is_mountpoint(p->rootfs))
                return 0;
        if (stage == NULL)
                return em_error_set(err, ENOMEM, "layer list");
        if (layer_dirs(cfg, spec, &dirs, &n, err) < 0)
                return -1;
        if (ids->size == 0)
                return em_overlay_mount(dirs, n, p->upper, p->work, p->rootfs, err);
        return em_idmap_overlay(dirs, n, p->upper, p->work, p->rootfs, stage, ids, err);
}

/* Options runc passes to CRIU for every dump and restore of this container
 * (runc has no flags for them). skip-in-flight: a client connection still in
 * the listen queue (not yet accepted) is left out instead of failing the
 * dump; its SYN is retransmitted and reaches the restored listener. */
static const char criu_conf[] = "# written by edgemig\nskip-in-flight\n";
/* network-lock=nftables: CRIU locks the network namespace at the dump and
 * unlocks it at the end of the restore through libnftables, in its own
 * process, instead of running iptables-restore and ip6tables-restore at
 * each end: the restore's unlock took 58 ms p50 that way and 12 ms this
 * way, the dump's lock 10 and 4, at load 7-9 (docs/evaluation.md). The
 * restore names the table after the dump's run id (its inventory), so it
 * unlocks what the dump locked, as the iptables chain was. Not for a pod's
 * containers: their shared namespace is locked and flushed as the
 * iptables chain CRIU (netns.h, docs/pods.md). */
static const char criu_conf_nft[] = "network-lock=nftables\n";

/* The masked directories as external mounts (container/masks.h): the
 * tmpfs they map to is mounted here first, since a restore binds it.
 * Not for a pod's containers, which CRIU dumps and restores together. */
static int write_masks(int fd, em_error_t *err)
{
        cleanup_free char *lines = em_masks_criu_conf(EM_MASK_DIR);

        if (lines == NULL)
                return em_error_set(err, ENOMEM, "criu.conf");
        if (em_masks_mount_at(EM_MASK_DIR, err) < 0)
                return -1;
        return em_write_all(fd, lines, strlen(lines), err);
}

static int write_criu_conf(const char *conf, const json_t *spec, em_error_t *err)
{
        cleanup_close int fd =
            open(conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        bool alone = em_json_str(spec, "pod") == NULL;

        if (fd < 0)
                return em_error_set(err, errno, "creating %s", conf);
        /* Like config.json: rewritten whenever the bundle is, no fsync. */
        if (em_write_all(fd, criu_conf, sizeof(criu_conf) - 1, err) < 0 ||
            (alone && em_write_all(fd, criu_conf_nft, sizeof(criu_conf_nft) - 1, err) < 0) ||
            (alone && write_masks(fd, err) < 0))
                return em_error_wrap(err, "writing %s", conf);
        return 0;
}

static int write_bundle(const struct em_config *cfg, const struct em_container_paths *p,
                        const char *name, const json_t *spec,
                        const struct em_security_profile *prof, int join_pid, em_error_t *err)
{
        cleanup_free char *conf = em_path_join(p->bundle, "criu.conf");
        cleanup_json json_t *hook = NULL;
        struct em_bundle_params bp = {.rootfs = p->rootfs,
                                      .netns = p->netns,
                                      .profile = prof,
                                      .cgroup = p->cgroup,
                                      .hostname = name,
                                      .criu_config = conf,
                                      .join_pid = join_pid};
        cleanup_json json_t *config = NULL;

        if (conf == NULL)
                return em_error_set(err, ENOMEM, "bundle");
        /* A pod's members share its UTS namespace: one hostname, the pod's. */
        if (join_pid > 0)
                bp.hostname = em_json_str(spec, "pod");
        if (prof->ids.size > 0 && join_pid <= 0 &&
            em_nethook_json(p->netns, p->host_veth, em_json_str(spec, "ip"), &hook, err) < 0)
                return -1;
        bp.netns_hook = hook;
        if (write_criu_conf(conf, spec, err) < 0)
                return -1;
        if (em_bundle_config(spec, &bp, &config, err) < 0)
                return -1;
        if (em_mounts_apply(cfg, spec, config, err) < 0)
                return -1;
        if (em_json_write_fast(p->config, config, err) < 0)
                return -1;
        return em_json_write_fast(p->spec, spec, err);
}

/* A pod member's spec with its pod's address and ID range (pod.h). */
static int pod_join(const struct em_config *cfg, const json_t *spec, json_t **member, int *join_pid,
                    em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;

        *join_pid = 0;
        if (em_json_str(spec, "pod") == NULL || em_pod_spec_is_infra(spec))
                return 0;
        if ((*member = json_deep_copy(spec)) == NULL)
                return em_error_set(err, ENOMEM, "pod member spec");
        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        return em_pod_member_join(st, *member, join_pid, err);
}

static int prepare_steps(const struct em_config *cfg, const struct em_container_paths *p,
                         const char *name, const json_t *spec, bool net_ready, em_error_t *err)
{
        cleanup_json json_t *member = NULL;
        struct em_security_profile prof;
        int join_pid;

        if (pod_join(cfg, spec, &member, &join_pid, err) < 0)
                return -1;
        if (member != NULL)
                spec = member;
        const char *ip = em_json_str(spec, "ip");
        if (ip == NULL)
                return em_error_set(err, EINVAL, "the container spec has no service IP");
        if (em_security_profile_of(cfg, spec, &prof, err) < 0)
                return -1;
        if (make_dirs(cfg, p, &prof, err) < 0 || mount_rootfs(cfg, p, spec, &prof.ids, err) < 0)
                return -1;
        /* A namespace left by an earlier attempt may hold CRIU's lock rules:
         * always start from a fresh one (unless it is one, from prewarm). */
        if (net_ready && prof.ids.size == 0 && em_path_exists(p->netns))
                return write_bundle(cfg, p, name, spec, &prof, join_pid, err);
        if (em_path_exists(p->netns) && em_netns_teardown(p->netns, p->host_veth, err) < 0)
                return -1;
        /* In a user namespace, the network hook wires it once runc made it. */
        if (prof.ids.size == 0 && em_netns_setup(p->netns, p->host_veth, ip, err) < 0)
                return -1;
        return write_bundle(cfg, p, name, spec, &prof, join_pid, err);
}

int em_container_prepare_with(const struct em_config *cfg, const char *name, const json_t *spec,
                              bool net_ready, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (prepare_steps(cfg, &p, name, spec, net_ready, err) < 0) {
                em_error_t e2 = NULL;
                if (em_container_release(cfg, name, &e2) < 0)
                        em_log_warn("cleaning up %s: %s", name, em_error_msg(e2));
                em_error_free(&e2);
                return em_error_wrap(err, "preparing container %s", name);
        }
        return 0;
}

int em_container_prepare(const struct em_config *cfg, const char *name, const json_t *spec,
                         em_error_t *err)
{
        return em_container_prepare_with(cfg, name, spec, false, err);
}

/* What prewarm can do before the container's files are final: its
 * directories, and for a container without a user namespace of its own
 * its network namespace with the service IP (the `ip` runs that cost
 * most of prepare). */
static int prewarm_steps(const struct em_config *cfg, const struct em_container_paths *p,
                         const json_t *spec, bool *net_ready, em_error_t *err)
{
        struct em_security_profile prof;
        const char *ip = em_json_str(spec, "ip");

        if (ip == NULL)
                return em_error_set(err, EINVAL, "the container spec has no service IP");
        if (em_security_profile_of(cfg, spec, &prof, err) < 0 || make_dirs(cfg, p, &prof, err) < 0)
                return -1;
        if (prof.ids.size > 0)
                return 0;
        if (em_path_exists(p->netns) && em_netns_teardown(p->netns, p->host_veth, err) < 0)
                return -1;
        if (em_netns_setup(p->netns, p->host_veth, ip, err) < 0)
                return -1;
        *net_ready = true;
        return 0;
}

int em_container_prewarm(const struct em_config *cfg, const char *name, const json_t *spec,
                         bool *net_ready, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        *net_ready = false;
        /* A pod member joins its pod's namespaces at the restore. */
        if (em_json_str(spec, "pod") != NULL)
                return 0;
        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (prewarm_steps(cfg, &p, spec, net_ready, err) < 0) {
                em_error_t e2 = NULL;
                *net_ready = false;
                if (em_container_release(cfg, name, &e2) < 0)
                        em_log_warn("cleaning up %s: %s", name, em_error_msg(e2));
                em_error_free(&e2);
                return em_error_wrap(err, "pre-warming container %s", name);
        }
        return 0;
}

static int runc_delete(const struct em_config *cfg, const struct em_container_paths *p,
                       const char *name, em_error_t *err)
{
        cleanup_free const char **argv = NULL;
        cleanup_proc_result struct em_proc_result res = {0};
        struct em_proc_spec spec;
        size_t n;

        /* Nothing to delete: skip a runc run (the common case after a dump). */
        cleanup_free char *state_dir = em_path_join(p->runc_root, name);
        if (state_dir && !em_path_exists(state_dir))
                return 0;
        if ((argv = em_runc_argv(cfg, p, false, 3, &n)) == NULL)
                return em_error_set(err, ENOMEM, "runc delete");
        argv[n++] = "delete";
        argv[n++] = "--force";
        argv[n++] = name;
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = 30000;
        em_error_t e = NULL;
        if (em_proc_run(&spec, &res, &e) < 0) {
                if (res.err && strstr(res.err, "does not exist")) {
                        em_error_free(&e);
                        return 0;
                }
                em_error_move(err, &e);
                return -1;
        }
        return 0;
}

int em_container_release(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (runc_delete(cfg, &p, name, err) < 0 || em_overlay_umount(p.rootfs, err) < 0 ||
            em_netns_teardown(p.netns, p.host_veth, err) < 0)
                return em_error_wrap(err, "releasing container %s", name);
        return 0;
}

int em_container_remove_files(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (em_is_mountpoint(p.rootfs))
                return em_error_set(err, EBUSY, "%s is still mounted", p.rootfs);
        if (em_rm_rf(p.dir, err) < 0)
                return em_error_wrap(err, "removing container %s", name);
        return 0;
}
