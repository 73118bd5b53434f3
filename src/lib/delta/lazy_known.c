/* Lazy pages the target already holds (hybrid: pre-copy rounds filled its
 * page cache; or a `prepare`). CRIU's lazy-pages daemon would fetch every
 * PE_LAZY page from the source's page server again, so before the restore
 * the target turns the lazy pages it holds into present pages of the image.
 *
 * Source: the dumped tasks stay alive (seized by CRIU) during the lazy
 * window, so their memory is read once more (no extra freeze: they are
 * stopped already); every lazy page that is zero or whose hash the target
 * holds is listed in edgemig-known-<pid>.bin:
 *   "EMKNOWN1", u64 n, n x {u64 vaddr, u8 xxh3_128[16] (all zero: a zero
 *   page)}, then "sha256:<hex>" of those pages' contents in order.
 * Target: rewrites pagemap-<pid>.img and pages-<id>.img with those pages
 * present (content from the page cache, each re-hashed on read, and the
 * whole checked against the sha256); on any mismatch it leaves the images
 * as they were (the pages then come lazily), never a wrong page. */
#include "delta/lazy_known.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "delta/pages.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/proc.h"

#define KNOWN_MAGIC "EMKNOWN1"
#define MAX_TASKS   4096

struct known_rec {
        uint64_t vaddr;
        em_phash_t h;
} __attribute__((packed));

static const em_phash_t zero_hash;

/* ---- source ---- */

struct scan_ctx {
        const struct em_pagemap *pm;
        const em_hashset_t *known;
        size_t at; /* entry cursor: scans go up in vaddr */
        FILE *out;
        em_sha256_t *sha;
        uint64_t n;
};

static bool in_lazy(struct scan_ctx *c, uint64_t vaddr)
{
        while (c->at < c->pm->n &&
               c->pm->e[c->at].vaddr + c->pm->e[c->at].nr_pages * EM_PAGE_SIZE <= vaddr)
                c->at++;
        return c->at < c->pm->n && c->pm->e[c->at].vaddr <= vaddr &&
               (c->pm->e[c->at].flags & EM_PE_LAZY) && !(c->pm->e[c->at].flags & EM_PE_PRESENT);
}

static int scan_page(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        struct scan_ctx *c = ctx;
        struct known_rec r = {.vaddr = vaddr};

        if (!in_lazy(c, vaddr))
                return 0;
        if (!em_page_is_zero(page)) {
                em_page_hash(page, &r.h);
                if (!em_hashset_has(c->known, &r.h))
                        return 0;
        }
        if (fwrite(&r, sizeof(r), 1, c->out) != 1)
                return em_error_set(err, EIO, "writing the known-pages list");
        em_sha256_update(c->sha, page, EM_PAGE_SIZE);
        c->n++;
        return 0;
}

static int write_known(int dfd, const char *images, pid_t host, long nspid,
                       const em_hashset_t *known, uint64_t *n_known, em_error_t *err)
{
        cleanup_pagemap struct em_pagemap pm = {0};
        cleanup_sha256 em_sha256_t *sha = em_sha256_new();
        cleanup_free char *path = NULL;
        char name[64], digest[EM_DIGEST_STR_LEN + 1];
        uint64_t zero = 0;

        snprintf(name, sizeof(name), "pagemap-%ld.img", nspid);
        if (em_pagemap_load(dfd, name, &pm, err) < 0)
                return em_error_wrap(err, "%s/%s", images, name);
        if (asprintf(&path, "%s/edgemig-known-%ld.bin", images, nspid) < 0 || sha == NULL)
                return em_error_set(err, ENOMEM, "known pages");
        cleanup_fclose FILE *out = fopen(path, "we");
        if (out == NULL)
                return em_error_set(err, errno, "creating %s", path);
        struct scan_ctx c = {.pm = &pm, .known = known, .out = out, .sha = sha};
        struct em_procmem_stats st = {0};
        if (fwrite(KNOWN_MAGIC, 8, 1, out) != 1 || fwrite(&zero, 8, 1, out) != 1 ||
            em_procmem_scan(host, scan_page, &c, &st, err) < 0)
                return em_error_wrap(err, "reading the frozen task %d", (int)host);
        em_sha256_final(sha, digest);
        if (fwrite(digest, EM_DIGEST_STR_LEN, 1, out) != 1 || fseek(out, 8, SEEK_SET) < 0 ||
            fwrite(&c.n, 8, 1, out) != 1 || fflush(out) != 0)
                return em_error_set(err, EIO, "writing %s", path);
        *n_known += c.n;
        return 0;
}

