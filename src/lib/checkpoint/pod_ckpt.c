#include "checkpoint/pod_ckpt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ckpt_refuse.h"
#include "checkpoint/pod_journal.h"
#include "checkpoint/pod_member.h"
#include "checkpoint/runc.h"
#include "container/container.h"
#include "container/freezer.h"
#include "container/netns.h"
#include "container/pod.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

/* As runc.c's: long enough for a busy container. */
#define FREEZE_TIMEOUT_MS 2000

/* The containers of a pod in dump order: running members, infra last. */
struct pod_set {
        char **names;
        size_t n;
        int journal; /* its lock (pod_journal.h), or -1 */
};

static void pod_set_free(struct pod_set *s)
{
        em_strv_free(s->names);
        s->names = NULL;
}

static int pod_set_of(const struct em_config *cfg, const char *pod, struct pod_set *s,
                      em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        size_t n = 0;

        if (em_state_open(cfg->root, &st, err) < 0 || em_pod_check_running(st, pod, err) < 0 ||
            em_pod_members(st, pod, true, &s->names, err) < 0)
                return -1;
        while (s->names[n])
                n++;
        char **v = realloc(s->names, (n + 2) * sizeof(char *));
        if (v == NULL || (v[n] = strdup(pod)) == NULL) {
                s->names = v ? v : s->names;
                return em_error_set(err, ENOMEM, "pod %s", pod);
        }
        v[n + 1] = NULL;
        s->names = v;
        s->n = n + 1;
        return 0;
}

static int freeze_one(const struct em_config *cfg, const char *name, bool thaw, em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        if (thaw)
                return em_freezer_thaw(NULL, p.cgroup, err);
        return em_freezer_freeze(NULL, p.cgroup, FREEZE_TIMEOUT_MS, err);
}

static void thaw_from(const struct em_config *cfg, const struct pod_set *s, size_t from)
{
        for (size_t i = from; i < s->n; i++) {
                em_error_t e = NULL;
                if (freeze_one(cfg, s->names[i], true, &e) < 0)
                        em_log_error("%s: %s stays frozen; `runc resume` thaws it", em_error_msg(e),
                                     s->names[i]);
                em_error_free(&e);
        }
}

/* Marks one container "migrating" (on) or back "running": while a pod
 * checkpoint owns them, a second one, `stop` or `ps` leaves them alone. */
static int mark(struct em_state *st, const char *name, bool on, em_error_t *err)
{
        cleanup_container_rec struct em_container_rec *r = NULL;
        enum em_cstate from = on ? EM_CSTATE_RUNNING : EM_CSTATE_MIGRATING;

        if (em_state_container_get(st, name, &r, err) < 0)
                return -1;
        return em_state_container_transition(st, name, EM_CSTATE_BIT(from),
                                             on ? EM_CSTATE_MIGRATING : EM_CSTATE_RUNNING, r->pid,
                                             NULL, err);
}

/* Those still marked go back to "running" (the dumped ones are restored
 * or checkpointed). */
static void unmark_all(const struct em_config *cfg, const struct pod_set *s)
{
        cleanup_state struct em_state *st = NULL;
        em_error_t e = NULL;

        if (em_state_open(cfg->root, &st, &e) < 0)
                em_log_warn("%s", em_error_msg(e));
        for (size_t i = 0; st != NULL && i < s->n; i++) {
                mark(st, s->names[i], false, &e);
                em_error_free(&e);
        }
        em_error_free(&e);
}

static int mark_all(const struct em_config *cfg, const struct pod_set *s, em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;

        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        for (size_t i = 0; i < s->n; i++) {
                if (mark(st, s->names[i], true, err) < 0) {
                        for (size_t j = 0; j < i; j++) {
                                em_error_t e = NULL;
                                mark(st, s->names[j], false, &e);
                                em_error_free(&e);
                        }
                        return em_error_wrap(err, "pod member %s", s->names[i]);
                }
        }
        return 0;
}

/* One freeze for the whole pod: its containers stop together, so no
 * member sees another one go first. */
