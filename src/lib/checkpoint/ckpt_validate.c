#include "checkpoint/ckpt_validate.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/seccomp_eval.h"
#include "container/bundle.h"
#include "container/masks.h"
#include "util/cleanup.h"

#define REFUSE(err, ...) em_error_set_code(err, EPERM, __VA_ARGS__)

void em_ckpt_policy_default(struct em_ckpt_policy *p)
{
        memset(p, 0, sizeof(*p));
        p->cap_mask = em_caps_default();
        p->id_first = 0;
        p->id_count = 65536;
        p->no_new_privs = true;
        p->masked = em_bundle_masked_paths();
        p->readonly = em_bundle_readonly_paths();
}

void em_ckpt_policy_from_profile(struct em_ckpt_policy *p, const struct em_security_profile *prof)
{
        em_ckpt_policy_default(p);
        p->cap_mask = prof->caps;
        p->no_new_privs = prof->no_new_privs;
        p->seccomp = prof->seccomp;
        if (prof->ids.size == 0)
                return;
        p->userns = true;
        p->id_first = 0;
        p->id_count = prof->ids.size;
        p->uid_map = p->gid_map = (struct em_ck_extent){0, prof->ids.base, prof->ids.size};
}

int em_ckpt_policy_for_spec(const struct em_config *cfg, const json_t *spec,
                            struct em_ckpt_policy *p, em_error_t *err)
{
        struct em_security_profile prof;

        if (em_security_profile_incoming(cfg, spec, &prof, err) < 0)
                return -1;
        em_ckpt_policy_from_profile(p, &prof);
        return 0;
}

/* ---- image names ---- */

/* Images CRIU would read besides files.img (legacy per-kind file images,
 * creds of old dumps) or that act on the host (binfmt_misc, network
 * configuration of a namespace the target owns, autofs, BPF maps). */
static const char *const refused_images[] = {
    "reg-files.img",  "ext-files.img",   "ns-files.img",   "inetsk.img",        "unixsk.img",
    "packetsk.img",   "netlinksk.img",   "tunfile.img",    "eventfd.img",       "eventpoll.img",
    "signalfd.img",   "inotify.img",     "fanotify.img",   "fanotify-mark.img", "timerfd.img",
    "fifo.img",       "pipes.img",       "tty.img",        "creds-*.img",       "binfmt-misc*.img",
    "netdev-*.img",   "ifaddr-*.img",    "route-*.img",    "route6-*.img",      "rule-*.img",
    "iptables-*.img", "ip6tables-*.img", "nftables-*.img", "netns-ct-*.img",    "netns-exp-*.img",
    "autofs-*.img",   "bpfmap-*.img",    "apparmor.img",   "vmas-*.img",        NULL,
};

static int check_names(const struct em_ckpt_info *ci, em_error_t *err)
{
        for (char **n = ci->names; *n; n++)
                for (const char *const *r = refused_images; *r; r++)
                        if (fnmatch(*r, *n, 0) == 0)
                                return REFUSE(err,
                                              "%s: an image of a kind edgemig does not restore "
                                              "from a peer (legacy or host-level)",
                                              *n);
        return 0;
}

/* ---- threads: capabilities, ids, no_new_privs, seccomp ---- */

static int check_caps(const char *img, uint32_t tid, const char *set, const struct em_ck_caps *c,
                      uint64_t allowed, em_error_t *err)
{
        bool beyond;
        uint64_t extra = em_ck_caps_mask(c, &beyond) & ~allowed;

        if (beyond)
                return REFUSE(err,
                              "%s: thread %u %s has capability bits above 63, beyond the "
                              "profile",
                              img, tid, set);
        if (extra == 0)
                return 0;
        unsigned bit = (unsigned)__builtin_ctzll(extra);
        const char *name = em_cap_name((int)bit);
        return REFUSE(err, "%s: thread %u %s has %s (bit %u), beyond the profile", img, tid, set,
                      name ? name : "an unknown capability", bit);
}

static int check_id(const char *img, uint32_t tid, const char *what, uint32_t id,
                    const struct em_ckpt_policy *p, em_error_t *err)
{
        if (id >= p->id_first && id - p->id_first < p->id_count)
                return 0;
        return REFUSE(err, "%s: thread %u %s %u is outside the container's range %u-%u", img, tid,
                      what, id, p->id_first, p->id_first + p->id_count - 1);
}

