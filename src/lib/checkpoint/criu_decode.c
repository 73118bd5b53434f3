#include "checkpoint/criu_decode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/pbwire.h"

/* Singular fields: those a decoder reads and that may occur once. */
#define ONCE(a, b) ((((a) >= 64) ? 0 : (~0ull >> (63 - (b))) & (~0ull << (a))))

typedef int (*field_fn)(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err);

/* Walks one message: fn sees every field; fields in `once` may occur only
 * once. An error names the image, the message and the field. */
static int walk(const char *img, const char *msg, const uint8_t *p, size_t len, uint64_t once,
                uint64_t *seen, field_fn fn, void *ctx, em_error_t *err)
{
        struct em_pb_iter it;
        struct em_pb_field f;
        int r;

        em_pb_iter_init(&it, p, len);
        while ((r = em_pb_next(&it, &f)) > 0) {
                if (f.num < 64 && (once >> f.num & 1) && em_pb_once(seen, f.num) < 0)
                        return em_error_set(err, EBADMSG, "%s: %s field %u occurs twice", img, msg,
                                            f.num);
                if (f.num < 64)
                        *seen |= 1ull << f.num;
                if (fn(ctx, &f, img, err) < 0)
                        return *err ? -1
                                    : em_error_set(err, EBADMSG, "%s: %s field %u is malformed",
                                                   img, msg, f.num);
        }
        if (r < 0)
                return em_error_set(err, EBADMSG, "%s: %s is not valid protobuf", img, msg);
        return 0;
}

static int require(const char *img, const char *msg, uint64_t seen, uint64_t need, em_error_t *err)
{
        for (unsigned i = 1; i < 64; i++)
                if ((need >> i & 1) && !(seen >> i & 1))
                        return em_error_set(err, EBADMSG, "%s: %s lacks required field %u", img,
                                            msg, i);
        return 0;
}

static int dup_str(const struct em_pb_field *f, char **out)
{
        char *s;

        if (f->wt != EM_PB_LEN || f->len >= EM_CK_NAME_MAX || memchr(f->p, 0, f->len) != NULL)
                return -1;
        s = strndup((const char *)f->p, f->len);
        if (s == NULL)
                return -1;
        free(*out);
        *out = s;
        return 0;
}

/* sint32 (zigzag) as protobuf-c reads it. */
static int get_sint32(const struct em_pb_field *f, int32_t *out)
{
        uint32_t v;

        if (em_pb_u32(f, &v) < 0)
                return -1;
        *out = (int32_t)((v >> 1) ^ (~(v & 1) + 1));
        return 0;
}

static const char *const ns_names[] = {
    [EM_CK_NS_PID] = "pid",       [EM_CK_NS_NET] = "net",   [EM_CK_NS_IPC] = "ipc",
    [EM_CK_NS_UTS] = "uts",       [EM_CK_NS_MNT] = "mnt",   [EM_CK_NS_USER] = "user",
    [EM_CK_NS_CGROUP] = "cgroup", [EM_CK_NS_TIME] = "time",
};

const char *em_ck_ns_name(int kind)
{
        return kind >= EM_CK_NS_FIRST && kind <= EM_CK_NS_LAST ? ns_names[kind] : "?";
}

uint64_t em_ck_caps_mask(const struct em_ck_caps *c, bool *beyond)
{
        uint64_t m = 0;

        *beyond = false;
        for (size_t i = 0; i < c->n; i++) {
                if (i < 2)
                        m |= (uint64_t)c->w[i] << (32 * i);
                else if (c->w[i] != 0)
                        *beyond = true;
        }
        return m;
}

/* ---- creds_entry, thread_core_entry, task_core_entry, core_entry ---- */

static int creds_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_creds *c = ctx;
        uint32_t *ids[] = {NULL,     &c->uid,  &c->gid,   &c->euid, &c->egid,
                           &c->suid, &c->sgid, &c->fsuid, &c->fsgid};
        struct em_ck_caps *caps[] = {
            [9] = &c->inh, [10] = &c->prm, [11] = &c->eff, [12] = &c->bnd, [19] = &c->amb};

        (void)img, (void)err;
        if (f->num >= 1 && f->num <= 8)
                return em_pb_u32(f, ids[f->num]);
        if (f->num <= 19 && caps[f->num] != NULL)
                return em_pb_rep_u32(f, caps[f->num]->w, EM_CK_CAP_WORDS, &caps[f->num]->n);
        if (f->num == 13)
                return em_pb_u32(f, &c->secbits);
        if (f->num == 14)
                return em_pb_rep_u32(f, c->groups, EM_CK_MAX_GROUPS, &c->n_groups);
        if (f->num == 18) {
                c->has_nnp = true;
                return em_pb_u32(f, &c->no_new_privs);
        }
        return 0;
}