static int freeze_all(const struct em_config *cfg, const struct pod_set *s, em_error_t *err)
{
        for (size_t i = 0; i < s->n; i++) {
                if (freeze_one(cfg, s->names[i], false, err) < 0) {
                        thaw_from(cfg, s, 0);
                        return em_error_wrap(err, "freezing pod member %s", s->names[i]);
                }
        }
        return 0;
}

static char *sub_dir(const char *dir, const char *name, const char *leaf)
{
        cleanup_free char *d = em_path_join(dir, name);

        return d && leaf ? em_path_join(d, leaf) : steal_pointer(&d);
}

/* A container's checkpointed spec, as em_checkpoint_load reads it. */
static int saved_spec(const char *dir, const char *name, json_t **out, em_error_t *err)
{
        cleanup_free char *meta = sub_dir(dir, name, "container.json");
        const char *saved;

        if (meta == NULL)
                return em_error_set(err, ENOMEM, "restore");
        if (em_json_load_file(meta, 16u << 20, out, err) < 0)
                return -1;
        saved = em_json_str(*out, "name");
        if (em_json_int(*out, "format", 0) != EM_CHECKPOINT_FORMAT || saved == NULL ||
            strcmp(saved, name) != 0)
                return em_error_set(err, EPROTO, "%s is not %s's checkpoint", meta, name);
        json_object_del(*out, "format");
        json_object_del(*out, "checkpointed_at");
        return 0;
}

/* The pod's ID range where it was checkpointed: its infra's then. */
static struct em_idrange dumped_range(const char *dir, const char *pod)
{
        cleanup_json json_t *spec = NULL;
        em_error_t e = NULL;

        if (saved_spec(dir, pod, &spec, &e) < 0) {
                em_error_free(&e);
                return (struct em_idrange){0, 0};
        }
        json_t *u = json_object_get(spec, "userns");
        long long base = em_json_int(u, "base", -1), size = em_json_int(u, "size", -1);
        if (base < 0 || base > UINT32_MAX || size <= 0 || size > UINT32_MAX)
                return (struct em_idrange){0, 0};
        return (struct em_idrange){(uint32_t)base, (uint32_t)size};
}

/* Restores member name from dir into the running pod `pod`; own_upper
 * keeps its own writable layer (a roll-back here), else dir's is copied
 * in, re-owned if the pod's range changed. */
static int restore_member(const struct em_config *cfg, const char *dir, const char *pod,
                          const char *name, bool own_upper, em_error_t *err)
{
        cleanup_json json_t *spec = NULL;
        cleanup_free char *criu = sub_dir(dir, name, "criu");
        cleanup_free char *upper = sub_dir(dir, name, "upper");
        struct em_idrange dumped = dumped_range(dir, pod);

        if (criu == NULL || upper == NULL)
                return em_error_set(err, ENOMEM, "restore");
        if (saved_spec(dir, name, &spec, err) < 0)
                return -1;
        const char *its_pod = em_json_str(spec, "pod");
        if (its_pod == NULL || strcmp(its_pod, pod) != 0)
                return em_error_set(err, EINVAL, "%s's checkpoint in %s is not of pod %s", name,
                                    dir, pod);
        return em_pod_member_restore(cfg, name, spec, criu, own_upper ? NULL : upper,
                                     own_upper ? NULL : &dumped, err);
}

static int restore_infra(const struct em_config *cfg, const char *dir, const char *pod,
                         bool own_upper, em_error_t *err)
{
        struct em_restore_opts o;
        cleanup_json json_t *spec = NULL;
        cleanup_free char *criu = sub_dir(dir, pod, "criu");
        cleanup_free char *upper = sub_dir(dir, pod, "upper");

        em_restore_opts_init(&o);
        if (criu == NULL || upper == NULL)
                return em_error_set(err, ENOMEM, "restore");
        if (saved_spec(dir, pod, &spec, err) < 0)
                return -1;
        return em_container_restore_from(cfg, pod, spec, criu, own_upper ? NULL : upper, &o, err);
}