static int check_ids(const char *img, uint32_t tid, const struct em_ck_creds *c,
                     const struct em_ckpt_policy *p, em_error_t *err)
{
        const uint32_t v[] = {c->uid, c->euid, c->suid, c->fsuid,
                              c->gid, c->egid, c->sgid, c->fsgid};
        static const char *const names[] = {"uid", "euid", "suid", "fsuid",
                                            "gid", "egid", "sgid", "fsgid"};

        for (size_t i = 0; i < 8; i++)
                if (check_id(img, tid, names[i], v[i], p, err) < 0)
                        return -1;
        for (size_t i = 0; i < c->n_groups; i++)
                if (check_id(img, tid, "supplementary group", c->groups[i], p, err) < 0)
                        return -1;
        return 0;
}

/* System calls the default profile denies (container/seccomp.h), unless the
 * container holds a capability that brings them back, as in Docker's
 * profile. Numbers: asm/unistd_64.h and asm/unistd_32.h. */
#define C(cap) (1ull << (cap))
static const struct {
        const char *name;
        uint32_t nr64, nr32;
        uint64_t unless; /* any of these capabilities */
} denied_calls[] = {
    {"mount", 165, 21, C(21)},
    {"umount2", 166, 52, C(21)},
    {"unshare", 272, 310, C(21)},
    {"setns", 308, 346, C(21)},
    {"pivot_root", 155, 217, C(21)},
    {"open_tree", 428, 428, C(21)},
    {"move_mount", 429, 429, C(21)},
    {"fsopen", 430, 430, C(21)},
    {"fsmount", 432, 432, C(21)},
    {"swapon", 167, 87, C(21)},
    {"swapoff", 168, 115, C(21)},
    {"init_module", 175, 128, C(16)},
    {"finit_module", 313, 350, C(16)},
    {"delete_module", 176, 129, C(16)},
    {"kexec_load", 246, 283, C(22)},
    {"reboot", 169, 88, C(22)},
    {"add_key", 248, 286, 0},
    {"request_key", 249, 287, 0},
    {"keyctl", 250, 288, 0},
    {"bpf", 321, 357, C(21) | C(39)},
    {"perf_event_open", 298, 336, C(21) | C(38)},
    {"ptrace", 101, 26, C(19)},
    {"process_vm_readv", 310, 347, C(19)},
    {"process_vm_writev", 311, 348, C(19)},
    {"userfaultfd", 323, 374, C(19)},
    {"clock_settime", 227, 264, C(25)},
    {"settimeofday", 164, 79, C(25)},
    {"open_by_handle_at", 304, 342, C(2)},
    {"acct", 163, 51, C(20)},
};
#undef C

/* The chain CRIU installs for a thread: its filter, then prev links. CRIU
 * follows them without a bound, so a cycle is refused here. */
static int collect_chain(const char *img, uint32_t tid, uint32_t first,
                         const struct em_ck_seccomp *s, uint32_t *chain, size_t *n, em_error_t *err)
{
        uint32_t at = first;

        for (*n = 0;; (*n)++) {
                if (at >= s->n || *n >= s->n)
                        return REFUSE(err,
                                      "%s: thread %u seccomp filter chain %s (seccomp.img "
                                      "has %zu filters)",
                                      img, tid, at >= s->n ? "points past the end" : "loops", s->n);
                chain[*n] = at;
                if (!s->f[at].has_prev)
                        break;
                at = s->f[at].prev;
        }
        (*n)++;
        return 0;
}

/* What the whole chain does with one call: the kernel runs every filter
 * and acts on the strictest answer. */
static int chain_result(const char *img, uint32_t tid, const struct em_ck_seccomp *s,
                        const uint32_t *chain, size_t n, uint32_t arch, uint32_t nr, uint32_t *out,
                        em_error_t *err)
{
        *out = EM_SECCOMP_RET_ALLOW;
        for (size_t i = 0; i < n; i++) {
                uint32_t r;
                if (em_seccomp_run(s->f[chain[i]].prog, s->f[chain[i]].len, arch, nr, &r) < 0)
                        return REFUSE(err,
                                      "%s: thread %u seccomp filter %u is not a program "
                                      "the kernel runs",
                                      img, tid, chain[i]);
                *out = em_seccomp_stricter(*out, r);
        }
        return 0;
}

