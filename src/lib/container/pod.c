#include "container/pod.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/container.h"
#include "container/security.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"

/* The infra container's only process: sleeps until SIGTERM (pid 1 of its
 * pid namespace ignores signals it has no handler for). */
static const char *const infra_cmd[] = {
    "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done", NULL};

const char *em_pod_of_spec(const json_t *spec)
{
        if (em_pod_spec_is_infra(spec))
                return em_json_str(spec, "name");
        return em_json_str(spec, "pod");
}

bool em_pod_spec_is_infra(const json_t *spec)
{
        return json_is_true(json_object_get(spec, "pod_infra"));
}

int em_pod_create(const struct em_config *cfg, const struct em_pod_create_opts *o, em_error_t *err)
{
        static const char *const no_env[] = {NULL};
        struct em_run_opts run = {.name = o->name,
                                  .image = o->image ? o->image : EM_POD_INFRA_IMAGE,
                                  .ip = o->ip,
                                  .env = no_env,
                                  .cmd = infra_cmd,
                                  .restart = o->restart,
                                  .pod_infra = true};

        if (em_container_run(cfg, &run, err) < 0)
                return em_error_wrap(err, "creating pod %s", o->name);
        return 0;
}

static int spec_of(const struct em_container_rec *r, json_t **out, em_error_t *err)
{
        return em_json_parse(r->spec, strlen(r->spec), "container spec", out, err);
}

int em_pod_rec_is_infra(const struct em_container_rec *rec, em_error_t *err)
{
        cleanup_json json_t *spec = NULL;

        if (spec_of(rec, &spec, err) < 0)
                return -1;
        return em_pod_spec_is_infra(spec);
}

/* The infra container of pod, which must run. */
static int infra_of(struct em_state *st, const char *pod, struct em_container_rec **out,
                    em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *r = NULL;
        cleanup_json json_t *spec = NULL;
        char ns[64];

        if (em_state_container_get(st, pod, &r, err) < 0) {
                if (em_error_status(*err) != ENOENT)
                        return -1;
                em_error_free(err);
                return em_error_set(err, ENOENT, "no pod '%s' (`edgemig pod create %s`)", pod, pod);
        }
        if (spec_of(r, &spec, err) < 0)
                return em_error_wrap(err, "pod %s", pod);
        if (!em_pod_spec_is_infra(spec))
                return em_error_set(err, EINVAL,
                                    "'%s' is a container, not a pod (create one with `edgemig pod "
                                    "create`)",
                                    pod);
        snprintf(ns, sizeof(ns), "/proc/%d/ns/net", r->pid);
        if (r->state != EM_CSTATE_RUNNING)
                return em_error_set(err, ESRCH,
                                    "pod %s is not running (its infra container is %s; `edgemig "
                                    "start %s`)",
                                    pod, em_cstate_name(r->state), pod);
        if (r->pid <= 0 || kill(r->pid, 0) < 0 || access(ns, F_OK) < 0)
                return em_error_set(err, ESRCH,
                                    "pod %s is not running (its infra container died; `edgemig "
                                    "start %s`)",
                                    pod, pod);
        *out = steal_pointer(&r);
        return 0;
}

int em_pod_check_running(struct em_state *st, const char *pod, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *r = NULL;

        return infra_of(st, pod, &r, err);
}

int em_pod_member_join(struct em_state *st, json_t *spec, int *infra_pid, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *infra = NULL;
        const char *pod = em_json_str(spec, "pod");

        *infra_pid = 0;
        if (pod == NULL || em_pod_spec_is_infra(spec))
                return 0;
        if (infra_of(st, pod, &infra, err) < 0)
                return -1;
        if (infra->ip == NULL || infra->ids.size == 0)
                return em_error_set(
                    err, EINVAL, "pod %s has no service IP or no user namespace of its own", pod);
        json_object_set_new(spec, "ip", json_string(infra->ip));
        em_security_spec_set_ids(spec, &infra->ids);
        *infra_pid = infra->pid;
        return 0;
}

static bool is_member(const struct em_container_rec *r, const char *pod, bool running_only)
{
        cleanup_json json_t *spec = NULL;
        em_error_t e = NULL;

        if (spec_of(r, &spec, &e) < 0) {
                em_error_free(&e);
                return false;
        }
        const char *p = em_json_str(spec, "pod");
        /* A member whose init died is no running one, though its zombie
         * may wait long for a slow reaper. */
        bool running = r->state == EM_CSTATE_RUNNING && r->pid > 0 && em_proc_runs(r->pid);
        return p && strcmp(p, pod) == 0 && !em_pod_spec_is_infra(spec) &&
               (!running_only || running);
}

