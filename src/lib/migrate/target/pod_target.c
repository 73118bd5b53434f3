#include "migrate/target/pod_target.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ckpt_validate.h"
#include "checkpoint/pod_ckpt.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/pod.h"
#include "container/volume.h"
#include "migrate/common/cache_prune.h"
#include "migrate/common/outcome.h"
#include "migrate/common/pod_pack.h"
#include "migrate/common/proto.h"
#include "migrate/common/session.h"
#include "migrate/common/volume_sync.h"
#include "migrate/target/policy.h"
#include "migrate/target/precheck_target.h"
#include "migrate/target/sync_target.h"
#include "migrate/target/upper_recv.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

/* The pod's containers in restore order's reverse: members, infra last
 * (as pod.json and the tar list them). */
struct pod_plan {
        json_t *specs;  /* array, parallel to images */
        json_t *images; /* array of {name, manifest_digest, blobs} */
        char **names;
        size_t reserved; /* members whose directory this session made */
        bool layers_done;
        bool have_tar;
        bool restoring; /* past the unpack: restore_pod cleans up itself */
        bool prepare;   /* the plan's "prepare": the session ends at DONE */
        bool uppers;    /* the plan's "uppers": writable layers as diffs */
        size_t n;       /* containers, names' order */
        /* Pre-copy: each container's page cache and images, opened at its
         * first FILE_ROOT (NULL: stop-and-copy, the images in the tar). */
        struct em_sync_target **sync;
        long cur;                  /* FILE_ROOT's container, -1 before the first */
        struct em_volume_rx *vols; /* the copies of the pod's named volumes */
        struct em_upper_rx *vcur;  /* FILE_ROOT's volume; NULL: none yet */
        /* FILE_ROOT's member, whose writable layer FILE_* frames write to
         * when the plan has "uppers"; NULL: none, or a volume's turn. */
        struct em_sync_target *ucur;
};

static void pod_plan_free(struct pod_plan *p)
{
        for (size_t i = 0; p->sync != NULL && i < p->n; i++)
                em_sync_target_free(&p->sync[i]);
        free(p->sync);
        json_decref(p->specs);
        json_decref(p->images);
        em_strv_free(p->names);
        em_volume_rx_free(&p->vols);
}

static json_t *diff_ids_of(const json_t *image)
{
        json_t *ids = json_array(), *b;
        size_t i;

        json_array_foreach(json_object_get(image, "blobs"), i, b)
        {
                json_t *d = json_object_get(b, "diff_id");
                if (d != NULL)
                        json_array_append(ids, d);
        }
        return ids;
}

/* One container's spec: the pod's fields as its role wants them, the
 * rest held to the policy like any incoming spec's. */
static int check_one(const struct em_policy *policy, const char *pod, const char *pod_ip,
                     const json_t *spec, const json_t *image, bool infra, em_error_t *err)
{
        const char *name = em_json_str(spec, "name");
        const char *its = em_json_str(spec, "pod");

        if (!json_is_object(spec) || !json_is_array(json_object_get(image, "blobs")) ||
            name == NULL || !em_container_name_valid(name))
                return em_error_set(err, EPROTO, "protocol error: malformed pod plan");
        if (infra ? (strcmp(name, pod) != 0 || !json_is_true(json_object_get(spec, "pod_infra")) ||
                     its != NULL)
                  : (strcmp(name, pod) == 0 || its == NULL || strcmp(its, pod) != 0 ||
                     json_object_get(spec, "pod_infra") != NULL))
                return em_error_set(err, EPERM, "%s is not %s of pod %s", name,
                                    infra ? "the infra container" : "a member", pod);
        cleanup_json json_t *plain = json_deep_copy(spec);
        cleanup_json json_t *ids = diff_ids_of(image);
        if (plain == NULL || ids == NULL)
                return em_error_set(err, ENOMEM, "pod plan");
        json_object_del(plain, "pod");
        json_object_del(plain, "pod_infra");
        /* A member has no address of its own: it takes the pod's. */
        if (!infra && json_is_null(json_object_get(plain, "ip")) && pod_ip != NULL)
                json_object_set_new(plain, "ip", json_string(pod_ip));
        return em_policy_check_spec(policy, plain, name, ids, err);
}

static int push_name(char ***names, size_t *n, const char *name, em_error_t *err)
{
        if (em_strv_push_unique(names, n, name, strlen(name)) < 0)
                return em_error_set(err, ENOMEM, "pod plan");
        return 0;
}

int em_pod_plan_check(const struct em_policy *policy, const char *pod, const json_t *plan,
                      char ***names, em_error_t *err)
{
        json_t *members = json_object_get(json_object_get(plan, "pod"), "members"), *m;
        const char *pod_ip = em_json_str(json_object_get(plan, "spec"), "ip");
        cleanup_strv char **v = NULL;
        size_t i, n = 0;

        if (!json_is_array(members) || json_array_size(members) == 0 ||
            json_array_size(members) > EM_POD_MAX_MEMBERS)
                return em_error_set(err, EPROTO, "protocol error: a pod plan needs 1 to %d members",
                                    EM_POD_MAX_MEMBERS);
        json_array_foreach(members, i, m)
        {
                json_t *spec = json_object_get(m, "spec");
                if (check_one(policy, pod, pod_ip, spec, json_object_get(m, "image"), false, err) <
                        0 ||
                    push_name(&v, &n, em_json_str(spec, "name"), err) < 0)
                        return -1;
        }
        if (n != i)
                return em_error_set(err, EPROTO, "protocol error: a member twice in the pod plan");
        if (check_one(policy, pod, pod_ip, json_object_get(plan, "spec"),
                      json_object_get(plan, "image"), true, err) < 0 ||
            push_name(&v, &n, pod, err) < 0)
                return -1;
        *names = steal_pointer(&v);
        return 0;
}