void em_lazy_known_remove(const char *images)
{
        cleanup_dir DIR *d = opendir(images);
        struct dirent *de;

        while (d != NULL && (de = readdir(d)) != NULL) {
                if (strncmp(de->d_name, "edgemig-known-", 14) == 0)
                        unlinkat(dirfd(d), de->d_name, 0);
        }
}

int em_lazy_tasks(pid_t root, pid_t *host, long *nspid, size_t max, size_t *n, em_error_t *err)
{
        if (max == 0)
                return em_error_set(err, E2BIG, "no room for tasks");
        size_t all = em_proc_tree(root, host, max);

        *n = 0;
        if (all == 0)
                return em_error_set(err, ESRCH, "task %d vanished", (int)root);
        for (size_t i = 0; i < all; i++) {
                /* A zombie at the freeze (a child that exited, not reaped
                 * yet): CRIU dumps no memory and no pagemap of it, so no
                 * lazy page is its, and it may be reaped before the window
                 * ends. The root is the container's: never left out. */
                if (i > 0 && !em_proc_has_mm(host[i]))
                        continue;
                host[*n] = host[i];
                nspid[*n] = em_proc_ns_pid(host[i]);
                if (nspid[*n] <= 0)
                        return em_error_set(err, ESRCH, "task %d vanished", (int)host[i]);
                (*n)++;
        }
        return 0;
}

int em_lazy_known_write(const char *images, pid_t root, const struct em_hashset *known,
                        uint64_t *n_known, em_error_t *err)
{
        cleanup_free pid_t *pids = calloc(MAX_TASKS, sizeof(pid_t));
        cleanup_free long *nspids = calloc(MAX_TASKS, sizeof(long));
        cleanup_close int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t n = 0;

        *n_known = 0;
        if (pids == NULL || nspids == NULL || dfd < 0)
                return em_error_set(err, dfd < 0 ? errno : ENOMEM, "opening %s", images);
        if (em_lazy_tasks(root, pids, nspids, MAX_TASKS, &n, err) < 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                /* A live task without its pagemap image fails the list. */
                if (write_known(dfd, images, pids[i], nspids[i], known, n_known, err) < 0)
                        return -1;
        }
        return 0;
}

/* ---- target ---- */

struct rewrite {
        em_pagecache_t *pc;
        const struct known_rec *rec;
        uint64_t nrec, k;
        FILE *in, *out; /* old and new pages-<id>.img */
        em_sha256_t *sha;
        struct em_pagemap_entry *ne;
        size_t nn;
};

static void add_entry(struct rewrite *w, const struct em_pagemap_entry *tmpl, uint64_t vaddr,
                      uint64_t nr, uint32_t flags)
{
        struct em_pagemap_entry *e = &w->ne[w->nn++];

        *e = *tmpl;
        e->vaddr = vaddr;
        e->nr_pages = nr;
        e->flags = flags;
        e->has |= EM_PME_HAS_FLAGS | EM_PME_HAS_NR_PAGES;
        e->in_parent = false;
        e->compat_nr_pages = 0;
}

static int copy_old(struct rewrite *w, const struct em_pagemap_entry *e, em_error_t *err)
{
        uint8_t page[EM_PAGE_SIZE];

        if (fseeko(w->in, (off_t)(e->first_page * EM_PAGE_SIZE), SEEK_SET) < 0)
                return em_error_set(err, errno, "seeking in the pages image");
        for (uint64_t i = 0; i < e->nr_pages; i++) {
                if (fread(page, EM_PAGE_SIZE, 1, w->in) != 1 ||
                    fwrite(page, EM_PAGE_SIZE, 1, w->out) != 1)
                        return em_error_set(err, EIO, "copying the pages image");
        }
        return 0;
}

static int put_known(struct rewrite *w, const em_phash_t *h, em_error_t *err)
{
        uint8_t page[EM_PAGE_SIZE] = {0};

        if (memcmp(h, &zero_hash, sizeof(*h)) != 0 && em_pagecache_get(w->pc, h, page, err) < 0)
                return -1;
        em_sha256_update(w->sha, page, EM_PAGE_SIZE);
        if (fwrite(page, EM_PAGE_SIZE, 1, w->out) != 1)
                return em_error_set(err, EIO, "writing the pages image");
        return 0;
}