static bool is_checkpointed(const struct em_config *cfg, const char *name)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *r = NULL;
        cleanup_error em_error_t e = NULL;

        return em_state_open(cfg->root, &st, &e) == 0 &&
               em_state_container_get(st, name, &r, &e) == 0 && r->state == EM_CSTATE_CHECKPOINTED;
}

/* /proc/<infra pid>/ns/net of the running pod. */
static int pod_net(const struct em_config *cfg, const char *pod, char *net, size_t len,
                   em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *r = NULL;

        if (em_state_open(cfg->root, &st, err) < 0 || em_state_container_get(st, pod, &r, err) < 0)
                return -1;
        if (r->pid <= 0)
                return em_error_set(err, ESRCH, "pod %s has no infra process", pod);
        snprintf(net, len, "/proc/%d/ns/net", r->pid);
        return 0;
}

/* runc hands the pod's network namespace to CRIU as external, and CRIU
 * then locks nothing: the pod's members are dumped one after another, so
 * the lock is ours, from before the first dump (container/netns.h). */
static int lock_pod(const struct em_config *cfg, const char *pod, em_error_t *err)
{
        char net[64];

        if (pod_net(cfg, pod, net, sizeof(net), err) < 0)
                return -1;
        return em_netns_criu_lock(net, err);
}

static void flush_pod_lock(const struct em_config *cfg, const char *pod)
{
        em_error_t e = NULL;
        char net[64];

        if (pod_net(cfg, pod, net, sizeof(net), &e) == 0)
                em_netns_flush_criu_lock(net, &e);
        em_error_free(&e);
}

/* While members come back one by one (container/netns.h); releasing is
 * best effort: on failure the pod is gone or runs on with resets held. */
static int hold_resets(const struct em_config *cfg, const char *pod, bool on, em_error_t *err)
{
        char net[64];

        if (pod_net(cfg, pod, net, sizeof(net), err) < 0)
                return -1;
        return em_netns_hold_resets(net, on, err);
}

static void release_resets(const struct em_config *cfg, const char *pod)
{
        em_error_t e = NULL;

        if (hold_resets(cfg, pod, false, &e) < 0)
                em_log_warn("%s", em_error_msg(e));
        em_error_free(&e);
}

/* After the dump of s->names[failed] failed: the pod runs again. Those
 * already dumped come back from their images (each keeps its own writable
 * layer, untouched while frozen) while the others stay frozen and the
 * resets on loopback are held, so that a member still here does not talk
 * to one not back yet; then the others are thawed and all resumed. */
static int dump_rollback(const struct em_config *cfg, const char *dir, const struct pod_set *s,
                         size_t failed, em_error_t *err)
{
        const char *pod = s->names[s->n - 1];
        int rc = 0;

        unmark_all(cfg, s); /* those not dumped run on, the infra first of all */
        if (is_checkpointed(cfg, pod))
                rc = restore_infra(cfg, dir, pod, true, err);
        if (rc == 0)
                rc = hold_resets(cfg, pod, true, err);
        flush_pod_lock(cfg, pod);
        for (size_t i = 0; rc == 0 && i <= failed && i + 1 < s->n; i++)
                if (is_checkpointed(cfg, s->names[i]))
                        rc = restore_member(cfg, dir, pod, s->names[i], true, err);
        release_resets(cfg, pod);
        thaw_from(cfg, s, 0);
        /* Those restored come back stopped; to the others SIGCONT is no news. */
        for (size_t i = 0; rc == 0 && i + 1 < s->n; i++)
                rc = em_pod_member_resume(cfg, s->names[i], err);
        return rc;
}

static int save_one(const struct em_config *cfg, const char *dir, const char *name, em_error_t *err)
{
        struct em_checkpoint_opts o;
        cleanup_free char *sub = sub_dir(dir, name, NULL);

        em_checkpoint_opts_init(&o);
        o.whole_pod = true;
        if (sub == NULL)
                return em_error_set(err, ENOMEM, "checkpoint");
        if (em_checkpoint_save(cfg, name, sub, &o, err) < 0)
                return -1;
        /* The pod's root restores the members: let it pass. */
        if (chmod(sub, 0711) < 0)
                return em_error_set(err, errno, "chmod %s", sub);
        return 0;
}

