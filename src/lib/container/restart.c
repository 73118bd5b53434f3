#include "container/restart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/container.h"
#include "container/pod.h"
#include "container/routehook.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   60000
#define STABLE_MS        60000 /* running this long: the back-off starts over */

static const char *const names[] = {"no", "on-failure", "always"};

int em_restart_parse(const char *s, enum em_restart *out, em_error_t *err)
{
        for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
                if (s != NULL && strcmp(s, names[i]) == 0) {
                        *out = (enum em_restart)i;
                        return 0;
                }
        }
        return em_error_set(err, EINVAL, "restart policy '%s': use no, on-failure or always",
                            s ? s : "");
}

const char *em_restart_name(enum em_restart r)
{
        return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

int em_restart_of_spec(const json_t *spec, enum em_restart *out, em_error_t *err)
{
        const json_t *v = json_object_get(spec, "restart");

        *out = EM_RESTART_NO;
        if (v == NULL)
                return 0;
        if (!json_is_string(v))
                return em_error_set(err, EINVAL, "spec restart must be a string");
        return em_restart_parse(json_string_value(v), out, err);
}

bool em_restart_wanted(enum em_restart policy, const struct em_container_rec *rec, bool boot)
{
        bool died = !rec->stopped_by_user;

        if (rec->state != EM_CSTATE_RUNNING && rec->state != EM_CSTATE_STOPPED)
                return false;
        if (policy == EM_RESTART_ALWAYS)
                return died || boot;
        return policy == EM_RESTART_ON_FAILURE && died;
}

/* backoff: per container name, {"delay", "next", "started"} in monotonic
 * ms; withdrawn: per name, the started_at of the run whose end withdrew
 * its IP. */
struct em_restart_monitor {
        json_t *backoff, *withdrawn;
        const char *route_hook;
};

int em_restart_monitor_new(struct em_restart_monitor **out, em_error_t *err)
{
        struct em_restart_monitor *m = calloc(1, sizeof(*m));

        if (m == NULL || (m->backoff = json_object()) == NULL ||
            (m->withdrawn = json_object()) == NULL) {
                if (m != NULL)
                        json_decref(m->backoff);
                free(m);
                return em_error_set(err, ENOMEM, "restart monitor");
        }
        *out = m;
        return 0;
}

void em_restart_monitor_free(struct em_restart_monitor **m)
{
        if (*m == NULL)
                return;
        json_decref((*m)->backoff);
        json_decref((*m)->withdrawn);
        free(*m);
        *m = NULL;
}

void em_restart_monitor_set_route_hook(struct em_restart_monitor *m, const char *hook)
{
        m->route_hook = hook;
}

/* The container runs again: its service IP is to be routed here. */
static void announce(const struct em_restart_monitor *m, const struct em_container_rec *rec)
{
        cleanup_error em_error_t e = NULL;

        if (rec->ip != NULL && em_route_hook_run(m->route_hook, "announce", rec->ip, &e) < 0)
                em_log_warn("restarted %s, but its service IP is not announced: %s", rec->name,
                            em_error_msg(e));
}

static bool process_alive(const struct em_config *cfg, const char *name)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_free char *status = NULL;
        cleanup_error em_error_t e = NULL;
        int pid = 0;

        if (em_container_paths_init(cfg, name, &p, &e) < 0 ||
            em_runc_state(cfg, &p, name, &status, &pid, &e) < 0)
                return false;
        return strcmp(status, "running") == 0 || strcmp(status, "paused") == 0;
}

/* Whether rec's processes ended without `edgemig stop`: its record still
 * says running but the pid is gone, or `ps` found it dead already and
 * marked it stopped. */
static bool ended_on_its_own(const struct em_container_rec *rec)
{
        if (rec->state == EM_CSTATE_STOPPED)
                return !rec->stopped_by_user;
        return rec->state == EM_CSTATE_RUNNING && rec->pid > 0 && !em_proc_runs(rec->pid);
}

/* A container without a restart policy whose processes ended on their
 * own: nothing serves its service IP here any more, so the route goes
 * (`stop`, `rm` and migrations withdraw it themselves). Once per run
 * that ended (withdrawn keeps its started_at); a failing hook is logged,
 * not retried. */
