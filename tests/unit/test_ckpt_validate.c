/* The checkpoint decoders and validator on images CRIU 4.2.1 wrote here
 * (tests/unit/data/criu-4.2.1-*: a busybox container of `edgemig
 * checkpoint`, and one runc ran in a user namespace mapped 0 100000 65536),
 * and on copies with one image replaced by a crafted, hostile one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/ckpt_info.h"
#include "checkpoint/ckpt_validate.h"
#include "checkpoint/criu_image.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "support/fixture.h"

#define BUSYBOX "tests/unit/data/criu-4.2.1-busybox"
#define USERNS  "tests/unit/data/criu-4.2.1-userns"

/* ---- a small protobuf writer for crafted images ---- */

struct pb {
        uint8_t b[4096];
        size_t n;
};

static void varint(struct pb *p, uint64_t v)
{
        do {
                p->b[p->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v);
}

static void u(struct pb *p, unsigned field, uint64_t v)
{
        varint(p, (uint64_t)field << 3);
        varint(p, v);
}

static void bytes(struct pb *p, unsigned field, const void *d, size_t n)
{
        varint(p, (uint64_t)field << 3 | 2);
        varint(p, n);
        memcpy(p->b + p->n, d, n);
        p->n += n;
}

static void msg(struct pb *p, unsigned field, const struct pb *m)
{
        bytes(p, field, m->b, m->n);
}

struct creds_spec {
        uint32_t uid;
        uint64_t caps;
        uint32_t nnp;
        uint32_t seccomp_mode, seccomp_filter;
};

/* A core with s's thread creds; task_state in its task_core unless 0. */
static void build_core_state(struct pb *core, const struct creds_spec *s, uint32_t task_state)
{
        struct pb creds = {0}, th = {0}, tc = {0};

        for (unsigned f = 1; f <= 8; f++)
                u(&creds, f, s->uid);
        for (unsigned f = 9; f <= 12; f++) {
                u(&creds, f, f == 9 ? 0 : (uint32_t)s->caps);
                u(&creds, f, f == 9 ? 0 : (uint32_t)(s->caps >> 32));
        }
        u(&creds, 13, 0);
        u(&creds, 18, s->nnp);
        u(&th, 1, 0x1000);
        u(&th, 2, 24);
        msg(&th, 10, &creds);
        u(&th, 11, s->seccomp_mode);
        if (s->seccomp_mode == 2)
                u(&th, 12, s->seccomp_filter);
        if (task_state)
                u(&tc, 1, task_state);
        bytes(&tc, 6, "sh", 2);
        u(core, 1, 1);
        msg(core, 3, &tc);
        msg(core, 5, &th);
}

static void build_core(struct pb *core, const struct creds_spec *s)
{
        build_core_state(core, s, 0);
}

static void put32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* Writes dir/name: the magics, then one record per message. */
static void write_img(const char *dir, const char *name, uint32_t magic, const struct pb *recs,
                      size_t n)
{
        cleanup_free char *path = em_path_join(dir, name);
        uint8_t buf[16384];
        size_t len = 8;
        em_error_t err = NULL;

        put32(buf, EM_CRIU_MAGIC_COMMON);
        put32(buf + 4, magic);
        for (size_t i = 0; i < n; i++) {
                put32(buf + len, (uint32_t)recs[i].n);
                memcpy(buf + len + 4, recs[i].b, recs[i].n);
                len += 4 + recs[i].n;
        }
        assert_int_equal(em_write_file_atomic(path, buf, len, 0644, &err), 0);
}

/* A copy of a fixture directory in a fresh temporary directory. */
/* Validates dir with p and returns the refusal ("" when it passes). */
static char *verdict(const char *dir, const struct em_ckpt_policy *p)
{
        em_error_t err = NULL;
        char *msg;

        if (em_ckpt_validate_dir(dir, p, &err) == 0)
                return strdup("");
        msg = strdup(em_error_msg(err));
        em_error_free(&err);
        return msg;
}

static void userns_policy(struct em_ckpt_policy *p, uint32_t host_first)
{
        em_ckpt_policy_default(p);
        p->userns = true;
        p->uid_map = p->gid_map = (struct em_ck_extent){0, host_first, 65536};
}

static void test_real_busybox(void **state)
{
        cleanup_ckpt_info struct em_ckpt_info ci = {0};
        struct em_ckpt_policy p;
        em_error_t err = NULL;
        bool beyond;

        (void)state;
        assert_int_equal(em_ckpt_info_load(BUSYBOX, &ci, &err), 0);
        assert_int_equal(ci.n_tasks, 2);
        assert_int_equal(ci.tasks[0].pid, 1);
        assert_int_equal(ci.tasks[1].ppid, 1);
        assert_int_equal(ci.n_threads, 2);
        const struct em_ckpt_thread *t = em_ckpt_thread(&ci, 18);
        assert_non_null(t);
        assert_string_equal(t->core.comm, "sleep");
        assert_true(em_ck_caps_mask(&t->core.creds.eff, &beyond) == em_caps_default());
        assert_true(t->core.creds.has_nnp && t->core.creds.no_new_privs == 1);
        assert_int_equal(t->core.seccomp_mode, 0);
        /* the overlay root, /proc, /dev, ... and runc's masks */
        assert_int_equal(ci.n_mounts, 15);
        const struct em_ck_mount *root = em_ckpt_mount(&ci, 102);
        assert_non_null(root);
        assert_string_equal(root->mountpoint, "/");
        assert_true(ci.inv.has_root_ids && ci.inv.root_ids.id[EM_CK_NS_NET] == 2);
        assert_true(em_ckpt_ids(&ci, 18)->ids.id[EM_CK_NS_NET] == 10);
        /* /bin/busybox on the root mount (sint32 mnt_id 204 on the wire) */
        assert_string_equal(ci.files[0].name, "/bin/busybox");
        assert_int_equal(ci.files[0].mnt_id, 102);
        assert_true(ci.n_mms == 2 && ci.mms[0].pages * 4096 == 73728);
        em_ckpt_policy_default(&p);
        assert_int_equal(em_ckpt_validate(&ci, &p, &err), 0);
}

/* What `edgemig checkpoint inspect --json` prints for the fixture. */
static void test_inspect_json(void **state)
{
        cleanup_ckpt_info struct em_ckpt_info ci = {0};
        em_error_t err = NULL;
        uint64_t bytes, entries;

        (void)state;
        assert_int_equal(em_ckpt_info_load(BUSYBOX, &ci, &err), 0);
        json_t *j = em_ckpt_info_json(&ci);
        assert_non_null(j);
        json_t *procs = json_object_get(j, "processes");
        assert_int_equal(json_array_size(procs), 2);
        json_t *t = json_array_get(json_object_get(json_array_get(procs, 1), "threads"), 0);
        assert_string_equal(json_string_value(json_object_get(t, "comm")), "sleep");
        assert_string_equal(json_string_value(json_object_get(t, "seccomp")), "disabled");
        assert_int_equal(json_array_size(json_object_get(t, "cap_eff")), 14);
        assert_string_equal(json_string_value(json_array_get(json_object_get(t, "cap_eff"), 0)),
                            "CAP_CHOWN");
        assert_true(json_is_true(json_object_get(t, "no_new_privs")));
        assert_int_equal(json_integer_value(json_object_get(j, "memory_bytes")), 135168);
        assert_int_equal(json_array_size(json_object_get(j, "mounts")), 15);
        json_t *ns = json_object_get(json_object_get(j, "namespaces"), "host");
        assert_int_equal(json_integer_value(json_object_get(ns, "net")), 2);
        json_decref(j);
        /* the writable layer's size: a file of 5 bytes and a directory */
        char *tmp = em_test_tmpdir("upper");
        em_test_put(tmp, "d/f", "hello");
        assert_int_equal(em_ckpt_upper_size(tmp, &bytes, &entries, &err), 0);
        assert_true(bytes == 5 && entries == 2);
        em_test_rm(tmp);
}

static void test_real_userns(void **state)
{
        struct em_ckpt_policy p;
        cleanup_free char *ok = NULL, *other = NULL, *none = NULL;

        (void)state;
        /* CRIU records ids as seen inside the namespace (1000, not 101000)
         * and the map in userns-*.img. */
        userns_policy(&p, 100000);
        p.id_count = 65536;
        ok = verdict(USERNS, &p);
        assert_string_equal(ok, "");
        userns_policy(&p, 200000);
        other = verdict(USERNS, &p);
        assert_string_equal(other, "userns-14.img: uid_map 0 100000 65536 is not the "
                                   "container's range 0 200000 65536");
        em_ckpt_policy_default(&p);
        none = verdict(USERNS, &p);
        assert_non_null(strstr(none, "a user namespace the profile does not give"));
}

/* The policy of the profile a restored container runs under
 * (container/security.h). */
static void test_profile_policy(void **state)
{
        struct em_security_profile prof = {.caps = em_caps_default(), .no_new_privs = true};
        struct em_ckpt_policy p;

        (void)state;
        prof.ids = (struct em_idrange){100000, 65536};
        em_ckpt_policy_from_profile(&p, &prof);
        assert_true(p.userns && p.id_first == 0 && p.id_count == 65536);
        cleanup_free char *ok = verdict(USERNS, &p);
        assert_string_equal(ok, "");
        prof.ids = (struct em_idrange){1u << 30, 65536};
        em_ckpt_policy_from_profile(&p, &prof);
        cleanup_free char *moved = verdict(USERNS, &p);
        assert_non_null(strstr(moved, "uid_map 0 100000 65536 is not the container's range"));
        /* the busybox fixture has no user namespace: refused for a profile with one */
        cleanup_free char *none = verdict(BUSYBOX, &p);
        assert_non_null(strstr(none, "user_ns_id is the host's"));
        /* and a profile that requires seccomp refuses a thread without a filter */
        prof.ids = (struct em_idrange){0, 0};
        prof.seccomp = true;
        em_ckpt_policy_from_profile(&p, &prof);
        cleanup_free char *sc = verdict(BUSYBOX, &p);
        assert_non_null(strstr(sc, "seccomp_mode is disabled, weaker than the profile"));
}

static void test_refuse_caps(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct creds_spec s = {0, em_caps_default() | (1ull << 21), 1, 0, 0};
        struct pb core = {0};
        struct em_ckpt_policy p;

        (void)state;
        build_core(&core, &s);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core, 1);
        em_ckpt_policy_default(&p);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "core-18.img: thread 18 cap_eff has CAP_SYS_ADMIN (bit 21), "
                               "beyond the profile");
        /* a capability above bit 63 in a third word */
        struct pb core2 = {0}, creds = {0}, th = {0};
        for (unsigned f = 1; f <= 8; f++)
                u(&creds, f, 0);
        u(&creds, 11, 0), u(&creds, 11, 0), u(&creds, 11, 1);
        u(&creds, 13, 0), u(&creds, 18, 1);
        u(&th, 1, 0), u(&th, 2, 0);
        msg(&th, 10, &creds);
        u(&core2, 1, 1);
        msg(&core2, 5, &th);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core2, 1);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_non_null(strstr(v2, "cap_eff has capability bits above 63"));
        em_test_rm(dir);
}