static int write_manifest(const char *dir, const struct pod_set *s, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, "pod.json");
        cleanup_json json_t *j = json_pack("{s:i, s:s, s:[]}", "format", EM_POD_CHECKPOINT_FORMAT,
                                           "pod", s->names[s->n - 1], "members");

        if (path == NULL || j == NULL)
                return em_error_set(err, ENOMEM, "pod.json");
        for (size_t i = 0; i + 1 < s->n; i++)
                json_array_append_new(json_object_get(j, "members"), json_string(s->names[i]));
        return em_json_write_file(path, j, err);
}

/* The pod runs again: its partial checkpoint goes. */
static void remove_subdirs(const char *dir, const struct pod_set *s)
{
        for (size_t i = 0; i < s->n; i++) {
                cleanup_free char *sub = sub_dir(dir, s->names[i], NULL);
                em_error_t e = NULL;
                if (sub != NULL && em_rm_rf(sub, &e) < 0)
                        em_log_warn("%s", em_error_msg(e));
                em_error_free(&e);
        }
}

/* The dump of s->names[i] (or, i = 0, the freeze) failed: the pod runs
 * on, or if it cannot be brought back, the journal stays (*keep_journal)
 * for `edgemig recover` to try again. */
static int dump_failed(const struct em_config *cfg, const char *dir, const struct pod_set *s,
                       size_t i, bool *keep_journal, em_error_t *err)
{
        em_error_t e = NULL;

        em_error_wrap(err, "checkpointing pod %s", s->names[s->n - 1]);
        if (dump_rollback(cfg, dir, s, i, &e) < 0) {
                *keep_journal = true;
                em_error_wrap(err,
                              "and bringing the pod back failed too (%s); the "
                              "checkpoints so far are in %s; `edgemig recover` tries again",
                              em_error_msg(e), dir);
                em_error_free(&e);
                return -1;
        }
        remove_subdirs(dir, s);
        return em_error_wrap(err, "the pod runs on");
}

static int dump_all(const struct em_config *cfg, const char *dir, const struct pod_set *s,
                    bool *keep_journal, em_error_t *err)
{
        char point[64];

        /* pod.after-freeze: all frozen and cut off, nothing dumped yet. */
        if (em_fault("pod.after-freeze", -1, err) < 0)
                return dump_failed(cfg, dir, s, 0, keep_journal, err);
        for (size_t i = 0; i < s->n; i++) {
                /* pod.after-dump-N: after the Nth dump, the infra's last. */
                snprintf(point, sizeof(point), "pod.after-dump-%zu", i + 1);
                if (save_one(cfg, dir, s->names[i], err) < 0 || em_fault(point, -1, err) < 0)
                        return dump_failed(cfg, dir, s, i, keep_journal, err);
        }
        return 0;
}

/* True if CRIU's log in dir says the dump completed. */
static bool dump_finished(const char *dir, const char *name)
{
        cleanup_free char *log = sub_dir(dir, name, "criu/dump.log"), *text = NULL;
        cleanup_error em_error_t e = NULL;

        return log != NULL && em_read_file(log, 64u << 20, &text, NULL, &e) == 0 &&
               strstr(text, "Dumping finished successfully") != NULL;
}

/* Killed while runc dumped name: runc went on alone (recovery waited for
 * it, pod_journal.h), and the container's row still says
 * "migrating". If its processes are gone and the dump completed, it is
 * checkpointed as if the checkpoint had gone on; if they are gone without
 * a complete dump, nothing can bring its state back. */