static int thread_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_core *c = ctx;
        uint64_t seen = 0;

        switch (f->num) {
        case 10:
                if (f->wt != EM_PB_LEN)
                        return -1;
                c->has_creds = true;
                if (walk(img, "creds_entry", f->p, f->len, ONCE(1, 8) | ONCE(13, 13) | ONCE(15, 18),
                         &seen, creds_field, &c->creds, err) < 0)
                        return -1;
                return require(img, "creds_entry", seen, ONCE(1, 8) | ONCE(13, 13), err);
        case 11:
                c->has_seccomp = true;
                return em_pb_u32(f, &c->seccomp_mode);
        case 12:
                return em_pb_u32(f, &c->seccomp_filter);
        case 13:
                return em_pb_str(f, c->comm, sizeof(c->comm));
        }
        return 0;
}

static int task_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_core *c = ctx;

        (void)img, (void)err;
        switch (f->num) {
        case 1:
                return em_pb_u32(f, &c->task_state);
        case 6:
                /* the thread's own comm, when present, wins */
                return c->comm[0] ? (f->wt == EM_PB_LEN ? 0 : -1)
                                  : em_pb_str(f, c->comm, sizeof(c->comm));
        case 11:
                c->has_old_seccomp = true;
                return em_pb_u32(f, &c->old_seccomp_mode);
        case 12:
                return em_pb_u32(f, &c->old_seccomp_filter);
        }
        return 0;
}

static int core_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_core *c = ctx;
        uint64_t seen = 0;

        switch (f->num) {
        case 1:
                return em_pb_u32(f, &c->mtype);
        case 3:
                if (f->wt != EM_PB_LEN)
                        return -1;
                c->has_tc = true;
                return walk(img, "task_core_entry", f->p, f->len, ONCE(1, 14) | ONCE(18, 22), &seen,
                            task_field, c, err);
        case 5:
                if (f->wt != EM_PB_LEN)
                        return -1;
                c->has_thread = true;
                return walk(img, "thread_core_entry", f->p, f->len, ONCE(1, 16), &seen,
                            thread_field, c, err);
        }
        return 0;
}

int em_ck_decode_core(const char *img, const uint8_t *p, size_t len, struct em_ck_core *c,
                      em_error_t *err)
{
        uint64_t seen = 0;

        memset(c, 0, sizeof(*c));
        /* thread_core is walked after tc when both come in CRIU's order; a
         * thread comm that comes first is kept by task_field. */
        if (walk(img, "core_entry", p, len, ONCE(1, 13), &seen, core_field, c, err) < 0)
                return -1;
        return require(img, "core_entry", seen, ONCE(1, 1), err);
}

/* ---- task_kobj_ids_entry, inventory_entry ---- */

static int ids_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_ids *ids = ctx;

        (void)img, (void)err;
        if (f->num > EM_CK_NS_LAST)
                return 0;
        return em_pb_u32(f, &ids->id[f->num]);
}

int em_ck_decode_ids(const char *img, const uint8_t *p, size_t len, struct em_ck_ids *ids,
                     em_error_t *err)
{
        memset(ids, 0, sizeof(*ids));
        if (walk(img, "task_kobj_ids_entry", p, len, ONCE(1, EM_CK_NS_LAST), &ids->seen, ids_field,
                 ids, err) < 0)
                return -1;
        return require(img, "task_kobj_ids_entry", ids->seen, ONCE(1, 4), err);
}

static int inventory_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_inventory *inv = ctx;
        uint32_t v;

        switch (f->num) {
        case 1:
                return em_pb_u32(f, &inv->img_version);
        case 3:
                if (f->wt != EM_PB_LEN)
                        return -1;
                inv->has_root_ids = true;
                return em_ck_decode_ids(img, f->p, f->len, &inv->root_ids, err);
        case 4:
                if (em_pb_u32(f, &v) < 0)
                        return -1;
                inv->ns_per_id = v != 0;
                return 0;
        }
        return 0;
}

int em_ck_decode_inventory(const char *img, const uint8_t *p, size_t len,
                           struct em_ck_inventory *inv, em_error_t *err)
{
        uint64_t seen = 0;