/* A zombie at the freeze, as CRIU dumps one (a core with only its
 * task_core, task_state TASK_DEAD, and no ids image), is no refusal; a
 * "zombie" core that carries a thread_core is held to the policy. */
static void test_zombie(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        cleanup_free char *ids = em_path_join(dir, "ids-18.img");
        struct creds_spec s = {0, em_caps_default() | (1ull << 21), 1, 0, 0};
        struct pb core = {0}, tc = {0}, core2 = {0};
        struct em_ckpt_policy p;

        (void)state;
        u(&tc, 1, EM_CK_TASK_DEAD);
        u(&tc, 2, 0);
        bytes(&tc, 6, "sleep", 5);
        u(&core, 1, 1);
        msg(&core, 3, &tc);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core, 1);
        assert_int_equal(unlink(ids), 0);
        em_ckpt_policy_default(&p);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "");
        build_core_state(&core2, &s, EM_CK_TASK_DEAD);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core2, 1);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_string_equal(v2, "pstree.img: task 18 has no ids-18.img");
        /* the container's init a zombie: nothing to restore into */
        cleanup_free char *ids1 = em_path_join(dir, "ids-1.img");
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core, 1);
        write_img(dir, "core-1.img", EM_CRIU_MAGIC_CORE, &core, 1);
        assert_int_equal(unlink(ids1), 0);
        cleanup_free char *v3 = verdict(dir, &p);
        assert_string_equal(v3, "pstree.img: the first task 1 is a zombie");
        em_test_rm(dir);
}

