#include "delta/procmem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

struct vma {
        uint64_t start, end, offset;
        bool file_private; /* only COWed (anonymous) pages count */
        bool shmem;        /* SysV, shared anonymous or memfd memory */
};

/* One /proc/PID/maps line → a mapping to scan, or false to skip it. */
static bool parse_maps_line(const char *line, struct vma *v)
{
        unsigned long long s, e, off, ino;
        char perms[5], dev[16], path[4096] = "";

        if (sscanf(line, "%llx-%llx %4s %llx %15s %llu %4095[^\n]", &s, &e, perms, &off, dev, &ino,
                   path) < 6)
                return false;
        if (perms[0] != 'r' || strncmp(path, "[vvar", 5) == 0 || strcmp(path, "[vsyscall]") == 0)
                return false;
        /* Shared file mappings live in the file, not in the image. */
        if (perms[3] == 's' && ino != 0 && strncmp(path, "/dev/zero", 9) != 0 &&
            strncmp(path, "/SYSV", 5) != 0 && strncmp(path, "/memfd:", 7) != 0)
                return false;
        v->start = s;
        v->end = e;
        v->offset = off;
        v->file_private = perms[3] == 'p' && ino != 0;
        v->shmem = perms[3] == 's';
        return true;
}

/* PAGEMAP_SCAN (Linux 6.7+) lists only the populated ranges, so a process
 * with terabytes of reserved address space (sanitizers, Go, JVMs) costs no
 * more than its resident memory. Older kernels fall back to reading
 * /proc/PID/pagemap entry by entry. */
#ifndef PAGEMAP_SCAN
struct page_region {
        uint64_t start, end, categories;
};
struct pm_scan_arg {
        uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
        uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN    _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_FILE    (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#endif

#define PM_PRESENT (1ull << 63)
#define PM_SWAP    (1ull << 62)
#define PM_FILE    (1ull << 61)
#define BATCH      256
#define NREGIONS   512

struct scan {
        pid_t pid;
        int pidfd; /* the process itself (-1: kernel without pidfd_open) */
        int pmfd;
        bool no_ioctl;
        uint8_t *buf; /* BATCH pages */
        em_procmem_page_fn fn;
        void *ctx;
        struct em_procmem_stats *st;
};

/* Copies n <= BATCH pages at addr and hands them out. A page that went away
 * meanwhile ends a partial read; it is skipped and the rest retried. */
static int read_pages(struct scan *sc, uint64_t addr, size_t n, em_error_t *err)
{
        while (n > 0) {
                struct iovec local = {sc->buf, n * EM_PAGE_SIZE};
                struct iovec remote = {(void *)(uintptr_t)addr, n * EM_PAGE_SIZE};
                ssize_t got = process_vm_readv(sc->pid, &local, 1, &remote, 1, 0);
                size_t full;

                if (got < 0 && errno != EFAULT && errno != ENOMEM)
                        return em_error_set(err, errno, "process_vm_readv of pid %d", sc->pid);
                /* Still the same process? If it exited, its pid may name
                 * another one by now: what was just read is not ours. */
                if (sc->pidfd >= 0 && syscall(SYS_pidfd_send_signal, sc->pidfd, 0, NULL, 0) < 0)
                        return em_error_set(err, ESRCH, "pid %d exited", sc->pid);
                full = got > 0 ? (size_t)got / EM_PAGE_SIZE : 0;
                for (size_t i = 0; i < full; i++) {
                        sc->st->pages_read++;
                        sc->st->bytes_read += EM_PAGE_SIZE;
                        if (sc->fn(sc->ctx, addr + i * EM_PAGE_SIZE, sc->buf + i * EM_PAGE_SIZE,
                                   err) < 0)
                                return -1;
                }
                if (full < n)
                        full++; /* skip the unreadable page */
                addr += full * EM_PAGE_SIZE;
                n -= full;
        }
        return 0;
}

static int read_range(struct scan *sc, uint64_t start, uint64_t end, em_error_t *err)
{
        for (uint64_t a = start; a < end;) {
                size_t n = (size_t)((end - a) / EM_PAGE_SIZE);
                if (n > BATCH)
                        n = BATCH;
                if (read_pages(sc, a, n, err) < 0)
                        return -1;
                a += n * EM_PAGE_SIZE;
        }
        return 0;
}

/* Fallback: pagemap entries, BATCH at a time. */
static int scan_vma_pagemap(struct scan *sc, const struct vma *v, em_error_t *err)
{
        uint64_t ents[BATCH];

        for (uint64_t a = v->start; a < v->end;) {
                size_t n = (size_t)((v->end - a) / EM_PAGE_SIZE), i = 0;
                ssize_t got;

                if (n > BATCH)
                        n = BATCH;
                got = pread(sc->pmfd, ents, n * 8, (off_t)(a / EM_PAGE_SIZE * 8));
                if (got < 0)
                        return em_error_set(err, errno, "reading /proc/%d/pagemap", sc->pid);
                while (i < (size_t)got / 8) {
                        size_t j = i;
                        /* A run of pages CRIU would dump. */
                        while (j < (size_t)got / 8 && (ents[j] & (PM_PRESENT | PM_SWAP)) &&
                               !(v->file_private && (ents[j] & PM_FILE)))
                                j++;
                        if (j > i && read_pages(sc, a + i * EM_PAGE_SIZE, j - i, err) < 0)
                                return -1;
                        i = j + 1;
                }
                a += n * EM_PAGE_SIZE;
        }
        return 0;
}

/* Which pages of a shared memory object v maps are resident, in vec (one
 * byte a page, bit 0), from mincore of our own mapping of the object
 * (/proc/PID/map_files, as CRIU dumps it). False if it cannot tell. */
static bool shmem_resident(const struct scan *sc, const struct vma *v, unsigned char *vec)
{
        char path[96];
        size_t len = (size_t)(v->end - v->start);

        snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)sc->pid,
                 v->start, v->end);
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)v->offset);
        if (m == MAP_FAILED)
                return false;
        int rc = mincore(m, len, vec);
        munmap(m, len);
        return rc == 0;
}

