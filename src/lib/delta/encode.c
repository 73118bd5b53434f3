#include "delta/encode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta/pagefmt.h"
#include "delta/pagelist.h"
#include "delta/shadow.h"
#include "delta/xorblock.h"
#include "util/cleanup.h"
#include "util/proc.h"
#include "util/fsutil.h"
#include "util/log.h"

int em_delta_enc_init(struct em_delta_enc *e, em_hashset_t *known, size_t chunk,
                      em_delta_emit_fn emit, void *ctx, em_error_t *err)
{
        memset(e, 0, sizeof(*e));
        e->known = known;
        e->emit = emit;
        e->ctx = ctx;
        e->chunk = chunk == 0 ? (1u << 20) : chunk < 8192 ? 8192 : chunk;
        e->buf = malloc(e->chunk);
        if (e->buf == NULL)
                return em_error_set(err, ENOMEM, "page delta buffer");
        return 0;
}

void em_delta_enc_free(struct em_delta_enc *e)
{
        free(e->buf);
        e->buf = NULL;
        em_zblock_free(&e->zb);
}

int em_delta_enc_flush(struct em_delta_enc *e, em_error_t *err)
{
        if (e->len == 0)
                return 0;
        if (e->emit(e->ctx, e->buf, e->len, err) < 0)
                return -1;
        e->st.bytes += e->len;
        e->len = 0;
        return 0;
}

int em_delta_enc_put_op(struct em_delta_enc *e, uint8_t op, const void *a, size_t alen,
                        const void *b, size_t blen, em_error_t *err)
{
        if (e->len + 1 + alen + blen > e->chunk && em_delta_enc_flush(e, err) < 0)
                return -1;
        e->buf[e->len++] = op;
        if (alen)
                memcpy(e->buf + e->len, a, alen);
        e->len += alen;
        if (blen)
                memcpy(e->buf + e->len, b, blen);
        e->len += blen;
        return 0;
}

static int flush_zero_run(struct em_delta_enc *e, em_error_t *err)
{
        uint8_t cnt[4];

        if (e->zero_run == 0)
                return 0;
        em_le_put(cnt, e->zero_run, 4);
        e->zero_run = 0;
        return em_delta_enc_put_op(e, EM_OP_ZERO, cnt, 4, NULL, 0, err);
}

static int flush_ref_run(struct em_delta_enc *e, em_error_t *err)
{
        uint8_t arg[20];

        if (e->ref_n == 0)
                return 0;
        e->st.ref_runs++;
        em_le_put(arg, e->ref_first, 8);
        em_le_put(arg + 8, e->ref_n, 4);
        em_le_put(arg + 12, e->ref_check, 8);
        e->ref_n = 0;
        return em_delta_enc_put_op(e, EM_OP_REF_RUN, arg, sizeof(arg), NULL, 0, err);
}

static int flush_runs(struct em_delta_enc *e, em_error_t *err)
{
        return flush_zero_run(e, err) < 0 ? -1 : flush_ref_run(e, err);
}

/* A known page: most follow the previous one in the receiver's cache (both
 * were sent, or cached, in address order), so runs are long. */
static int ref_page(struct em_delta_enc *e, const em_phash_t *h, uint64_t pos, em_error_t *err)
{
        e->st.ref++;
        if (e->ref_n > 0 && pos == e->ref_first + e->ref_n && e->ref_n < UINT32_MAX) {
                e->ref_n++;
        } else {
                if (flush_ref_run(e, err) < 0)
                        return -1;
                e->ref_first = pos;
                e->ref_n = 1;
                e->ref_check = 0;
        }
        e->ref_check ^= em_phash_word(h);
        return 0;
}

static int page_data(struct em_delta_enc *e, const em_phash_t *h, const uint8_t *page,
                     em_error_t *err)
{
        if (em_delta_enc_put_op(e, EM_OP_DATA, page, EM_PAGE_SIZE, NULL, 0, err) < 0)
                return -1;
        return em_hashset_add(e->known, h, err) < 0 ? -1 : 0;
}

/* A page the receiver lacks (h): as XDATA if the shadow allows; in a
 * prefill section, gathered for a ZBLOCK if its address had other content
 * the XOR would not carry well; else DATA. A gathered page is counted and
 * recorded when its block goes. */
static int send_page(struct em_delta_enc *e, bool addr, uint64_t vaddr, const em_phash_t *h,
                     const uint8_t *page, bool *deferred, em_error_t *err)
{
        int r = 0;

        *deferred = false;
        if (addr && e->shadow != NULL && em_shadow_usable(e->shadow)) {
                if ((r = em_xor_put(e, vaddr, page, err)) < 0)
                        return -1;
                if (r == 2 && e->in_prefill) {
                        *deferred = true;
                        return em_zblock_add(e, vaddr, h, page, err);
                }
        }
        e->st.data++;
        if (r == 1)
                return em_hashset_add(e->known, h, err) < 0 ? -1 : 0;
        return page_data(e, h, page, err);
}

