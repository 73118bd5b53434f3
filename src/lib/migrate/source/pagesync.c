/* Memory as page deltas (delta/pages.h) over a migration connection: live
 * pre-copy pushes, the target's hash list, and the final pages-*.img. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/memusage.h"
#include "delta/criu_img.h"
#include "delta/pages.h"
#include "delta/shadow.h"
#include "migrate/common/proto.h"
#include "migrate/source/pagesync.h"
#include "migrate/common/volume_sync.h"
#include "migrate/source/upper_send.h"
#include "transfer/sendq.h"
#include "transfer/zadapt.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/log.h"

#define DELTA_CHUNK (1u << 20)

struct em_sync_state {
        em_hashset_t *known; /* page hashes the target holds */
        /* --compress policy and calibration: with these, the level of each
         * page chunk follows the link's measured rate (NULL: fixed level). */
        const struct em_compress_opt *copt;
        const struct em_compress_calibration *ccal;
        void (*crefresh)(void *arg);
        void *crefresh_arg;
        const double *bw_hint; /* bytes/s; NULL or <= 0: none */
        struct em_upper_state *upper;
        struct em_shadow *shadow;     /* owned; NULL: changed pages travel whole */
        bool frozen_pushed;           /* the target got the frozen memory */
        struct em_volume_tx *volumes; /* NULL: the container has none */
        /* The pages the last dirty scan found missing, one list per process
         * (NULL: no scan since the last push): the next push reads only
         * these, so a round reads the memory once, not twice. */
        struct left_pid *left;
        size_t nleft;
};

struct left_pid {
        pid_t pid;
        struct em_procmem_run *runs;
        size_t n, cap;
};

static void left_drop(struct em_sync_state *st)
{
        for (size_t i = 0; i < st->nleft; i++)
                free(st->left[i].runs);
        free(st->left);
        st->left = NULL;
        st->nleft = 0;
}

/* Adds the page at vaddr; pages read in address order make runs. */
static int left_add(struct left_pid *lp, uint64_t vaddr, em_error_t *err)
{
        struct em_procmem_run *last = lp->n ? &lp->runs[lp->n - 1] : NULL;

        if (last && last->start + last->npages * EM_PAGE_SIZE == vaddr) {
                last->npages++;
                return 0;
        }
        if (lp->n == lp->cap) {
                size_t ncap = lp->cap ? lp->cap * 2 : 64;
                struct em_procmem_run *r = realloc(lp->runs, ncap * sizeof(*r));
                if (r == NULL)
                        return em_error_set(err, ENOMEM, "the list of dirty pages");
                lp->runs = r;
                lp->cap = ncap;
        }
        lp->runs[lp->n++] = (struct em_procmem_run){vaddr, 1};
        return 0;
}

static const struct left_pid *left_of(const struct em_sync_state *st, pid_t pid)
{
        for (size_t i = 0; i < st->nleft; i++) {
                if (st->left[i].pid == pid)
                        return &st->left[i];
        }
        return NULL;
}

int em_sync_state_new(struct em_sync_state **out, em_error_t *err)
{
        struct em_sync_state *st = calloc(1, sizeof(*st));

        if (st == NULL || (st->known = em_hashset_new()) == NULL) {
                free(st);
                return em_error_set(err, ENOMEM, "sync state");
        }
        *out = st;
        return em_upper_state_new(&st->upper, err);
}

void em_sync_state_free(struct em_sync_state **st)
{
        if (*st == NULL)
                return;
        em_hashset_free(&(*st)->known);
        em_upper_state_free(&(*st)->upper);
        em_volume_tx_free(&(*st)->volumes);
        em_shadow_free(&(*st)->shadow);
        left_drop(*st);
        free(*st);
        *st = NULL;
}

em_hashset_t *em_sync_state_known(struct em_sync_state *st)
{
        return st->known;
}

void em_sync_state_set_shadow(struct em_sync_state *st, struct em_shadow *shadow)
{
        em_shadow_free(&st->shadow);
        st->shadow = shadow;
}

struct em_upper_state *em_sync_state_upper(struct em_sync_state *st)
{
        return st->upper;
}

struct em_volume_tx **em_sync_state_volumes(struct em_sync_state *st)
{
        return &st->volumes;
}

