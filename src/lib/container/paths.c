/* Names of a container's files, runc invocation helpers and the spec JSON. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/container.h"
#include "container/volume.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/subprocess.h"

bool em_container_name_valid(const char *name)
{
        static const char first[] =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        size_t len = name ? strlen(name) : 0;

        if (len == 0 || len > EM_NAME_MAX || strchr(first, name[0]) == NULL)
                return false;
        for (size_t i = 1; i < len; i++) {
                if (strchr(first, name[i]) == NULL && strchr("_.-", name[i]) == NULL)
                        return false;
        }
        return true;
}

void em_container_paths_free(struct em_container_paths *p)
{
        char **fields[] = {&p->dir,    &p->upper,     &p->work,   &p->rootfs,
                           &p->bundle, &p->config,    &p->spec,   &p->log,
                           &p->netns,  &p->runc_root, &p->cgroup, &p->host_veth};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                free(*fields[i]);
                *fields[i] = NULL;
        }
}

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
        char *s = NULL;
        va_list ap;

        va_start(ap, f);
        int rc = vasprintf(&s, f, ap);
        va_end(ap);
        return rc < 0 ? NULL : s;
}

/* A pod member restored into its pod's namespaces has runc's state in its
 * own directory (checkpoint/pod_member.h: runc runs as the pod's root
 * there); every later runc call on it takes that root. */
static char *member_runc_root(const char *dir)
{
        char *r = dir ? fmt("%s/" EM_POD_MEMBER_RUNC_DIR, dir) : NULL;

        if (r != NULL && access(r, F_OK) < 0) {
                free(r);
                return NULL;
        }
        return r;
}

int em_container_paths_init(const struct em_config *cfg, const char *name,
                            struct em_container_paths *p, em_error_t *err)
{
        char digest[EM_DIGEST_STR_LEN + 1];
        cleanup_free char *key = fmt("%s\n%s", cfg->root, name);

        memset(p, 0, sizeof(*p));
        if (!em_container_name_valid(name))
                return em_error_set(err, EINVAL,
                                    "invalid container name '%s' (use letters, "
                                    "digits, '_', '.', '-'; at most %d)",
                                    name ? name : "", EM_NAME_MAX);
        if (key == NULL)
                return em_error_set(err, ENOMEM, "container paths");
        /* Per root and name, so several emulated hosts on one machine (and a
         * container migrating between two of them) never collide. */
        em_sha256_buf(key, strlen(key), digest);
        const char *hex = digest + 7;
        p->dir = fmt("%s/containers/%s", cfg->root, name);
        p->upper = fmt("%s/containers/%s/upper", cfg->root, name);
        p->work = fmt("%s/containers/%s/work", cfg->root, name);
        p->rootfs = fmt("%s/containers/%s/rootfs", cfg->root, name);
        p->bundle = fmt("%s/containers/%s/bundle", cfg->root, name);
        p->config = fmt("%s/containers/%s/bundle/config.json", cfg->root, name);
        p->spec = fmt("%s/containers/%s/spec.json", cfg->root, name);
        p->log = fmt("%s/containers/%s/log", cfg->root, name);
        p->netns = fmt("%s/netns/%s", cfg->root, name);
        p->runc_root = member_runc_root(p->dir);
        if (p->runc_root == NULL)
                p->runc_root = fmt("%s/runc%s", cfg->root, "");
        p->cgroup = fmt("/edgemig-%.10s-%s", hex, name);
        p->host_veth = fmt("em%.10s%s", hex, "");
        if (!p->dir || !p->upper || !p->work || !p->rootfs || !p->bundle || !p->config ||
            !p->spec || !p->log || !p->netns || !p->runc_root || !p->cgroup || !p->host_veth) {
                em_container_paths_free(p);
                return em_error_set(err, ENOMEM, "container paths");
        }
        return 0;
}

const char **em_runc_argv(const struct em_config *cfg, const struct em_container_paths *p,
                          bool with_criu, size_t extra, size_t *used)
{
        const char **argv = calloc(6 + extra + 1, sizeof(char *));
        size_t n = 0;

        if (argv == NULL)
                return NULL;
        argv[n++] = cfg->runc;
        argv[n++] = "--root";
        argv[n++] = p->runc_root;
        if (with_criu) {
                argv[n++] = "--criu";
                argv[n++] = cfg->criu;
        }
        *used = n;
        return argv;
}

