/* The target's half of the pre-check (source/precheck.h): it answers from the
 * same rules a migration would meet, without claiming or staging. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "checkpoint/features.h"
#include "container/container.h"
#include "container/volume.h"
#include "migrate/target/pod_target.h"
#include "migrate/target/policy.h"
#include "migrate/target/precheck_target.h"
#include "migrate/common/proto.h"
#include "state/state.h"
#include "store/store.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

int em_precheck_ip_free(const struct em_config *cfg, const char *ip, const char *name,
                        em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_free char *owner = NULL;
        bool reserved;

        if (ip == NULL)
                return 0;
        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_ip_owner(st, ip, &owner, &reserved, err) < 0)
                return -1;
        if (owner == NULL || (reserved && strcmp(owner, name) == 0))
                return 0;
        return em_error_set(err, EADDRINUSE,
                            "service IP %s of %s is used on this host by %s%s; give each host "
                            "its own service range (docs/network.md)",
                            ip, name, owner, reserved ? " (reserved: it migrated away)" : "");
}

static void problem(json_t *problems, em_error_t *e)
{
        json_array_append_new(problems, json_string(em_error_msg(*e)));
        em_error_free(e);
}

static uint64_t mem_available(void)
{
        cleanup_fclose FILE *f = fopen("/proc/meminfo", "re");
        char line[128];
        unsigned long long kb;

        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
                if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
                        return (uint64_t)kb * 1024;
        return 0;
}

/* Blobs of the plan this host lacks (as the migration's plan would say). */
static json_t *missing_blobs(struct em_store *store, const char *root, const json_t *blobs)
{
        json_t *missing = json_array();
        size_t i;
        json_t *b;

        json_array_foreach(blobs, i, b)
        {
                const char *digest = em_json_str(b, "digest"), *diff = em_json_str(b, "diff_id");
                cleanup_free char *path = NULL;
                if (!em_digest_valid(digest) || (diff != NULL && em_store_has_layer(store, diff)))
                        continue;
                if (asprintf(&path, "%s/blobs/sha256/%s", root, em_digest_hex(digest)) >= 0 &&
                    !em_path_exists(path))
                        json_array_append_new(missing, json_string(digest));
        }
        return missing;
}

/* Space: the missing blobs (and their unpacked layers, about as much
 * again), the writable layer and the checkpoint images (~ the memory). */
static void check_room(const struct em_config *cfg, const json_t *need, uint64_t blob_bytes_hint,
                       json_t *answer, json_t *problems)
{
        uint64_t upper = (uint64_t)em_json_int(need, "upper_bytes", 0);
        uint64_t mem = (uint64_t)em_json_int(need, "memory_bytes", 0);
        uint64_t avail = mem_available(), disk = 0;
        struct statvfs sv;

        if (statvfs(cfg->root, &sv) == 0)
                disk = (uint64_t)sv.f_bavail * sv.f_frsize;
        json_object_set_new(answer, "disk_free_bytes", json_integer((json_int_t)disk));
        json_object_set_new(answer, "mem_available_bytes", json_integer((json_int_t)avail));
        uint64_t want = 2 * blob_bytes_hint + upper + mem;
        char buf[256];
        if (disk < want) {
                snprintf(buf, sizeof(buf),
                         "not enough disk on the target: %llu MiB free in %s, about %llu MiB "
                         "needed (layers, writable layer, checkpoint)",
                         (unsigned long long)(disk >> 20), cfg->root,
                         (unsigned long long)(want >> 20));
                json_array_append_new(problems, json_string(buf));
        }
        if (avail < mem) {
                snprintf(buf, sizeof(buf),
                         "not enough memory on the target: %llu MiB available, the container "
                         "uses %llu MiB",
                         (unsigned long long)(avail >> 20), (unsigned long long)(mem >> 20));
                json_array_append_new(problems, json_string(buf));
        }
}

static void check_spec(const struct em_config *cfg, const struct em_target_opts *o,
                       const char *container, const json_t *plan, json_t *problems)
{
        const json_t *spec = json_object_get(plan, "spec");
        json_t *blobs = json_object_get(json_object_get(plan, "image"), "blobs");
        cleanup_json json_t *ids = json_array();
        cleanup_container_paths struct em_container_paths p = {0};
        em_error_t e = NULL;
        size_t i;
        json_t *b;

        json_array_foreach(blobs, i, b)
        {
                if (json_object_get(b, "diff_id") != NULL)
                        json_array_append(ids, json_object_get(b, "diff_id"));
        }
        if (em_policy_check_spec(&o->policy, spec, container, ids, &e) < 0)
                problem(problems, &e);
        if (em_precheck_ip_free(cfg, em_json_str(spec, "ip"), container, &e) < 0)
                problem(problems, &e);
        if (em_mounts_admit(cfg, spec, &e) < 0)
                problem(problems, &e);
        if (em_container_paths_init(cfg, container, &p, &e) < 0)
                problem(problems, &e);
        else if (em_path_exists(p.dir))
                json_array_append_new(problems,
                                      json_string("a container of that name exists on the target"));
}