int em_pod_names_free(const struct em_config *cfg, char *const *names, size_t n, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;

        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        for (size_t i = 0; i < n && names[i] != NULL; i++) {
                cleanup_container_rec struct em_container_rec *r = NULL;
                cleanup_container_paths struct em_container_paths p = {0};
                em_error_t e = NULL;
                bool taken = em_state_container_get(st, names[i], &r, &e) == 0;
                em_error_free(&e);
                if (em_container_paths_init(cfg, names[i], &p, err) < 0)
                        return -1;
                if (taken || em_path_exists(p.dir))
                        return em_error_set(err, EEXIST,
                                            "a container named %s already exists on the target",
                                            names[i]);
        }
        return 0;
}

/* A member's name must be free here (the infra's was reserved at HELLO). */
static int member_names_free(const struct em_pod_target *pt, char **names, em_error_t *err)
{
        size_t n = 0;

        while (names[n] != NULL)
                n++;
        return em_pod_names_free(pt->cfg, names, n - 1, err);
}

/* Each member's name taken for the session, as HELLO took the pod's: its
 * container directory made here, so that another session (a container
 * or pod of that name) is refused from here on rather than both passing
 * the check above. */
static int reserve_members(const struct em_pod_target *pt, struct pod_plan *pp, em_error_t *err)
{
        cleanup_free char *list = em_path_join(pt->dir, EM_OUTCOME_MEMBERS);
        cleanup_free char *text = strdup("");
        cleanup_close int names = -1;

        /* Against the sweep of old page caches, as HELLO's reservation
         * (migrate/common/cache_prune.h). */
        if (em_pagecache_names_lock(pt->cfg->root, &names, err) < 0)
                return -1;
        for (size_t i = 0; list && text && pp->names[i + 1] != NULL; i++) {
                cleanup_container_paths struct em_container_paths p = {0};
                if (em_container_paths_init(pt->cfg, pp->names[i], &p, err) < 0)
                        return -1;
                if (mkdir(p.dir, 0700) < 0)
                        return em_error_set(err, errno == EEXIST ? EEXIST : errno,
                                            "a container named %s already exists on the target "
                                            "(or another session is bringing one)",
                                            pp->names[i]);
                pp->reserved = i + 1;
                /* Listed once made (never one this session did not make),
                 * for an abort after a crash (em_outcome_abort). */
                char *more = NULL;
                if (asprintf(&more, "%s%s\n", text, pp->names[i]) < 0)
                        return em_error_set(err, ENOMEM, "reserving the pod's names");
                free(text);
                text = more;
                if (em_write_file_atomic(list, text, strlen(text), 0600, err) < 0)
                        return -1;
        }
        if (list == NULL || text == NULL)
                return em_error_set(err, ENOMEM, "reserving the pod's names");
        return 0;
}

/* A session that ends before its restore gives the names back (after it,
 * remove_rows and the abort's em_pod_rm did). */
static void release_members(const struct em_pod_target *pt, const struct pod_plan *pp)
{
        cleanup_free char *list = em_path_join(pt->dir, EM_OUTCOME_MEMBERS);

        for (size_t i = 0; i < pp->reserved && !pp->restoring; i++) {
                em_error_t e = NULL;
                if (em_container_remove_files(pt->cfg, pp->names[i], &e) < 0)
                        em_log_error("session %s: releasing the name %s: %s", pt->session,
                                     pp->names[i], em_error_msg(e));
                em_error_free(&e);
        }
        /* Released: the abort that follows must not take them again from
         * a session that reserved them meanwhile. */
        if (list != NULL)
                unlink(list);
}

/* The blobs of all the pod's images that this host lacks, each once. */
static int missing_blobs(const struct em_pod_target *pt, const struct pod_plan *pp, json_t *missing,
                         em_error_t *err)
{
        size_t i, k;
        json_t *im, *b;

        json_array_foreach(pp->images, i, im)
        {
                json_array_foreach(json_object_get(im, "blobs"), k, b)
                {
                        const char *d = em_json_str(b, "digest");
                        bool dup = false;
                        size_t j;
                        json_t *x;
                        if (!em_digest_valid(d))
                                return em_error_set(err, EPROTO, "protocol error: bad blob digest");
                        json_array_foreach(missing, j, x) dup |=
                            strcmp(json_string_value(x), d) == 0;
                        if (!dup && !em_store_holds(pt->store, em_json_str(b, "digest"),
                                                    em_json_str(b, "diff_id")))
                                json_array_append_new(missing, json_string(d));
                }
        }
        return 0;
}

/* The plan, in order members..., infra. */
static int load_plan(const json_t *plan, struct pod_plan *pp, em_error_t *err)
{
        json_t *m;
        size_t i;

        pp->specs = json_array();
        pp->images = json_array();
        if (pp->specs == NULL || pp->images == NULL)
                return em_error_set(err, ENOMEM, "pod plan");
        json_array_foreach(json_object_get(json_object_get(plan, "pod"), "members"), i, m)
        {
                json_array_append_new(pp->specs, json_deep_copy(json_object_get(m, "spec")));
                json_array_append(pp->images, json_object_get(m, "image"));
        }
        json_array_append_new(pp->specs, json_deep_copy(json_object_get(plan, "spec")));
        json_array_append(pp->images, json_object_get(plan, "image"));
        pp->prepare = json_is_true(json_object_get(plan, "prepare"));
        pp->uppers = json_is_true(json_object_get(plan, "uppers"));
        return 0;
}

/* Each container's bind sources allowed here and its named volumes not
 * here yet (em_mounts_admit), then the copies of the pod's volumes (each
 * once) opened in this source's page cache for the pod, so that a retry
 * sends only what changed: their manifests for the plan's answer. */