/* The receiver now holds page for this address. */
static int note_page(struct em_delta_enc *e, bool addr, uint64_t vaddr, const em_phash_t *h,
                     const uint8_t *page, em_error_t *err)
{
        if (!addr || e->shadow == NULL)
                return 0;
        return em_shadow_record(e->shadow, e->vpid, vaddr, h, page, err);
}

/* page (its hash h, which the file's digest takes too; zero: all zeros). */
static int encode_page(struct em_delta_enc *e, bool addr, uint64_t vaddr, const uint8_t *page,
                       bool zero, const em_phash_t *h, em_error_t *err)
{
        uint64_t pos;
        bool deferred = false;

        e->st.pages++;
        if (zero) {
                e->st.zero++;
                if (flush_ref_run(e, err) < 0)
                        return -1;
                if (++e->zero_run == UINT32_MAX)
                        return flush_zero_run(e, err);
                return 0;
        }
        if (flush_zero_run(e, err) < 0)
                return -1;
        if (em_hashset_position(e->known, h, &pos)) {
                if (ref_page(e, h, pos, err) < 0)
                        return -1;
        } else if (flush_ref_run(e, err) < 0 ||
                   send_page(e, addr, vaddr, h, page, &deferred, err) < 0) {
                return -1;
        }
        return note_page(e, addr, vaddr, h, page, err);
}

/* One page of the file at index idx: into the digest (delta/pagelist.h),
 * then encoded. */
static int file_page(struct em_delta_enc *e, em_sha256_t *sha, uint64_t idx, const uint8_t *page,
                     em_error_t *err)
{
        bool zero = em_page_is_zero(page);
        uint64_t vaddr = 0;
        bool addr = e->pagemap != NULL && em_pagemap_page_vaddr(e->pagemap, idx, &vaddr, NULL) == 0;
        em_phash_t h;

        if (zero)
                h = *em_page_zero_hash();
        else
                em_page_hash(page, &h);
        em_pagelist_add(sha, &h);
        return encode_page(e, addr, vaddr, page, zero, &h, err);
}

static int begin_file(struct em_delta_enc *e, const char *name, uint64_t nr_pages, em_error_t *err)
{
        uint8_t hdr[2 + EM_DELTA_NAME_MAX + 8];
        size_t nl = strlen(name);

        if (nl == 0 || nl > EM_DELTA_NAME_MAX)
                return em_error_set(err, EINVAL, "page image name '%s'", name);
        em_le_put(hdr, nl, 2);
        memcpy(hdr + 2, name, nl);
        em_le_put(hdr + 2 + nl, nr_pages, 8);
        return em_delta_enc_put_op(e, EM_OP_BEGIN, hdr, 2 + nl + 8, NULL, 0, err);
}

/* A page of an image file whose address had other content, which the XOR
 * cannot carry well: for a ZBLOCK, in a prefill section ahead of the file
 * (opened on first use). */
static int prescan_page(struct em_delta_enc *e, uint64_t idx, const uint8_t *page, bool *open,
                        em_error_t *err)
{
        uint8_t arg[16 + EM_PAGE_SIZE];
        em_phash_t h;
        uint64_t vaddr;

        if (em_page_is_zero(page))
                return 0;
        em_page_hash(page, &h);
        if (em_hashset_has(e->known, &h) ||
            em_pagemap_page_vaddr(e->pagemap, idx, &vaddr, NULL) < 0 ||
            em_xor_delta(e, vaddr, page, arg) != 2)
                return 0;
        if (!*open && em_delta_enc_put_op(e, EM_OP_PREFILL, NULL, 0, NULL, 0, err) < 0)
                return -1;
        *open = true;
        return em_zblock_add(e, vaddr, &h, page, err);
}

/* First pass over an image file: its pages that would go whole go as
 * ZBLOCKs first, so that the file itself then references them. */
static int prescan_file(struct em_delta_enc *e, int fd, const char *name, uint8_t *buf,
                        em_error_t *err)
{
        bool open = false;
        uint64_t idx = 0;
        int rc = 0;

        e->in_prefill = true;
        for (;;) {
                ssize_t n = em_read_all(fd, buf, 256 * EM_PAGE_SIZE, err);
                if (n < 0) {
                        rc = em_error_wrap(err, "reading %s", name);
                        break;
                }
                for (ssize_t off = 0; off < n && rc == 0; off += EM_PAGE_SIZE)
                        rc = prescan_page(e, idx++, buf + off, &open, err);
                if (rc < 0 || n < 256 * EM_PAGE_SIZE)
                        break;
        }
        e->in_prefill = false;
        if (rc == 0 && open &&
            (em_zblock_flush(e, err) < 0 ||
             em_delta_enc_put_op(e, EM_OP_END_PREFILL, NULL, 0, NULL, 0, err) < 0))
                rc = -1;
        if (rc == 0 && lseek(fd, 0, SEEK_SET) < 0)
                rc = em_error_set(err, errno, "rewinding %s", name);
        return rc;
}