static void adopt_dump(const struct em_config *cfg, const char *dir, const char *name)
{
        cleanup_container_paths struct em_container_paths p = {0};
        cleanup_state struct em_state *st = NULL;
        cleanup_container_rec struct em_container_rec *r = NULL;
        cleanup_free char *status = NULL;
        cleanup_error em_error_t e = NULL;
        int pid = 0;

        if (em_state_open(cfg->root, &st, &e) < 0 || em_state_container_get(st, name, &r, &e) < 0 ||
            r->state != EM_CSTATE_MIGRATING || em_container_paths_init(cfg, name, &p, &e) < 0 ||
            em_runc_state(cfg, &p, name, &status, &pid, &e) < 0 ||
            (*status != '\0' && strcmp(status, "stopped") != 0))
                return; /* alive (thawed next), or nothing to go by */
        if (!dump_finished(dir, name)) {
                em_log_error("recovery: %s's processes are gone without a complete dump in %s: "
                             "its state is lost",
                             name, dir);
                return;
        }
        /* What save_one did not live to do: the pod's root restores it. */
        cleanup_free char *sub = sub_dir(dir, name, NULL);
        if (sub == NULL || chmod(sub, 0711) < 0)
                em_log_warn("recovery: chmod %s: %s", sub ? sub : name, strerror(errno));
        if (em_state_container_transition(st, name, EM_CSTATE_BIT(EM_CSTATE_MIGRATING),
                                          EM_CSTATE_CHECKPOINTED, 0, NULL, &e) < 0 ||
            em_container_release(cfg, name, &e) < 0)
                em_log_warn("recovery: %s", em_error_msg(e));
}

/* What a crashed checkpoint left (pod_journal.h): every container already
 * dumped comes back from its images, the others are thawed. */
static int rollback_journalled(const struct em_config *cfg, const char *dir, char **names, size_t n,
                               em_error_t *err)
{
        const struct pod_set s = {names, n, -1};

        for (size_t i = 0; i < n; i++)
                adopt_dump(cfg, dir, names[i]);
        if (dump_rollback(cfg, dir, &s, n - 1, err) < 0)
                return -1;
        remove_subdirs(dir, &s);
        return 0;
}

static int settle_restore(const struct em_config *cfg, const char *dir, char **names, size_t n,
                          em_error_t *err);

int em_pod_checkpoint_recover(const struct em_config *cfg, int wait_ms, size_t *pending,
                              em_error_t *err)
{
        static const struct em_pod_recovery rec = {rollback_journalled, settle_restore};

        return em_pod_journal_recover(cfg, &rec, wait_ms, pending, err);
}

/* Before anything is frozen: what the checkpoint would lose
 * (ckpt_refuse.h). A migration checked it before its rounds too, but a
 * process `edgemig exec` started may have come since. */
static int refuse_lossy(const struct em_config *cfg, const struct pod_set *s, em_error_t *err)
{
        if (em_ckpt_refuse_recorded(cfg, (const char *const *)s->names, s->n, err) < 0)
                return em_error_wrap(err, "the pod keeps running");
        return 0;
}

/* The checkpoint of the pod in s, marked and journalled. */
static int checkpoint_journalled(const struct em_config *cfg, const char *dir,
                                 const struct pod_set *s, bool *keep_journal, em_error_t *err)
{
        const char *pod = s->names[s->n - 1];

        if (mark_all(cfg, s, err) < 0)
                return em_error_wrap(err, "checkpointing pod %s", pod);
        if (freeze_all(cfg, s, err) < 0 || lock_pod(cfg, pod, err) < 0) {
                thaw_from(cfg, s, 0);
                unmark_all(cfg, s);
                return -1;
        }
        if (dump_all(cfg, dir, s, keep_journal, err) < 0)
                return -1;
        return write_manifest(dir, s, err);
}

