#include "checkpoint/ckpt_info.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/criu_image.h"
#include "container/security.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

/* Records in one image, across all images: a bound on memory whatever a
 * peer sends (each record is at least one byte of a file of at most
 * EM_CRIU_IMG_MAX). */
#define EM_CKPT_MAX_RECORDS (1u << 20)

static int grow(void **arr, size_t *n, size_t size, em_error_t *err)
{
        void *p;

        if (*n >= EM_CKPT_MAX_RECORDS)
                return em_error_set(err, E2BIG, "more than %u records of one kind",
                                    EM_CKPT_MAX_RECORDS);
        p = realloc(*arr, (*n + 1) * size);
        if (p == NULL)
                return em_error_set(err, ENOMEM, "decoding images");
        memset((char *)p + *n * size, 0, size);
        *arr = p;
        (*n)++;
        return 0;
}

#define GROW(ci, field, count, err)                                                                \
        grow((void **)&(ci)->field, &(ci)->count, sizeof(*(ci)->field), err)

/* The one record of a single-message image. */
static int one_record(struct em_criu_img *img, const uint8_t **rec, size_t *len, em_error_t *err)
{
        int r = em_criu_img_next(img, rec, len, err);

        if (r == 0)
                return em_error_set(err, EBADMSG, "%s: no record", img->name);
        return r < 0 ? -1 : 0;
}

static int only_record(struct em_criu_img *img, const uint8_t **rec, size_t *len, em_error_t *err)
{
        const uint8_t *more;
        size_t mlen;

        if (one_record(img, rec, len, err) < 0)
                return -1;
        int r = em_criu_img_next(img, &more, &mlen, err);
        if (r > 0)
                return em_error_set(err, EBADMSG, "%s: more than one record", img->name);
        return r;
}

static int load_inventory(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                          em_error_t *err)
{
        const uint8_t *rec;
        size_t len;

        (void)num;
        if (only_record(img, &rec, &len, err) < 0 ||
            em_ck_decode_inventory(img->name, rec, len, &ci->inv, err) < 0)
                return -1;
        ci->has_inventory = true;
        return 0;
}

static int load_pstree(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                       em_error_t *err)
{
        const uint8_t *rec;
        size_t len;
        int r;

        (void)num;
        while ((r = em_criu_img_next(img, &rec, &len, err)) > 0) {
                if (GROW(ci, tasks, n_tasks, err) < 0)
                        return -1;
                if (em_ck_decode_pstree(img->name, rec, len, &ci->tasks[ci->n_tasks - 1], err) <
                    0) {
                        ci->n_tasks--;
                        return -1;
                }
        }
        return r;
}

static int load_core(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                     em_error_t *err)
{
        const uint8_t *rec;
        size_t len;

        if (only_record(img, &rec, &len, err) < 0 || GROW(ci, threads, n_threads, err) < 0)
                return -1;
        ci->threads[ci->n_threads - 1].tid = num;
        return em_ck_decode_core(img->name, rec, len, &ci->threads[ci->n_threads - 1].core, err);
}

static int load_ids(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num, em_error_t *err)
{
        const uint8_t *rec;
        size_t len;

        if (only_record(img, &rec, &len, err) < 0 || GROW(ci, ids, n_ids, err) < 0)
                return -1;
        ci->ids[ci->n_ids - 1].pid = num;
        return em_ck_decode_ids(img->name, rec, len, &ci->ids[ci->n_ids - 1].ids, err);
}

static int load_mounts(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                       em_error_t *err)
{
        const uint8_t *rec;
        size_t len;
        int r;

        (void)num;
        while ((r = em_criu_img_next(img, &rec, &len, err)) > 0) {
                if (GROW(ci, mounts, n_mounts, err) < 0)
                        return -1;
                struct em_ckpt_mount *m = &ci->mounts[ci->n_mounts - 1];
                snprintf(m->img, sizeof(m->img), "%s", img->name);
                if (em_ck_decode_mount(img->name, rec, len, &m->m, err) < 0)
                        return -1;
        }
        return r;
}

static int load_files(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                      em_error_t *err)
{
        const uint8_t *rec;
        size_t len;
        int r;

        (void)num;
        while ((r = em_criu_img_next(img, &rec, &len, err)) > 0) {
                if (GROW(ci, files, n_files, err) < 0)
                        return -1;
                if (em_ck_decode_file(img->name, rec, len, &ci->files[ci->n_files - 1], err) < 0)
                        return -1;
        }
        return r;
}

