/* The source's half of the pre-check (precheck.h): what this host knows
 * about the container, then one "check" session with the target. */
#include "migrate/source/precheck.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "checkpoint/ckpt_info.h"
#include "checkpoint/features.h"
#include "checkpoint/lazy_fit.h"
#include "checkpoint/ckpt_refuse.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/memusage.h"
#include "container/pod.h"
#include "container/volume.h"
#include "migrate/common/proto.h"
#include "migrate/common/report.h"
#include "migrate/common/session.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/pod_source.h"
#include "store/store.h"
#include "state/state.h"
#include "transfer/tls.h"
#include "util/clock.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/subprocess.h"

#define MAX_PIDS         4096
#define BW_MAX_AGE_MS    (10 * 60 * 1000)
#define MEM_RATIO        0.5 /* assumed zstd ratio of memory pages (stated in the report) */
#define RESTORE_FIXED_MS 700 /* checkpoint + restore of a small service here (platform facts) */

struct pre {
        const struct em_config *cfg;
        const char *name;
        const struct em_migrate_opts *o;
        json_t *report, *problems, *notes;
        json_t *spec;
        struct em_image_info *image;
        em_conn_t *conn;
        pid_t pids[MAX_PIDS];
        size_t npids;
        pid_t init;
        uint64_t upper_bytes, memory_bytes, dump_bytes;
        int64_t rtt_ms;
        bool in_pod;      /* one container of a pod's pre-check */
        bool pod_sum;     /* the pod's sum (its estimate is the whole pod's) */
        bool stop_copy;   /* ... stop-and-copy: its layers and memory cross frozen */
        json_t *pod_held; /* unix sockets the pod's containers hold: not external */
};

static void add(json_t *list, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(json_t *list, const char *fmt, ...)
{
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        json_array_append_new(list, json_string(buf));
}

static bool ns_of(pid_t pid, char out[64])
{
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
        ssize_t n = readlink(path, out, 63);
        if (n <= 0)
                return false;
        out[n] = '\0';
        return true;
}

/* Every process in the PID namespace of the container's init: its tree and
 * what `exec` started in it (whose parent is runc, outside). */
static size_t collect_pids(pid_t init, pid_t *out, size_t max)
{
        cleanup_dir DIR *d = opendir("/proc");
        char want[64], ns[64];
        struct dirent *de;
        size_t n = 0;

        if (d == NULL || init <= 0 || !ns_of(init, want))
                return 0;
        while ((de = readdir(d)) != NULL && n < max) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end == '\0' && pid > 0 && ns_of((pid_t)pid, ns) && strcmp(ns, want) == 0)
                        out[n++] = (pid_t)pid;
        }
        return n;
}

/* CRIU's lazy dump of a large reservation (checkpoint/lazy_fit.h): a
 * problem where the operator asked for it, a note where pre-copy might
 * choose it (it would hand off with a plain final dump instead). A pod
 * never dumps lazily (pre-copy or stop-and-copy only): nothing to say. */
static void lazy_fit(struct pre *p)
{
        cleanup_error em_error_t e = NULL;
        bool asked = p->o->mode == EM_MIGRATE_POSTCOPY || p->o->mode == EM_MIGRATE_HYBRID;

        if (p->in_pod || p->o->mode == EM_MIGRATE_STOP_AND_COPY ||
            p->o->mode == EM_MIGRATE_PREPARE ||
            em_lazy_dump_refuse(p->pids, p->npids, p->name, &e) == 0)
                return;
        if (asked)
                add(p->problems, "%s", em_error_msg(e));
        else
                add(p->notes, "a hybrid hand-off would be a plain final dump: %s", em_error_msg(e));
}