        memset(inv, 0, sizeof(*inv));
        if (walk(img, "inventory_entry", p, len, ONCE(1, 14), &seen, inventory_field, inv, err) < 0)
                return -1;
        return require(img, "inventory_entry", seen, ONCE(1, 1), err);
}

/* ---- pstree_entry, userns_entry ---- */

static int pstree_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_pstree *ps = ctx;
        uint32_t *fixed[] = {NULL, &ps->pid, &ps->ppid, &ps->pgid, &ps->sid};
        /* packed threads hold at most one value per byte */
        size_t room = f->wt == EM_PB_LEN ? f->len : 1, max;
        uint32_t *grown;

        (void)img, (void)err;
        if (f->num >= 1 && f->num <= 4)
                return em_pb_u32(f, fixed[f->num]);
        if (f->num != 5 || room == 0)
                return 0;
        if (ps->n_threads >= EM_CK_MAX_THREADS)
                return -1;
        max = ps->n_threads + room;
        if (max > EM_CK_MAX_THREADS)
                max = EM_CK_MAX_THREADS;
        grown = realloc(ps->threads, max * sizeof(uint32_t));
        if (grown == NULL)
                return -1;
        ps->threads = grown;
        return em_pb_rep_u32(f, ps->threads, max, &ps->n_threads);
}

int em_ck_decode_pstree(const char *img, const uint8_t *p, size_t len, struct em_ck_pstree *ps,
                        em_error_t *err)
{
        uint64_t seen = 0;

        memset(ps, 0, sizeof(*ps));
        if (walk(img, "pstree_entry", p, len, ONCE(1, 4), &seen, pstree_field, ps, err) < 0 ||
            require(img, "pstree_entry", seen, ONCE(1, 4), err) < 0) {
                em_ck_pstree_free(ps);
                return -1;
        }
        return 0;
}

void em_ck_pstree_free(struct em_ck_pstree *ps)
{
        free(ps->threads);
        ps->threads = NULL;
        ps->n_threads = 0;
}

static int extent_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_extent *e = ctx;
        uint32_t *v[] = {NULL, &e->first, &e->lower_first, &e->count};

        (void)img, (void)err;
        return f->num >= 1 && f->num <= 3 ? em_pb_u32(f, v[f->num]) : 0;
}

static int userns_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_userns *u = ctx;
        struct em_ck_extent *e;
        size_t *n;
        uint64_t seen = 0;

        if (f->num != 1 && f->num != 2)
                return 0;
        e = f->num == 1 ? u->uid : u->gid;
        n = f->num == 1 ? &u->n_uid : &u->n_gid;
        if (f->wt != EM_PB_LEN || *n >= EM_CK_MAX_EXTENTS)
                return -1;
        if (walk(img, "uid_gid_extent", f->p, f->len, ONCE(1, 3), &seen, extent_field, &e[*n],
                 err) < 0 ||
            require(img, "uid_gid_extent", seen, ONCE(1, 3), err) < 0)
                return -1;
        (*n)++;
        return 0;
}

int em_ck_decode_userns(const char *img, const uint8_t *p, size_t len, struct em_ck_userns *u,
                        em_error_t *err)
{
        uint64_t seen = 0;

        memset(u, 0, sizeof(*u));
        return walk(img, "userns_entry", p, len, 0, &seen, userns_field, u, err);
}

/* ---- mnt_entry ---- */

static int mount_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_mount *m = ctx;
        char **strs[] = {[6] = &m->root,    [7] = &m->mountpoint, [8] = &m->source,
                         [9] = &m->options, [14] = &m->fsname,    [18] = &m->ext_key};
        uint32_t v;

        (void)img, (void)err;
        if (f->num <= 18 && strs[f->num] != NULL)
                return dup_str(f, strs[f->num]);
        switch (f->num) {
        case 1:
                return em_pb_u32(f, &m->fstype);
        case 2:
                return em_pb_u32(f, &m->mnt_id);
        case 4:
                return em_pb_u32(f, &m->parent_mnt_id);
        case 5:
                return em_pb_u32(f, &m->flags);
        case 13:
        case 16:
                if (em_pb_u32(f, &v) < 0)
                        return -1;
                *(f->num == 13 ? &m->ext_mount : &m->deleted) = v != 0;
                return 0;
        case 17:
                return em_pb_u32(f, &m->sb_flags);
        }
        return 0;
}