struct em_shadow *em_sync_state_shadow(struct em_sync_state *st)
{
        return st->shadow;
}

void em_sync_state_frozen_pushed(struct em_sync_state *st)
{
        st->frozen_pushed = true;
}

int em_sync_state_recv_hashes(struct em_sync_state *st, em_conn_t *c, size_t max, em_error_t *err)
{
        for (;;) {
                cleanup_frame struct em_frame f = {0};
                if (em_proto_recv(c, &f, err) < 0)
                        return -1;
                if (f.hdr.type != EM_FRAME_PAGES_HASHES)
                        return em_error_set(err, EPROTO,
                                            "protocol error: expected PAGES_HASHES, "
                                            "got %s",
                                            em_frame_type_name(f.hdr.type));
                uint64_t have = em_hashset_positions(st->known);
                if (have > max || f.length / 16 > max - have)
                        return em_error_set(err, EMSGSIZE,
                                            "the target offered more than %zu page hashes", max);
                if (em_hashset_add_payload(st->known, f.payload, f.length, err) < 0)
                        return -1;
                if (f.hdr.flags & EM_FRAME_F_LAST)
                        return 0;
        }
}

/* Reading and hashing pages (here) overlaps with compressing and sending
 * the previous chunks (the queue's thread). */
#define PIPELINE_DEPTH 4

struct emit_ctx {
        em_sendq_t *q;
        em_conn_t *c;
        const struct em_sync_state *st;
        int level;
        struct em_sync_stats *stats;
};

void em_sync_state_set_compress(struct em_sync_state *st, const struct em_compress_opt *opt,
                                const struct em_compress_calibration *cal,
                                void (*refresh)(void *arg), void *arg)
{
        st->copt = opt;
        st->ccal = cal;
        st->crefresh = refresh;
        st->crefresh_arg = arg;
}

void em_sync_state_set_bandwidth_hint(struct em_sync_state *st, const double *bps)
{
        st->bw_hint = bps;
}

/* The level for the next chunk: a long transfer starts before the link is
 * measured, so the choice is revisited as the link's rate becomes known
 * (em_zadapt_link_rate: unknown until enough was sent, not the handshake's
 * trickle, which would ask for a strong level and starve the link). */
static int chunk_level(const struct emit_ctx *e)
{
        if (e->st->copt == NULL)
                return e->level;
        double bw = em_zadapt_link_rate(e->c);

        if (e->st->crefresh != NULL)
                e->st->crefresh(e->st->crefresh_arg);
        if (bw <= 0 && e->st->bw_hint != NULL)
                bw = *e->st->bw_hint;
        return em_compress_level(e->st->copt, bw, e->st->ccal);
}

static int emit_pages_data(void *ctx, const void *buf, size_t len, em_error_t *err)
{
        struct emit_ctx *e = ctx;

        e->stats->raw_bytes += len;
        return em_sendq_push(e->q, EM_FRAME_PAGES_DATA, 0, 2, buf, len, chunk_level(e), err);
}

/* Ends a pipeline: the sender's error, if any, wins over rc's. */
static int end_pipeline(em_sendq_t **q, int rc, struct em_sendq_stats *qs, em_error_t *err)
{
        em_error_t qerr = NULL;

        if (em_sendq_finish(q, qs, &qerr) < 0) {
                em_error_move(err, &qerr);
                return -1;
        }
        return rc;
}

static void add_delta_stats(struct em_sync_stats *s, const struct em_delta_stats *d)
{
        s->pages_scanned += d->pages;
        s->pages_zero += d->zero;
        s->pages_known += d->ref;
        s->pages_sent += d->data;
        s->pages_xor += d->xdata;
        s->pages_zblock += d->zdata;
}

/* A delta encoder whose chunks go through a send pipeline. */
struct pipeline {
        struct emit_ctx ctx;
        struct em_delta_enc enc;
};

static int pipeline_begin(struct pipeline *p, em_conn_t *c, struct em_sync_state *st, int level,
                          struct em_sync_stats *stats, em_error_t *err)
{
        p->ctx = (struct emit_ctx){NULL, c, st, level, stats};
        if (em_sendq_start(c, PIPELINE_DEPTH, &p->ctx.q, err) < 0)
                return -1;
        if (em_delta_enc_init(&p->enc, st->known, DELTA_CHUNK, emit_pages_data, &p->ctx, err) < 0)
                return end_pipeline(&p->ctx.q, -1, NULL, err);
        p->enc.shadow = st->shadow;
        return 0;
}