int em_pod_members(struct em_state *st, const char *pod, bool running_only, char ***out,
                   em_error_t *err)
{
        struct em_container_rec **recs = NULL;
        cleanup_strv char **names = NULL;
        size_t n = 0, used = 0;

        if (em_state_container_list(st, &recs, &n, err) < 0)
                return -1;
        names = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; names && i < n; i++)
                if (is_member(recs[i], pod, running_only))
                        names[used++] = steal_pointer(&recs[i]->name);
        em_container_rec_list_free(&recs, n);
        if (names == NULL)
                return em_error_set(err, ENOMEM, "pod members");
        *out = steal_pointer(&names);
        return 0;
}

static char *names_joined(char *const *v)
{
        size_t len = 1;
        for (char *const *p = v; *p; p++)
                len += strlen(*p) + 2;
        char *s = calloc(1, len);
        for (char *const *p = v; s && *p; p++) {
                if (p != v)
                        strcat(s, ", ");
                strcat(s, *p);
        }
        return s;
}

int em_pod_check_infra_idle(struct em_state *st, const struct em_container_rec *rec,
                            em_error_t *err)
{
        cleanup_strv char **members = NULL;
        int infra = em_pod_rec_is_infra(rec, err);

        if (infra <= 0)
                return infra;
        if (em_pod_members(st, rec->name, true, &members, err) < 0)
                return -1;
        if (members[0] == NULL)
                return 0;
        cleanup_free char *list = names_joined(members);
        return em_error_set(err, EBUSY,
                            "pod %s still runs %s in its namespaces: stop them before its infra "
                            "container stops or starts again (`edgemig pod stop %s` stops the "
                            "whole pod)",
                            rec->name, list ? list : "members", rec->name);
}

/* {"name", "state"} of c added to its pod's entry in pods (by name). */
static void add_member(json_t *pods, const json_t *c, const char *pod)
{
        json_t *entry = json_object_get(pods, pod);

        if (entry == NULL)
                return; /* a member whose pod is gone: `ps` shows it */
        json_array_append_new(json_object_get(entry, "members"),
                              json_pack("{s:s, s:s}", "name", em_json_str(c, "name"), "state",
                                        em_json_str(c, "state")));
}

static json_t *pod_entry(const json_t *c)
{
        const char *ip = em_json_str(c, "ip");

        return json_pack("{s:s, s:s?, s:s, s:I, s:[]}", "name", em_json_str(c, "name"), "ip", ip,
                         "state", em_json_str(c, "state"), "infra_pid",
                         (json_int_t)em_json_int(c, "pid", 0), "members");
}

/* Pods by name, from em_container_list's entries. */
static json_t *pods_of(const json_t *list)
{
        json_t *pods = json_object(), *c;
        size_t i;

        json_array_foreach(list, i, c)
        {
                const json_t *spec = json_object_get(c, "spec");
                if (em_pod_spec_is_infra(spec))
                        json_object_set_new(pods, em_json_str(c, "name"), pod_entry(c));
        }
        json_array_foreach(list, i, c)
        {
                const json_t *spec = json_object_get(c, "spec");
                const char *pod = em_json_str(spec, "pod");
                if (pod && !em_pod_spec_is_infra(spec))
                        add_member(pods, c, pod);
        }
        return pods;
}

int em_pod_list(const struct em_config *cfg, json_t **out, em_error_t *err)
{
        cleanup_json json_t *list = NULL, *pods = NULL;
        const char *name;
        json_t *v;

        if (em_container_list(cfg, &list, err) < 0)
                return -1;
        if ((pods = pods_of(list)) == NULL || (*out = json_array()) == NULL)
                return em_error_set(err, ENOMEM, "listing pods");
        /* jansson keeps insertion order; the container list is by name. */
        json_object_foreach(pods, name, v) json_array_append(*out, v);
        return 0;
}

int em_pod_inspect(const struct em_config *cfg, const char *name, json_t **out, em_error_t *err)
{
        cleanup_json json_t *list = NULL;
        json_t *p;
        size_t i;

        if (em_pod_list(cfg, &list, err) < 0)
                return -1;
        json_array_foreach(list, i, p)
        {
                if (strcmp(em_json_str(p, "name"), name) == 0) {
                        *out = json_incref(p);
                        return 0;
                }
        }
        return em_error_set(err, ENOENT, "no pod '%s' (`edgemig pod ls` lists them)", name);
}