static void withdraw_if_ended(struct em_restart_monitor *m, const struct em_container_rec *rec)
{
        cleanup_error em_error_t e = NULL;
        json_t *w = json_object_get(m->withdrawn, rec->name);

        if (rec->ip == NULL || m->route_hook == NULL || *m->route_hook == '\0' ||
            (w != NULL && json_integer_value(w) == rec->started_at) || !ended_on_its_own(rec))
                return;
        json_object_set_new(m->withdrawn, rec->name, json_integer(rec->started_at));
        if (em_route_hook_run(m->route_hook, "withdraw", rec->ip, &e) < 0)
                em_log_warn("%s ended, but its service IP is still routed here: %s", rec->name,
                            em_error_msg(e));
        else
                em_log_info("%s ended (no restart policy): withdrew its service IP %s", rec->name,
                            rec->ip);
}

/* Starts rec if its back-off allows; records the attempt. */
static bool try_start(struct em_restart_monitor *m, const struct em_config *cfg,
                      const struct em_container_rec *rec, int64_t now)
{
        json_t *b = json_object_get(m->backoff, rec->name);
        int64_t delay = b ? em_json_int(b, "delay", 0) : 0;
        cleanup_error em_error_t e = NULL;

        if (b != NULL && now < em_json_int(b, "next", 0))
                return false;
        delay = delay == 0                   ? BACKOFF_FIRST_MS
                : delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                             : delay * 2;
        json_object_set_new(m->backoff, rec->name,
                            json_pack("{s:I, s:I, s:I}", "delay", (json_int_t)delay, "next",
                                      (json_int_t)(now + delay), "started", (json_int_t)now));
        em_log_info("restarting %s (restart policy, %s)", rec->name,
                    rec->stopped_by_user ? "stopped" : "died");
        if (em_container_start(cfg, rec->name, &e) == 0) {
                announce(m, rec);
                return true;
        }
        em_log_warn("restarting %s: %s; next attempt in %lld s", rec->name, em_error_msg(e),
                    (long long)(delay / 1000));
        return false;
}

static bool pass_one(struct em_restart_monitor *m, const struct em_config *cfg,
                     const struct em_container_rec *rec, bool boot, int64_t now)
{
        cleanup_json json_t *spec = NULL;
        cleanup_error em_error_t e = NULL;
        enum em_restart policy;

        if (em_json_parse(rec->spec, strlen(rec->spec), "spec", &spec, &e) < 0 ||
            em_restart_of_spec(spec, &policy, &e) < 0)
                return false;
        if (policy == EM_RESTART_NO) {
                withdraw_if_ended(m, rec);
                return false;
        }
        if (rec->state == EM_CSTATE_RUNNING && process_alive(cfg, rec->name)) {
                json_t *b = json_object_get(m->backoff, rec->name);
                if (b != NULL && now - em_json_int(b, "started", 0) >= STABLE_MS)
                        json_object_del(m->backoff, rec->name);
                return false;
        }
        return em_restart_wanted(policy, rec, boot) && try_start(m, cfg, rec, now);
}

static bool is_pod_infra(const struct em_container_rec *rec)
{
        cleanup_error em_error_t e = NULL;

        return em_pod_rec_is_infra(rec, &e) == 1;
}

int em_restart_monitor_pass(struct em_restart_monitor *m, const struct em_config *cfg, bool boot,
                            int64_t now_ms, int *started, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        struct em_container_rec **recs = NULL;
        size_t n = 0;
        int count = 0;

        if (em_state_open(cfg->root, &st, err) < 0 ||
            em_state_container_list(st, &recs, &n, err) < 0)
                return em_error_wrap(err, "applying restart policies");
        em_state_close(&st); /* start opens its own */
        /* A pod's infra container first: its members join its namespaces
         * (pod.h). */
        for (int infra = 1; infra >= 0; infra--)
                for (size_t i = 0; i < n; i++)
                        if (is_pod_infra(recs[i]) == (bool)infra)
                                count += pass_one(m, cfg, recs[i], boot, now_ms);
        em_container_rec_list_free(&recs, n);
        if (started != NULL)
                *started = count;
        return 0;
}