/* pstree.img's tasks: init 1 and task 18, whose threads are tids18. */
static void write_pstree(const char *dir, const uint32_t *tids18, size_t n)
{
        struct pb recs[2];

        memset(recs, 0, sizeof(recs));
        u(&recs[0], 1, 1);
        u(&recs[0], 2, 0);
        u(&recs[0], 3, 1);
        u(&recs[0], 4, 1);
        u(&recs[0], 5, 1);
        u(&recs[1], 1, 18);
        u(&recs[1], 2, 1);
        u(&recs[1], 3, 1);
        u(&recs[1], 4, 1);
        for (size_t i = 0; i < n; i++)
                u(&recs[1], 5, tids18[i]);
        write_img(dir, "pstree.img", EM_CRIU_MAGIC_PSTREE, recs, 2);
}

/* CRIU 4.2.1 writes a zombie's thread id from memory it never set (a
 * busybox migration was refused with thread 1601332589, the bytes "mer_"):
 * not a thread to look for; a live task's unknown thread still is. */
static void test_zombie_thread_id(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        cleanup_free char *ids = em_path_join(dir, "ids-18.img");
        struct pb core = {0}, tc = {0};
        struct em_ckpt_policy p;
        const uint32_t noise[] = {0x5f72656d, 7};

        (void)state;
        em_ckpt_policy_default(&p);
        write_pstree(dir, noise, 1);
        cleanup_free char *live = verdict(dir, &p);
        assert_string_equal(live, "pstree.img: thread 1601332589 has no core-1601332589.img");
        u(&tc, 1, EM_CK_TASK_DEAD);
        bytes(&tc, 6, "sleep", 5);
        u(&core, 1, 1);
        msg(&core, 3, &tc);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core, 1);
        assert_int_equal(unlink(ids), 0);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "");
        /* CRIU dumps no zombie with threads; nor does a peer send one */
        write_pstree(dir, noise, 2);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_string_equal(v2, "pstree.img: zombie task 18 has 2 threads");
        em_test_rm(dir);
}