static int load_fdinfo(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                       em_error_t *err)
{
        const uint8_t *rec;
        size_t len;
        int r;

        while ((r = em_criu_img_next(img, &rec, &len, err)) > 0) {
                if (GROW(ci, fds, n_fds, err) < 0)
                        return -1;
                ci->fds[ci->n_fds - 1].files_id = num;
                if (em_ck_decode_fdinfo(img->name, rec, len, &ci->fds[ci->n_fds - 1].fi, err) < 0)
                        return -1;
        }
        return r;
}

static int load_seccomp(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                        em_error_t *err)
{
        const uint8_t *rec;
        size_t len;

        (void)num;
        if (only_record(img, &rec, &len, err) < 0 ||
            em_ck_decode_seccomp(img->name, rec, len, &ci->seccomp, err) < 0)
                return -1;
        ci->has_seccomp = true;
        return 0;
}

/* More than one user namespace is nesting, which no container config makes;
 * they are counted so the validator can say so. */
static int load_userns(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                       em_error_t *err)
{
        const uint8_t *rec;
        size_t len;

        (void)num;
        ci->n_userns++;
        if (ci->has_userns)
                return 0;
        ci->userns = calloc(1, sizeof(*ci->userns));
        if (ci->userns == NULL)
                return em_error_set(err, ENOMEM, "%s", img->name);
        snprintf(ci->userns_img, sizeof(ci->userns_img), "%s", img->name);
        if (only_record(img, &rec, &len, err) < 0 ||
            em_ck_decode_userns(img->name, rec, len, ci->userns, err) < 0)
                return -1;
        ci->has_userns = true;
        return 0;
}

static struct em_ckpt_mm *mm_of(struct em_ckpt_info *ci, uint32_t pid, em_error_t *err)
{
        for (size_t i = 0; i < ci->n_mms; i++)
                if (ci->mms[i].pid == pid)
                        return &ci->mms[i];
        if (GROW(ci, mms, n_mms, err) < 0)
                return NULL;
        ci->mms[ci->n_mms - 1].pid = pid;
        return &ci->mms[ci->n_mms - 1];
}

static int load_mm(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num, em_error_t *err)
{
        struct em_ckpt_mm *m = mm_of(ci, num, err);
        const uint8_t *rec;
        size_t len;

        if (m == NULL || only_record(img, &rec, &len, err) < 0)
                return -1;
        return em_ck_decode_mm(img->name, rec, len, &m->mm, err);
}

static int load_pagemap(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num,
                        em_error_t *err)
{
        struct em_ckpt_mm *m = mm_of(ci, num, err);
        const uint8_t *rec;
        size_t len;
        int r;

        if (m == NULL || one_record(img, &rec, &len, err) < 0) /* pagemap_head */
                return -1;
        while ((r = em_criu_img_next(img, &rec, &len, err)) > 0)
                if (em_ck_decode_pagemap_entry(img->name, rec, len, &m->pages, err) < 0)
                        return -1;
        return r;
}

/* tcp-stream images carry the queued data after their record. */
static int load_tcp(struct em_ckpt_info *ci, struct em_criu_img *img, uint32_t num, em_error_t *err)
{
        const uint8_t *rec;
        size_t len;

        if (one_record(img, &rec, &len, err) < 0 || GROW(ci, tcp, n_tcp, err) < 0)
                return -1;
        ci->tcp[ci->n_tcp - 1].ino = num;
        return em_ck_decode_tcp(img->name, rec, len, &ci->tcp[ci->n_tcp - 1].t, err);
}

typedef int (*loader_fn)(struct em_ckpt_info *, struct em_criu_img *, uint32_t, em_error_t *);