int em_pod_checkpoint(const struct em_config *cfg, const char *pod, const char *dir,
                      em_error_t *err)
{
        __attribute__((cleanup(pod_set_free))) struct pod_set s = {.journal = -1};
        bool keep_journal = false;
        cleanup_free char *manifest = em_path_join(dir, "pod.json");

        if (manifest == NULL || em_path_exists(manifest))
                return em_error_set(err, EEXIST, "%s already holds a pod's checkpoint", dir);
        if (pod_set_of(cfg, pod, &s, err) < 0 || refuse_lossy(cfg, &s, err) < 0 ||
            em_mkdir_p(dir, 0711, err) < 0)
                return em_error_wrap(err, "checkpointing pod %s", pod);
        /* The pod's root restores the members from here: let it pass. */
        if (chmod(dir, 0711) < 0)
                return em_error_set(err, errno, "chmod %s", dir);
        if (em_pod_journal_begin(cfg, pod, dir, s.names, &s.journal, err) < 0)
                return em_error_wrap(err, "checkpointing pod %s", pod);
        int rc = checkpoint_journalled(cfg, dir, &s, &keep_journal, err);
        if (keep_journal)
                close(s.journal);
        else
                em_pod_journal_end(cfg, pod, &s.journal);
        return rc;
}

static int load_manifest(const char *dir, json_t **out, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, "pod.json");
        json_t *m, *v;
        size_t i;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "pod.json");
        if (em_json_load_file(path, 1u << 20, out, err) < 0)
                return em_error_wrap(err, "%s is not a pod's checkpoint", dir);
        const char *pod = em_json_str(*out, "pod");
        if (em_json_int(*out, "format", 0) != EM_POD_CHECKPOINT_FORMAT)
                return em_error_set(err, EPROTO, "%s: unsupported pod checkpoint format", path);
        if (pod == NULL || !em_container_name_valid(pod) ||
            !json_is_array(m = json_object_get(*out, "members")))
                return em_error_set(err, EINVAL, "%s: no valid pod name or member list", path);
        json_array_foreach(m, i, v)
        {
                const char *name = json_string_value(v);
                if (name == NULL || !em_container_name_valid(name) || strcmp(name, pod) == 0)
                        return em_error_set(err, EINVAL, "%s: invalid member name", path);
        }
        return 0;
}

/* Kills what was restored of the pod (members [0, n) of names and the
 * infra, names[nm]). */
static void restore_rollback(const struct em_config *cfg, char **names, size_t nm, size_t n)
{
        const char *pod = names[nm];
        em_error_t e = NULL;

        /* Killed, a restored socket would reset its peer, whose connection
         * lives on in a copy elsewhere (a migration's source): nothing
         * leaves the pod's namespace from here. */
        if (lock_pod(cfg, pod, &e) < 0)
                em_log_warn("%s", em_error_msg(e));
        em_error_free(&e);
        for (size_t i = n; i-- > 0;)
                em_pod_container_unrestore(cfg, names[i]);
        em_pod_container_unrestore(cfg, pod);
}

static int restore_members(const struct em_config *cfg, const char *dir, char **names, size_t nm,
                           em_error_t *err)
{
        const char *pod = names[nm];
        char point[64];

        if (hold_resets(cfg, pod, true, err) < 0) {
                restore_rollback(cfg, names, nm, 0);
                return -1;
        }
        for (size_t i = 0; i < nm; i++) {
                /* pod.after-member-restore-N: the Nth member restored, then a failure. */
                snprintf(point, sizeof(point), "pod.after-member-restore-%zu", i + 1);
                if (restore_member(cfg, dir, pod, names[i], false, err) < 0) {
                        restore_rollback(cfg, names, nm, i);
                        return -1;
                }
                if (em_fault(point, -1, err) < 0) {
                        restore_rollback(cfg, names, nm, i + 1);
                        return em_error_wrap(err, "restoring pod member %s", names[i]);
                }
        }
        release_resets(cfg, pod);
        /* All back, stopped: now they run, together. */
        for (size_t i = 0; i < nm; i++) {
                if (em_pod_member_resume(cfg, names[i], err) < 0) {
                        restore_rollback(cfg, names, nm, nm);
                        return -1;
                }
        }
        return 0;
}

/* The manifest's members, then the pod (NULL-terminated): the journal's
 * order, the restore's reversed. */