static void test_refuse_ids_nnp_seccomp(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct creds_spec s = {100000, em_caps_default(), 1, 0, 0};
        struct pb core = {0}, core2 = {0}, core3 = {0};
        struct em_ckpt_policy p;

        (void)state;
        em_ckpt_policy_default(&p);
        build_core(&core, &s);
        write_img(dir, "core-1.img", EM_CRIU_MAGIC_CORE, &core, 1);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "core-1.img: thread 1 uid 100000 is outside the container's range "
                               "0-65535");
        s.uid = 0, s.nnp = 0;
        build_core(&core2, &s);
        write_img(dir, "core-1.img", EM_CRIU_MAGIC_CORE, &core2, 1);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_non_null(strstr(v2, "thread 1 no_new_privs is off"));
        /* seccomp required: a thread without a filter is weaker */
        s.nnp = 1;
        build_core(&core3, &s);
        write_img(dir, "core-1.img", EM_CRIU_MAGIC_CORE, &core3, 1);
        p.seccomp = true;
        cleanup_free char *v3 = verdict(dir, &p);
        assert_non_null(strstr(v3, "core-1.img: thread 1 seccomp_mode is disabled, weaker than"));
        em_test_rm(dir);
}

static void test_refuse_seccomp_chain(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct creds_spec s = {0, em_caps_default(), 1, 2, 1};
        struct pb core = {0}, sc = {0}, f0 = {0}, f1 = {0};
        const uint8_t prog[8] = {0x06, 0, 0, 0, 0, 0, 0xff, 0x7f}; /* ret ALLOW */
        struct em_ckpt_policy p;

        (void)state;
        em_ckpt_policy_default(&p);
        build_core(&core, &s);
        write_img(dir, "core-1.img", EM_CRIU_MAGIC_CORE, &core, 1);
        /* filter 1 -> prev 0 -> prev 1: CRIU would loop forever */
        bytes(&f0, 1, prog, 8), u(&f0, 2, 1);
        bytes(&f1, 1, prog, 8), u(&f1, 2, 0);
        msg(&sc, 1, &f0), msg(&sc, 1, &f1);
        write_img(dir, "seccomp.img", EM_CRIU_MAGIC_SECCOMP, &sc, 1);
        cleanup_free char *v = verdict(dir, &p);
        assert_non_null(strstr(v, "core-1.img: thread 1 seccomp filter chain loops"));
        /* a chain without the profile's own program is weaker */
        struct pb sc2 = {0}, g = {0};
        bytes(&g, 1, prog, 8);
        msg(&sc2, 1, &g), msg(&sc2, 1, &g);
        write_img(dir, "seccomp.img", EM_CRIU_MAGIC_SECCOMP, &sc2, 1);
        const uint8_t want[8] = {0x06, 0, 0, 0, 0, 0, 0, 0}; /* ret KILL */
        p.seccomp = true, p.seccomp_prog = want, p.seccomp_len = 8;
        cleanup_free char *v2 = verdict(dir, &p);
        assert_non_null(strstr(v2, "do not include the profile's filter"));
        em_test_rm(dir);
}