/* Running, and its processes and memory. */
static int local_process(struct pre *p, em_error_t *err)
{
        cleanup_free char *status = NULL;
        int pid = 0;

        if (p->o->ops->state(p->cfg, p->name, &status, &pid, err) < 0)
                return -1;
        if (strcmp(status, "running") != 0) {
                add(p->problems, "%s is not running here (%s): only a running container migrates",
                    p->name, *status ? status : "unknown to runc");
                return 0;
        }
        p->init = pid;
        p->npids = collect_pids(pid, p->pids, MAX_PIDS);
        cleanup_error em_error_t pk = NULL;
        const struct em_ckpt_procs procs = {pid, p->pids, p->npids};
        if (em_ckpt_refuse(p->cfg, p->name, &procs, &pk) < 0)
                add(p->problems, "%s", em_error_msg(pk));
        lazy_fit(p);
        /* Proportional sizes: memory several processes share counts once. */
        struct em_memusage mem = {0};
        for (size_t i = 0; i < p->npids; i++) {
                cleanup_error em_error_t e = NULL;
                /* Any but init may have exited since it was listed. */
                if (em_memusage_add_pid(p->pids[i], &mem, &e) < 0 && p->pids[i] == pid)
                        add(p->notes, "memory not measured, the estimate leaves it out: %s",
                            em_error_msg(e));
        }
        p->memory_bytes = mem.resident;
        p->dump_bytes = mem.dumped;
        return 0;
}

/* `ss -xanH` (in the network namespace of netns, or ours if NULL) into
 * peers: local inode -> peer inode. */
static int unix_peers(const char *netns, json_t *peers, em_error_t *err)
{
        cleanup_free char *netarg = NULL;
        cleanup_proc_result struct em_proc_result r = {0};
        struct em_proc_spec spec;
        char *save = NULL, ino[32], peer[32];

        if (netns != NULL && asprintf(&netarg, "--net=%s", netns) < 0)
                return em_error_set(err, ENOMEM, "ss");
        const char *in_ns[] = {"nsenter", netarg, "ss", "-xanH", NULL};
        const char *here[] = {"ss", "-xanH", NULL};
        em_proc_spec_init(&spec, netns ? in_ns : here);
        spec.timeout_ms = 5000;
        if (em_proc_run(&spec, &r, err) < 0)
                return -1;
        for (char *l = strtok_r(r.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                if (sscanf(l, "%*s %*s %*s %*s %*s %31s %*s %31s", ino, peer) == 2)
                        json_object_set_new(peers, ino, json_string(peer));
        return 0;
}

/* Whether fd of pid is an AF_UNIX socket: a copy of it (pidfd_getfd) is
 * asked; TCP and other families are CRIU's business and fine. */
static bool unix_fd(int pidfd, int fd)
{
        cleanup_close int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
        int domain = 0;
        socklen_t len = sizeof(domain);

        return copy >= 0 && getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
               domain == AF_UNIX;
}

/* The unix socket inodes the container's processes hold. */
static void held_sockets(const struct pre *p, json_t *held)
{
        for (size_t i = 0; i < p->npids; i++) {
                char dir[64], link[64], path[600];
                snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)p->pids[i]);
                cleanup_dir DIR *d = opendir(dir);
                cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, p->pids[i], 0);
                struct dirent *de;
                unsigned long ino;
                while (d != NULL && pidfd >= 0 && (de = readdir(d)) != NULL) {
                        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                        ssize_t n = readlink(path, link, sizeof(link) - 1);
                        if (n <= 0)
                                continue;
                        link[n] = '\0';
                        if (sscanf(link, "socket:[%lu]", &ino) != 1 ||
                            !unix_fd(pidfd, atoi(de->d_name)))
                                continue;
                        snprintf(path, sizeof(path), "%lu", ino);
                        json_object_set_new(held, path, json_true());
                }
        }
}

/* Unix sockets connected to a peer outside the container (a host daemon's
 * socket, or one handed in by `exec`): CRIU cannot dump them. */