int em_delta_encode_file(struct em_delta_enc *e, int dirfd, const char *name,
                         char digest_out[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        cleanup_sha256 em_sha256_t *sha = em_sha256_new();
        cleanup_free uint8_t *buf = malloc(256 * EM_PAGE_SIZE);
        char digest[EM_DIGEST_STR_LEN + 1];
        struct stat st;
        uint64_t idx = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", name);
        if (sha == NULL || buf == NULL)
                return em_error_set(err, ENOMEM, "encoding %s", name);
        if (st.st_size % EM_PAGE_SIZE != 0)
                return em_error_set(err, EBADMSG, "%s is not a whole number of pages", name);
        if (e->prescan && e->shadow != NULL && e->pagemap != NULL && em_shadow_usable(e->shadow) &&
            prescan_file(e, fd, name, buf, err) < 0)
                return -1;
        if (begin_file(e, name, (uint64_t)st.st_size / EM_PAGE_SIZE, err) < 0)
                return -1;
        for (;;) {
                ssize_t n = em_read_all(fd, buf, 256 * EM_PAGE_SIZE, err);
                if (n < 0)
                        return em_error_wrap(err, "reading %s", name);
                if (n % EM_PAGE_SIZE != 0)
                        return em_error_set(err, EIO, "%s changed while encoding", name);
                for (ssize_t off = 0; off < n; off += EM_PAGE_SIZE, idx++)
                        if (file_page(e, sha, idx, buf + off, err) < 0)
                                return -1;
                if (n < 256 * EM_PAGE_SIZE)
                        break;
        }
        if (flush_runs(e, err) < 0)
                return -1;
        em_pagelist_final(sha, digest);
        if (digest_out != NULL)
                memcpy(digest_out, digest, sizeof(digest));
        em_log_debug("%s: %" PRIu64 " pages: %" PRIu64 " zero, %" PRIu64 " known in %" PRIu64
                     " runs, %" PRIu64 " sent (%" PRIu64 " as XOR, %" PRIu64 " in ZBLOCKs)",
                     name, e->st.pages, e->st.zero, e->st.ref, e->st.ref_runs, e->st.data,
                     e->st.xdata, e->st.zdata);
        return em_delta_enc_put_op(e, EM_OP_END, digest, EM_DIGEST_STR_LEN, NULL, 0, err);
}

enum em_page_kind em_delta_page_kind(const em_hashset_t *known, const uint8_t *page, em_phash_t *h)
{
        if (em_page_is_zero(page))
                return EM_PAGE_ZERO;
        em_page_hash(page, h);
        return em_hashset_has(known, h) ? EM_PAGE_KNOWN : EM_PAGE_MISSING;
}

static int prefill_page(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        struct em_delta_enc *e = ctx;
        em_phash_t h;
        bool deferred = false;

        switch (em_delta_page_kind(e->known, page, &h)) {
        case EM_PAGE_ZERO:
                return 0;
        case EM_PAGE_MISSING:
                e->st.pages++;
                if (send_page(e, true, vaddr, &h, page, &deferred, err) < 0)
                        return -1;
                break;
        case EM_PAGE_KNOWN:
                break;
        }
        return deferred ? 0 : note_page(e, true, vaddr, &h, page, err);
}

/* pid as the container sees it (the last NSpid), which is how CRIU's
 * images name processes; pid itself if the kernel does not say. */
/* runs NULL: every page CRIU would dump; else only those of runs. */
static int encode_procmem(struct em_delta_enc *e, pid_t pid, const struct em_procmem_run *runs,
                          size_t nruns, struct em_procmem_stats *st, em_error_t *err)
{
        long vpid = em_proc_ns_pid(pid);

        e->vpid = vpid > 0 ? (uint32_t)vpid : (uint32_t)pid;
        if (em_delta_enc_put_op(e, EM_OP_PREFILL, NULL, 0, NULL, 0, err) < 0)
                return -1;
        e->in_prefill = true;
        int rc = runs ? em_procmem_read_runs(pid, runs, nruns, prefill_page, e, st, err)
                      : em_procmem_scan(pid, prefill_page, e, st, err);
        e->in_prefill = false;
        if (rc < 0) {
                /* A process that exits mid-scan (a container's short-lived
                 * child) has nothing more to prefill; what was read is valid. */
                if (em_error_status(*err) != ENOENT && em_error_status(*err) != ESRCH)
                        return -1;
                em_error_free(err);
        }
        if (em_zblock_flush(e, err) < 0)
                return -1;
        return em_delta_enc_put_op(e, EM_OP_END_PREFILL, NULL, 0, NULL, 0, err);
}

int em_delta_encode_procmem(struct em_delta_enc *e, pid_t pid, struct em_procmem_stats *st,
                            em_error_t *err)
{
        return encode_procmem(e, pid, NULL, 0, st, err);
}

int em_delta_encode_procmem_runs(struct em_delta_enc *e, pid_t pid,
                                 const struct em_procmem_run *runs, size_t n,
                                 struct em_procmem_stats *st, em_error_t *err)
{
        return encode_procmem(e, pid, runs, n, st, err);
}