static void ins(struct pb *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
        uint8_t o[8] = {(uint8_t)code, (uint8_t)(code >> 8), jt, jf};

        for (int i = 0; i < 4; i++)
                o[4 + i] = (uint8_t)(k >> (8 * i));
        memcpy(p->b + p->n, o, 8);
        p->n += 8;
}

/* A filter chain judged by what it does with the calls the profile denies. */
static void test_seccomp_weaker(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct creds_spec s = {0, em_caps_default(), 1, 2, 0};
        struct pb core = {0}, core18 = {0}, weak = {0}, strong = {0}, f = {0}, sc = {0};
        struct em_ckpt_policy p;

        (void)state;
        build_core(&core, &s);
        write_img(dir, "core-1.img", EM_CRIU_MAGIC_CORE, &core, 1);
        build_core(&core18, &s);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &core18, 1);
        em_ckpt_policy_default(&p);
        p.seccomp = true;
        /* checks the arch and denies mount, but not through x32 numbers */
        ins(&weak, 0x20, 0, 0, 4);
        ins(&weak, 0x15, 1, 0, 0xc000003eu);
        ins(&weak, 0x06, 0, 0, 0x80000000u);
        ins(&weak, 0x20, 0, 0, 0);
        ins(&weak, 0x15, 0, 1, 165);
        ins(&weak, 0x06, 0, 0, 0x00050001u);
        ins(&weak, 0x06, 0, 0, 0x7fff0000u);
        bytes(&f, 1, weak.b, weak.n);
        msg(&sc, 1, &f);
        write_img(dir, "seccomp.img", EM_CRIU_MAGIC_SECCOMP, &sc, 1);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "core-1.img: thread 1 seccomp filters allow mount (x32), which the "
                               "profile denies: weaker than the profile");
        /* arch, no x32, an allow-list of read and write, EPERM for the rest */
        ins(&strong, 0x20, 0, 0, 4);
        ins(&strong, 0x15, 1, 0, 0xc000003eu);
        ins(&strong, 0x06, 0, 0, 0x80000000u);
        ins(&strong, 0x20, 0, 0, 0);
        ins(&strong, 0x35, 3, 0, 0x40000000u); /* jge x32 -> kill */
        ins(&strong, 0x15, 3, 0, 0);           /* read -> allow */
        ins(&strong, 0x15, 2, 0, 1);           /* write -> allow */
        ins(&strong, 0x06, 0, 0, 0x00050001u);
        ins(&strong, 0x06, 0, 0, 0x80000000u);
        ins(&strong, 0x06, 0, 0, 0x7fff0000u);
        struct pb f2 = {0}, sc2 = {0};
        bytes(&f2, 1, strong.b, strong.n);
        msg(&sc2, 1, &f2);
        write_img(dir, "seccomp.img", EM_CRIU_MAGIC_SECCOMP, &sc2, 1);
        cleanup_free char *ok = verdict(dir, &p);
        assert_string_equal(ok, "");
        /* a capability of the profile brings its calls back (CAP_SYS_ADMIN:
         * mount) but not the others */
        p.cap_mask |= 1ull << 21;
        struct pb f3 = {0}, sc3 = {0}, weak2 = {0};
        ins(&weak2, 0x20, 0, 0, 0);
        ins(&weak2, 0x35, 0, 1, 0x40000000u); /* x32 -> kill */
        ins(&weak2, 0x06, 0, 0, 0x80000000u);
        ins(&weak2, 0x06, 0, 0, 0x7fff0000u); /* everything else allowed */
        bytes(&f3, 1, weak2.b, weak2.n);
        msg(&sc3, 1, &f3);
        write_img(dir, "seccomp.img", EM_CRIU_MAGIC_SECCOMP, &sc3, 1);
        cleanup_free char *v3 = verdict(dir, &p);
        assert_non_null(strstr(v3, "seccomp filters allow init_module (x86_64)"));
        em_test_rm(dir);
}