/* Weaker than the profile: the chain lets through a call the profile
 * denies, natively, through the x32 numbers or through the i386 ABI. */
static int check_denials(const char *img, uint32_t tid, const struct em_ck_seccomp *s,
                         const uint32_t *chain, size_t n, const struct em_ckpt_policy *p,
                         em_error_t *err)
{
        for (size_t i = 0; i < sizeof(denied_calls) / sizeof(denied_calls[0]); i++) {
                const struct {
                        uint32_t arch, nr;
                        const char *abi;
                } how[] = {{EM_AUDIT_ARCH_X86_64, denied_calls[i].nr64, "x86_64"},
                           {EM_AUDIT_ARCH_X86_64, denied_calls[i].nr64 | EM_X32_SYSCALL_BIT, "x32"},
                           {EM_AUDIT_ARCH_I386, denied_calls[i].nr32, "i386"}};
                if (denied_calls[i].unless & p->cap_mask)
                        continue;
                for (size_t k = 0; k < 3; k++) {
                        uint32_t r;
                        if (chain_result(img, tid, s, chain, n, how[k].arch, how[k].nr, &r, err) <
                            0)
                                return -1;
                        if (!em_seccomp_denies(r))
                                return REFUSE(err,
                                              "%s: thread %u seccomp filters allow %s (%s), "
                                              "which the profile denies: weaker than the "
                                              "profile",
                                              img, tid, denied_calls[i].name, how[k].abi);
                }
        }
        return 0;
}

static bool chain_has_prog(const struct em_ck_seccomp *s, const uint32_t *chain, size_t n,
                           const struct em_ckpt_policy *p)
{
        for (size_t i = 0; i < n; i++)
                if (s->f[chain[i]].len == p->seccomp_len &&
                    memcmp(s->f[chain[i]].prog, p->seccomp_prog, p->seccomp_len) == 0)
                        return true;
        return false;
}

static int check_chain(const char *img, uint32_t tid, uint32_t first, const struct em_ckpt_info *ci,
                       const struct em_ckpt_policy *p, em_error_t *err)
{
        const struct em_ck_seccomp *s = &ci->seccomp;
        cleanup_free uint32_t *chain = malloc((s->n ? s->n : 1) * sizeof(uint32_t));
        size_t n;

        if (chain == NULL)
                return em_error_set(err, ENOMEM, "%s", img);
        if (collect_chain(img, tid, first, s, chain, &n, err) < 0)
                return -1;
        if (p->seccomp_prog && !chain_has_prog(s, chain, n, p))
                return REFUSE(err,
                              "%s: thread %u seccomp filters do not include the profile's "
                              "filter: weaker than the profile",
                              img, tid);
        return p->seccomp ? check_denials(img, tid, s, chain, n, p, err) : 0;
}

/* CRIU dumps a zombie (a child that exited and was not reaped yet, as a
 * shell's often is at the freeze) as a core with only its task_core,
 * task_state TASK_DEAD, and no ids image, and restores it as a zombie:
 * nothing of the image runs, so it has no creds or namespaces to hold
 * to the policy. A core that also carries a thread_core is no zombie's. */
static bool is_zombie(const struct em_ckpt_thread *t)
{
        return t != NULL && t->core.has_tc && t->core.task_state == EM_CK_TASK_DEAD &&
               !t->core.has_thread;
}

/* The thread-group leader of tid (itself if it leads one), or NULL. A
 * zombie's thread id is noise (check_tree): it leads no one. */
static const struct em_ckpt_thread *leader_of(const struct em_ckpt_info *ci, uint32_t tid)
{
        for (size_t i = 0; i < ci->n_tasks; i++) {
                const struct em_ck_pstree *ps = &ci->tasks[i];
                if (is_zombie(em_ckpt_thread(ci, ps->pid)))
                        continue;
                for (size_t j = 0; j < ps->n_threads; j++)
                        if (ps->threads[j] == tid)
                                return em_ckpt_thread(ci, ps->pid);
        }
        return NULL;
}

