#include "delta/shadow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

#define INDEX_MAGIC "EMSHADW1"
#define EMPTY       UINT64_MAX

struct entry {
        uint64_t vaddr;
        uint64_t slot; /* EMPTY: unused table entry */
        uint32_t vpid;
        bool seen; /* recorded by this session */
        em_phash_t h;
};

struct em_shadow {
        char *dir;
        int fd;         /* pages.bin, flock'ed */
        uint64_t slots; /* pages in pages.bin */
        struct entry *tab;
        size_t cap, n; /* cap: a power of two */
        bool broken;
};

/* On-disk index record: vaddr, slot, vpid, hash (little-endian host). */
struct record {
        uint64_t vaddr, slot;
        uint32_t vpid;
        uint8_t h[16];
} __attribute__((packed));

static size_t bucket(const struct em_shadow *s, uint32_t vpid, uint64_t vaddr)
{
        uint64_t x = (vaddr >> 12) ^ ((uint64_t)vpid << 40);

        /* splitmix64's finalizer: neighbouring pages land far apart. */
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebull;
        x ^= x >> 31;
        return (size_t)x & (s->cap - 1);
}

static struct entry *find(const struct em_shadow *s, uint32_t vpid, uint64_t vaddr)
{
        if (s->cap == 0)
                return NULL;
        for (size_t i = bucket(s, vpid, vaddr);; i = (i + 1) & (s->cap - 1)) {
                struct entry *e = &s->tab[i];
                if (e->slot == EMPTY)
                        return NULL;
                if (e->vaddr == vaddr && e->vpid == vpid)
                        return e;
        }
}

static void place(struct em_shadow *s, const struct entry *src)
{
        size_t i = bucket(s, src->vpid, src->vaddr);

        while (s->tab[i].slot != EMPTY)
                i = (i + 1) & (s->cap - 1);
        s->tab[i] = *src;
        s->n++;
}

static int grow(struct em_shadow *s, em_error_t *err)
{
        size_t old_cap = s->cap, ncap = s->cap ? s->cap * 2 : 4096;
        struct entry *old = s->tab, *t = malloc(ncap * sizeof(*t));

        if (t == NULL)
                return em_error_set(err, ENOMEM, "memory shadow index");
        for (size_t i = 0; i < ncap; i++)
                t[i].slot = EMPTY;
        s->tab = t;
        s->cap = ncap;
        s->n = 0;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i].slot != EMPTY)
                        place(s, &old[i]);
        free(old);
        return 0;
}

static int insert(struct em_shadow *s, const struct entry *e, em_error_t *err)
{
        if ((s->n + 1) * 10 > s->cap * 7 && grow(s, err) < 0)
                return -1;
        place(s, e);
        return 0;
}

static char *index_path(const struct em_shadow *s)
{
        return em_path_join(s->dir, "index.bin");
}

int em_shadow_index_parse(const uint8_t *buf, size_t len, em_shadow_record_fn fn, void *ctx,
                          em_error_t *err)
{
        uint64_t count;

        if (len < 16 || memcmp(buf, INDEX_MAGIC, 8) != 0)
                return em_error_set(err, EBADMSG, "not a shadow index");
        memcpy(&count, buf + 8, 8);
        if (count > (len - 16) / sizeof(struct record) || 16 + count * sizeof(struct record) != len)
                return em_error_set(err, EBADMSG, "shadow index of %zu bytes is truncated", len);
        for (uint64_t i = 0; i < count; i++) {
                struct record r;
                struct em_shadow_record out;
                memcpy(&r, buf + 16 + i * sizeof(r), sizeof(r));
                out = (struct em_shadow_record){r.vaddr, r.slot, r.vpid, {{0}}};
                memcpy(out.h.b, r.h, 16);
                if (fn(ctx, i, &out, err) < 0)
                        return -1;
        }
        return 0;
}

static int load_record(void *ctx, uint64_t i, const struct em_shadow_record *r, em_error_t *err)
{
        struct em_shadow *s = ctx;
        struct entry e;

        if (r->slot >= s->slots || (r->vaddr & 4095) != 0 || find(s, r->vpid, r->vaddr))
                return em_error_set(err, EBADMSG, "shadow index entry %" PRIu64 " is inconsistent",
                                    i);
        e = (struct entry){r->vaddr, r->slot, r->vpid, false, r->h};
        return insert(s, &e, err);
}