/* Flushes (if rc is 0), counts, and waits for the sender. */
static int pipeline_end(struct pipeline *p, int rc, em_error_t *err)
{
        struct em_sendq_stats qs;

        if (rc == 0)
                rc = em_delta_enc_flush(&p->enc, err);
        add_delta_stats(p->ctx.stats, &p->enc.st);
        em_delta_enc_free(&p->enc);
        rc = end_pipeline(&p->ctx.q, rc, &qs, err);
        for (int i = 0; i < EM_SENDQ_LEVELS; i++)
                p->ctx.stats->raw_at_level[i] += qs.raw_at[i];
        p->ctx.stats->level_steps_down += qs.steps_down;
        return rc;
}

/* Pushes the memory of pids: with use_left, of each process only the
 * pages the last scan found missing (all of a process it did not see). */
static int push(em_conn_t *c, struct em_sync_state *st, const pid_t *pids, size_t npids, int level,
                bool use_left, struct em_sync_stats *stats, em_error_t *err)
{
        struct pipeline p;
        int rc = 0;

        if (pipeline_begin(&p, c, st, level, stats, err) < 0)
                return -1;
        for (size_t i = 0; i < npids && rc == 0; i++) {
                struct em_procmem_stats ps = {0};
                const struct left_pid *lp = use_left ? left_of(st, pids[i]) : NULL;
                if (lp != NULL && lp->n == 0)
                        continue; /* the scan found nothing missing */
                rc = lp ? em_delta_encode_procmem_runs(&p.enc, pids[i], lp->runs, lp->n, &ps, err)
                        : em_delta_encode_procmem(&p.enc, pids[i], &ps, err);
                stats->pages_read += ps.pages_read;
                if (rc < 0)
                        em_error_wrap(err, "pre-copy of the memory of pid %d", (int)pids[i]);
        }
        left_drop(st);
        return pipeline_end(&p, rc, err);
}

int em_sync_push_memory(em_conn_t *c, struct em_sync_state *st, const pid_t *pids, size_t npids,
                        int level, struct em_sync_stats *stats, em_error_t *err)
{
        return push(c, st, pids, npids, level, false, stats, err);
}

int em_sync_push_left(em_conn_t *c, struct em_sync_state *st, const pid_t *pids, size_t npids,
                      int level, struct em_sync_stats *stats, em_error_t *err)
{
        return push(c, st, pids, npids, level, st->left != NULL, stats, err);
}

struct dirty_count {
        const em_hashset_t *known;
        uint64_t pages;
        struct left_pid *lp;
};

static int count_page(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        struct dirty_count *d = ctx;
        em_phash_t h;

        if (em_delta_page_kind(d->known, page, &h) != EM_PAGE_MISSING)
                return 0;
        d->pages++;
        return left_add(d->lp, vaddr, err);
}

int em_sync_dirty_scan(struct em_sync_state *st, const pid_t *pids, size_t npids, uint64_t *bytes,
                       em_error_t *err)
{
        struct dirty_count d = {st->known, 0, NULL};

        left_drop(st);
        if (npids > 0 && (st->left = calloc(npids, sizeof(*st->left))) == NULL)
                return em_error_set(err, ENOMEM, "measuring the dirty memory");
        for (size_t i = 0; i < npids; i++) {
                struct em_procmem_stats ps = {0};
                em_error_t e = NULL;
                d.lp = &st->left[st->nleft++];
                d.lp->pid = pids[i];
                if (em_procmem_scan(pids[i], count_page, &d, &ps, &e) == 0)
                        continue;
                /* A short-lived process (a shell's `sleep`) ended since the
                 * round: it has nothing left to send. */
                if (em_error_status(e) == ENOENT || em_error_status(e) == ESRCH) {
                        em_error_free(&e);
                        continue;
                }
                left_drop(st);
                em_error_move(err, &e);
                return em_error_wrap(err, "measuring the dirty memory of pid %d", (int)pids[i]);
        }
        *bytes = d.pages * EM_PAGE_SIZE;
        return 0;
}