/* CRIU leaves seccomp out of a thread's core when every thread of the group
 * shares the leader's filters, and marks the leader's newest filter TSYNC:
 * installing it in the leader at restore puts it on every thread (CRIU's
 * seccomp_prepare_threads restores such a thread with no filter of its own).
 * Such a thread is held to its leader's chain; without TSYNC it would run
 * unfiltered. */
static const struct em_ck_core *seccomp_core(const struct em_ckpt_thread *t,
                                             const struct em_ckpt_info *ci)
{
        const struct em_ckpt_thread *l = leader_of(ci, t->tid);

        if (t->core.has_seccomp || t->core.has_old_seccomp || l == NULL || l == t)
                return &t->core;
        const struct em_ck_core *lc = &l->core;
        uint32_t mode = lc->has_seccomp ? lc->seccomp_mode : lc->old_seccomp_mode;
        uint32_t filter = lc->has_seccomp ? lc->seccomp_filter : lc->old_seccomp_filter;
        if (mode == EM_CK_SECCOMP_FILTER && filter < ci->seccomp.n &&
            (ci->seccomp.f[filter].flags & 1 /* SECCOMP_FILTER_FLAG_TSYNC */))
                return lc;
        return &t->core;
}

static int check_seccomp(const char *img, const struct em_ckpt_thread *t,
                         const struct em_ckpt_info *ci, const struct em_ckpt_policy *p,
                         em_error_t *err)
{
        const struct em_ck_core *c = seccomp_core(t, ci);
        uint32_t mode = c->has_seccomp ? c->seccomp_mode : c->old_seccomp_mode;
        uint32_t filter = c->has_seccomp ? c->seccomp_filter : c->old_seccomp_filter;

        if (mode > EM_CK_SECCOMP_FILTER)
                return REFUSE(err, "%s: thread %u seccomp_mode %u is unknown", img, t->tid, mode);
        if (mode == EM_CK_SECCOMP_FILTER)
                return check_chain(img, t->tid, filter, ci, p, err);
        if (p->seccomp && mode != EM_CK_SECCOMP_STRICT)
                return REFUSE(err,
                              "%s: thread %u seccomp_mode is disabled, weaker than the "
                              "profile (a filter is required)",
                              img, t->tid);
        return 0;
}

static int check_thread(const struct em_ckpt_thread *t, const struct em_ckpt_info *ci,
                        const struct em_ckpt_policy *p, em_error_t *err)
{
        char img[32];
        const struct em_ck_creds *c = &t->core.creds;

        if (is_zombie(t))
                return 0;
        snprintf(img, sizeof(img), "core-%u.img", t->tid);
        if (!t->core.has_thread || !t->core.has_creds)
                return REFUSE(err, "%s: thread %u has no thread_core creds", img, t->tid);
        if (check_caps(img, t->tid, "cap_eff", &c->eff, p->cap_mask, err) < 0 ||
            check_caps(img, t->tid, "cap_prm", &c->prm, p->cap_mask, err) < 0 ||
            check_caps(img, t->tid, "cap_inh", &c->inh, p->cap_mask, err) < 0 ||
            check_caps(img, t->tid, "cap_bnd", &c->bnd, p->cap_mask, err) < 0 ||
            check_caps(img, t->tid, "cap_amb", &c->amb, p->cap_mask, err) < 0 ||
            check_ids(img, t->tid, c, p, err) < 0)
                return -1;
        if (p->no_new_privs && !(c->has_nnp && c->no_new_privs))
                return REFUSE(err, "%s: thread %u no_new_privs is off; the profile requires it",
                              img, t->tid);
        return check_seccomp(img, t, ci, p, err);
}

/* A zombie's one thread id in pstree.img is noise: CRIU 4.2.1 never sets
 * it (collect_threads seizes no thread of a dead task, and dump_zombies
 * fills only the task's pid), so dump_pstree writes whatever its heap held
 * there, such as the bytes "mer_" of a freed "/proc/timer_list" (seen as
 * thread 1601332589). The restore skips the leader's entry (threads[0] is
 * the task itself) and gives a zombie no threads; CRIU dumps none with
 * more. */