static void external_sockets(struct pre *p, const struct em_container_paths *cp)
{
        cleanup_json json_t *held = json_object(), *peers = json_object();
        em_error_t e = NULL;
        const char *k;
        json_t *v;

        if (held == NULL || peers == NULL)
                return;
        held_sockets(p, held);
        if (unix_peers(cp->netns, peers, &e) < 0) {
                add(p->notes, "external sockets not checked: %s", em_error_msg(e));
                em_error_free(&e);
                return;
        }
        json_object_foreach(held, k, v)
        {
                const char *peer = em_json_str(peers, k);
                if (peer == NULL)
                        add(p->problems,
                            "unix socket %s was created outside the container (handed in, "
                            "e.g. as stdio of `exec`): CRIU cannot dump an external socket",
                            k);
                else if (peer != NULL && strcmp(peer, "0") != 0 && strcmp(peer, "*") != 0 &&
                         json_object_get(held, peer) == NULL &&
                         json_object_get(p->pod_held, peer) == NULL)
                        add(p->problems,
                            "unix socket %s is connected to socket %s outside the container: "
                            "CRIU cannot dump an external socket",
                            k, peer);
        }
}

/* A named volume moves with the containers that mount it: one, or a
 * pod's (its members and infra, as the pod session moves them). */
static int volumes_movable(const struct pre *p, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_strv char **names = NULL;
        const char *pod = em_json_str(p->spec, "pod") ?: p->name;
        size_t n = 0;

        if (!p->in_pod)
                return em_volumes_movable(p->cfg, p->spec, p->name, err);
        if (em_state_open(p->cfg->root, &st, err) < 0 ||
            em_pod_members(st, pod, false, &names, err) < 0)
                return -1;
        while (names[n] != NULL)
                n++;
        if (em_strv_push_unique(&names, &n, pod, strlen(pod)) < 0)
                return em_error_set(err, ENOMEM, "pre-check");
        return em_volumes_movable_among(p->cfg, p->spec, names, err);
}

/* Named volumes travel with the container (counted with its writable
 * layer); a bind mount needs the same path allowed on the target, which
 * the target's answer judges (em_mounts_admit). */
static int volume_bytes(struct pre *p, em_error_t *err)
{
        json_t *mounts = json_object_get(p->spec, "mounts"), *m;
        uint64_t bytes, entries;
        size_t i, binds = 0;

        em_error_t e = NULL;

        if (volumes_movable(p, &e) < 0)
                add(p->problems, "%s", em_error_msg(e));
        em_error_free(&e);
        json_array_foreach(mounts, i, m)
        {
                const char *name = em_spec_volume(p->spec, i);
                cleanup_free char *dir = name ? em_volume_path(p->cfg, name) : NULL;
                binds += em_json_str(m, "source") != NULL;
                if (dir == NULL || !em_path_exists(dir))
                        continue;
                if (em_ckpt_upper_size(dir, &bytes, &entries, err) < 0)
                        return -1;
                p->upper_bytes += bytes;
                add(p->notes, "volume %s travels with it (%llu bytes)", name,
                    (unsigned long long)bytes);
        }
        if (binds == 0 && !p->in_pod)
                add(p->notes, "no bind mounts");
        if (binds > 0 && p->in_pod)
                add(p->notes,
                    "%s has %zu bind mount(s): the pod needs the same paths allowed on the target",
                    p->name, binds);
        return 0;
}

static int local_checks(struct pre *p, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths cp = {0};
        cleanup_store struct em_store *store = NULL;
        uint64_t entries = 0;
        const char *image;

        if (em_container_spec_get(p->cfg, p->name, &p->spec, err) < 0 ||
            (!p->in_pod && em_pod_refuse_alone(p->spec, "migrating", err) < 0) ||
            em_container_paths_init(p->cfg, p->name, &cp, err) < 0)
                return -1;
        image = em_json_str(p->spec, "image_digest");
        if (image == NULL || *image == '\0')
                image = em_json_str(p->spec, "image");
        if (em_store_open(p->cfg->root, &store, err) < 0 ||
            em_store_image_get(store, image ? image : "", &p->image, err) < 0)
                return em_error_wrap(err, "image of container %s", p->name);
        if (local_process(p, err) < 0)
                return -1;
        if (em_path_exists(cp.upper) &&
            em_ckpt_upper_size(cp.upper, &p->upper_bytes, &entries, err) < 0)
                return -1;
        if (volume_bytes(p, err) < 0)
                return -1;
        /* A pod's are checked once all its sockets are known (pod_sockets). */
        if (p->npids > 0 && !p->in_pod)
                external_sockets(p, &cp);
        return 0;
}