static int rm_members(const struct em_config *cfg, char *const *members, em_error_t *err)
{
        for (char *const *m = members; *m; m++)
                if (em_container_rm(cfg, *m, true, err) < 0)
                        return em_error_wrap(err, "removing member %s", *m);
        return 0;
}

int em_pod_rm(const struct em_config *cfg, const char *name, bool force, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        cleanup_json json_t *spec = NULL;
        cleanup_strv char **members = NULL;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_get(st, name, &rec, err) < 0 || spec_of(rec, &spec, err) < 0)
                return em_error_wrap(err, "removing pod %s", name);
        if (!em_pod_spec_is_infra(spec))
                return em_error_set(err, EINVAL, "'%s' is a container, not a pod (`edgemig rm`)",
                                    name);
        if (em_pod_members(st, name, false, &members, err) < 0)
                return -1;
        if (members[0] != NULL && !force) {
                cleanup_free char *list = names_joined(members);
                return em_error_set(err, EBUSY,
                                    "pod %s has members (%s): remove them first, or use --force",
                                    name, list ? list : "?");
        }
        if (rm_members(cfg, members, err) < 0 || em_container_rm(cfg, name, true, err) < 0)
                return em_error_wrap(err, "removing pod %s", name);
        return 0;
}

int em_pod_refuse_alone(const json_t *spec, const char *what, em_error_t *err)
{
        const char *pod = em_pod_of_spec(spec);

        if (pod == NULL)
                return 0;
        return em_error_set(err, ENOTSUP,
                            "%s %s: it belongs to pod %s, whose containers share their network, "
                            "IPC and UTS namespaces; edgemig does not checkpoint or move one "
                            "container of a pod alone (`edgemig migrate %s --to HOST:PORT` moves "
                            "the whole pod, `check %s --to HOST:PORT` checks "
                            "it, `prepare %s --to HOST:PORT` sends its images ahead; `edgemig "
                            "pod checkpoint %s --to DIR` checkpoints it here; docs/pods.md)",
                            what, em_json_str(spec, "name"), pod, pod, pod, pod, pod);
}

/* The infra record of pod name, which must be a pod; *members all of them. */
static int pod_open(const struct em_config *cfg, const char *name, struct em_state **st,
                    struct em_container_rec **rec, char ***members, em_error_t *err)
{
        cleanup_json json_t *spec = NULL;

        if (em_state_open(cfg->root, st, err) < 0 ||
            em_state_container_get(*st, name, rec, err) < 0 || spec_of(*rec, &spec, err) < 0)
                return -1;
        if (!em_pod_spec_is_infra(spec))
                return em_error_set(err, EINVAL, "'%s' is a container, not a pod", name);
        return em_pod_members(*st, name, false, members, err);
}

int em_pod_stop(const struct em_config *cfg, const char *name, int timeout_s, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        cleanup_strv char **members = NULL;

        if (pod_open(cfg, name, &st, &rec, &members, err) < 0)
                return em_error_wrap(err, "stopping pod %s", name);
        em_state_close(&st); /* stop opens its own */
        for (char **m = members; *m; m++) {
                cleanup_container_rec struct em_container_rec *r = NULL;
                if (em_state_open(cfg->root, &st, err) < 0 ||
                    em_state_container_get(st, *m, &r, err) < 0)
                        return em_error_wrap(err, "stopping pod %s", name);
                em_state_close(&st);
                if (r->state == EM_CSTATE_RUNNING && em_container_stop(cfg, *m, timeout_s, err) < 0)
                        return em_error_wrap(err, "stopping pod %s", name);
        }
        if (em_container_stop(cfg, name, timeout_s, err) < 0)
                return em_error_wrap(err, "stopping pod %s", name);
        return 0;
}

static bool infra_running(struct em_state *st, const char *name)
{
        cleanup_error em_error_t e = NULL;

        return em_pod_check_running(st, name, &e) == 0;
}

int em_pod_start(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *rec = NULL;
        cleanup_strv char **members = NULL, **running = NULL;

        if (pod_open(cfg, name, &st, &rec, &members, err) < 0 ||
            em_pod_members(st, name, true, &running, err) < 0)
                return em_error_wrap(err, "starting pod %s", name);
        if (!infra_running(st, name) && em_container_start(cfg, name, err) < 0)
                return em_error_wrap(err, "starting pod %s", name);
        for (char **m = members; *m; m++) {
                bool up = false;
                for (char **r = running; *r && !up; r++)
                        up = strcmp(*r, *m) == 0;
                if (!up && em_container_start(cfg, *m, err) < 0)
                        return em_error_wrap(err, "starting pod %s", name);
        }
        return 0;
}