static int check_zombie_threads(const struct em_ck_pstree *t, em_error_t *err)
{
        if (t->n_threads > 1)
                return REFUSE(err, "pstree.img: zombie task %u has %zu threads", t->pid,
                              t->n_threads);
        return 0;
}

/* Every thread CRIU will restore has its core image, every task but a
 * zombie its ids. */
static int check_tree(const struct em_ckpt_info *ci, em_error_t *err)
{
        for (size_t i = 0; i < ci->n_tasks; i++) {
                const struct em_ck_pstree *t = &ci->tasks[i];
                bool zombie = is_zombie(em_ckpt_thread(ci, t->pid));
                if (em_ckpt_ids(ci, t->pid) == NULL && !zombie)
                        return REFUSE(err, "pstree.img: task %u has no ids-%u.img", t->pid, t->pid);
                if (zombie) {
                        if (check_zombie_threads(t, err) < 0)
                                return -1;
                        continue;
                }
                for (size_t k = 0; k < t->n_threads; k++)
                        if (em_ckpt_thread(ci, t->threads[k]) == NULL)
                                return REFUSE(err, "pstree.img: thread %u has no core-%u.img",
                                              t->threads[k], t->threads[k]);
        }
        return 0;
}

/* ---- namespaces ---- */

static bool own_kind(int k, const struct em_ckpt_policy *p)
{
        return k == EM_CK_NS_PID || k == EM_CK_NS_NET || k == EM_CK_NS_IPC || k == EM_CK_NS_UTS ||
               k == EM_CK_NS_MNT || (k == EM_CK_NS_USER && p->userns);
}

/* CRIU restores a task whose namespace id equals the inventory's root id
 * into CRIU's own namespace: the host's. */
static int check_task_ns(const struct em_ckpt_ids *t, const struct em_ck_ids *init,
                         const struct em_ck_ids *root, const struct em_ckpt_policy *p,
                         em_error_t *err)
{
        for (int k = EM_CK_NS_FIRST; k <= EM_CK_NS_LAST; k++) {
                bool has = t->ids.seen >> k & 1, root_has = root->seen >> k & 1;
                const char *n = em_ck_ns_name(k);
                if (own_kind(k, p) && (!has || !root_has || t->ids.id[k] == root->id[k]))
                        return REFUSE(err,
                                      "ids-%u.img: task %u %s_ns_id is %s, not the "
                                      "container's own",
                                      t->pid, t->pid, n, has ? "the host's" : "missing");
                if (k == EM_CK_NS_USER && !p->userns && has && root_has &&
                    t->ids.id[k] != root->id[k])
                        return REFUSE(err,
                                      "ids-%u.img: task %u user_ns_id %u: a user namespace "
                                      "the profile does not give",
                                      t->pid, t->pid, t->ids.id[k]);
                if (has != (bool)(init->seen >> k & 1) || t->ids.id[k] != init->id[k])
                        return REFUSE(err,
                                      "ids-%u.img: task %u %s_ns_id differs from the "
                                      "container init's",
                                      t->pid, t->pid, n);
        }
        return 0;
}

static int check_namespaces(const struct em_ckpt_info *ci, const struct em_ckpt_policy *p,
                            em_error_t *err)
{
        const struct em_ckpt_ids *init = em_ckpt_ids(ci, ci->tasks[0].pid);

        if (!ci->inv.has_root_ids)
                return REFUSE(err, "inventory.img: no root_ids");
        if (ci->tasks[0].ppid != 0)
                return REFUSE(err, "pstree.img: the first task %u has parent %u, not 0",
                              ci->tasks[0].pid, ci->tasks[0].ppid);
        if (init == NULL)
                return REFUSE(err, "pstree.img: the first task %u is a zombie", ci->tasks[0].pid);
        for (size_t i = 0; i < ci->n_tasks; i++) {
                const struct em_ckpt_ids *ids = em_ckpt_ids(ci, ci->tasks[i].pid);
                /* None: a zombie's (check_tree), which joins no namespace. */
                if (ids != NULL && check_task_ns(ids, &init->ids, &ci->inv.root_ids, p, err) < 0)
                        return -1;
        }
        return 0;
}