static void test_refuse_namespaces(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct pb ids = {0}, ids2 = {0};
        struct em_ckpt_policy p;
        /* net ns 2 is the inventory's root (the host's) */
        const uint32_t host_net[] = {0, 3, 3, 3, 3, 9, 2, 11, 12, 13, 7, 8, 5};
        const uint32_t other_pid[] = {0, 3, 3, 3, 3, 99, 10, 11, 12, 13, 7, 8, 5};

        (void)state;
        em_ckpt_policy_default(&p);
        for (unsigned f = 1; f <= 12; f++)
                u(&ids, f, host_net[f]), u(&ids2, f, other_pid[f]);
        write_img(dir, "ids-18.img", EM_CRIU_MAGIC_IDS, &ids, 1);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "ids-18.img: task 18 net_ns_id is the host's, not the "
                               "container's own");
        write_img(dir, "ids-18.img", EM_CRIU_MAGIC_IDS, &ids2, 1);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_string_equal(v2, "ids-18.img: task 18 pid_ns_id differs from the container "
                                "init's");
        em_test_rm(dir);
}

static void test_refuse_mounts_and_files(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct pb m = {0}, f = {0}, reg = {0}, fown = {0}, nsf = {0}, f2 = {0};
        struct em_ckpt_policy p;
        cleanup_free char *orig = NULL;
        size_t olen = 0;
        em_error_t err = NULL;

        (void)state;
        em_ckpt_policy_default(&p);
        /* the host's disk mounted at /mnt, appended to the real mounts */
        u(&m, 1, 0), u(&m, 2, 500), u(&m, 3, 0), u(&m, 4, 102), u(&m, 5, 0);
        bytes(&m, 6, "/", 1), bytes(&m, 7, "/mnt", 4), bytes(&m, 8, "/dev/vda", 8);
        bytes(&m, 9, "", 0);
        cleanup_free char *mp = em_path_join(dir, "mountpoints-13.img");
        assert_int_equal(em_read_file(mp, 1 << 20, &orig, &olen, &err), 0);
        uint8_t buf[8192];
        memcpy(buf, orig, olen);
        put32(buf + olen, (uint32_t)m.n);
        memcpy(buf + olen + 4, m.b, m.n);
        assert_int_equal(em_write_file_atomic(mp, buf, olen + 4 + m.n, 0644, &err), 0);
        cleanup_free char *v = verdict(dir, &p);
        assert_string_equal(v, "mountpoints-13.img: mount 500 at /mnt (fstype 0, source "
                               "/dev/vda) is not one the container's config makes");
        assert_int_equal(em_write_file_atomic(mp, orig, olen, 0644, &err), 0);
        /* a file reached through ".." and a namespace descriptor */
        for (unsigned k = 1; k <= 5; k++)
                u(&fown, k, 0);
        u(&reg, 1, 9), u(&reg, 2, 0), u(&reg, 3, 0);
        msg(&reg, 5, &fown);
        bytes(&reg, 6, "/app/../../etc/shadow", 21);
        u(&f, 1, 1), u(&f, 2, 9);
        msg(&f, 3, &reg);
        write_img(dir, "files.img", EM_CRIU_MAGIC_FILES, &f, 1);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_non_null(strstr(v2, "files.img: file 9 path /app/../../etc/shadow"));
        u(&nsf, 1, 10), u(&nsf, 2, 2), u(&nsf, 3, 0x40000000), u(&nsf, 4, 0);
        u(&f2, 1, 14), u(&f2, 2, 10);
        msg(&f2, 5, &nsf);
        write_img(dir, "files.img", EM_CRIU_MAGIC_FILES, &f2, 1);
        cleanup_free char *v3 = verdict(dir, &p);
        assert_non_null(strstr(v3, "files.img: file 10 is a namespace descriptor"));
        em_test_rm(dir);
}

/* A listening unix socket at a path, as CRIU records a bound one (the
 * name ends in its sockaddr's NUL, MariaDB's mysqld.sock): accepted; the
 * same with ".." in it, or a NUL inside the name, is not. */