/* prefix + number (base 10, 16, or none when base is 0) + ".img" */
static const struct {
        const char *prefix;
        int base;
        uint32_t magic;
        loader_fn load;
} loaders[] = {
    {"inventory.img", 0, EM_CRIU_MAGIC_INVENTORY, load_inventory},
    {"pstree.img", 0, EM_CRIU_MAGIC_PSTREE, load_pstree},
    {"files.img", 0, EM_CRIU_MAGIC_FILES, load_files},
    {"seccomp.img", 0, EM_CRIU_MAGIC_SECCOMP, load_seccomp},
    {"core-", 10, EM_CRIU_MAGIC_CORE, load_core},
    {"ids-", 10, EM_CRIU_MAGIC_IDS, load_ids},
    {"mountpoints-", 10, EM_CRIU_MAGIC_MNTS, load_mounts},
    {"fdinfo-", 10, EM_CRIU_MAGIC_FDINFO, load_fdinfo},
    {"userns-", 10, EM_CRIU_MAGIC_USERNS, load_userns},
    {"mm-", 10, EM_CRIU_MAGIC_MM, load_mm},
    {"pagemap-", 10, EM_CRIU_MAGIC_PAGEMAP, load_pagemap},
    {"tcp-stream-", 16, EM_CRIU_MAGIC_TCPSTREAM, load_tcp},
};

/* Whether name is prefix[number].img; the number must fit in 32 bits. */
static bool name_matches(const char *name, const char *prefix, int base, uint32_t *num)
{
        size_t pl = strlen(prefix);
        char *end;

        *num = 0;
        if (strncmp(name, prefix, pl) != 0)
                return false;
        if (base == 0)
                return name[pl] == 0;
        if (!(base == 16 ? isxdigit((unsigned char)name[pl]) : isdigit((unsigned char)name[pl])))
                return false;
        errno = 0;
        unsigned long v = strtoul(name + pl, &end, base);
        if (errno != 0 || v > UINT32_MAX || strcmp(end, ".img") != 0)
                return false;
        *num = (uint32_t)v;
        return true;
}

static int load_one(struct em_ckpt_info *ci, int dirfd, const char *name, em_error_t *err)
{
        uint32_t num;

        for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++) {
                if (!name_matches(name, loaders[i].prefix, loaders[i].base, &num))
                        continue;
                cleanup_criu_img struct em_criu_img img = {0};
                if (em_criu_img_open(dirfd, name, loaders[i].magic, &img, err) < 0)
                        return -1;
                return loaders[i].load(ci, &img, num, err);
        }
        return 0;
}

int em_ckpt_info_load_at(int dirfd, struct em_ckpt_info *ci, em_error_t *err)
{
        memset(ci, 0, sizeof(*ci));
        if (em_dir_names_at(dirfd, NULL, EM_CKPT_MAX_ENTRIES, "the image directory", &ci->names,
                            err) < 0)
                return -1;
        for (char **n = ci->names; *n; n++)
                if (load_one(ci, dirfd, *n, err) < 0)
                        return -1;
        if (!ci->has_inventory || ci->n_tasks == 0)
                return em_error_set(err, ENOENT, "not a CRIU image directory: %s missing",
                                    ci->has_inventory ? "pstree.img" : "inventory.img");
        return 0;
}

int em_ckpt_info_load(const char *dir, struct em_ckpt_info *ci, em_error_t *err)
{
        cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0) {
                memset(ci, 0, sizeof(*ci));
                return em_error_set(err, errno, "opening %s", dir);
        }
        if (em_ckpt_info_load_at(fd, ci, err) < 0)
                return em_error_wrap(err, "%s", dir);
        return 0;
}

void em_ckpt_info_free(struct em_ckpt_info *ci)
{
        for (size_t i = 0; i < ci->n_tasks; i++)
                em_ck_pstree_free(&ci->tasks[i]);
        for (size_t i = 0; i < ci->n_mounts; i++)
                em_ck_mount_free(&ci->mounts[i].m);
        for (size_t i = 0; i < ci->n_files; i++)
                em_ck_file_free(&ci->files[i]);
        em_ck_seccomp_free(&ci->seccomp);
        free(ci->tasks);
        free(ci->threads);
        free(ci->ids);
        free(ci->mounts);
        free(ci->files);
        free(ci->fds);
        free(ci->tcp);
        free(ci->mms);
        free(ci->userns);
        em_strv_free(ci->names);
        memset(ci, 0, sizeof(*ci));
}

const struct em_ckpt_thread *em_ckpt_thread(const struct em_ckpt_info *ci, uint32_t tid)
{
        for (size_t i = 0; i < ci->n_threads; i++)
                if (ci->threads[i].tid == tid)
                        return &ci->threads[i];
        return NULL;
}