int em_ck_decode_mount(const char *img, const uint8_t *p, size_t len, struct em_ck_mount *m,
                       em_error_t *err)
{
        uint64_t seen = 0;

        memset(m, 0, sizeof(*m));
        if (walk(img, "mnt_entry", p, len, ONCE(1, 18), &seen, mount_field, m, err) < 0 ||
            require(img, "mnt_entry", seen, ONCE(1, 9), err) < 0) {
                em_ck_mount_free(m);
                return -1;
        }
        return 0;
}

void em_ck_mount_free(struct em_ck_mount *m)
{
        free(m->root);
        free(m->mountpoint);
        free(m->source);
        free(m->options);
        free(m->fsname);
        free(m->ext_key);
        memset(m, 0, sizeof(*m));
}

/* ---- file_entry and its reg / inet / ns / unix parts ---- */

static int reg_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_file *fl = ctx;

        (void)img, (void)err;
        switch (f->num) {
        case 6:
                return dup_str(f, &fl->name);
        case 7:
                return get_sint32(f, &fl->mnt_id);
        case 8:
                return em_pb_u64(f, &fl->size);
        }
        return 0;
}

static int inet_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_file *fl = ctx;
        uint32_t *u[] = {NULL,       &fl->id,    &fl->ino,      &fl->family,  &fl->sk_type,
                         &fl->proto, &fl->state, &fl->src_port, &fl->dst_port};

        (void)img, (void)err;
        if (f->num >= 1 && f->num <= 8)
                return em_pb_u32(f, u[f->num]);
        if (f->num == 11)
                return em_pb_rep_u32(f, fl->src_addr, 4, &fl->n_src);
        if (f->num == 12)
                return em_pb_rep_u32(f, fl->dst_addr, 4, &fl->n_dst);
        if (f->num == 18)
                return em_pb_u32(f, &fl->ns_id);
        return 0;
}

static int nsf_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_file *fl = ctx;

        (void)img, (void)err;
        if (f->num == 2)
                return em_pb_u32(f, &fl->ns_id);
        if (f->num == 3)
                return em_pb_u32(f, &fl->ns_cflag);
        return 0;
}

static int abstract_name(const struct em_pb_field *f, char **out)
{
        char *s = NULL;

        if (memchr(f->p + 1, 0, f->len - 1) != NULL || f->len >= EM_CK_NAME_MAX)
                return 0; /* abstract names may hold NULs; not a path, not shown */
        if (asprintf(&s, "@%.*s", (int)(f->len - 1), (const char *)f->p + 1) < 0)
                return -1;
        free(*out);
        *out = s;
        return 0;
}

/* A bound path socket's name as the kernel reports it (and CRIU records
 * it) ends in the one NUL of its sockaddr_un: dropped; any other NUL makes
 * the entry malformed. */
static int path_name(const struct em_pb_field *f, char **out)
{
        struct em_pb_field g = *f;

        if (g.len > 0 && g.p[g.len - 1] == 0)
                g.len--;
        return dup_str(&g, out);
}

/* A unix socket's name is bytes; an abstract one (leading NUL) is shown
 * with '@' and never names a path. */
static int unix_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_file *fl = ctx;

        (void)img, (void)err;
        switch (f->num) {
        case 2:
                return em_pb_u32(f, &fl->ino);
        case 3:
                return em_pb_u32(f, &fl->sk_type);
        case 4:
                return em_pb_u32(f, &fl->state);
        case 11:
                if (f->wt != EM_PB_LEN || f->len == 0)
                        return f->wt == EM_PB_LEN ? 0 : -1;
                if (f->p[0] == 0)
                        return abstract_name(f, &fl->name);
                return path_name(f, &fl->name);
        case 17:
                return get_sint32(f, &fl->mnt_id);
        }
        return 0;
}

/* The sub-message of a file_entry: which field carries it, its name, and
 * the fields that may occur once. */
static const struct {
        uint32_t num;
        const char *msg;
        uint64_t once;
        field_fn fn;
} file_parts[] = {
    {3, "reg_file_entry", ONCE(1, 10) | ONCE(12, 14), reg_field},
    {4, "inet_sk_entry", ONCE(1, 10) | ONCE(13, 20), inet_field},
    {5, "ns_file_entry", ONCE(1, 4), nsf_field},
    {16, "unix_sk_entry", ONCE(1, 17), unix_field},
};