static int connect_target(struct pre *p, em_error_t *err)
{
        cleanup_free char *peer = NULL;
        int rc = p->o->ops->connect(p->o->tls, p->o->target, p->o->connect_timeout_ms, &p->conn,
                                    &peer, err);

        if (rc < 0)
                return em_error_wrap(err, "connecting to target %s (is edgemigd running there?)",
                                     p->o->target);
        em_conn_set_timeout(p->conn, p->o->io_timeout_ms);
        return 0;
}

/* HELLO of mode "check": the target's decision on versions, CRIU and CPU.
 * *refused: it said no (the reason is a problem of the report). */
static int hello(struct pre *p, bool *refused, em_error_t *err)
{
        cleanup_hello struct em_hello h = {0};
        cleanup_free char *reason = NULL;
        bool ok = false;
        int64_t t0 = em_mono_ms();

        if (em_session_local_hello(p->cfg, &h, err) < 0 || em_session_new(h.session, err) < 0)
                return -1;
        h.container = strdup(p->name);
        h.mode = strdup(EM_PRECHECK_MODE);
        if (h.container == NULL || h.mode == NULL)
                return em_error_wrap(err, "building HELLO");
        if (em_proto_hello(p->conn, &h, p->o->target, &ok, &reason, err) < 0)
                return -1;
        p->rtt_ms = em_mono_ms() - t0;
        *refused = !ok;
        if (!ok)
                add(p->problems, "the target refuses: %s", reason ? reason : "no reason given");
        em_conn_set_session(p->conn, em_frame_session_tag(h.session));
        return 0;
}

static uint64_t blob_size(const struct pre *p, const char *digest)
{
        cleanup_free char *path = NULL;
        struct stat st;
        const char *hex = em_digest_hex(digest);

        if (hex == NULL || asprintf(&path, "%s/blobs/sha256/%s", p->cfg->root, hex) < 0 ||
            stat(path, &st) < 0)
                return 0;
        return (uint64_t)st.st_size;
}

static uint64_t all_blob_bytes(const struct pre *p)
{
        uint64_t n =
            blob_size(p, p->image->manifest_digest) + blob_size(p, p->image->config_digest);

        for (size_t i = 0; i < p->image->n_layers; i++)
                n += blob_size(p, p->image->layer_digests[i]);
        return n;
}

/* The plan, then the link probe; *ans is the target's answer, *probe_ms the
 * time from the probe's first byte to the answer. */
static json_t *plan_one(const struct pre *p, uint64_t blob_bytes)
{
        return json_pack("{s:O, s:o, s:{s:I, s:I, s:I}}", "spec", p->spec, "image",
                         em_proto_image_plan(p->image), "need", "upper_bytes",
                         (json_int_t)p->upper_bytes, "memory_bytes", (json_int_t)p->memory_bytes,
                         "layers_bytes_hint", (json_int_t)blob_bytes);
}

static int exchange(struct pre *p, const json_t *plan, json_t **ans, int64_t *probe_ms,
                    em_error_t *err)
{
        cleanup_free uint8_t *buf = malloc(EM_PRECHECK_PROBE);

        if (buf == NULL || plan == NULL)
                return em_error_set(err, ENOMEM, "pre-check");
        /* Random bytes: the link's rate, not the compressor's. */
        for (size_t off = 0; off < EM_PRECHECK_PROBE;) {
                ssize_t n = getrandom(buf + off, EM_PRECHECK_PROBE - off, 0);
                if (n <= 0)
                        return em_error_set(err, errno, "getrandom");
                off += (size_t)n;
        }
        if (em_proto_send_json(p->conn, EM_FRAME_LAYERS_HAVE, plan, err) < 0)
                return em_error_wrap(err, "pre-check plan");
        int64_t t0 = em_mono_ms();
        if (em_conn_send(p->conn, EM_FRAME_ROUND_END, 0, 0, buf, EM_PRECHECK_PROBE, 0, err) < 0 ||
            em_proto_recv_json(p->conn, EM_FRAME_LAYERS_HAVE, ans, err) < 0)
                return em_error_wrap(err, "pre-check with %s", p->o->target);
        *probe_ms = em_mono_ms() - t0;
        return 0;
}