static int load_records(struct em_shadow *s, const uint8_t *buf, size_t len, em_error_t *err)
{
        return em_shadow_index_parse(buf, len, load_record, s, err);
}

/* A missing index is an empty shadow; a bad one is dropped with its pages. */
static int load_index(struct em_shadow *s, em_error_t *err)
{
        cleanup_free char *path = index_path(s), *buf = NULL;
        size_t len = 0;
        em_error_t e = NULL;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "memory shadow");
        if (em_read_file(path, 1ull << 34, &buf, &len, &e) < 0) {
                int st = em_error_status(e);
                em_error_free(&e);
                if (st == ENOENT)
                        return 0;
                return em_error_set(err, st, "reading %s", path);
        }
        if (load_records(s, (const uint8_t *)buf, len, &e) == 0)
                return 0;
        em_log_warn("dropping the memory shadow in %s: %s", s->dir, em_error_msg(e));
        em_error_free(&e);
        free(s->tab);
        s->tab = NULL;
        s->cap = s->n = 0;
        s->slots = 0;
        if (ftruncate(s->fd, 0) < 0 || unlink(path) < 0)
                return em_error_set(err, errno, "resetting the memory shadow in %s", s->dir);
        return 0;
}

int em_shadow_open(const char *dir, em_shadow_t **out, em_error_t *err)
{
        em_shadow_t *s = calloc(1, sizeof(*s));
        cleanup_free char *path = em_path_join(dir, "pages.bin");
        struct stat st;

        if (s == NULL || path == NULL || (s->dir = strdup(dir)) == NULL) {
                free(s);
                return em_error_set(err, ENOMEM, "memory shadow");
        }
        s->fd = -1;
        if (em_mkdir_p(dir, 0700, err) < 0)
                goto fail;
        s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->fd < 0) {
                em_error_set(err, errno, "opening %s", path);
                goto fail;
        }
        if (flock(s->fd, LOCK_EX | LOCK_NB) < 0) {
                em_error_set(err, errno == EWOULDBLOCK ? EBUSY : errno,
                             "memory shadow %s is in use by another migration", dir);
                goto fail;
        }
        if (fstat(s->fd, &st) < 0) {
                em_error_set(err, errno, "%s", path);
                goto fail;
        }
        s->slots = (uint64_t)st.st_size / EM_PAGE_SIZE;
        if (load_index(s, err) < 0)
                goto fail;
        *out = s;
        return 0;
fail:
        em_shadow_free(&s);
        return -1;
}

void em_shadow_free(em_shadow_t **sp)
{
        em_shadow_t *s = *sp;

        if (s == NULL)
                return;
        if (s->fd >= 0)
                close(s->fd);
        free(s->tab);
        free(s->dir);
        free(s);
        *sp = NULL;
}

bool em_shadow_hash(const em_shadow_t *s, uint32_t vpid, uint64_t vaddr, em_phash_t *h)
{
        const struct entry *e = s->broken ? NULL : find(s, vpid, vaddr);

        if (e == NULL)
                return false;
        *h = e->h;
        return true;
}

int em_shadow_read(em_shadow_t *s, uint32_t vpid, uint64_t vaddr, const em_phash_t *h,
                   uint8_t *page, em_error_t *err)
{
        const struct entry *e = find(s, vpid, vaddr);
        em_phash_t got;

        if (e == NULL || memcmp(e->h.b, h->b, 16) != 0)
                return em_error_set(err, ENOENT, "no shadow of page %#" PRIx64, vaddr);
        if (pread(s->fd, page, EM_PAGE_SIZE, (off_t)(e->slot * EM_PAGE_SIZE)) != EM_PAGE_SIZE)
                return em_error_set(err, errno ? errno : EIO, "reading the memory shadow");
        em_page_hash(page, &got);
        if (memcmp(got.b, h->b, 16) != 0)
                return em_error_set(err, EILSEQ, "memory shadow of page %#" PRIx64 " is damaged",
                                    vaddr);
        return 0;
}

static void disable(em_shadow_t *s, const char *why, int status)
{
        s->broken = true;
        em_log_warn("memory shadow in %s disabled (%s: %s); changed pages now travel whole", s->dir,
                    why, strerror(status));
}