static json_t *volumes_plan(const struct em_pod_target *pt, struct pod_plan *pp, em_error_t *err)
{
        cleanup_free char *cache = NULL;
        cleanup_json json_t *all = NULL, *have = json_object();
        json_t *spec;
        size_t i;

        json_array_foreach(pp->specs, i, spec)
        {
                if (em_mounts_admit(pt->cfg, spec, err) < 0) {
                        em_error_wrap(err, "%s", pp->names[i]);
                        return NULL;
                }
        }
        cache = em_session_cache_dir(pt->cfg, pt->pod, em_conn_identity(pt->conn));
        all = em_volume_spec_union(pp->specs);
        if (cache == NULL || all == NULL || have == NULL) {
                em_error_set(err, ENOMEM, "pod volumes");
                return NULL;
        }
        if (em_mkdir_p(cache, 0700, err) < 0 ||
            em_volume_rx_new(cache, all, &pp->vols, have, err) < 0) {
                em_error_wrap(err, "the pod's volumes");
                return NULL;
        }
        return steal_pointer(&have);
}

static int send_hashes(const struct em_pod_target *pt, struct pod_plan *pp, em_error_t *err);
static char *upper_copy(const struct em_pod_target *pt, const struct pod_plan *pp, size_t i);

/* The plan's "uppers": each container's copy of its writable layer,
 * kept with its page cache (so a prepare's outlives the session), told
 * to the source by its manifest to diff against; together within the
 * answer's share a volume's copy has. */
static int uppers_have(const struct em_pod_target *pt, struct pod_plan *pp, json_t *ack,
                       em_error_t *err)
{
        cleanup_json json_t *have = json_object();

        if (have == NULL)
                return em_error_set(err, ENOMEM, "pod plan");
        for (size_t i = 0; pp->uppers && i < pp->n; i++) {
                cleanup_free char *dir = upper_copy(pt, pp, i);
                cleanup_free char *what = NULL;
                if (dir == NULL || asprintf(&what, "the writable layer of %s", pp->names[i]) < 0)
                        return em_error_set(err, ENOMEM, "pod plan");
                if (em_mkdir_p(dir, 0755, err) < 0 ||
                    em_tree_copy_have(dir, what, pp->names[i], EM_POD_UPPERS_HAVE_MAX / pp->n, have,
                                      err) < 0)
                        return -1;
        }
        return pp->uppers ? json_object_set(ack, "uppers", have) : 0;
}

static int do_plan(const struct em_pod_target *pt, struct pod_plan *pp, em_error_t *err)
{
        cleanup_json json_t *plan = NULL, *missing = json_array(), *have = NULL;

        if (missing == NULL)
                return em_error_set(err, ENOMEM, "pod plan");
        if (em_proto_recv_json(pt->conn, EM_FRAME_LAYERS_HAVE, &plan, err) < 0 ||
            em_pod_plan_check(&pt->o->policy, pt->pod, plan, &pp->names, err) < 0 ||
            member_names_free(pt, pp->names, err) < 0 || reserve_members(pt, pp, err) < 0 ||
            em_precheck_ip_free(pt->cfg, em_json_str(json_object_get(plan, "spec"), "ip"), pt->pod,
                                err) < 0 ||
            load_plan(plan, pp, err) < 0 || missing_blobs(pt, pp, missing, err) < 0 ||
            (have = volumes_plan(pt, pp, err)) == NULL)
                return -1;
        pp->n = json_array_size(pp->specs);
        em_log_info("session %s: pod %s with %zu member(s), %zu blob(s) missing", pt->session,
                    pt->pod, json_array_size(pp->specs) - 1, json_array_size(missing));
        bool hashes = json_is_true(json_object_get(plan, "page_hashes"));
        cleanup_json json_t *ack = json_pack("{s:O, s:O, s:b}", "missing", missing, "volumes", have,
                                             "page_hashes", hashes);
        if (ack == NULL)
                return em_error_set(err, ENOMEM, "pod plan");
        if (uppers_have(pt, pp, ack, err) < 0)
                return em_error_wrap(err, "pod plan");
        if (em_proto_send_json(pt->conn, EM_FRAME_LAYERS_HAVE, ack, err) < 0)
                return -1;
        return hashes ? send_hashes(pt, pp, err) : 0;
}

static int import_blob(const struct em_pod_target *pt, const json_t *hdr, em_error_t *err)
{
        const char *name = em_json_str(hdr, "file");
        cleanup_free char *blobs = em_path_join(pt->dir, "blobs");
        cleanup_free char *digest = NULL;
        cleanup_close int dfd = blobs ? open(blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", blobs ? blobs : "blobs");
        if (em_proto_recv_file(pt->conn, hdr, EM_FRAME_LAYER_BLOB, dfd, true, NULL, err) < 0)
                return -1;
        cleanup_close int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || asprintf(&digest, "sha256:%s", name) < 0)
                return em_error_set(err, errno, "reopening blob %s", name);
        if (em_store_blob_import(pt->store, digest, (uint64_t)em_json_int(hdr, "size", 0), fd,
                                 err) < 0)
                return -1;
        unlinkat(dfd, name, 0);
        return 0;
}

/* Every image by digest (a peer never repoints one of our tags), each spec
 * pinned to it. */
static int register_images(const struct em_pod_target *pt, struct pod_plan *pp, em_error_t *err)
{
        size_t i;
        json_t *im;

        json_array_foreach(pp->images, i, im)
        {
                const char *name = em_json_str(im, "name");
                const char *manifest = em_json_str(im, "manifest_digest");
                cleanup_free char *pinned = NULL;
                if (name == NULL || !em_digest_valid(manifest))
                        return em_error_set(err, EPROTO,
                                            "protocol error: image without name/manifest");
                if (em_store_image_add_pinned(pt->store, name, manifest, &pinned, err) < 0)
                        return em_error_wrap(err, "registering image %s", name);
                if (json_object_set_new(json_array_get(pp->specs, i), "image",
                                        json_string(pinned)) < 0)
                        return em_error_set(err, ENOMEM, "spec");
        }
        pp->layers_done = true;
        return 0;
}