uint64_t em_sync_dump_bytes(const pid_t *pids, size_t npids)
{
        struct em_memusage sum = {0};

        for (size_t i = 0; i < npids; i++) {
                em_error_t e = NULL;
                /* A process that ended since it was listed has nothing to send. */
                if (em_memusage_add_pid(pids[i], &sum, &e) < 0)
                        em_error_free(&e);
        }
        return sum.dumped;
}

/* The pagemaps of an image dir, so the shadow knows each page's address:
 * pagemap-<vpid>.img describes pages-<pages_id>.img. */
struct pagemaps {
        struct em_pagemap *pm;
        uint32_t *vpid;
        size_t n;
};

static void pagemaps_free(struct pagemaps *m)
{
        for (size_t i = 0; i < m->n; i++)
                em_pagemap_free(&m->pm[i]);
        free(m->pm);
        free(m->vpid);
}

static int pagemaps_load(int dfd, struct pagemaps *m, em_error_t *err)
{
        cleanup_strv char **names = NULL;
        size_t k = 0;

        if (em_pagemap_list(dfd, &names, err) < 0)
                return -1;
        while (names[k])
                k++;
        m->pm = calloc(k + 1, sizeof(*m->pm));
        m->vpid = calloc(k + 1, sizeof(*m->vpid));
        if (m->pm == NULL || m->vpid == NULL)
                return em_error_set(err, ENOMEM, "pagemaps");
        for (char **n = names; *n; n++) {
                unsigned vpid;
                char end;
                if (sscanf(*n, "pagemap-%u.im%c", &vpid, &end) != 2 || end != 'g')
                        continue; /* pagemap-shmem-*: no process address */
                if (em_pagemap_load(dfd, *n, &m->pm[m->n], err) < 0)
                        return -1;
                m->vpid[m->n++] = vpid;
        }
        return 0;
}

/* Points the encoder at the pagemap of pages-<id>.img (none: no addresses). */
static void use_pagemap(struct em_delta_enc *e, const struct pagemaps *m, const char *name)
{
        unsigned id;

        e->pagemap = NULL;
        if (sscanf(name, "pages-%u.img", &id) != 1)
                return;
        for (size_t i = 0; i < m->n; i++) {
                if (m->pm[i].pages_id == id) {
                        e->pagemap = &m->pm[i];
                        e->vpid = m->vpid[i];
                        return;
                }
        }
}

static int send_pages_files(em_conn_t *c, struct em_sync_state *st, int dfd, char **names,
                            int level, json_t *digests, struct em_sync_stats *stats,
                            em_error_t *err)
{
        struct pagemaps maps = {0};
        struct pipeline p;
        em_error_t e = NULL;
        int rc = 0;

        if (st->shadow != NULL && pagemaps_load(dfd, &maps, &e) < 0) {
                em_log_warn("changed pages travel whole: %s", em_error_msg(e));
                em_error_free(&e);
        }
        if (pipeline_begin(&p, c, st, level, stats, err) < 0) {
                pagemaps_free(&maps);
                return -1;
        }
        p.enc.prescan = !st->frozen_pushed;
        for (char **n = names; *n && rc == 0; n++) {
                char digest[EM_DIGEST_STR_LEN + 1];
                use_pagemap(&p.enc, &maps, *n);
                rc = em_delta_encode_file(&p.enc, dfd, *n, digest, err);
                if (rc == 0)
                        json_object_set_new(digests, *n, json_string(digest));
                stats->files_sent++;
        }
        rc = pipeline_end(&p, rc, err);
        pagemaps_free(&maps);
        return rc;
}

static int send_plain_file(em_conn_t *c, const char *dir, const char *name, int level,
                           json_t *digests, struct em_sync_stats *stats, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, name);
        char digest[EM_DIGEST_STR_LEN + 1];

        if (path == NULL)
                return em_error_set(err, ENOMEM, "sending images");
        if (em_sha256_file(path, digest, NULL, err) < 0 ||
            em_proto_send_file(c, EM_FRAME_IMAGE_FILE, path, name, level, &stats->raw_bytes, err) <
                0)
                return em_error_wrap(err, "sending %s", name);
        json_object_set_new(digests, name, json_string(digest));
        stats->files_sent++;
        em_log_debug("image %s: %" PRIu64 " bytes so far", name, stats->raw_bytes);
        return 0;
}