static const char *probe_status(const json_t *features, const char *name)
{
        size_t i;
        json_t *x;

        json_array_foreach(json_object_get(features, "probes"), i, x)
        {
                if (strcmp(em_json_str(x, "name") ?: "", name) == 0)
                        return em_json_str(x, "status");
        }
        return NULL;
}

/* What this host has and the target lacks; lazy modes need userfaultfd. */
static void compare_features(struct pre *p, const json_t *theirs, em_error_t *err)
{
        cleanup_features struct em_features *f = NULL;
        bool lazy = p->o->mode == EM_MIGRATE_POSTCOPY || p->o->mode == EM_MIGRATE_HYBRID ||
                    p->o->mode == EM_MIGRATE_AUTO;

        if (em_features_probe(p->cfg, true, &f, err) < 0) {
                add(p->notes, "features not compared: %s", em_error_msg(*err));
                em_error_free(err);
                return;
        }
        for (size_t i = 0; i < em_features_count(f); i++) {
                const struct em_feature *x = em_features_at(f, i);
                const char *st = probe_status(theirs, x->name);
                if (x->status != EM_FEATURE_OK || st == NULL || strcmp(st, "ok") == 0)
                        continue;
                if (lazy && strcmp(x->name, "userfaultfd") == 0)
                        add(p->problems,
                            "--mode %s needs lazy pages: the target's userfaultfd "
                            "probe is %s (use --mode precopy)",
                            em_migrate_mode_name(p->o->mode), st);
                else
                        add(p->notes, "the target's %s probe is %s (ok here)", x->name, st);
        }
}

/* The ratio of the level --compress auto would pick on this link, measured
 * on a sample of the container's memory as the migration does; *level -1
 * and MEM_RATIO when no sample could be read. */
static double memory_ratio(const struct pre *p, double bps, int *level)
{
        struct em_compress_calibration cal;
        em_error_t e = NULL;

        *level = -1;
        if (p->init <= 0 || em_sync_calibrate(p->init, &cal, &e) < 0) {
                em_error_free(&e);
                return MEM_RATIO;
        }
        *level = em_compress_choose(bps, &cal);
        for (int i = 0; i < cal.n; i++)
                if (cal.s[i].level == *level)
                        return cal.s[i].ratio;
        return 1.0;
}

static json_t *estimate(struct pre *p, const json_t *ans, int64_t probe_ms)
{
        int level;
        uint64_t layers = 0;
        size_t i;
        json_t *d;

        json_array_foreach(json_object_get(ans, "missing"), i, d) layers +=
            blob_size(p, json_string_value(d));
        double secs = (double)(probe_ms > p->rtt_ms ? probe_ms - p->rtt_ms : 1) / 1000.0;
        double bps = EM_PRECHECK_PROBE / secs;
        double ratio = memory_ratio(p, bps, &level);
        double mem_wire = (double)p->dump_bytes * ratio;
        double transfer = (double)(layers + p->upper_bytes) + mem_wire;
        double recent = em_report_peer_bandwidth(p->cfg->root, p->o->target, BW_MAX_AGE_MS);
        /* A pod's writable layers cross in its pre-copy rounds, as its
         * memory does (docs/pods.md); with stop-and-copy both cross while
         * it is frozen. */
        double frozen =
            p->pod_sum && p->stop_copy ? ((double)p->upper_bytes + mem_wire) / bps * 1000 : 0;
        json_t *link =
            json_pack("{s:I, s:f}", "rtt_ms", (json_int_t)p->rtt_ms, "bandwidth_bps", bps * 8);
        if (link != NULL && recent > 0)
                json_object_set_new(link, "recent_bandwidth_bps", json_real(recent * 8));
        json_object_set_new(p->report, "link", link);
        return json_pack(
            "{s:I, s:I, s:I, s:f, s:i, s:I, s:I, s:I}", "layers_bytes", (json_int_t)layers,
            "upper_bytes", (json_int_t)p->upper_bytes, "memory_bytes", (json_int_t)p->dump_bytes,
            "memory_ratio", ratio, "compress_level", level, "transfer_bytes", (json_int_t)transfer,
            "handoff_ms", (json_int_t)(3 * p->rtt_ms + transfer / bps * 1000 + RESTORE_FIXED_MS),
            "downtime_ms", (json_int_t)(2 * p->rtt_ms + frozen + RESTORE_FIXED_MS));
}