/* A pod's plan (pod_target.h): every spec as the pod session holds it,
 * all names free here (the infra's too: nothing was reserved), the
 * service IP unused. */
static void check_pod(const struct em_config *cfg, const struct em_target_opts *o, const char *pod,
                      const json_t *plan, json_t *problems)
{
        cleanup_strv char **names = NULL;
        em_error_t e = NULL;
        size_t n = 0, i;
        json_t *m;

        if (em_pod_plan_check(&o->policy, pod, plan, &names, &e) < 0)
                problem(problems, &e);
        while (names != NULL && names[n] != NULL)
                n++;
        if (em_pod_names_free(cfg, names, n, &e) < 0)
                problem(problems, &e);
        if (em_precheck_ip_free(cfg, em_json_str(json_object_get(plan, "spec"), "ip"), pod, &e) < 0)
                problem(problems, &e);
        /* Bind sources allowed here, named volumes not here yet: as the
         * pod session admits each container. */
        json_array_foreach(json_object_get(json_object_get(plan, "pod"), "members"), i, m)
        {
                if (em_mounts_admit(cfg, json_object_get(m, "spec"), &e) < 0)
                        problem(problems, &e);
        }
        if (em_mounts_admit(cfg, json_object_get(plan, "spec"), &e) < 0)
                problem(problems, &e);
}

/* The blobs of every image of the plan (a pod's: each member's and the
 * infra's) this host lacks, each once. */
static json_t *plan_missing(struct em_store *store, const char *root, const json_t *plan)
{
        json_t *missing =
            missing_blobs(store, root, json_object_get(json_object_get(plan, "image"), "blobs"));
        json_t *m, *d;
        size_t i, k;

        json_array_foreach(json_object_get(json_object_get(plan, "pod"), "members"), i, m)
        {
                cleanup_json json_t *more = missing_blobs(
                    store, root, json_object_get(json_object_get(m, "image"), "blobs"));
                json_array_foreach(more, k, d)
                {
                        bool dup = false;
                        size_t j;
                        json_t *x;
                        json_array_foreach(missing, j, x) dup |= json_equal(x, d);
                        if (!dup)
                                json_array_append(missing, d);
                }
        }
        return missing;
}

static int answer(const struct em_config *cfg, const struct em_target_opts *o,
                  const char *container, const json_t *plan, json_t **out, em_error_t *err)
{
        cleanup_store struct em_store *store = NULL;
        cleanup_features struct em_features *f = NULL;
        json_t *problems = json_array();
        json_t *a = json_object();

        *out = a;
        if (a == NULL || problems == NULL || json_object_set_new(a, "problems", problems) < 0)
                return em_error_set(err, ENOMEM, "pre-check");
        if (!json_is_object(json_object_get(plan, "spec")))
                return em_error_set(err, EPROTO, "protocol error: malformed plan");
        if (em_store_open(cfg->root, &store, err) < 0 || em_features_probe(cfg, true, &f, err) < 0)
                return -1;
        json_t *missing = plan_missing(store, cfg->root, plan);
        json_object_set_new(a, "missing", missing ? missing : json_array());
        json_object_set_new(a, "features", em_features_to_json(f));
        if (json_object_get(plan, "pod") != NULL)
                check_pod(cfg, o, container, plan, problems);
        else
                check_spec(cfg, o, container, plan, problems);
        check_room(cfg, json_object_get(plan, "need"),
                   (uint64_t)em_json_int(json_object_get(plan, "need"), "layers_bytes_hint", 0), a,
                   problems);
        return 0;
}

int em_precheck_serve(const struct em_config *cfg, em_conn_t *conn, const struct em_target_opts *o,
                      const char *container, em_error_t *err)
{
        cleanup_json json_t *plan = NULL, *a = NULL;
        cleanup_frame struct em_frame probe = {0};

        if (em_proto_recv_json(conn, EM_FRAME_LAYERS_HAVE, &plan, err) < 0 ||
            em_proto_recv(conn, &probe, err) < 0)
                return em_error_wrap(err, "pre-check of %s", container);
        if (probe.hdr.type != EM_FRAME_ROUND_END || probe.length > 4 * EM_PRECHECK_PROBE)
                return em_error_set(err, EPROTO, "protocol error: expected the link probe");
        if (answer(cfg, o, container, plan, &a, err) < 0)
                return em_error_wrap(err, "pre-check of %s", container);
        em_log_info("pre-check of %s: %zu problem(s)", container,
                    json_array_size(json_object_get(a, "problems")));
        return em_proto_send_json(conn, EM_FRAME_LAYERS_HAVE, a, err);
}