/* Splits one lazy entry into runs of known (now present) and lazy pages. */
static int split_lazy(struct rewrite *w, const struct em_pagemap_entry *e, em_error_t *err)
{
        uint64_t end = e->vaddr + e->nr_pages * EM_PAGE_SIZE, run = e->vaddr;
        bool run_known = false;

        for (uint64_t va = e->vaddr; va < end; va += EM_PAGE_SIZE) {
                while (w->k < w->nrec && w->rec[w->k].vaddr < va)
                        w->k++;
                bool known = w->k < w->nrec && w->rec[w->k].vaddr == va;
                if (va != run && known != run_known) {
                        add_entry(w, e, run, (va - run) / EM_PAGE_SIZE,
                                  run_known ? EM_PE_PRESENT : e->flags);
                        run = va;
                }
                run_known = known;
                if (known && put_known(w, &w->rec[w->k].h, err) < 0)
                        return -1;
        }
        add_entry(w, e, run, (end - run) / EM_PAGE_SIZE, run_known ? EM_PE_PRESENT : e->flags);
        return 0;
}

static int rewrite_entries(struct rewrite *w, const struct em_pagemap *pm, em_error_t *err)
{
        for (size_t i = 0; i < pm->n; i++) {
                const struct em_pagemap_entry *e = &pm->e[i];
                if ((e->flags & EM_PE_LAZY) && !(e->flags & EM_PE_PRESENT)) {
                        if (split_lazy(w, e, err) < 0)
                                return -1;
                        continue;
                }
                w->ne[w->nn++] = *e;
                if ((e->flags & EM_PE_PRESENT) && copy_old(w, e, err) < 0)
                        return -1;
        }
        return 0;
}

static int write_pagemap(int dfd, const struct em_pagemap *pm, const char *name, em_error_t *err)
{
        cleanup_free uint8_t *buf = NULL;
        size_t len = 0;
        cleanup_close int fd = -1;

        if (em_pagemap_encode(pm, &buf, &len, err) < 0)
                return -1;
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return em_error_set(err, errno, "writing %s", name);
        if (em_write_all(fd, buf, len, err) < 0)
                return em_error_wrap(err, "writing %s", name);
        return 0;
}

int em_known_parse(const uint8_t *buf, size_t len, struct em_known_list *out, em_error_t *err)
{
        uint64_t n;

        if (len < 16 + EM_DIGEST_STR_LEN || memcmp(buf, KNOWN_MAGIC, 8) != 0)
                return em_error_set_code(err, EPROTO, "not a known-pages list (EMKNOWN1)");
        memcpy(&n, buf + 8, 8);
        if (n > (len - 16 - EM_DIGEST_STR_LEN) / sizeof(struct known_rec) ||
            16 + n * sizeof(struct known_rec) + EM_DIGEST_STR_LEN != len)
                return em_error_set_code(err, EPROTO, "known-pages list: bad length");
        *out = (struct em_known_list){n, buf + 16, (const char *)buf + len - EM_DIGEST_STR_LEN};
        return 0;
}

json_t *em_known_json(const struct em_known_list *l)
{
        json_t *pages = json_array();
        char hex[33];

        for (uint64_t i = 0; pages && i < l->n; i++) {
                struct known_rec r;
                memcpy(&r, l->rec + i * sizeof(r), sizeof(r));
                em_phash_hex(&r.h, hex);
                bool zero = memcmp(&r.h, &zero_hash, sizeof(zero_hash)) == 0;
                json_array_append_new(pages, json_pack("{s:I, s:s}", "vaddr", (json_int_t)r.vaddr,
                                                       "hash", zero ? "zero" : hex));
        }
        char digest[EM_DIGEST_STR_LEN + 1];

        /* Hostile bytes must not reach the JSON as a string. */
        memcpy(digest, l->digest, EM_DIGEST_STR_LEN);
        digest[EM_DIGEST_STR_LEN] = '\0';
        return json_pack("{s:s, s:I, s:s, s:o*}", "format", "EMKNOWN1", "count", (json_int_t)l->n,
                         "sha256", em_digest_valid(digest) ? digest : "(malformed)", "pages",
                         pages);
}

/* Reads edgemig-known-<pid>.bin: records and the expected digest. */
static int read_known(int dfd, const char *name, uint8_t **buf, size_t *len, uint64_t *n,
                      em_error_t *err)
{
        cleanup_close int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        cleanup_free char *path = NULL;

        if (fd < 0 || asprintf(&path, "/proc/self/fd/%d", fd) < 0)
                return em_error_set(err, errno, "opening %s", name);
        struct em_known_list l;

        if (em_read_file(path, 1u << 30, (char **)buf, len, err) < 0)
                return -1;
        if (em_known_parse(*buf, *len, &l, err) < 0)
                return em_error_wrap(err, "%s", name);
        *n = l.n;
        return 0;
}