/* Shared memory lives in its object, not in one process: a page that only
 * another process touched, or that CRIU restored and nobody touched since,
 * is in no page table of this one, yet CRIU dumps it. Pre-copy sends every
 * resident page of the object (read through the process, which maps the
 * page in without allocating it), so it is not left for the downtime. */
static int scan_vma_shmem(struct scan *sc, const struct vma *v, em_error_t *err)
{
        size_t n = (size_t)((v->end - v->start) / EM_PAGE_SIZE);
        cleanup_free unsigned char *vec = malloc(n ? n : 1);

        if (vec == NULL || !shmem_resident(sc, v, vec))
                return 1; /* scan the page table as for any mapping */
        for (size_t i = 0; i < n;) {
                size_t j = i;
                while (j < n && (vec[j] & 1))
                        j++;
                if (j > i && read_range(sc, v->start + i * EM_PAGE_SIZE,
                                        v->start + j * EM_PAGE_SIZE, err) < 0)
                        return -1;
                i = j + 1;
        }
        return 0;
}

static int scan_vma(struct scan *sc, const struct vma *v, em_error_t *err)
{
        struct page_region r[NREGIONS];
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .start = v->start,
            .end = v->end,
            .vec = (uintptr_t)r,
            .vec_len = NREGIONS,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO,
        };

        int rc = v->shmem ? scan_vma_shmem(sc, v, err) : 1;

        if (rc <= 0)
                return rc;
        if (sc->no_ioctl)
                return scan_vma_pagemap(sc, v, err);
        while (arg.start < v->end) {
                int n = ioctl(sc->pmfd, PAGEMAP_SCAN, &arg);
                if (n < 0 && (errno == ENOTTY || errno == EINVAL) && arg.start == v->start) {
                        sc->no_ioctl = true;
                        return scan_vma_pagemap(sc, v, err);
                }
                if (n < 0)
                        return em_error_set(err, errno, "PAGEMAP_SCAN of pid %d", sc->pid);
                for (int i = 0; i < n; i++) {
                        if ((r[i].categories & PAGE_IS_PFNZERO) ||
                            (v->file_private && (r[i].categories & PAGE_IS_FILE)))
                                continue;
                        if (read_range(sc, r[i].start, r[i].end, err) < 0)
                                return -1;
                }
                if (arg.walk_end <= arg.start)
                        break;
                arg.start = arg.walk_end;
        }
        return 0;
}

int em_procmem_read_runs(pid_t pid, const struct em_procmem_run *runs, size_t n,
                         em_procmem_page_fn fn, void *ctx, struct em_procmem_stats *st,
                         em_error_t *err)
{
        cleanup_free uint8_t *buf = malloc(BATCH * EM_PAGE_SIZE);
        cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct scan sc = {.pid = pid, .pidfd = pidfd, .buf = buf, .fn = fn, .ctx = ctx, .st = st};
        int64_t t0 = em_mono_ns();
        int ret = 0;

        memset(st, 0, sizeof(*st));
        if (buf == NULL)
                return em_error_set(err, ENOMEM, "reading memory of pid %d", pid);
        if (pidfd < 0 && errno == ESRCH)
                return em_error_set(err, ESRCH, "pid %d exited", pid);
        for (size_t i = 0; i < n && ret == 0; i++)
                ret = read_range(&sc, runs[i].start, runs[i].start + runs[i].npages * EM_PAGE_SIZE,
                                 err);
        st->elapsed_ns = em_mono_ns() - t0;
        return ret;
}

int em_procmem_scan(pid_t pid, em_procmem_page_fn fn, void *ctx, struct em_procmem_stats *st,
                    em_error_t *err)
{
        char path[64], *line = NULL;
        size_t cap = 0;
        cleanup_fclose FILE *maps = NULL;
        cleanup_close int pmfd = -1;
        cleanup_free uint8_t *buf = malloc(BATCH * EM_PAGE_SIZE);
        struct scan sc = {.pid = pid, .buf = buf, .fn = fn, .ctx = ctx, .st = st};
        cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        int ret = 0;

        memset(st, 0, sizeof(*st));
        int64_t t0 = em_mono_ns();
        snprintf(path, sizeof(path), "/proc/%d/maps", pid);
        maps = fopen(path, "re");
        snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
        pmfd = open(path, O_RDONLY | O_CLOEXEC);
        if (maps == NULL || pmfd < 0 || buf == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "opening memory of pid %d", pid);
        sc.pmfd = pmfd;
        sc.pidfd = pidfd;
        while (ret == 0 && getline(&line, &cap, maps) > 0) {
                struct vma v;
                if (!parse_maps_line(line, &v))
                        continue;
                st->mappings++;
                ret = scan_vma(&sc, &v, err);
        }
        free(line);
        st->elapsed_ns = em_mono_ns() - t0;
        return ret;
}
