/* The lazy pages of a dump; see lazy_set.h. */
#include "delta/lazy_set.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "delta/lazy_known.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

int em_lazy_set_new(em_lazy_set_t **out, em_error_t *err)
{
        *out = calloc(1, sizeof(**out));
        return *out ? 0 : em_error_set(err, ENOMEM, "lazy pages");
}

void em_lazy_set_free(em_lazy_set_t **s)
{
        if (*s == NULL)
                return;
        free((*s)->r);
        free(*s);
        *s = NULL;
}

int em_lazy_set_add(em_lazy_set_t *s, uint32_t pid, uint64_t vaddr, uint64_t nr_pages,
                    em_error_t *err)
{
        if (nr_pages == 0 || nr_pages > EM_LAZY_SET_MAX_PAGES || vaddr % EM_PAGE_SIZE != 0 ||
            vaddr + nr_pages * EM_PAGE_SIZE < vaddr)
                return em_error_set(err, EPROTO, "lazy pages: bad range 0x%llx + %llu pages",
                                    (unsigned long long)vaddr, (unsigned long long)nr_pages);
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                struct em_lazy_range *r = realloc(s->r, cap * sizeof(*r));
                if (r == NULL)
                        return em_error_set(err, ENOMEM, "lazy pages");
                s->r = r, s->cap = cap;
        }
        s->r[s->n++] = (struct em_lazy_range){.pid = pid, .vaddr = vaddr, .nr_pages = nr_pages};
        return 0;
}

static int cmp_range(const void *a, const void *b)
{
        const struct em_lazy_range *x = a, *y = b;

        if (x->pid != y->pid)
                return x->pid < y->pid ? -1 : 1;
        return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

int em_lazy_set_seal(em_lazy_set_t *s, em_error_t *err)
{
        size_t out = 0;

        if (s->n > 0) /* a dump without lazy pages: no array at all */
                qsort(s->r, s->n, sizeof(*s->r), cmp_range);
        s->pages = 0;
        for (size_t i = 0; i < s->n; i++) {
                struct em_lazy_range *prev = out ? &s->r[out - 1] : NULL;
                uint64_t prev_end = prev ? prev->vaddr + prev->nr_pages * EM_PAGE_SIZE : 0;
                if (prev && prev->pid == s->r[i].pid && prev_end > s->r[i].vaddr)
                        return em_error_set(err, EPROTO, "lazy pages: overlapping ranges at 0x%llx",
                                            (unsigned long long)s->r[i].vaddr);
                if (s->pages + s->r[i].nr_pages > EM_LAZY_SET_MAX_PAGES)
                        return em_error_set(err, EFBIG, "lazy pages: more than %llu pages",
                                            (unsigned long long)EM_LAZY_SET_MAX_PAGES);
                s->pages += s->r[i].nr_pages;
                if (prev && prev->pid == s->r[i].pid && prev_end == s->r[i].vaddr) {
                        prev->nr_pages += s->r[i].nr_pages;
                        continue;
                }
                s->r[out] = s->r[i];
                s->r[out++].first = s->pages - s->r[i].nr_pages;
        }
        s->n = out;
        return 0;
}

/* "pagemap-<pid>.img" (not the shmem pagemaps, never lazy). */
static bool task_pagemap(const char *name, uint32_t *pid)
{
        unsigned long v;
        int end = 0;

        if (sscanf(name, "pagemap-%lu.img%n", &v, &end) != 1 || name[end] != '\0' || v > UINT32_MAX)
                return false;
        *pid = (uint32_t)v;
        return true;
}

static int load_one(em_lazy_set_t *s, int dfd, const char *name, em_error_t *err)
{
        cleanup_pagemap struct em_pagemap pm = {0};
        uint32_t pid;

        if (!task_pagemap(name, &pid))
                return 0;
        if (em_pagemap_load(dfd, name, &pm, err) < 0)
                return em_error_wrap(err, "%s", name);
        for (size_t i = 0; i < pm.n; i++) {
                const struct em_pagemap_entry *e = &pm.e[i];
                if ((e->flags & EM_PE_LAZY) && !(e->flags & EM_PE_PRESENT) &&
                    em_lazy_set_add(s, pid, e->vaddr, e->nr_pages, err) < 0)
                        return em_error_wrap(err, "%s", name);
        }
        return 0;
}

int em_lazy_set_load(const char *images, em_lazy_set_t **out, em_error_t *err)
{
        cleanup_close int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_lazy_set em_lazy_set_t *s = NULL;
        cleanup_strv char **names = NULL;

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", images);
        if (em_lazy_set_new(&s, err) < 0 || em_pagemap_list(dfd, &names, err) < 0)
                return -1;
        for (char **nm = names; *nm; nm++) {
                if (load_one(s, dfd, *nm, err) < 0)
                        return -1;
        }
        if (em_lazy_set_seal(s, err) < 0)
                return -1;
        *out = steal_pointer(&s);
        return 0;
}

bool em_lazy_set_find(const em_lazy_set_t *s, uint32_t pid, uint64_t vaddr, uint64_t nr,
                      uint64_t *idx)
{
        size_t lo = 0, hi = s->n;

        /* The last range starting at or below (pid, vaddr). */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct em_lazy_range *r = &s->r[mid];
                if (r->pid < pid || (r->pid == pid && r->vaddr <= vaddr))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0 || nr == 0 || vaddr % EM_PAGE_SIZE != 0)
                return false;
        const struct em_lazy_range *r = &s->r[lo - 1];
        uint64_t off = (vaddr - r->vaddr) / EM_PAGE_SIZE;
        if (r->pid != pid || off >= r->nr_pages || nr > r->nr_pages - off)
                return false;
        *idx = r->first + off;
        return true;
}