int em_runc_state(const struct em_config *cfg, const struct em_container_paths *p, const char *name,
                  char **status, int *pid, em_error_t *err)
{
        cleanup_free const char **argv = NULL;
        cleanup_proc_result struct em_proc_result res = {0};
        cleanup_json json_t *j = NULL;
        struct em_proc_spec spec;
        size_t n;

        *status = NULL;
        *pid = 0;
        if ((argv = em_runc_argv(cfg, p, false, 2, &n)) == NULL)
                return em_error_set(err, ENOMEM, "runc state");
        argv[n++] = "state";
        argv[n++] = name;
        em_proc_spec_init(&spec, argv);
        spec.timeout_ms = 10000;
        em_error_t e = NULL;
        if (em_proc_run(&spec, &res, &e) < 0) {
                bool unknown = res.err && strstr(res.err, "does not exist");
                if (!unknown) {
                        em_error_move(err, &e);
                        return -1;
                }
                em_error_free(&e);
                *status = strdup("");
                return *status ? 0 : em_error_set(err, ENOMEM, "runc state");
        }
        if (em_json_parse(res.out, strlen(res.out), "runc state", &j, err) < 0)
                return -1;
        const char *s = em_json_str(j, "status");
        *status = strdup(s ? s : "");
        *pid = (int)em_json_int(j, "pid", 0);
        return *status ? 0 : em_error_set(err, ENOMEM, "runc state");
}

int em_json_write_fast(const char *path, const json_t *j, em_error_t *err)
{
        cleanup_free char *tmp = NULL;

        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return em_error_set(err, ENOMEM, "writing %s", path);
        if (json_dump_file(j, tmp, JSON_INDENT(2)) < 0)
                return em_error_set(err, errno ? errno : EIO, "writing %s", tmp);
        if (rename(tmp, path) < 0) {
                unlink(tmp);
                return em_error_set(err, errno, "renaming %s", tmp);
        }
        return 0;
}

int em_read_pid_file(const char *path, int *pid, em_error_t *err)
{
        cleanup_free char *buf = NULL;
        char *end;

        if (em_read_file(path, 64, &buf, NULL, err) < 0)
                return -1;
        long v = strtol(buf, &end, 10);
        if (v <= 0 || (*end != '\0' && *end != '\n'))
                return em_error_set(err, EINVAL, "bad pid in %s", path);
        *pid = (int)v;
        return 0;
}

static json_t *strv_to_json(const char *const *v)
{
        json_t *a = json_array();
        for (; a && v && *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

/* The run's security options, or NULL when it gives none. */
static json_t *security_json(const struct em_run_opts *o)
{
        json_t *s = json_object();

        if (s == NULL)
                return NULL;
        if (o->cap_add && *o->cap_add)
                json_object_set_new(s, "cap_add", strv_to_json(o->cap_add));
        if (o->cap_drop && *o->cap_drop)
                json_object_set_new(s, "cap_drop", strv_to_json(o->cap_drop));
        if (o->seccomp_unconfined)
                json_object_set_new(s, "seccomp", json_string("unconfined"));
        if (o->pids_limit)
                json_object_set_new(s, "pids_limit", json_integer(o->pids_limit));
        if (o->nofile)
                json_object_set_new(s, "nofile", json_integer(o->nofile));
        if (json_object_size(s) == 0) {
                json_decref(s);
                return NULL;
        }
        return s;
}

int em_container_spec_new(const struct em_run_opts *o, const char *image_name,
                          const char *manifest_digest, char *const *diff_ids, size_t n_layers,
                          const json_t *image_config, const char *ip, json_t **out, em_error_t *err)
{
        cleanup_json json_t *empty = json_object();
        json_t *ids = json_array();

        for (size_t i = 0; ids && i < n_layers; i++)
                json_array_append_new(ids, json_string(diff_ids[i]));
        json_t *spec =
            json_pack("{s:s, s:s, s:s, s:o, s:O, s:o, s:o, s:I, s:f, s:s?}", "name", o->name,
                      "image", image_name, "image_digest", manifest_digest ? manifest_digest : "",
                      "diff_ids", ids, "image_config", image_config ? image_config : empty, "env",
                      strv_to_json(o->env), "cmd", o->cmd ? strv_to_json(o->cmd) : json_null(),
                      "memory", (json_int_t)o->memory, "cpus", o->cpus, "ip", ip);
        if (spec == NULL)
                return em_error_set(err, ENOMEM, "building the container spec");
        if (o->restart != NULL && strcmp(o->restart, "no") != 0)
                json_object_set_new(spec, "restart", json_string(o->restart));
        json_t *mounts = NULL;
        if (em_mounts_from_args(o->volumes, o->tmpfs, &mounts, err) < 0) {
                json_decref(spec);
                return -1;
        }
        if (mounts != NULL)
                json_object_set_new(spec, "mounts", mounts);
        if (o->pod != NULL)
                json_object_set_new(spec, "pod", json_string(o->pod));
        if (o->pod_infra)
                json_object_set_new(spec, "pod_infra", json_true());
        json_t *sec = security_json(o);
        if (sec)
                json_object_set_new(spec, "security", sec);
        *out = spec;
        return 0;
}