static int remote_checks(struct pre *p, const json_t *plan, em_error_t *err)
{
        cleanup_json json_t *ans = NULL;
        bool refused = false;
        int64_t probe_ms = 0;
        size_t i;
        json_t *v;

        if (connect_target(p, err) < 0 || hello(p, &refused, err) < 0)
                return -1;
        if (refused)
                return 0;
        if (exchange(p, plan, &ans, &probe_ms, err) < 0)
                return -1;
        json_array_foreach(json_object_get(ans, "problems"), i, v)
        {
                if (json_is_string(v))
                        add(p->problems, "%.400s", json_string_value(v));
        }
        json_object_set_new(p->report, "target_host",
                            json_pack("{s:I, s:I}", "disk_free_bytes",
                                      (json_int_t)em_json_int(ans, "disk_free_bytes", 0),
                                      "mem_available_bytes",
                                      (json_int_t)em_json_int(ans, "mem_available_bytes", 0)));
        compare_features(p, json_object_get(ans, "features"), err);
        json_object_set_new(p->report, "estimate", estimate(p, ans, probe_ms));
        return 0;
}

static void pre_free(struct pre *p)
{
        em_conn_free(&p->conn);
        em_image_info_free(&p->image);
        json_decref(p->spec);
}

/* The pod's containers (members, then the infra, as a pod session's plan
 * lists them): every member, running or not, so one that does not run is
 * a problem rather than left behind. */
static int pod_containers(const struct pre *base, struct pre **out, size_t *n, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_strv char **names = NULL;
        size_t k = 0;

        if (em_state_open(base->cfg->root, &st, err) < 0 ||
            em_pod_members(st, base->name, false, &names, err) < 0)
                return -1;
        while (names[k] != NULL)
                k++;
        if (k == 0)
                return em_error_set(err, EINVAL, "pod %s has no members to migrate", base->name);
        struct pre *c = calloc(k + 1, sizeof(*c));
        if (c == NULL)
                return em_error_set(err, ENOMEM, "pre-check of pod %s", base->name);
        for (size_t i = 0; i <= k; i++) {
                c[i] = *base;
                c[i].in_pod = true;
                c[i].name = i < k ? strdup(names[i]) : strdup(base->name);
        }
        *out = c;
        *n = k + 1;
        return 0;
}

/* The pod session's plan ({"spec", "image", "pod": {"members"}}) and the
 * sum of what it needs. */
static json_t *plan_pod(const struct pre *c, size_t n, const struct pre *sum)
{
        uint64_t blobs = 0;
        json_t *members = json_array();

        for (size_t i = 0; i < n; i++) {
                blobs += all_blob_bytes(&c[i]);
                if (i + 1 < n)
                        json_array_append_new(members,
                                              json_pack("{s:O, s:o}", "spec", c[i].spec, "image",
                                                        em_proto_image_plan(c[i].image)));
        }
        json_t *plan = plan_one(&c[n - 1], blobs);
        json_t *need = json_object_get(plan, "need");
        json_object_set_new(need, "upper_bytes", json_integer((json_int_t)sum->upper_bytes));
        json_object_set_new(need, "memory_bytes", json_integer((json_int_t)sum->memory_bytes));
        json_object_set_new(plan, "pod", json_pack("{s:o}", "members", members));
        return plan;
}

/* The infra's entry takes the pod's sums; memory is sampled for its ratio
 * in the container that dumps the most. */