const struct em_lazy_range *em_lazy_set_range(const em_lazy_set_t *s, uint64_t idx)
{
        size_t lo = 0, hi = s->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->r[mid].first <= idx)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo ? &s->r[lo - 1] : NULL;
}

static int mark_file(const em_lazy_set_t *s, int dfd, const char *name, uint32_t pid,
                     uint8_t *state, uint8_t v, uint64_t *n, em_error_t *err)
{
        cleanup_free uint8_t *buf = NULL;
        cleanup_free char *path = NULL;
        struct em_known_list l;
        size_t len = 0;

        if (asprintf(&path, "/proc/self/fd/%d/%s", dfd, name) < 0)
                return em_error_set(err, ENOMEM, "known pages");
        if (em_read_file(path, 1u << 30, (char **)&buf, &len, err) < 0 ||
            em_known_parse(buf, len, &l, err) < 0)
                return em_error_wrap(err, "%s", name);
        for (uint64_t i = 0; i < l.n; i++) {
                uint64_t vaddr, idx;
                memcpy(&vaddr, l.rec + i * (8 + 16), 8);
                if (em_lazy_set_find(s, pid, vaddr, 1, &idx)) {
                        state[idx] = v;
                        (*n)++;
                }
        }
        return 0;
}

int em_lazy_set_mark_known(const em_lazy_set_t *s, const char *images, uint8_t *state, uint8_t v,
                           uint64_t *n, em_error_t *err)
{
        cleanup_dir DIR *d = opendir(images);
        struct dirent *de;

        *n = 0;
        if (d == NULL)
                return em_error_set(err, errno, "opening %s", images);
        while ((de = readdir(d)) != NULL) {
                unsigned long pid;
                int end = 0;
                if (sscanf(de->d_name, "edgemig-known-%lu.bin%n", &pid, &end) != 1 ||
                    de->d_name[end] != '\0' || pid > UINT32_MAX)
                        continue;
                if (mark_file(s, dirfd(d), de->d_name, (uint32_t)pid, state, v, n, err) < 0)
                        return -1;
        }
        return 0;
}