/* CRIU writes a user namespace's maps from userns-*.img (checked here with
 * runc 1.1.5 and CRIU 4.2.1: an edited map is the one the restored
 * container gets), so the map must be exactly the container's. */
static int check_map(const char *img, const char *which, const struct em_ck_extent *e, size_t n,
                     const struct em_ck_extent *want, em_error_t *err)
{
        if (n == 1 && e[0].first == want->first && e[0].lower_first == want->lower_first &&
            e[0].count == want->count)
                return 0;
        if (n == 0)
                return REFUSE(err, "%s: empty %s", img, which);
        return REFUSE(err, "%s: %s %u %u %u%s is not the container's range %u %u %u", img, which,
                      e[0].first, e[0].lower_first, e[0].count, n > 1 ? " (and more)" : "",
                      want->first, want->lower_first, want->count);
}

static int check_userns(const struct em_ckpt_info *ci, const struct em_ckpt_policy *p,
                        em_error_t *err)
{
        if (!p->userns) {
                if (ci->n_userns > 0)
                        return REFUSE(err,
                                      "%s: a user namespace the profile does not give this "
                                      "container",
                                      ci->userns_img);
                return 0;
        }
        if (ci->n_userns != 1 || !ci->has_userns)
                return REFUSE(err, "%s user namespace images (the container has exactly one)",
                              ci->n_userns ? "nested" : "no");
        if (check_map(ci->userns_img, "uid_map", ci->userns->uid, ci->userns->n_uid, &p->uid_map,
                      err) < 0)
                return -1;
        return check_map(ci->userns_img, "gid_map", ci->userns->gid, ci->userns->n_gid, &p->gid_map,
                         err);
}

/* ---- mounts ---- */

enum { FS_PROC = 1, FS_SYSFS = 2, FS_TMPFS = 5, FS_DEVPTS = 6, FS_MQUEUE = 14 };
#define MS_RDONLY_BIT 1u

static const struct {
        const char *at;
        uint32_t fstype;
        bool ro;
} base_mounts[] = {
    {"/proc", FS_PROC, false},         {"/dev", FS_TMPFS, false},
    {"/dev/pts", FS_DEVPTS, false},    {"/dev/shm", FS_TMPFS, false},
    {"/dev/mqueue", FS_MQUEUE, false}, {"/sys", FS_SYSFS, true},
};

/* Device nodes runc binds from the host in a user namespace, and the
 * /dev/null it binds over masked files: the target maps these keys to its
 * own files (runc --ext-mount-map), so the peer names only the key. */
static const char *const device_binds[] = {"/dev/null",    "/dev/zero", "/dev/full", "/dev/random",
                                           "/dev/urandom", "/dev/tty",  NULL};

static bool in_list(const char *s, const char *const *v)
{
        for (; v && *v; v++)
                if (strcmp(s, *v) == 0)
                        return true;
        return false;
}

static bool base_ok(const struct em_ck_mount *m)
{
        for (size_t i = 0; i < sizeof(base_mounts) / sizeof(base_mounts[0]); i++)
                if (strcmp(m->mountpoint, base_mounts[i].at) == 0)
                        return m->fstype == base_mounts[i].fstype &&
                               (!base_mounts[i].ro || (m->flags & MS_RDONLY_BIT));
        return false;
}

static bool mount_ok(const struct em_ck_mount *m, const struct em_ckpt_policy *p)
{
        bool ro = (m->flags & MS_RDONLY_BIT) != 0;

        if (m->ext_key != NULL && in_list(m->ext_key, p->binds))
                return strcmp(m->ext_key, m->mountpoint) == 0;
        /* A mask dumped as external (container/masks.h): this host binds
         * its own empty read-only tmpfs there, whatever the peer sent. */
        if (m->ext_key != NULL && in_list(m->mountpoint, p->masked) &&
            em_masks_key_of(m->ext_key, m->mountpoint))
                return ro;
        if (m->ext_key != NULL || m->ext_mount)
                return m->ext_key && in_list(m->ext_key, device_binds) &&
                       (in_list(m->mountpoint, device_binds) ||
                        (in_list(m->mountpoint, p->masked) &&
                         strcmp(m->ext_key, "/dev/null") == 0));
        if (base_ok(m))
                return true;
        if (in_list(m->mountpoint, p->masked))
                return m->fstype == FS_TMPFS && ro;
        if (in_list(m->mountpoint, p->tmpfs))
                return m->fstype == FS_TMPFS;
        if (in_list(m->mountpoint, p->readonly))
                return m->fstype == FS_PROC && ro;
        return false;
}