static void pod_sum(struct pre *c, size_t n, struct pre *sum)
{
        uint64_t most = 0;

        sum->upper_bytes = sum->memory_bytes = sum->dump_bytes = 0;
        size_t procs = 0;
        for (size_t i = 0; i < n; i++) {
                sum->upper_bytes += c[i].upper_bytes;
                sum->memory_bytes += c[i].memory_bytes;
                sum->dump_bytes += c[i].dump_bytes;
                procs += c[i].npids;
                if (c[i].dump_bytes >= most && c[i].init > 0) {
                        most = c[i].dump_bytes;
                        sum->init = c[i].init;
                }
        }
        sum->npids = procs;
        sum->pod_sum = true;
        sum->stop_copy = sum->o->mode == EM_MIGRATE_STOP_AND_COPY;
}

/* A socket between two of the pod's containers is no external one; all
 * share the infra's network namespace. */
static int pod_sockets(struct pre *c, size_t n, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths cp = {0};
        cleanup_json json_t *held = json_object();

        if (held == NULL || em_container_paths_init(c[0].cfg, c[n - 1].name, &cp, err) < 0)
                return held ? -1 : em_error_set(err, ENOMEM, "pre-check");
        for (size_t i = 0; i < n; i++)
                held_sockets(&c[i], held);
        for (size_t i = 0; i < n; i++) {
                c[i].pod_held = held;
                if (c[i].npids > 0)
                        external_sockets(&c[i], &cp);
                c[i].pod_held = NULL;
        }
        return 0;
}

static int pod_checks(struct pre *p, em_error_t *err)
{
        struct pre *c = NULL;
        size_t n = 0;
        int rc = -1;

        if (pod_containers(p, &c, &n, err) < 0)
                return -1;
        if (p->o->mode != EM_MIGRATE_PRECOPY && p->o->mode != EM_MIGRATE_STOP_AND_COPY)
                add(p->problems,
                    "a pod migrates with pre-copy or stop-and-copy only (--mode %s is not "
                    "built for pods)",
                    em_migrate_mode_name(p->o->mode));
        size_t i = 0;
        while (i < n && local_checks(&c[i], err) == 0)
                i++;
        if (i == n && pod_sockets(c, n, err) == 0) {
                pod_sum(c, n, p);
                cleanup_json json_t *plan = plan_pod(c, n, p);
                rc = remote_checks(p, plan, err);
        }
        json_t *names = json_array();
        for (i = 0; i < n; i++) {
                json_array_append_new(names, json_string(c[i].name));
                pre_free(&c[i]);
                free((char *)c[i].name);
        }
        json_object_set_new(p->report, "pod", json_true());
        json_object_set_new(p->report, "containers", names);
        free(c);
        return rc;
}

static int checks(struct pre *p, em_error_t *err)
{
        if (em_pod_source_is_pod(p->cfg, p->name))
                return pod_checks(p, err);
        if (local_checks(p, err) < 0)
                return -1;
        cleanup_json json_t *plan = plan_one(p, all_blob_bytes(p));
        return remote_checks(p, plan, err);
}

int em_precheck_run(const struct em_config *cfg, const char *name, const struct em_migrate_opts *o,
                    json_t **report, em_error_t *err)
{
        struct pre p = {.cfg = cfg, .name = name, .o = o};
        int rc = -1;

        p.problems = json_array();
        p.notes = json_array();
        p.report =
            json_pack("{s:s, s:s, s:s, s:O, s:O}", "container", name, "target", o->target, "mode",
                      em_migrate_mode_name(o->mode), "problems", p.problems, "notes", p.notes);
        if (p.problems == NULL || p.notes == NULL || p.report == NULL)
                em_error_set(err, ENOMEM, "pre-check");
        else if (checks(&p, err) == 0)
                rc = 0;
        if (rc == 0) {
                json_object_set_new(p.report, "local",
                                    json_pack("{s:I, s:I, s:I}", "processes", (json_int_t)p.npids,
                                              "upper_bytes", (json_int_t)p.upper_bytes,
                                              "memory_bytes", (json_int_t)p.memory_bytes));
                json_object_set_new(p.report, "ok", json_boolean(json_array_size(p.problems) == 0));
                *report = json_incref(p.report);
        }
        pre_free(&p);
        json_decref(p.problems);
        json_decref(p.notes);
        json_decref(p.report);
        return rc;
}