static int recv_tar(const struct em_pod_target *pt, struct pod_plan *pp, const json_t *hdr,
                    char *digest, em_error_t *err)
{
        cleanup_close int dfd = open(pt->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (!pp->layers_done || pp->have_tar || pp->prepare ||
            strcmp(em_json_str(hdr, "file") ?: "", EM_POD_TAR_NAME) != 0)
                return em_error_set(err, EPROTO,
                                    "protocol error: a pod session takes one image file, "
                                    "%s, after the layers (a prepare none)",
                                    EM_POD_TAR_NAME);
        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", pt->dir);
        if (em_proto_recv_file(pt->conn, hdr, EM_FRAME_IMAGE_FILE, dfd, false, digest, err) < 0)
                return -1;
        pp->have_tar = true;
        return 0;
}

/* <dir>/pre/<i>/<part>: container i's pre-copy staging. */
static char *pre_path(const struct em_pod_target *pt, size_t i, const char *part)
{
        char *path = NULL;

        if (asprintf(&path, "%s/pre/%zu/%s", pt->dir, i, part) < 0)
                return NULL;
        return path;
}

/* <cache>/upper: container i's copy of its writable layer, beside its
 * page cache (gone with it after a restore, moved into the checkpoint
 * before). */
static char *upper_copy(const struct em_pod_target *pt, const struct pod_plan *pp, size_t i)
{
        cleanup_free char *cache =
            em_session_cache_dir(pt->cfg, pp->names[i], em_conn_identity(pt->conn));

        return cache ? em_path_join(cache, "upper") : NULL;
}

/* Container i's page cache, kept per container name and source peer
 * (migrate/common/session.h, as a single container's) so that a prepare
 * fills it for the migration after it, its images directory and its
 * writable layer's copy. */
static int open_sync(const struct em_pod_target *pt, struct pod_plan *pp, size_t i, em_error_t *err)
{
        cleanup_free char *cache =
            em_session_cache_dir(pt->cfg, pp->names[i], em_conn_identity(pt->conn));
        cleanup_free char *criu = pre_path(pt, i, "criu");
        cleanup_free char *upper = upper_copy(pt, pp, i);

        if (pp->sync == NULL && (pp->sync = calloc(pp->n, sizeof(*pp->sync))) == NULL)
                return em_error_set(err, ENOMEM, "pre-copy");
        if (pp->sync[i] != NULL)
                return 0;
        if (cache == NULL || criu == NULL || upper == NULL)
                return em_error_set(err, ENOMEM, "pre-copy");
        if (em_mkdir_p(criu, 0700, err) < 0 || em_mkdir_p(upper, 0755, err) < 0)
                return -1;
        return em_sync_target_new(cache, criu, upper, &pp->sync[i], err);
}

/* FILE_ROOT {"member": NAME}: the pages and image files that follow are
 * that container's, between the layers and the tar. */
static int select_member(const struct em_pod_target *pt, struct pod_plan *pp, const json_t *msg,
                         em_error_t *err)
{
        if (!pp->layers_done || pp->have_tar)
                return em_error_set(err, EPROTO,
                                    "protocol error: FILE_ROOT in a pod session comes after the "
                                    "layers and before the tar");
        const char *name = em_json_str(msg, "member");
        if (!json_is_object(msg) || json_object_size(msg) != 1 || name == NULL)
                return em_error_set(err, EPROTO,
                                    "protocol error: FILE_ROOT in a pod session is {\"member\"}");
        for (size_t i = 0; i < pp->n; i++) {
                if (strcmp(pp->names[i], name) == 0) {
                        pp->cur = (long)i;
                        pp->vcur = NULL;
                        if (open_sync(pt, pp, i, err) < 0)
                                return -1;
                        pp->ucur = pp->uppers ? pp->sync[i] : NULL;
                        return 0;
                }
        }
        return em_error_set(err, EPROTO,
                            "protocol error: FILE_ROOT names '%.64s', not a container of the pod",
                            name);
}

/* An image file of the selected container (not a pages file: those
 * travel as page deltas), digest-checked on receipt. */
static int recv_member_file(const struct em_pod_target *pt, struct pod_plan *pp, const json_t *hdr,
                            em_error_t *err)
{
        cleanup_free char *dir = pre_path(pt, (size_t)pp->cur, "criu");
        cleanup_close int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        char digest[EM_DIGEST_STR_LEN + 1];

        if (pp->have_tar || pp->prepare)
                return em_error_set(err, EPROTO,
                                    "protocol error: an image file after the tar or in a prepare");
        if (dfd < 0)
                return em_error_set(err, dir ? errno : ENOMEM, "opening %s", dir ? dir : "pre/");
        if (em_proto_recv_file(pt->conn, hdr, EM_FRAME_IMAGE_FILE, dfd, false, digest, err) < 0)
                return -1;
        em_sync_target_note_file(pp->sync[pp->cur], em_json_str(hdr, "file"), digest);
        return 0;
}

/* Bytes of pages rebuilt from references, for the quota. */
static uint64_t rebuilt(const struct pod_plan *pp)
{
        uint64_t n = 0;

        for (size_t i = 0; pp->sync != NULL && i < pp->n; i++)
                n += pp->sync[i] ? em_sync_target_rebuilt(pp->sync[i]) : 0;
        return n;
}

/* A pre-copied pod's FINAL names, for every container, exactly the image
 * files that arrived for it ({"criu": {name: {file: digest}}}), each
 * checked on receipt; a stop-and-copy one has none (they are in the tar). */
static int verify_criu(const struct pod_plan *pp, const json_t *final, em_error_t *err)
{
        json_t *criu = json_object_get(final, "criu");

        if (criu == NULL && pp->sync == NULL)
                return 0;
        if (!json_is_object(criu) || json_object_size(criu) != pp->n || pp->sync == NULL)
                return em_error_set(err, EPROTO,
                                    "protocol error: FINAL's \"criu\" must name every container "
                                    "of the pod, each after its FILE_ROOT");
        /* The writable layers are then those the diffs built, not the tar's. */
        if (!pp->uppers)
                return em_error_set(err, EPROTO,
                                    "protocol error: a pre-copied pod's writable layers travel as "
                                    "diffs (the plan's \"uppers\")");
        for (size_t i = 0; i < pp->n; i++) {
                json_t *files = json_object_get(criu, pp->names[i]);
                if (pp->sync[i] == NULL)
                        return em_error_set(err, EPROTO,
                                            "protocol error: no FILE_ROOT for %s of the pod",
                                            pp->names[i]);
                if (em_sync_target_finish(pp->sync[i], err) < 0)
                        return em_error_wrap(err, "images of %s", pp->names[i]);
                if (!json_is_object(files) || json_object_size(files) == 0 ||
                    !json_equal(files, (json_t *)em_sync_target_files(pp->sync[i])))
                        return em_error_set(err, EILSEQ,
                                            "the images of %s are not those the source lists",
                                            pp->names[i]);
        }
        return 0;
}

/* from to ck/<name>/part, which the tar must not have carried. */
static int install_part(const char *from, const char *ck, const char *name, const char *part,
                        em_error_t *err)
{
        cleanup_free char *d = em_path_join(ck, name);
        cleanup_free char *to = d ? em_path_join(d, part) : NULL;

        if (from == NULL || to == NULL)
                return em_error_set(err, ENOMEM, "pod checkpoint");
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
                return em_error_set(err, errno, "installing %s/%s (the tar must not carry it too)",
                                    name, part);
        return 0;
}

/* Each pre-copied container's images and writable layer into their place
 * in the unpacked checkpoint. */
static int install_criu(const struct em_pod_target *pt, const struct pod_plan *pp, const char *ck,
                        em_error_t *err)
{
        for (size_t i = 0; pp->sync != NULL && i < pp->n; i++) {
                cleanup_free char *criu = pre_path(pt, i, "criu");
                cleanup_free char *upper = upper_copy(pt, pp, i);
                if (install_part(criu, ck, pp->names[i], "criu", err) < 0 ||
                    install_part(upper, ck, pp->names[i], "upper", err) < 0)
                        return -1;
        }
        return 0;
}

/* One container's images held to the policy it will run under: a member
 * runs in the pod's ID range (the infra's), with its own mounts. */
static int validate_one(const struct em_config *cfg, const char *criu, const json_t *spec,
                        const json_t *infra, em_error_t *err)
{
        cleanup_json json_t *as_run = json_deep_copy(spec);
        cleanup_strv char **binds = NULL, **tmpfs = NULL;
        struct em_ckpt_policy pol;

        if (as_run == NULL ||
            json_object_set(as_run, "userns", json_object_get(infra, "userns")) < 0)
                return em_error_set(err, ENOMEM, "pod checkpoint");
        if (em_ckpt_policy_for_spec(cfg, as_run, &pol, err) < 0 ||
            em_mounts_points(spec, &binds, &tmpfs, err) < 0)
                return -1;
        pol.binds = (const char *const *)binds;
        pol.tmpfs = (const char *const *)tmpfs;
        return em_ckpt_validate_dir(criu, &pol, err);
}

/* What each container's page cache holds, after the plan's answer: its
 * hashes as PAGES_HASHES frames, the last flagged LAST, in the plan's
 * order (members, then the infra). */
static int send_hashes(const struct em_pod_target *pt, struct pod_plan *pp, em_error_t *err)
{
        for (size_t i = 0; i < pp->n; i++)
                if (open_sync(pt, pp, i, err) < 0 ||
                    em_sync_target_send_hashes(pp->sync[i], pt->conn, 0, err) < 0)
                        return em_error_wrap(err, "page hashes of %s", pp->names[i]);
        return 0;
}

/* Restored: the pages the caches kept are not needed any more, those of
 * containers this session never synced too (a stop-and-copy after a
 * prepare: the prepare filled them). */
static void drop_caches(const struct em_pod_target *pt, struct pod_plan *pp)
{
        for (size_t i = 0; i < pp->n; i++) {
                if (pp->sync != NULL && pp->sync[i] != NULL) {
                        em_sync_target_drop_cache(pp->sync[i]);
                        continue;
                }
                cleanup_free char *cache =
                    em_session_cache_dir(pt->cfg, pp->names[i], em_conn_identity(pt->conn));
                if (cache != NULL)
                        em_sync_target_drop_dir(cache);
        }
}

/* container.json of each container and pod.json, from the checked specs
 * (checkpoint/pod_ckpt.h's layout); then each one's images validated. */
static int write_meta(const struct em_config *cfg, const char *ck, const struct pod_plan *pp,
                      em_error_t *err)
{
        cleanup_json json_t *m =
            json_pack("{s:i, s:s, s:[]}", "format", EM_POD_CHECKPOINT_FORMAT, "pod",
                      pp->names[json_array_size(pp->specs) - 1], "members");

        json_t *infra = json_array_get(pp->specs, json_array_size(pp->specs) - 1);

        if (m == NULL)
                return em_error_set(err, ENOMEM, "pod.json");
        for (size_t i = 0; pp->names[i] != NULL; i++) {
                json_t *spec = json_array_get(pp->specs, i);
                cleanup_free char *d = em_path_join(ck, pp->names[i]);
                cleanup_free char *path = d ? em_path_join(d, "container.json") : NULL;
                cleanup_free char *criu = d ? em_path_join(d, "criu") : NULL;
                if (path == NULL || criu == NULL)
                        return em_error_set(err, ENOMEM, "pod checkpoint");
                json_object_set_new(spec, "format", json_integer(EM_CHECKPOINT_FORMAT));
                if (em_json_write_file(path, spec, err) < 0)
                        return -1;
                json_object_del(spec, "format");
                if (validate_one(cfg, criu, spec, infra, err) < 0)
                        return em_error_wrap(err, "refusing the checkpoint of %s", pp->names[i]);
                if (pp->names[i + 1] != NULL)
                        json_array_append_new(json_object_get(m, "members"),
                                              json_string(pp->names[i]));
        }
        cleanup_free char *pj = em_path_join(ck, "pod.json");
        if (pj == NULL)
                return em_error_set(err, ENOMEM, "pod.json");
        return em_json_write_file(pj, m, err);
}

/* The outcome record from `from` to `to`, its decision lock taken (and
 * kept in *lock); a source that aborted meanwhile fences the session. */
static int advance(const struct em_pod_target *pt, enum em_outcome_state from,
                   enum em_outcome_state to, int *lock, em_error_t *err)
{
        if (*lock < 0 &&
            em_outcome_lock(pt->cfg->root, pt->session, EM_OUTCOME_LOCK_MS, lock, err) < 0)
                return -1;
        return em_outcome_advance(pt->cfg->root, pt->session, from, to, err);
}

/* A failed `pod restore` killed what it restored and left the rows
 * "checkpointed": they go, members first, so that the abort finds only
 * the reserved name. */
static void remove_rows(const struct em_pod_target *pt, char **names)
{
        cleanup_state struct em_state *st = NULL;
        em_error_t e = NULL;

        if (em_state_open(pt->cfg->root, &st, &e) < 0) {
                em_log_error("session %s: %s", pt->session, em_error_msg(e));
                em_error_free(&e);
                return;
        }
        for (size_t i = 0; names[i] != NULL; i++) {
                cleanup_container_rec struct em_container_rec *r = NULL;
                bool row = em_state_container_get(st, names[i], &r, &e) == 0;
                em_error_free(&e);
                /* A member never restored has only the log staged for it. */
                if ((row                    ? em_container_rm(pt->cfg, names[i], true, &e)
                     : names[i + 1] != NULL ? em_container_remove_files(pt->cfg, names[i], &e)
                                            : 0) < 0)
                        em_log_error("session %s: removing %s: %s", pt->session, names[i],
                                     em_error_msg(e));
                em_error_free(&e);
        }
}

/* The source's log of a container, as its log here before the restore's
 * forwarder appends to it (checkpoint/pod_member.h, logger.c: O_APPEND). */
static int install_log(const struct em_pod_target *pt, const char *ck, const char *name,
                       em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *d = em_path_join(ck, name);
        cleanup_free char *log = d ? em_path_join(d, EM_POD_PACK_LOG) : NULL;

        if (log == NULL || em_container_paths_init(pt->cfg, name, &p, err) < 0)
                return log ? -1 : em_error_set(err, ENOMEM, "log");
        if (!em_path_exists(log))
                return 0;
        if ((mkdir(p.dir, 0700) < 0 && errno != EEXIST) || rename(log, p.log) < 0)
                return em_error_set(err, errno, "installing the log of %s", name);
        return 0;
}

static int chmod_parent(const char *dir)
{
        cleanup_free char *parent = strdup(dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;

        if (slash == NULL)
                return errno = ENOMEM, -1;
        *slash = '\0';
        return chmod(parent, 0711);
}

static int unpack(const struct em_pod_target *pt, const struct pod_plan *pp, const char *ck,
                  em_error_t *err)
{
        cleanup_free char *tar = em_path_join(pt->dir, EM_POD_TAR_NAME);
        cleanup_close int fd = -1;

        if (tar == NULL)
                return em_error_set(err, ENOMEM, "pod checkpoint");
        /* The pod's root restores the members from here (checkpoint/pod_member.h):
         * it must pass the staging directory and incoming/, as it passes
         * the state root (names in both are unguessable session ids). */
        if (chmod(pt->dir, 0711) < 0 || chmod_parent(pt->dir) < 0 ||
            (mkdir(ck, 0711) < 0 && errno != EEXIST) || chmod(ck, 0711) < 0 ||
            (fd = open(tar, O_RDONLY | O_CLOEXEC)) < 0)
                return em_error_set(err, errno, "staging the pod in %s", ck);
        if (em_pod_unpack(fd, ck, pp->names, err) < 0 || install_criu(pt, pp, ck, err) < 0)
                return -1;
        unlink(tar); /* unpacked: its space back before the restore */
        if (write_meta(pt->cfg, ck, pp, err) < 0)
                return -1;
        for (size_t i = 0; pp->names[i] != NULL; i++)
                if (install_log(pt, ck, pp->names[i], err) < 0)
                        return -1;
        return 0;
}

static int list_volumes(const struct em_pod_target *pt, const struct pod_plan *pp, em_error_t *err)
{
        cleanup_free char *list = em_path_join(pt->dir, EM_OUTCOME_VOLUMES);

        if (list == NULL)
                return em_error_set(err, ENOMEM, "listing the pod's volumes");
        return em_volume_rx_list(pp->vols, list, err);
}

/* A failed restore leaves the source running with its volumes: the
 * copies this session installed go back into the cache, for a retry to
 * send only what changed (never a volume of that name it did not). */
static void uninstall_volumes(const struct em_pod_target *pt, const struct pod_plan *pp)
{
        em_error_t e = NULL;

        if (em_volume_rx_install(pp->vols, pt->cfg, true, &e) < 0)
                em_log_warn("session %s: %s", pt->session, em_error_msg(e));
        em_error_free(&e);
}

/* `pod restore`, under the decision lock: an OUTCOME request waits and
 * sees either no copy or a running one. */
static int restore_pod(const struct em_pod_target *pt, const struct pod_plan *pp, json_t *timing,
                       em_error_t *err)
{
        cleanup_free char *ck = em_path_join(pt->dir, "pod");
        cleanup_close int lock = -1;
        const char *ip =
            em_json_str(json_array_get(pp->specs, json_array_size(pp->specs) - 1), "ip");
        int64_t t0 = em_mono_ms();

        if (ck == NULL)
                return em_error_set(err, ENOMEM, "pod checkpoint");
        if (unpack(pt, pp, ck, err) < 0) {
                remove_rows(pt, pp->names);
                return em_error_wrap(err, "staging pod %s", pt->pod);
        }
        json_object_set_new(timing, "verify_ms", json_integer(em_mono_ms() - t0));
        t0 = em_mono_ms();
        if (em_fault("target.before-restore", em_conn_fd(pt->conn), err) < 0 ||
            advance(pt, EM_OUTCOME_STAGING, EM_OUTCOME_RESTORING, &lock, err) < 0) {
                remove_rows(pt, pp->names);
                return -1;
        }
        /* The restore mounts the volumes from <root>/volumes; listed
         * first, each with its copy's identity, for an abort after a
         * crash (em_outcome_abort) to remove only what this one moved. */
        if (list_volumes(pt, pp, err) < 0 ||
            em_volume_rx_install(pp->vols, pt->cfg, false, err) < 0 ||
            pt->o->ops->restore_pod(pt->cfg, ck, err) < 0) {
                remove_rows(pt, pp->names);
                uninstall_volumes(pt, pp);
                return em_error_wrap(err, "restoring pod %s", pt->pod);
        }
        json_object_set_new(timing, "restore_ms", json_integer(em_mono_ms() - t0));
        t0 = em_mono_ms();
        /* Once, with the infra: the members share its address. */
        if (ip != NULL && pt->o->route_hook != NULL && *pt->o->route_hook != '\0')
                em_session_route_warn(NULL, pt->o->route_hook, "announce", ip,
                                      "announcing the pod's service IP");
        json_object_set_new(timing, "route_ms", json_integer(em_mono_ms() - t0));
        if (advance(pt, EM_OUTCOME_RESTORING, EM_OUTCOME_RESTORED, &lock, err) < 0)
                return -1;
        em_log_info("session %s: pod %s restored (%zu containers)", pt->session, pt->pod,
                    json_array_size(pp->specs));
        em_cleanup_closep(&lock);
        return em_fault("target.after-restore", em_conn_fd(pt->conn), err);
}

static int do_final(const struct em_pod_target *pt, struct pod_plan *pp, const struct em_frame *f,
                    const char *digest, em_error_t *err)
{
        cleanup_json json_t *final = NULL, *timing = json_object();
        json_t *files;

        if (timing == NULL)
                return em_error_set(err, ENOMEM, "FINAL");
        if (pp->prepare)
                return em_error_set(err, EPROTO, "protocol error: FINAL in a prepare");
        if (em_json_parse((const char *)f->payload, f->length, "FINAL", &final, err) < 0 ||
            em_fault("target.after-final", em_conn_fd(pt->conn), err) < 0)
                return -1;
        files = json_object_get(final, "files");
        if (!pp->have_tar || !json_is_object(files) || json_object_size(files) != 1 ||
            strcmp(em_json_str(files, EM_POD_TAR_NAME) ?: "", digest) != 0)
                return em_error_set(err, EILSEQ,
                                    "the pod's %s is missing or does not match the source's "
                                    "digest",
                                    EM_POD_TAR_NAME);
        if (verify_criu(pp, final, err) < 0)
                return -1;
        if (em_volume_rx_finish(pp->vols, err) < 0)
                return em_error_wrap(err, "the pod's volumes");
        pp->restoring = true;
        if (restore_pod(pt, pp, timing, err) < 0)
                return -1;
        cleanup_json json_t *ok = json_pack("{s:b, s:O}", "ok", 1, "timing", timing);
        int rc = em_proto_send_json(pt->conn, EM_FRAME_RESTORE_OK, ok, err);
        drop_caches(pt, pp); /* after the answer: outside the downtime */
        return rc;
}

/* DONE ends a prepare once the images are registered: the members'
 * names go back now, the pod's with the session's settling, before the
 * source hears we are done (the migration that follows must find them
 * free). */
static int prepare_done(const struct em_pod_target *pt, struct pod_plan *pp, bool *prepared,
                        em_error_t *err)
{
        if (!pp->prepare)
                return em_error_set(err, EPROTO, "protocol error: DONE before FINAL");
        if (!pp->layers_done)
                return em_error_set(err, EPROTO, "protocol error: DONE before the layers");
        release_members(pt, pp);
        pp->reserved = 0;
        *prepared = true;
        em_log_info("session %s: pod %s prepared (%zu image(s) registered)", pt->session, pt->pod,
                    json_array_size(pp->images));
        return 0;
}

/* ROUND_END: the one after the blobs registers the images; echoed. */
static int round_end(const struct em_pod_target *pt, struct pod_plan *pp, const struct em_frame *f,
                     em_error_t *err)
{
        bool layers = f->length > 0 && f->payload[0] == '{' &&
                      memmem(f->payload, f->length, "\"layers_done\"", 13) != NULL;

        /* A pre-copy round's end: everything before it was applied. */
        if (!layers && pp->layers_done && !pp->have_tar)
                return em_conn_send(pt->conn, EM_FRAME_ROUND_END, 0, 0, f->payload, f->length, 0,
                                    err);
        if (!layers || pp->layers_done)
                return em_error_set(err, EPROTO,
                                    "protocol error: a pod session's rounds come after the layers "
                                    "and before the tar");
        if (register_images(pt, pp, err) < 0 ||
            em_fault("target.after-layers", em_conn_fd(pt->conn), err) < 0)
                return -1;
        return em_conn_send(pt->conn, EM_FRAME_ROUND_END, 0, 0, f->payload, f->length, 0, err);
}

/* The trees (volumes, and with "uppers" the writable layers) come after
 * the layers and before the tar, each after a FILE_ROOT {"volume"} or
 * {"member"}. */
static int in_volumes(const struct pod_plan *pp, uint16_t type, em_error_t *err)
{
        if (!pp->layers_done || pp->have_tar)
                return em_error_set(err, EPROTO,
                                    "protocol error: %s outside the pod's volume transfer",
                                    em_frame_type_name(type));
        return 0;
}

static int volume_frame(const struct em_pod_target *pt, struct pod_plan *pp,
                        const struct em_frame *f, em_error_t *err)
{
        if (in_volumes(pp, f->hdr.type, err) < 0)
                return -1;
        if (pp->vcur != NULL)
                return em_upper_rx_frame(pp->vcur, pt->conn, f, err);
        if (pp->ucur != NULL)
                return em_sync_target_frame(pp->ucur, pt->conn, f, err);
        return em_error_set(err, EPROTO,
                            "protocol error: %s before FILE_ROOT names a volume (or, with "
                            "\"uppers\", a member)",
                            em_frame_type_name(f->hdr.type));
}

/* FILE_ROOT routed on its key, not on its text: a volume may be named
 * "member" (a FILE_ROOT {"volume": "member"}). */
static int file_root(const struct em_pod_target *pt, struct pod_plan *pp, const struct em_frame *f,
                     em_error_t *err)
{
        cleanup_json json_t *msg = NULL;

        if (em_json_parse((const char *)f->payload, f->length, "FILE_ROOT", &msg, err) < 0)
                return -1;
        if (json_object_get(msg, "member") != NULL)
                return select_member(pt, pp, msg, err);
        if (in_volumes(pp, f->hdr.type, err) < 0)
                return -1;
        pp->ucur = NULL;
        return em_volume_rx_root_json(pp->vols, msg, &pp->vcur, err);
}

static int dispatch(const struct em_pod_target *pt, struct pod_plan *pp, struct em_frame *f,
                    char *digest, bool *done, bool *prepared, em_error_t *err)
{
        cleanup_json json_t *hdr = NULL;

        switch (f->hdr.type) {
        case EM_FRAME_LAYER_BLOB:
        case EM_FRAME_IMAGE_FILE:
                if (em_json_parse((const char *)f->payload, f->length, "file header", &hdr, err) <
                    0)
                        return -1;
                if (f->hdr.type == EM_FRAME_IMAGE_FILE)
                        return strcmp(em_json_str(hdr, "file") ?: "", EM_POD_TAR_NAME) == 0 ||
                                       pp->cur < 0
                                   ? recv_tar(pt, pp, hdr, digest, err)
                                   : recv_member_file(pt, pp, hdr, err);
                if (pp->layers_done)
                        return em_error_set(err, EPROTO, "protocol error: a blob after the layers");
                return import_blob(pt, hdr, err);
        case EM_FRAME_ROUND_END:
                return round_end(pt, pp, f, err);
        case EM_FRAME_FILE_ROOT:
                return file_root(pt, pp, f, err);
        case EM_FRAME_FILE_MANIFEST:
        case EM_FRAME_FILE_DATA:
        case EM_FRAME_FILE_BLOCKS:
        case EM_FRAME_FILE_DELETE:
                return volume_frame(pt, pp, f, err);
        case EM_FRAME_PAGES_DATA:
                if (pp->cur < 0)
                        return em_error_set(err, EPROTO,
                                            "protocol error: PAGES_DATA before FILE_ROOT in a pod "
                                            "session");
                return em_sync_target_frame(pp->sync[pp->cur], pt->conn, f, err);
        case EM_FRAME_FINAL:
                *done = true;
                return do_final(pt, pp, f, digest, err);
        case EM_FRAME_DONE:
                *done = true;
                return prepare_done(pt, pp, prepared, err);
        default:
                return em_error_set(err, EPROTO, "protocol error: unexpected %s in a pod session",
                                    em_frame_type_name(f->hdr.type));
        }
}

int em_pod_target_serve(const struct em_pod_target *pt, bool *prepared, em_error_t *err)
{
        __attribute__((cleanup(pod_plan_free))) struct pod_plan pp = {.cur = -1};
        char digest[EM_DIGEST_STR_LEN + 1] = "";
        bool done = false;

        if (do_plan(pt, &pp, err) < 0) {
                release_members(pt, &pp);
                return -1;
        }
        int rc = 0;
        while (!done && rc == 0) {
                cleanup_frame struct em_frame f = {0};
                struct em_conn_stats st;
                rc = em_proto_recv(pt->conn, &f, err) < 0 ||
                             dispatch(pt, &pp, &f, digest, &done, prepared, err) < 0
                         ? -1
                         : 0;
                em_conn_stats(pt->conn, &st);
                /* Pages rebuilt from 16-byte references count too. */
                uint64_t used = st.raw_in + rebuilt(&pp);
                if (rc == 0 && used > (uint64_t)pt->o->quota_bytes)
                        rc = em_error_set(err, EDQUOT,
                                          "session %s staged %llu bytes, over this host's quota "
                                          "(edgemigd --session-quota)",
                                          pt->session, (unsigned long long)used);
        }
        if (rc < 0)
                release_members(pt, &pp);
        return rc;
}