int em_shadow_record(em_shadow_t *s, uint32_t vpid, uint64_t vaddr, const em_phash_t *h,
                     const uint8_t *page, em_error_t *err)
{
        struct entry *e;
        uint64_t slot;

        if (s->broken)
                return 0;
        e = find(s, vpid, vaddr);
        if (e != NULL)
                e->seen = true;
        if (e != NULL && memcmp(e->h.b, h->b, 16) == 0)
                return 0;
        slot = e ? e->slot : s->slots;
        if (pwrite(s->fd, page, EM_PAGE_SIZE, (off_t)(slot * EM_PAGE_SIZE)) != EM_PAGE_SIZE) {
                disable(s, "writing", errno ? errno : ENOSPC);
                return 0;
        }
        if (e != NULL) {
                e->h = *h;
                return 0;
        }
        s->slots++;
        struct entry ne = {vaddr, slot, vpid, true, *h};
        return insert(s, &ne, err);
}

/* Copies the slots of the addresses this session saw into a new file,
 * which replaces pages.bin, and forgets the others. */
static int compact_slots(struct em_shadow *s, em_error_t *err)
{
        cleanup_free char *path = em_path_join(s->dir, "pages.bin");
        cleanup_free char *tmp = em_path_join(s->dir, "pages.bin.new");
        cleanup_free struct entry *old = s->tab;
        size_t old_cap = s->cap;
        uint8_t page[EM_PAGE_SIZE];
        uint64_t next = 0;

        if (path == NULL || tmp == NULL)
                return em_error_set(err, ENOMEM, "compacting the memory shadow");
        cleanup_close int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return em_error_set(err, errno, "creating %s", tmp);
        s->tab = NULL;
        s->cap = s->n = 0;
        for (size_t i = 0; i < old_cap; i++) {
                struct entry e = old[i];
                if (e.slot == EMPTY || !e.seen)
                        continue;
                if (pread(s->fd, page, EM_PAGE_SIZE, (off_t)(e.slot * EM_PAGE_SIZE)) !=
                        EM_PAGE_SIZE ||
                    pwrite(fd, page, EM_PAGE_SIZE, (off_t)(next * EM_PAGE_SIZE)) != EM_PAGE_SIZE)
                        return em_error_set(err, errno ? errno : EIO, "compacting %s", path);
                e.slot = next++;
                if (insert(s, &e, err) < 0)
                        return -1;
        }
        if (rename(tmp, path) < 0)
                return em_error_set(err, errno, "replacing %s", path);
        close(s->fd);
        s->fd = steal_fd(&fd);
        s->slots = next;
        return 0;
}

/* Every scan records every page present, so an address no scan of this
 * session saw is gone from the process: dropping it keeps a container that
 * is prepared again and again from growing the file. A session that saw
 * nothing (it failed early) keeps everything. */
static int compact(struct em_shadow *s, em_error_t *err)
{
        size_t seen = 0;

        for (size_t i = 0; i < s->cap; i++)
                seen += s->tab[i].slot != EMPTY && s->tab[i].seen;
        if (seen == 0 || seen == s->n)
                return 0;
        if (compact_slots(s, err) < 0) {
                s->broken = true; /* the table may be half rebuilt */
                return -1;
        }
        return 0;
}

int em_shadow_save(em_shadow_t *s, em_error_t *err)
{
        cleanup_free char *path = index_path(s);
        cleanup_free uint8_t *buf = NULL;
        em_error_t e = NULL;
        size_t len, k = 0;
        uint64_t count;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "saving the memory shadow");
        if (!s->broken && compact(s, &e) < 0)
                em_log_warn("memory shadow in %s dropped: %s", s->dir, em_error_msg(e));
        em_error_free(&e);
        if (s->broken) {
                unlink(path); /* its slots may not hold what it says */
                return 0;
        }
        count = s->n;
        len = 16 + s->n * sizeof(struct record);
        if ((buf = malloc(len)) == NULL)
                return em_error_set(err, ENOMEM, "saving the memory shadow");
        memcpy(buf, INDEX_MAGIC, 8);
        memcpy(buf + 8, &count, 8);
        for (size_t i = 0; i < s->cap; i++) {
                const struct entry *en = &s->tab[i];
                if (en->slot == EMPTY)
                        continue;
                struct record r = {en->vaddr, en->slot, en->vpid, {0}};
                memcpy(r.h, en->h.b, 16);
                memcpy(buf + 16 + k++ * sizeof(r), &r, sizeof(r));
        }
        return em_write_file_atomic(path, buf, len, 0600, err);
}

size_t em_shadow_count(const em_shadow_t *s)
{
        return s->n;
}

bool em_shadow_usable(const em_shadow_t *s)
{
        return !s->broken;
}