static int manifest_names(const json_t *m, char ***out, size_t *nm, em_error_t *err)
{
        const json_t *members = json_object_get(m, "members");
        size_t n = json_array_size(members);
        char **v = calloc(n + 2, sizeof(char *));

        if ((*out = v) == NULL)
                return em_error_set(err, ENOMEM, "pod restore");
        for (size_t i = 0; i <= n; i++) {
                const char *name =
                    i < n ? json_string_value(json_array_get(members, i)) : em_json_str(m, "pod");
                if ((v[i] = strdup(name)) == NULL)
                        return em_error_set(err, ENOMEM, "pod restore");
        }
        *nm = n;
        return 0;
}

int em_pod_restore(const struct em_config *cfg, const char *dir, em_error_t *err)
{
        cleanup_json json_t *m = NULL;
        cleanup_strv char **names = NULL;
        cleanup_close int journal = -1;
        size_t nm = 0;

        if (load_manifest(dir, &m, err) < 0 || manifest_names(m, &names, &nm, err) < 0)
                return -1;
        const char *pod = names[nm];
        /* A crash from here on is settled by recovery (settle_restore). */
        if (em_pod_journal_begin_restore(cfg, pod, dir, names, &journal, err) < 0)
                return em_error_wrap(err, "restoring pod %s", pod);
        int rc = restore_infra(cfg, dir, pod, false, err);
        if (rc < 0)
                em_error_wrap(err, "restoring pod %s", pod);
        else if ((rc = restore_members(cfg, dir, names, nm, err)) < 0)
                em_error_wrap(err,
                              "restoring pod %s (nothing of it runs; the checkpoint in %s is "
                              "kept)",
                              pod, dir);
        em_pod_journal_end(cfg, pod, &journal);
        return rc;
}

static bool all_running(const struct em_config *cfg, char **names, size_t n)
{
        cleanup_state struct em_state *st = NULL;
        cleanup_error em_error_t e = NULL;

        if (em_state_open(cfg->root, &st, &e) < 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                cleanup_container_rec struct em_container_rec *r = NULL;
                if (em_state_container_get(st, names[i], &r, &e) < 0 ||
                    r->state != EM_CSTATE_RUNNING)
                        return false;
        }
        return true;
}

bool em_pod_restored_from(const struct em_config *cfg, const char *dir)
{
        cleanup_json json_t *m = NULL;
        cleanup_strv char **names = NULL;
        cleanup_error em_error_t e = NULL;
        size_t nm = 0;

        return load_manifest(dir, &m, &e) == 0 && manifest_names(m, &names, &nm, &e) == 0 &&
               all_running(cfg, names, nm + 1);
}

/* A restore from a migration session's staging belongs to the session:
 * its outcome record (still "restoring") aborts it, and the source
 * restores its own copy. */
static bool in_session(const struct em_config *cfg, const char *dir)
{
        char root[PATH_MAX];
        cleanup_free char *incoming = NULL;

        /* The journal holds dir as a real path (pod_journal.c). */
        if (realpath(cfg->root, root) == NULL ||
            (incoming = em_path_join(root, "incoming/")) == NULL)
                return false;
        return strncmp(dir, incoming, strlen(incoming)) == 0;
}

/* What a crashed restore left (pod_journal.h): every container back
 * (held stopped, or some already resumed) and the restore not a
 * session's: it is finished, the pod runs. Otherwise it is rolled back
 * as a failed restore is: what came back is killed (the pod's network
 * locked first), every container checkpointed, dir kept for a retry. */
static int settle_restore(const struct em_config *cfg, const char *dir, char **names, size_t n,
                          em_error_t *err)
{
        const char *pod = names[n - 1];

        if (!in_session(cfg, dir) && all_running(cfg, names, n)) {
                em_log_warn("recovery: every container of pod %s was back: resuming them", pod);
                release_resets(cfg, pod);
                for (size_t i = 0; i + 1 < n; i++)
                        if (em_pod_member_resume(cfg, names[i], err) < 0)
                                return -1;
                return 0;
        }
        restore_rollback(cfg, names, n - 1, n - 1);
        em_log_warn("recovery: pod %s rolled back to its checkpoint in %s (`edgemig pod restore "
                    "%s` brings it back)",
                    pod, dir, dir);
        return 0;
}