const struct em_ckpt_ids *em_ckpt_ids(const struct em_ckpt_info *ci, uint32_t pid)
{
        for (size_t i = 0; i < ci->n_ids; i++)
                if (ci->ids[i].pid == pid)
                        return &ci->ids[i];
        return NULL;
}

const struct em_ck_mount *em_ckpt_mount(const struct em_ckpt_info *ci, uint32_t mnt_id)
{
        for (size_t i = 0; i < ci->n_mounts; i++)
                if (ci->mounts[i].m.mnt_id == mnt_id)
                        return &ci->mounts[i].m;
        return NULL;
}

/* ---- JSON (inspect) ---- */

static json_t *caps_json(const struct em_ck_caps *c)
{
        json_t *a = json_array();
        bool beyond;
        uint64_t m = em_ck_caps_mask(c, &beyond);

        for (unsigned b = 0; b < 64; b++) {
                if (!(m >> b & 1))
                        continue;
                const char *n = em_cap_name((int)b);
                json_array_append_new(a, n ? json_string(n) : json_integer(b));
        }
        if (beyond)
                json_array_append_new(a, json_string("(bits above 63)"));
        return a;
}

static const char *seccomp_mode_name(uint32_t m)
{
        static const char *const names[] = {"disabled", "strict", "filter"};

        return m < 3 ? names[m] : "unknown";
}

static json_t *creds_json(const struct em_ck_creds *c)
{
        json_t *groups = json_array();

        for (size_t i = 0; i < c->n_groups; i++)
                json_array_append_new(groups, json_integer(c->groups[i]));
        return json_pack("{s:[iiii], s:[iiii], s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:i}", "uid",
                         c->uid, c->euid, c->suid, c->fsuid, "gid", c->gid, c->egid, c->sgid,
                         c->fsgid, "groups", groups, "cap_eff", caps_json(&c->eff), "cap_prm",
                         caps_json(&c->prm), "cap_inh", caps_json(&c->inh), "cap_bnd",
                         caps_json(&c->bnd), "cap_amb", caps_json(&c->amb), "no_new_privs",
                         c->has_nnp && c->no_new_privs, "secbits", c->secbits);
}

static json_t *thread_json(const struct em_ckpt_info *ci, uint32_t tid)
{
        const struct em_ckpt_thread *t = em_ckpt_thread(ci, tid);
        json_t *j;

        if (t == NULL)
                return json_pack("{s:i, s:s}", "tid", tid, "error", "no core image");
        const struct em_ck_core *c = &t->core;
        uint32_t mode = c->has_seccomp ? c->seccomp_mode : c->old_seccomp_mode;
        uint32_t filter = c->has_seccomp ? c->seccomp_filter : c->old_seccomp_filter;
        j = json_pack("{s:i, s:s, s:s}", "tid", tid, "comm", c->comm, "seccomp",
                      seccomp_mode_name(mode));
        if (mode == EM_CK_SECCOMP_FILTER)
                json_object_set_new(j, "seccomp_filter", json_integer(filter));
        if (c->has_creds) {
                json_t *cr = creds_json(&c->creds);
                json_object_update(j, cr);
                json_decref(cr);
        }
        return j;
}

static json_t *ids_json(const struct em_ck_ids *ids)
{
        json_t *j = json_object();

        for (int k = EM_CK_NS_FIRST; k <= EM_CK_NS_LAST; k++)
                if (ids->seen >> k & 1)
                        json_object_set_new(j, em_ck_ns_name(k), json_integer(ids->id[k]));
        return j;
}

static const struct em_ckpt_mm *mm_find(const struct em_ckpt_info *ci, uint32_t pid)
{
        for (size_t i = 0; i < ci->n_mms; i++)
                if (ci->mms[i].pid == pid)
                        return &ci->mms[i];
        return NULL;
}