static int file_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_file *fl = ctx;
        uint64_t seen = 0;

        if (f->num == 1)
                return em_pb_u32(f, &fl->type);
        if (f->num == 2)
                return em_pb_u32(f, &fl->id);
        for (size_t i = 0; i < sizeof(file_parts) / sizeof(file_parts[0]); i++) {
                if (file_parts[i].num != f->num)
                        continue;
                if (f->wt != EM_PB_LEN)
                        return -1;
                return walk(img, file_parts[i].msg, f->p, f->len, file_parts[i].once, &seen,
                            file_parts[i].fn, fl, err);
        }
        return 0;
}

/* CRIU restores a file from the part its type names; a REG without its
 * reg part (or the like) is refused rather than guessed at. */
static int file_part_present(const struct em_ck_file *fl, uint64_t seen)
{
        switch (fl->type) {
        case EM_CK_FD_REG:
                return em_pb_has(seen, 3);
        case EM_CK_FD_INETSK:
                return em_pb_has(seen, 4);
        case EM_CK_FD_NS:
                return em_pb_has(seen, 5);
        case EM_CK_FD_UNIXSK:
                return em_pb_has(seen, 16);
        default:
                return 1;
        }
}

int em_ck_decode_file(const char *img, const uint8_t *p, size_t len, struct em_ck_file *fl,
                      em_error_t *err)
{
        uint64_t seen = 0;

        memset(fl, 0, sizeof(*fl));
        fl->mnt_id = -1;
        if (walk(img, "file_entry", p, len, ONCE(1, 22), &seen, file_field, fl, err) < 0 ||
            require(img, "file_entry", seen, ONCE(1, 2), err) < 0) {
                em_ck_file_free(fl);
                return -1;
        }
        if (!file_part_present(fl, seen)) {
                em_ck_file_free(fl);
                return em_error_set(err, EBADMSG, "%s: file %u of type %u lacks its entry", img,
                                    fl->id, fl->type);
        }
        return 0;
}

void em_ck_file_free(struct em_ck_file *fl)
{
        free(fl->name);
        fl->name = NULL;
}

/* ---- fdinfo_entry, seccomp_entry, mm_entry, pagemap_entry, tcp_stream ---- */

static int fdinfo_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_fdinfo *fi = ctx;
        uint32_t *u[] = {NULL, &fi->id, &fi->flags, &fi->type, &fi->fd};

        (void)img, (void)err;
        return f->num >= 1 && f->num <= 4 ? em_pb_u32(f, u[f->num]) : 0;
}

int em_ck_decode_fdinfo(const char *img, const uint8_t *p, size_t len, struct em_ck_fdinfo *fi,
                        em_error_t *err)
{
        uint64_t seen = 0;

        memset(fi, 0, sizeof(*fi));
        if (walk(img, "fdinfo_entry", p, len, ONCE(1, 5), &seen, fdinfo_field, fi, err) < 0)
                return -1;
        return require(img, "fdinfo_entry", seen, ONCE(1, 4), err);
}

#define EM_CK_MAX_FILTERS   1024
#define EM_CK_MAX_BPF_BYTES (4096 * 8) /* BPF_MAXINSNS instructions */

static int filter_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_seccomp_filter *sf = ctx;

        (void)img, (void)err;
        switch (f->num) {
        case 1:
                if (f->wt != EM_PB_LEN || f->len == 0 || f->len % 8 != 0 ||
                    f->len > EM_CK_MAX_BPF_BYTES)
                        return -1;
                sf->prog = malloc(f->len);
                if (sf->prog == NULL)
                        return -1;
                memcpy(sf->prog, f->p, f->len);
                sf->len = f->len;
                return 0;
        case 2:
                sf->has_prev = true;
                return em_pb_u32(f, &sf->prev);
        case 3:
                return em_pb_u32(f, &sf->flags);
        }
        return 0;
}

static int seccomp_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_seccomp *s = ctx;
        struct em_ck_seccomp_filter *grown;
        uint64_t seen = 0;

        if (f->num != 1)
                return 0;
        if (f->wt != EM_PB_LEN || s->n >= EM_CK_MAX_FILTERS)
                return -1;
        grown = realloc(s->f, (s->n + 1) * sizeof(*s->f));
        if (grown == NULL)
                return -1;
        s->f = grown;
        memset(&s->f[s->n], 0, sizeof(s->f[0]));
        s->n++; /* owned from here, freed with s even if malformed */
        if (walk(img, "seccomp_filter", f->p, f->len, ONCE(1, 3), &seen, filter_field,
                 &s->f[s->n - 1], err) < 0)
                return -1;
        return require(img, "seccomp_filter", seen, ONCE(1, 1), err);
}