static void unix_socket_verdict(const char *dir, const char *name, size_t len, const char *want)
{
        struct pb f = {0}, sk = {0};
        struct em_ckpt_policy p;

        em_ckpt_policy_default(&p);
        u(&sk, 1, 11), u(&sk, 2, 4242), u(&sk, 3, 1), u(&sk, 4, 10);
        bytes(&sk, 11, name, len);
        u(&f, 1, 5), u(&f, 2, 11);
        msg(&f, 16, &sk);
        write_img(dir, "files.img", EM_CRIU_MAGIC_FILES, &f, 1);
        cleanup_free char *v = verdict(dir, &p);
        if (want[0] == '\0' ? v[0] != '\0' : strstr(v, want) == NULL)
                fail_msg("%s: verdict \"%s\", expected \"%s\"", name, v, want);
}

static void test_unix_socket_names(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");

        (void)state;
        unix_socket_verdict(dir, "/run/mysqld/mysqld.sock", 24, "");
        unix_socket_verdict(dir, "/run/mysqld/mysqld.sock", 23, "");
        unix_socket_verdict(dir, "/run/../../etc/x.sock", 22, "leaves its directory");
        unix_socket_verdict(dir, "/run/a.sock\0/b", 15, "unix_sk_entry field 11 is malformed");
        em_test_rm(dir);
}

/* Appends one mount record to the fixture's mountpoints-13.img. */
static void add_mount(const char *dir, struct pb *m)
{
        cleanup_free char *mp = em_path_join(dir, "mountpoints-13.img");
        cleanup_free char *orig = NULL;
        size_t olen = 0;
        uint8_t buf[8192];
        em_error_t err = NULL;

        assert_int_equal(em_read_file(mp, 1 << 20, &orig, &olen, &err), 0);
        memcpy(buf, orig, olen);
        put32(buf + olen, (uint32_t)m->n);
        memcpy(buf + olen + 4, m->b, m->n);
        assert_int_equal(em_write_file_atomic(mp, buf, olen + 4 + m->n, 0644, &err), 0);
}

/* The container's volumes are external binds keyed by their mount point;
 * its --tmpfs mounts are tmpfs at theirs. Nothing else passes for them. */
static void test_volume_mounts(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct pb vol = {0}, tmp = {0};
        struct em_ckpt_policy p;
        const char *const binds[] = {"/data", NULL}, *const tmpfs[] = {"/scratch", NULL};

        (void)state;
        em_ckpt_policy_default(&p);
        u(&vol, 1, 0), u(&vol, 2, 501), u(&vol, 3, 0), u(&vol, 4, 102), u(&vol, 5, 0);
        bytes(&vol, 6, "/", 1), bytes(&vol, 7, "/data", 5), bytes(&vol, 8, "/dev/vda", 8);
        bytes(&vol, 9, "", 0), bytes(&vol, 18, "/data", 5);
        add_mount(dir, &vol);
        u(&tmp, 1, 5), u(&tmp, 2, 502), u(&tmp, 3, 0), u(&tmp, 4, 102), u(&tmp, 5, 0);
        bytes(&tmp, 6, "/", 1), bytes(&tmp, 7, "/scratch", 8), bytes(&tmp, 8, "tmpfs", 5);
        bytes(&tmp, 9, "", 0);
        add_mount(dir, &tmp);
        cleanup_free char *v1 = verdict(dir, &p);
        assert_non_null(strstr(v1, "mount 501 at /data"));
        p.binds = binds;
        cleanup_free char *v2 = verdict(dir, &p);
        assert_non_null(strstr(v2, "mount 502 at /scratch"));
        p.tmpfs = tmpfs;
        cleanup_free char *v3 = verdict(dir, &p);
        assert_string_equal(v3, "");
        /* a bind of /data presented at another mount point */
        p.binds = (const char *const[]){"/scratch", NULL};
        p.tmpfs = (const char *const[]){"/data", NULL};
        cleanup_free char *v4 = verdict(dir, &p);
        assert_non_null(strstr(v4, "mount 501 at /data"));
        em_test_rm(dir);
}

/* The verdict on the fixture with one external mount added at at, keyed
 * key, with the given mount flags. */
static char *ext_mount_verdict(const char *at, const char *key, unsigned flags)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct pb m = {0};
        struct em_ckpt_policy p;

        em_ckpt_policy_default(&p);
        u(&m, 1, 5), u(&m, 2, 503), u(&m, 3, 0), u(&m, 4, 102), u(&m, 5, flags);
        bytes(&m, 6, "/", 1), bytes(&m, 7, at, strlen(at)), bytes(&m, 8, "tmpfs", 5);
        bytes(&m, 9, "", 0), bytes(&m, 18, key, strlen(key));
        add_mount(dir, &m);
        char *v = verdict(dir, &p);
        em_test_rm(dir);
        return v;
}