static json_t *process_json(const struct em_ckpt_info *ci, const struct em_ck_pstree *ps)
{
        const struct em_ckpt_ids *ids = em_ckpt_ids(ci, ps->pid);
        const struct em_ckpt_mm *mm = mm_find(ci, ps->pid);
        const struct em_ckpt_thread *t = em_ckpt_thread(ci, ps->pid);
        json_t *threads = json_array();

        for (size_t i = 0; i < ps->n_threads; i++)
                json_array_append_new(threads, thread_json(ci, ps->threads[i]));
        return json_pack("{s:i, s:i, s:i, s:i, s:s, s:o, s:o, s:I, s:I}", "pid", ps->pid, "ppid",
                         ps->ppid, "pgid", ps->pgid, "sid", ps->sid, "comm", t ? t->core.comm : "",
                         "threads", threads, "namespaces",
                         ids ? ids_json(&ids->ids) : json_object(), "vma_bytes",
                         (json_int_t)(mm ? mm->mm.vma_bytes : 0), "memory_bytes",
                         (json_int_t)(mm ? mm->pages * 4096 : 0));
}

static json_t *extents_json(const struct em_ck_extent *e, size_t n)
{
        json_t *a = json_array();

        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, json_pack("{s:i, s:i, s:i}", "first", e[i].first,
                                                   "host_first", e[i].lower_first, "count",
                                                   e[i].count));
        return a;
}

static json_t *namespaces_json(const struct em_ckpt_info *ci)
{
        json_t *j = json_pack("{s:o}", "host", ids_json(&ci->inv.root_ids));

        if (ci->has_userns)
                json_object_set_new(
                    j, "user_map",
                    json_pack("{s:o, s:o}", "uid", extents_json(ci->userns->uid, ci->userns->n_uid),
                              "gid", extents_json(ci->userns->gid, ci->userns->n_gid)));
        return j;
}

static json_t *seccomp_json(const struct em_ckpt_info *ci)
{
        json_t *a = json_array();

        for (size_t i = 0; i < ci->seccomp.n; i++) {
                const struct em_ck_seccomp_filter *f = &ci->seccomp.f[i];
                json_t *o = json_pack("{s:i, s:I, s:i}", "index", (int)i, "instructions",
                                      (json_int_t)(f->len / 8), "flags", f->flags);
                if (f->has_prev)
                        json_object_set_new(o, "prev", json_integer(f->prev));
                json_array_append_new(a, o);
        }
        return a;
}

static json_t *mount_json(const struct em_ck_mount *m)
{
        static const char *const fs[] = {
            [1] = "proc",    [2] = "sysfs",   [3] = "devtmpfs", [5] = "tmpfs",   [6] = "devpts",
            [12] = "cgroup", [14] = "mqueue", [17] = "overlay", [23] = "cgroup2"};
        const char *type = m->fstype < 24 && fs[m->fstype] ? fs[m->fstype] : m->fsname;
        json_t *j =
            json_pack("{s:i, s:i, s:s, s:s?, s:s?, s:s?, s:b}", "mnt_id", m->mnt_id, "parent",
                      m->parent_mnt_id, "mountpoint", m->mountpoint, "type", type, "source",
                      m->source, "root", m->root, "read_only", (m->flags & 1) != 0);

        if (m->ext_key)
                json_object_set_new(j, "external", json_string(m->ext_key));
        return j;
}

/* CRIU stores an address as the u32 words of its in-memory bytes. */
static json_t *addr_json(uint32_t family, const uint32_t *w, size_t n, uint32_t port)
{
        uint8_t b[16] = {0};
        char s[INET6_ADDRSTRLEN], out[INET6_ADDRSTRLEN + 16];

        for (size_t i = 0; i < n && i < 4; i++)
                for (int k = 0; k < 4; k++)
                        b[4 * i + k] = (uint8_t)(w[i] >> (8 * k));
        if (inet_ntop(family == AF_INET6 ? AF_INET6 : AF_INET, b, s, sizeof(s)) == NULL)
                return json_null();
        snprintf(out, sizeof(out), family == AF_INET6 ? "[%s]:%u" : "%s:%u", s, port);
        return json_string(out);
}