int em_ck_decode_seccomp(const char *img, const uint8_t *p, size_t len, struct em_ck_seccomp *s,
                         em_error_t *err)
{
        uint64_t seen = 0;

        memset(s, 0, sizeof(*s));
        if (walk(img, "seccomp_entry", p, len, 0, &seen, seccomp_field, s, err) < 0) {
                em_ck_seccomp_free(s);
                return -1;
        }
        return 0;
}

void em_ck_seccomp_free(struct em_ck_seccomp *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->f[i].prog);
        free(s->f);
        s->f = NULL;
        s->n = 0;
}

struct vma {
        uint64_t start, end;
};

static int vma_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct vma *v = ctx;

        (void)img, (void)err;
        if (f->num == 1)
                return em_pb_u64(f, &v->start);
        if (f->num == 2)
                return em_pb_u64(f, &v->end);
        return 0;
}

static int mm_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_mm *mm = ctx;
        struct vma v = {0};
        uint64_t seen = 0;

        if (f->num == 12)
                return em_pb_u32(f, &mm->exe_file_id);
        if (f->num != 14)
                return 0;
        if (f->wt != EM_PB_LEN ||
            walk(img, "vma_entry", f->p, f->len, ONCE(1, 10), &seen, vma_field, &v, err) < 0)
                return -1;
        if (v.end < v.start || mm->vma_bytes + (v.end - v.start) < mm->vma_bytes)
                return em_error_set(err, EBADMSG, "%s: vma 0x%llx-0x%llx is inverted", img,
                                    (unsigned long long)v.start, (unsigned long long)v.end);
        mm->vma_bytes += v.end - v.start;
        mm->n_vmas++;
        return 0;
}

int em_ck_decode_mm(const char *img, const uint8_t *p, size_t len, struct em_ck_mm *mm,
                    em_error_t *err)
{
        uint64_t seen = 0;

        memset(mm, 0, sizeof(*mm));
        return walk(img, "mm_entry", p, len, ONCE(1, 12) | ONCE(15, 15) | ONCE(17, 17), &seen,
                    mm_field, mm, err);
}

struct pme {
        uint64_t nr, compat;
        uint32_t flags, in_parent;
};

static int pme_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct pme *e = ctx;
        uint64_t v;

        (void)img, (void)err;
        switch (f->num) {
        case 2:
                return em_pb_u64(f, &e->compat);
        case 3:
                return em_pb_u32(f, &e->in_parent);
        case 4:
                return em_pb_u32(f, &e->flags);
        case 5:
                return em_pb_u64(f, &e->nr);
        case 1:
                return em_pb_u64(f, &v);
        }
        return 0;
}

int em_ck_decode_pagemap_entry(const char *img, const uint8_t *p, size_t len, uint64_t *present,
                               em_error_t *err)
{
        struct pme e = {0};
        uint64_t seen = 0, nr;
        bool is_present;

        if (walk(img, "pagemap_entry", p, len, ONCE(1, 5), &seen, pme_field, &e, err) < 0)
                return -1;
        nr = em_pb_has(seen, 5) ? e.nr : e.compat;
        /* PE_PRESENT is bit 2; images without flags mark parent pages with in_parent */
        is_present = em_pb_has(seen, 4) ? (e.flags & 4) != 0 : !e.in_parent;
        if (nr > (1ull << 36) || (is_present && *present + nr < *present))
                return em_error_set(err, EBADMSG, "%s: pagemap entry of %llu pages", img,
                                    (unsigned long long)nr);
        if (is_present)
                *present += nr;
        return 0;
}

static int tcp_field(void *ctx, const struct em_pb_field *f, const char *img, em_error_t *err)
{
        struct em_ck_tcp *t = ctx;
        uint32_t *u[] = {NULL, &t->inq_len, &t->inq_seq, &t->outq_len, &t->outq_seq};

        (void)img, (void)err;
        return f->num >= 1 && f->num <= 4 ? em_pb_u32(f, u[f->num]) : 0;
}

int em_ck_decode_tcp(const char *img, const uint8_t *p, size_t len, struct em_ck_tcp *t,
                     em_error_t *err)
{
        uint64_t seen = 0;

        memset(t, 0, sizeof(*t));
        if (walk(img, "tcp_stream_entry", p, len, ONCE(1, 17), &seen, tcp_field, t, err) < 0)
                return -1;
        return require(img, "tcp_stream_entry", seen, ONCE(1, 4), err);
}