static int apply_one(int dfd, em_pagecache_t *pc, const char *name, uint64_t *applied,
                     em_error_t *err)
{
        cleanup_free uint8_t *buf = NULL;
        cleanup_pagemap struct em_pagemap pm = {0};
        cleanup_sha256 em_sha256_t *sha = em_sha256_new();
        char pmname[64], pgname[32], digest[EM_DIGEST_STR_LEN + 1];
        size_t len = 0;
        uint64_t n = 0;
        long pid = strtol(name + strlen("edgemig-known-"), NULL, 10);

        snprintf(pmname, sizeof(pmname), "pagemap-%ld.img", pid);
        if (sha == NULL || read_known(dfd, name, &buf, &len, &n, err) < 0 ||
            em_pagemap_load(dfd, pmname, &pm, err) < 0)
                return -1;
        if (n == 0)
                return 0;
        em_pages_img_name(pm.pages_id, pgname, sizeof(pgname));
        cleanup_free struct em_pagemap_entry *ne = calloc(pm.n + 2 * n + 1, sizeof(*ne));
        cleanup_fclose FILE *in = fdopen(openat(dfd, pgname, O_RDONLY | O_CLOEXEC), "r");
        cleanup_fclose FILE *out = fdopen(
            openat(dfd, "pages.edgemig-tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), "w");
        if (ne == NULL || in == NULL || out == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "rewriting %s", pgname);
        struct rewrite w = {.pc = pc,
                            .rec = (const struct known_rec *)(buf + 16),
                            .nrec = n,
                            .in = in,
                            .out = out,
                            .sha = sha,
                            .ne = ne};
        if (rewrite_entries(&w, &pm, err) < 0 || fflush(out) != 0)
                return -1;
        em_sha256_final(sha, digest);
        if (memcmp(digest, buf + 16 + n * sizeof(struct known_rec), EM_DIGEST_STR_LEN) != 0)
                return em_error_set(err, EILSEQ, "%s: known pages do not match", name);
        struct em_pagemap npm = {.pages_id = pm.pages_id, .n = w.nn, .e = ne};
        if (write_pagemap(dfd, &npm, "pagemap.edgemig-tmp", err) < 0)
                return -1;
        if (renameat(dfd, "pages.edgemig-tmp", dfd, pgname) < 0)
                return em_error_set(err, errno, "installing the rewritten %s", pgname);
        /* Past this point old pagemap + new pages would mean wrong memory. */
        if (renameat(dfd, "pagemap.edgemig-tmp", dfd, pmname) < 0) {
                em_error_set(err, errno, "installing the rewritten %s", pmname);
                return -2;
        }
        *applied += n;
        return 0;
}

int em_lazy_known_apply(const char *images, const char *cache_dir, uint64_t *applied,
                        em_error_t *err)
{
        cleanup_close int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        em_pagecache_t *pc = NULL;
        struct dirent *de;

        *applied = 0;
        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", images);
        cleanup_dir DIR *d = opendir(images);
        if (d == NULL || em_pagecache_open(cache_dir, &pc, err) < 0)
                return em_error_wrap(err, "page cache %s", cache_dir);
        while ((de = readdir(d)) != NULL) {
                em_error_t e = NULL;
                if (strncmp(de->d_name, "edgemig-known-", 14) != 0)
                        continue;
                /* A list we cannot apply only costs transfer: the pages
                 * stay lazy and come from the source. */
                int rc = apply_one(dfd, pc, de->d_name, applied, &e);
                if (rc == -2) {
                        em_pagecache_free(&pc);
                        em_error_move(err, &e);
                        return em_error_wrap(err, "images are inconsistent");
                }
                if (rc < 0) {
                        em_log_warn("known lazy pages not used: %s", em_error_msg(e));
                        em_error_free(&e);
                        unlinkat(dfd, "pages.edgemig-tmp", 0);
                        unlinkat(dfd, "pagemap.edgemig-tmp", 0);
                }
                unlinkat(dfd, de->d_name, 0);
        }
        em_pagecache_free(&pc);
        return 0;
}

int em_lazy_pages_count(const char *images, uint64_t *n, em_error_t *err)
{
        cleanup_close int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char **names = NULL;
        int rc = 0;

        *n = 0;
        if (dfd < 0 || em_pagemap_list(dfd, &names, err) < 0)
                return dfd < 0 ? em_error_set(err, errno, "opening %s", images) : -1;
        for (char **nm = names; rc == 0 && *nm; nm++) {
                cleanup_pagemap struct em_pagemap pm = {0};
                rc = em_pagemap_load(dfd, *nm, &pm, err);
                for (size_t i = 0; rc == 0 && i < pm.n; i++) {
                        if ((pm.e[i].flags & EM_PE_LAZY) && !(pm.e[i].flags & EM_PE_PRESENT))
                                *n += pm.e[i].nr_pages;
                }
        }
        em_strv_free(names);
        return rc;
}