static const char *tcp_state(uint32_t st)
{
        static const char *const names[] = {"?",          "established", "syn-sent",  "syn-recv",
                                            "fin-wait1",  "fin-wait2",   "time-wait", "close",
                                            "close-wait", "last-ack",    "listen",    "closing"};

        return st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static const struct em_ckpt_tcp *tcp_of(const struct em_ckpt_info *ci, uint32_t ino)
{
        for (size_t i = 0; i < ci->n_tcp; i++)
                if (ci->tcp[i].ino == ino)
                        return &ci->tcp[i];
        return NULL;
}

static json_t *socket_json(const struct em_ckpt_info *ci, const struct em_ck_file *f)
{
        const char *type = f->sk_type == SOCK_STREAM  ? "stream"
                           : f->sk_type == SOCK_DGRAM ? "dgram"
                                                      : "other";
        json_t *j;

        if (f->type == EM_CK_FD_UNIXSK)
                return json_pack("{s:i, s:s, s:s, s:s?}", "id", f->id, "family", "unix", "type",
                                 type, "name", f->name);
        j = json_pack("{s:i, s:s, s:s, s:s, s:o, s:o}", "id", f->id, "family",
                      f->family == AF_INET6 ? "inet6" : "inet", "type", type, "state",
                      f->sk_type == SOCK_STREAM ? tcp_state(f->state) : "-", "local",
                      addr_json(f->family, f->src_addr, f->n_src, f->src_port), "remote",
                      addr_json(f->family, f->dst_addr, f->n_dst, f->dst_port));
        const struct em_ckpt_tcp *t = tcp_of(ci, f->ino);
        if (t != NULL)
                json_object_set_new(
                    j, "queued", json_pack("{s:i, s:i}", "in", t->t.inq_len, "out", t->t.outq_len));
        return j;
}

static const char *fd_type_name(uint32_t t)
{
        static const char *const names[] = {
            "und",       "reg",     "pipe",     "fifo",     "inetsk", "unixsk",   "eventfd",
            "eventpoll", "inotify", "signalfd", "packetsk", "tty",    "fanotify", "netlinksk",
            "ns",        "tun",     "ext",      "timerfd",  "memfd",  "bpfmap",   "pidfd"};

        return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

static void files_json(const struct em_ckpt_info *ci, json_t *files, json_t *sockets)
{
        for (size_t i = 0; i < ci->n_files; i++) {
                const struct em_ck_file *f = &ci->files[i];
                if (f->type == EM_CK_FD_INETSK || f->type == EM_CK_FD_UNIXSK)
                        json_array_append_new(sockets, socket_json(ci, f));
                else
                        json_array_append_new(files,
                                              json_pack("{s:i, s:s, s:s?}", "id", f->id, "type",
                                                        fd_type_name(f->type), "path", f->name));
        }
}

json_t *em_ckpt_info_json(const struct em_ckpt_info *ci)
{
        json_t *procs = json_array(), *mounts = json_array();
        json_t *files = json_array(), *sockets = json_array();
        uint64_t mem = 0, vma = 0;

        for (size_t i = 0; i < ci->n_tasks; i++)
                json_array_append_new(procs, process_json(ci, &ci->tasks[i]));
        for (size_t i = 0; i < ci->n_mounts; i++)
                json_array_append_new(mounts, mount_json(&ci->mounts[i].m));
        for (size_t i = 0; i < ci->n_mms; i++) {
                mem += ci->mms[i].pages * 4096;
                vma += ci->mms[i].mm.vma_bytes;
        }
        files_json(ci, files, sockets);
        return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "criu_img_version",
                         ci->inv.img_version, "processes", procs, "seccomp_filters",
                         seccomp_json(ci), "namespaces", namespaces_json(ci), "sockets", sockets,
                         "files", files, "mounts", mounts, "memory_bytes", (json_int_t)mem,
                         "vma_bytes", (json_int_t)vma);
}

int em_ckpt_upper_size(const char *upper, uint64_t *bytes, uint64_t *entries, em_error_t *err)
{
        char *paths[] = {(char *)upper, NULL};
        FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
        FTSENT *e;

        *bytes = *entries = 0;
        if (fts == NULL)
                return em_error_set(err, errno, "walking %s", upper);
        while ((e = fts_read(fts)) != NULL) {
                if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR || e->fts_info == FTS_NS) {
                        int st = e->fts_errno;
                        fts_close(fts);
                        return em_error_set(err, st, "walking %s", e->fts_path);
                }
                if (e->fts_info == FTS_DP || e->fts_level == 0)
                        continue;
                (*entries)++;
                if (e->fts_info == FTS_F)
                        *bytes += (uint64_t)e->fts_statp->st_size;
        }
        fts_close(fts);
        return 0;
}