static int check_mounts(const struct em_ckpt_info *ci, const struct em_ckpt_policy *p,
                        em_error_t *err)
{
        size_t roots = 0;

        for (size_t i = 0; i < ci->n_mounts; i++) {
                const struct em_ck_mount *m = &ci->mounts[i].m;
                if (strcmp(m->mountpoint, "/") == 0 && m->ext_key == NULL) {
                        roots++; /* runc gives CRIU the target's own rootfs for it */
                        continue;
                }
                if (!mount_ok(m, p))
                        return REFUSE(err,
                                      "%s: mount %u at %s (fstype %u, source %s%s%s) is not one "
                                      "the container's config makes",
                                      ci->mounts[i].img, m->mnt_id, m->mountpoint, m->fstype,
                                      m->source, m->ext_key ? ", bind of " : "",
                                      m->ext_key ? m->ext_key : "");
        }
        if (roots != 1)
                return REFUSE(err, "mountpoints: %zu root mounts (the container has one)", roots);
        return 0;
}

/* ---- files ---- */

static bool path_ok(const char *path)
{
        const char *s = path;

        while ((s = strstr(s, "..")) != NULL) {
                bool start = s == path || s[-1] == '/', end = s[2] == 0 || s[2] == '/';
                if (start && end)
                        return false;
                s += 2;
        }
        return true;
}

static int check_file(const struct em_ckpt_info *ci, const struct em_ck_file *f, em_error_t *err)
{
        switch (f->type) {
        case EM_CK_FD_NS:
        case EM_CK_FD_TUNF:
        case EM_CK_FD_EXT:
        case EM_CK_FD_BPFMAP:
                return REFUSE(err,
                              "files.img: file %u is a %s descriptor, which the profile "
                              "does not allow from a peer",
                              f->id,
                              f->type == EM_CK_FD_NS     ? "namespace"
                              : f->type == EM_CK_FD_TUNF ? "tun device"
                              : f->type == EM_CK_FD_EXT  ? "external file"
                                                         : "BPF map");
        case EM_CK_FD_REG:
                if (f->name == NULL || f->name[0] != '/' || !path_ok(f->name))
                        return REFUSE(err,
                                      "files.img: file %u path %s is not an absolute path "
                                      "inside the container",
                                      f->id, f->name ? f->name : "");
                /* fall through */
        case EM_CK_FD_UNIXSK:
                if (f->name && f->name[0] != '@' && !path_ok(f->name))
                        return REFUSE(err, "files.img: socket %u path %s leaves its directory",
                                      f->id, f->name);
                if (f->mnt_id != -1 && em_ckpt_mount(ci, (uint32_t)f->mnt_id) == NULL)
                        return REFUSE(err,
                                      "files.img: file %u %s is on mount %d, which is not "
                                      "one of the container's",
                                      f->id, f->name ? f->name : "", f->mnt_id);
        }
        return 0;
}

int em_ckpt_validate(const struct em_ckpt_info *ci, const struct em_ckpt_policy *p, em_error_t *err)
{
        if (check_names(ci, err) < 0 || check_tree(ci, err) < 0)
                return -1;
        for (size_t i = 0; i < ci->n_threads; i++)
                if (check_thread(&ci->threads[i], ci, p, err) < 0)
                        return -1;
        if (check_namespaces(ci, p, err) < 0 || check_userns(ci, p, err) < 0 ||
            check_mounts(ci, p, err) < 0)
                return -1;
        for (size_t i = 0; i < ci->n_files; i++)
                if (check_file(ci, &ci->files[i], err) < 0)
                        return -1;
        return 0;
}

int em_ckpt_validate_dir(const char *dir, const struct em_ckpt_policy *p, em_error_t *err)
{
        cleanup_ckpt_info struct em_ckpt_info ci = {0};

        if (em_ckpt_info_load(dir, &ci, err) < 0)
                return -1;
        return em_ckpt_validate(&ci, p, err);
}