/* A masked directory dumped as an external mount (container/masks.h)
 * passes under its own key, read-only; the key of another mask, a
 * writable one, or the key at a path that is not masked does not. */
static void test_mask_mounts(void **state)
{
        (void)state;
        cleanup_free char *ok = ext_mount_verdict("/proc/acpi", "edgemig-mask/proc/acpi", 1);
        assert_string_equal(ok, "");
        cleanup_free char *other = ext_mount_verdict("/proc/acpi", "edgemig-mask/sys/firmware", 1);
        assert_non_null(strstr(other, "mount 503 at /proc/acpi"));
        cleanup_free char *rw = ext_mount_verdict("/proc/acpi", "edgemig-mask/proc/acpi", 0);
        assert_non_null(strstr(rw, "mount 503 at /proc/acpi"));
        cleanup_free char *etc = ext_mount_verdict("/etc", "edgemig-mask/etc", 1);
        assert_non_null(strstr(etc, "mount 503 at /etc"));
}

static void test_refuse_legacy_images(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct pb r = {0};
        struct em_ckpt_policy p;

        (void)state;
        em_ckpt_policy_default(&p);
        u(&r, 1, 1);
        write_img(dir, "reg-files.img", 0x50363636u, &r, 1);
        cleanup_free char *v = verdict(dir, &p);
        assert_non_null(strstr(v, "reg-files.img: an image of a kind edgemig does not restore"));
        em_test_rm(dir);
}

static void test_malformed(void **state)
{
        char *dir = em_test_copy_dir(BUSYBOX, "ckpt");
        struct pb bad = {0}, dup = {0}, creds = {0}, th = {0};
        struct em_ckpt_policy p;

        (void)state;
        em_ckpt_policy_default(&p);
        /* nested garbage: a thread_core whose creds is a truncated varint */
        const uint8_t garbage[] = {0x08, 0x80, 0x80};
        bytes(&th, 10, garbage, sizeof(garbage));
        u(&bad, 1, 1);
        msg(&bad, 5, &th);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &bad, 1);
        cleanup_free char *v = verdict(dir, &p);
        assert_non_null(strstr(v, "core-18.img: creds_entry is not valid protobuf"));
        /* creds twice: protobuf-c would merge them; refused */
        for (unsigned f = 1; f <= 8; f++)
                u(&creds, f, 0);
        u(&creds, 13, 0);
        struct pb th2 = {0};
        msg(&th2, 10, &creds), msg(&th2, 10, &creds);
        u(&dup, 1, 1);
        msg(&dup, 5, &th2);
        write_img(dir, "core-18.img", EM_CRIU_MAGIC_CORE, &dup, 1);
        cleanup_free char *v2 = verdict(dir, &p);
        assert_non_null(strstr(v2, "thread_core_entry field 10 occurs twice"));
        /* a record length past the end of the file */
        cleanup_free char *path = em_path_join(dir, "core-18.img");
        uint8_t raw[12];
        em_error_t err = NULL;
        put32(raw, EM_CRIU_MAGIC_COMMON), put32(raw + 4, EM_CRIU_MAGIC_CORE);
        put32(raw + 8, 0xfffffff0u);
        assert_int_equal(em_write_file_atomic(path, raw, 12, 0644, &err), 0);
        cleanup_free char *v3 = verdict(dir, &p);
        assert_non_null(strstr(v3, "core-18.img: record of 4294967280 bytes"));
        em_test_rm(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_real_busybox),
            cmocka_unit_test(test_inspect_json),
            cmocka_unit_test(test_real_userns),
            cmocka_unit_test(test_profile_policy),
            cmocka_unit_test(test_refuse_caps),
            cmocka_unit_test(test_zombie),
            cmocka_unit_test(test_zombie_thread_id),
            cmocka_unit_test(test_refuse_ids_nnp_seccomp),
            cmocka_unit_test(test_refuse_seccomp_chain),
            cmocka_unit_test(test_seccomp_weaker),
            cmocka_unit_test(test_refuse_namespaces),
            cmocka_unit_test(test_refuse_mounts_and_files),
            cmocka_unit_test(test_unix_socket_names),
            cmocka_unit_test(test_volume_mounts),
            cmocka_unit_test(test_mask_mounts),
            cmocka_unit_test(test_refuse_legacy_images),
            cmocka_unit_test(test_malformed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