/* A file sent while the dump ran (early_images.h) must be what it was. */
static int still_same(const char *dir, const char *name, const json_t *digests, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, name);
        char digest[EM_DIGEST_STR_LEN + 1];

        if (path == NULL)
                return em_error_set(err, ENOMEM, "checking %s", name);
        if (em_sha256_file(path, digest, NULL, err) < 0)
                return em_error_wrap(err, "checking %s", name);
        if (strcmp(digest, json_string_value(json_object_get(digests, name)) ?: "") != 0)
                return em_error_set(err, EILSEQ,
                                    "image %s changed after it was sent during the dump", name);
        return 0;
}

static int collect(const char *dir, char ***pages, char ***plain, em_error_t *err)
{
        struct dirent **ents = NULL;
        int n = scandir(dir, &ents, NULL, alphasort);
        size_t np = 0, nq = 0;

        if (n < 0)
                return em_error_set(err, errno, "listing %s", dir);
        *pages = calloc((size_t)n + 1, sizeof(char *));
        *plain = calloc((size_t)n + 1, sizeof(char *));
        for (int i = 0; i < n; i++) {
                const char *nm = ents[i]->d_name;
                /* Logs stay here; the target writes its own. */
                if (*pages && *plain && ents[i]->d_type == DT_REG && fnmatch("*.log", nm, 0)) {
                        if (fnmatch("pages-*.img", nm, 0) == 0)
                                (*pages)[np++] = strdup(nm);
                        else
                                (*plain)[nq++] = strdup(nm);
                }
                free(ents[i]);
        }
        free(ents);
        if (*pages == NULL || *plain == NULL)
                return em_error_set(err, ENOMEM, "listing %s", dir);
        return 0;
}

int em_sync_send_images(em_conn_t *c, struct em_sync_state *st, const char *images_dir, int level,
                        json_t *digests, struct em_sync_stats *stats, em_error_t *err)
{
        cleanup_strv char **pages = NULL, **plain = NULL;
        cleanup_close int dfd = open(images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", images_dir);
        if (collect(images_dir, &pages, &plain, err) < 0)
                return -1;
        for (char **n = plain; *n; n++) {
                if (json_object_get(digests, *n) != NULL) { /* sent during the dump */
                        if (still_same(images_dir, *n, digests, err) < 0)
                                return -1;
                        continue;
                }
                if (send_plain_file(c, images_dir, *n, level, digests, stats, err) < 0)
                        return -1;
        }
        return send_pages_files(c, st, dfd, pages, level, digests, stats, err);
}

/* ---- compression calibration ---- */

#define SAMPLE_PAGES 64 /* 256 KiB of real memory rank the levels */

struct sample {
        uint8_t *buf;
        size_t n;
};

static int take_page(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        struct sample *s = ctx;

        (void)vaddr;
        if (em_page_is_zero(page))
                return 0;
        memcpy(s->buf + s->n * EM_PAGE_SIZE, page, EM_PAGE_SIZE);
        if (++s->n == SAMPLE_PAGES)
                return em_error_set(err, ECANCELED, "sample complete");
        return 0;
}

int em_sync_calibrate(pid_t pid, struct em_compress_calibration *cal, em_error_t *err)
{
        return em_sync_calibrate_staged(pid, cal, NULL, NULL, err);
}

int em_sync_calibrate_staged(pid_t pid, struct em_compress_calibration *cal,
                             void (*fast_done)(void *), void *arg, em_error_t *err)
{
        cleanup_free uint8_t *buf = malloc((size_t)SAMPLE_PAGES * EM_PAGE_SIZE);
        struct sample s = {buf, 0};
        struct em_procmem_stats st = {0};
        em_error_t e = NULL;

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "compression calibration");
        if (em_procmem_scan(pid, take_page, &s, &st, &e) < 0 && em_error_status(e) != ECANCELED) {
                em_error_move(err, &e);
                return em_error_wrap(err, "sampling memory of pid %d", (int)pid);
        }
        em_error_free(&e);
        if (s.n == 0)
                return em_error_set(err, ENODATA, "pid %d has no memory to sample", (int)pid);
        return em_compress_calibrate_staged(buf, s.n * EM_PAGE_SIZE, cal, fast_done, arg, err);
}
