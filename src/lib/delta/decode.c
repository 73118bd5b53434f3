#include "delta/decode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "delta/pagefmt.h"
#include "delta/pagelist.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"

enum { ST_IDLE = 0, ST_FILE, ST_PREFILL };
static const char *const op_names[] = {"?",       "BEGIN",       "ZERO",    "REF",   "DATA",  "END",
                                       "PREFILL", "END_PREFILL", "REF_RUN", "XDATA", "ZBLOCK"};

#define DEFAULT_MAX_PAGES (1ull << 24)

static const uint8_t zero_page[EM_PAGE_SIZE];

void em_delta_dec_init(struct em_delta_dec *d, em_pagecache_t *pc, int dirfd)
{
        memset(d, 0, sizeof(*d));
        d->pc = pc;
        d->dirfd = dirfd;
        d->max_pages = DEFAULT_MAX_PAGES;
        d->out_fd = -1;
}

static void close_file(struct em_delta_dec *d, bool keep)
{
        char part[EM_DELTA_NAME_MAX + 8];

        if (d->out_fd >= 0) {
                close(d->out_fd);
                d->out_fd = -1;
                if (!keep) {
                        snprintf(part, sizeof(part), ".%s.part", d->name);
                        unlinkat(d->dirfd, part, 0);
                }
        }
        em_sha256_free(&d->sha);
        d->state = ST_IDLE;
}

void em_delta_dec_free(struct em_delta_dec *d)
{
        close_file(d, false);
        ZSTD_freeDCtx(d->zstd);
        d->zstd = NULL;
}

/* Only CRIU page image names: nothing else can ever be written. */
static bool name_ok(const char *n)
{
        size_t digits;

        if (strncmp(n, "pages-", 6) != 0)
                return false;
        digits = strspn(n + 6, "0123456789");
        return digits >= 1 && digits <= 10 && strcmp(n + 6 + digits, ".img") == 0;
}

static int op_begin(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        size_t nl;
        char part[EM_DELTA_NAME_MAX + 8];

        nl = em_le_get(p, 2);
        memcpy(d->name, p + 2, nl);
        d->name[nl] = '\0';
        if (!name_ok(d->name))
                return em_error_set_code(
                    err, EPROTO, "page delta: refusing to write '%s' (not pages-N.img)", d->name);
        d->nr_pages = em_le_get(p + 2 + nl, 8);
        if (d->nr_pages > d->max_pages)
                return em_error_set_code(err, EFBIG,
                                         "page delta: %s of %" PRIu64 " pages is above the limit",
                                         d->name, d->nr_pages);
        d->done = 0;
        d->sha = em_sha256_new();
        if (d->sha == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        d->state = ST_FILE;
        if (d->dirfd >= 0) {
                snprintf(part, sizeof(part), ".%s.part", d->name);
                d->out_fd = openat(d->dirfd, part,
                                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (d->out_fd < 0)
                        return em_error_set(err, errno, "creating %s", part);
        }
        return (int)(2 + nl + 8);
}

/* One page into the file and its digest (delta/pagelist.h): h is the hash
 * of these bytes, computed here (NULL) or by the caller from them. */
static int out_page(struct em_delta_dec *d, const uint8_t *page, bool zero, const em_phash_t *h,
                    em_error_t *err)
{
        em_phash_t mine;

        if (d->done >= d->nr_pages)
                return em_error_set_code(
                    err, EPROTO, "page delta: more pages than the %" PRIu64 " announced for %s",
                    d->nr_pages, d->name);
        if (h == NULL) {
                em_page_hash(page, &mine);
                h = &mine;
        }
        em_pagelist_add(d->sha, h);
        if (d->out_fd >= 0) {
                /* Zero pages become holes; the final ftruncate sets the size. */
                if (zero && lseek(d->out_fd, EM_PAGE_SIZE, SEEK_CUR) < 0)
                        return em_error_set(err, errno, "writing %s", d->name);
                if (!zero && em_write_all(d->out_fd, page, EM_PAGE_SIZE, err) < 0)
                        return em_error_wrap(err, "writing %s", d->name);
        }
        d->done++;
        d->st.pages++;
        return 0;
}

/* "pglist:" and 64 lowercase hex digits: shown as the peer sent it. */
static bool digest_shape_ok(const char *d)
{
        size_t pl = strlen(EM_PAGELIST_PREFIX);

        if (strncmp(d, EM_PAGELIST_PREFIX, pl) != 0 || strlen(d) != pl + EM_SHA256_HEX_LEN)
                return false;
        return strspn(d + pl, "0123456789abcdef") == EM_SHA256_HEX_LEN;
}

static int op_end(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        char want[EM_DIGEST_STR_LEN + 1], got[EM_DIGEST_STR_LEN + 1], part[EM_DELTA_NAME_MAX + 8];

        memcpy(want, p, EM_DIGEST_STR_LEN);
        want[EM_DIGEST_STR_LEN] = '\0';
        if (d->done != d->nr_pages)
                return em_error_set_code(
                    err, EPROTO, "page delta: %s ended after %" PRIu64 " of %" PRIu64 " pages",
                    d->name, d->done, d->nr_pages);
        em_pagelist_final(d->sha, got);
        if (strcmp(want, got) != 0)
                return em_error_set_code(
                    err, EILSEQ, "rebuilt %s does not match the source: %s, want %.80s", d->name,
                    got, digest_shape_ok(want) ? want : "(malformed digest)");
        /* No fsync: a rebuilt image only feeds the restore that follows; until
         * the commit the source keeps its own copy. */
        if (d->out_fd >= 0) {
                snprintf(part, sizeof(part), ".%s.part", d->name);
                if (ftruncate(d->out_fd, (off_t)(d->nr_pages * EM_PAGE_SIZE)) < 0 ||
                    renameat(d->dirfd, part, d->dirfd, d->name) < 0)
                        return em_error_set(err, errno, "finishing %s", d->name);
        }
        if (d->on_file != NULL)
                d->on_file(d->on_file_ud, d->name, got);
        close_file(d, true);
        return EM_DIGEST_STR_LEN;
}

static int op_ref(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;
        char hex[33];

        memcpy(h.b, p, 16);
        if (!em_pagecache_has(d->pc, &h)) {
                em_phash_hex(&h, hex);
                return em_error_set_code(
                    err, ENOENT, "page delta references page %s, which the target does not have",
                    hex);
        }
        if (em_pagecache_get(d->pc, &h, page, err) < 0 || out_page(d, page, false, NULL, err) < 0)
                return -1;
        d->st.ref++;
        return 16;
}

#define RUN_BATCH 256 /* pages read from the cache and written at once */

/* n pages of a REF_RUN into the file: each page's hash of the bytes read
 * into the digest, and one write for the batch (a 90 MB image is 23,000
 * pages: per-page writes were 23,000 system calls inside the downtime). */
static int out_run(struct em_delta_dec *d, const uint8_t *pages, uint64_t n, em_error_t *err)
{
        em_pagelist_add_pages(d->sha, pages, n);
        if (d->out_fd >= 0 && em_write_all(d->out_fd, pages, n * EM_PAGE_SIZE, err) < 0)
                return em_error_wrap(err, "writing %s", d->name);
        d->done += n;
        d->st.pages += n;
        return 0;
}

/* Cached pages by position. They are read without re-hashing each page
 * (em_pagecache_read_run), which is sound because:
 * - every page of the cache file was hashed by this target when it arrived
 *   (em_pagecache_put hashes the bytes it stores; a peer never names a
 *   page's hash for it), and the cache is this peer's own (its directory
 *   is per container and peer), so a REF_RUN can only name pages this
 *   peer sent; em_pagecache_check_run first holds the run to the sender's
 *   view of those positions;
 * - what the re-hash caught, a cache file changed on this host's disk
 *   since, the file's digest at END catches as well: every page written
 *   here is hashed from the bytes read (out_run) into that digest
 *   (delta/pagelist.h), which is compared with the digest of the file the
 *   source's CRIU wrote before anything is renamed into place, and a peer
 *   cannot know this disk's corruption to forge a digest for it.
 * XDATA and ZBLOCK still re-verify their base pages: what they derive
 * enters the cache under a hash computed here, so a corrupted base would
 * otherwise be laundered into a "verified" page. */
static int op_ref_run(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        cleanup_free uint8_t *pages = NULL;
        uint64_t first, n, check;

        n = em_le_get(p + 8, 4);
        first = em_le_get(p, 8);
        check = em_le_get(p + 12, 8);
        if (n > d->nr_pages - d->done)
                return em_error_set_code(err, EPROTO,
                                         "page delta: run of %" PRIu64 " cached pages overruns %s",
                                         n, d->name);
        /* The check covers the whole run: verify it before writing any page. */
        if (em_pagecache_check_run(d->pc, first, n, check, err) < 0)
                return -1;
        if ((pages = malloc(RUN_BATCH * EM_PAGE_SIZE)) == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        for (uint64_t i = 0; i < n; i += RUN_BATCH) {
                uint64_t k = n - i < RUN_BATCH ? n - i : RUN_BATCH;
                if (em_pagecache_read_run(d->pc, first + i, k, pages, err) < 0 ||
                    out_run(d, pages, k, err) < 0)
                        return -1;
        }
        d->st.ref += n;
        return 20;
}

static int op_zero(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint32_t n;

        n = (uint32_t)em_le_get(p, 4);
        if (n > d->nr_pages - d->done)
                return em_error_set_code(
                    err, EPROTO, "page delta: zero run of %u pages overruns %s", n, d->name);
        for (uint32_t i = 0; i < n; i++)
                if (out_page(d, zero_page, true, em_page_zero_hash(), err) < 0)
                        return -1;
        d->st.zero += n;
        return 4;
}

/* A file being rebuilt takes no more pages than BEGIN announced. */
static int room_for_page(struct em_delta_dec *d, em_error_t *err)
{
        if (d->state == ST_FILE && d->done >= d->nr_pages)
                return em_error_set_code(err, EPROTO,
                                         "page delta: more pages than announced for %s", d->name);
        return 0;
}

/* A page that arrived (DATA, XDATA): into the cache, and into the file
 * being rebuilt if there is one. */
static int take_page(struct em_delta_dec *d, const uint8_t *page, em_error_t *err)
{
        em_phash_t h;

        if (em_pagecache_put(d->pc, page, &h, err) < 0)
                return -1;
        if (d->state == ST_FILE && out_page(d, page, false, &h, err) < 0)
                return -1;
        if (d->state == ST_PREFILL)
                d->st.pages++;
        d->st.data++;
        return 0;
}

static int op_data(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        if (room_for_page(d, err) < 0 || take_page(d, p, err) < 0)
                return -1;
        return EM_PAGE_SIZE;
}

static int op_xdata(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint8_t page[EM_PAGE_SIZE];
        uint64_t *x = (uint64_t *)page;

        if (room_for_page(d, err) < 0)
                return -1;
        uint64_t pos = em_le_get(p, 8), check = em_le_get(p + 8, 8);
        if (em_pagecache_check_run(d->pc, pos, 1, check, err) < 0 ||
            em_pagecache_get_run(d->pc, pos, 1, page, err) < 0)
                return em_error_wrap(err, "page delta: XDATA base");
        for (size_t i = 0; i < EM_PAGE_SIZE / 8; i++) {
                uint64_t w;
                memcpy(&w, p + 16 + i * 8, 8);
                x[i] ^= w;
        }
        if (take_page(d, page, err) < 0)
                return -1;
        d->st.xdata++;
        return 16 + EM_PAGE_SIZE;
}

/* The reference pages of a ZBLOCK, read from the cache and checked. */
static int zblock_reference_in(struct em_delta_dec *d, const uint8_t *p, uint32_t nref,
                               uint64_t check, uint8_t *ref, em_error_t *err)
{
        uint64_t got = 0;

        for (uint32_t i = 0; i < nref; i++) {
                uint64_t pos = em_le_get(p + (size_t)i * 8, 8);
                em_phash_t h;
                if (!em_pagecache_hash_at(d->pc, pos, &h))
                        return em_error_set_code(err, ENOENT,
                                                 "page delta: ZBLOCK references page %" PRIu64
                                                 ", beyond the cache",
                                                 pos);
                if (em_pagecache_get_run(d->pc, pos, 1, ref + (size_t)i * EM_PAGE_SIZE, err) < 0)
                        return -1;
                got ^= em_phash_word(&h);
        }
        if (got != check)
                return em_error_set_code(err, EILSEQ,
                                         "page delta: ZBLOCK reference is out of step with the "
                                         "sender's view of the cache");
        return 0;
}

static int zblock_decompress(struct em_delta_dec *d, const uint8_t *ref, size_t reflen,
                             const uint8_t *src, size_t len, uint8_t *out, size_t outlen,
                             em_error_t *err)
{
        size_t r;

        if (d->zstd == NULL && (d->zstd = ZSTD_createDCtx()) == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_and_parameters);
        if (ZSTD_isError(ZSTD_DCtx_setParameter(d->zstd, ZSTD_d_windowLogMax, 24)) ||
            ZSTD_isError(ZSTD_DCtx_refPrefix(d->zstd, ref, reflen)))
                return em_error_set(err, ENOMEM, "page delta: ZBLOCK decoder");
        r = ZSTD_decompressDCtx(d->zstd, out, outlen, src, len);
        if (ZSTD_isError(r) || r != outlen)
                return em_error_set_code(err, EPROTO, "page delta: corrupt ZBLOCK (%s)",
                                         ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
        return 0;
}

static int op_zblock(struct em_delta_dec *d, const uint8_t *p, size_t left, em_error_t *err)
{
        uint32_t nref = (uint32_t)em_le_get(p, 4);
        size_t at = 12 + (size_t)nref * 8;
        uint32_t npages = (uint32_t)em_le_get(p + at, 4), len = (uint32_t)em_le_get(p + at + 12, 4);
        uint64_t check = em_le_get(p + at + 4, 8), got = 0;

        cleanup_free uint8_t *ref = malloc((size_t)nref * EM_PAGE_SIZE);
        cleanup_free uint8_t *out = malloc((size_t)npages * EM_PAGE_SIZE);
        if (ref == NULL || out == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        if (zblock_reference_in(d, p + 12, nref, em_le_get(p + 4, 8), ref, err) < 0 ||
            zblock_decompress(d, ref, (size_t)nref * EM_PAGE_SIZE, p + at + 16, len, out,
                              (size_t)npages * EM_PAGE_SIZE, err) < 0)
                return -1;
        /* Checked before any page enters the cache: a block that fails
         * leaves nothing behind. */
        for (uint32_t i = 0; i < npages; i++) {
                em_phash_t h;
                em_page_hash(out + (size_t)i * EM_PAGE_SIZE, &h);
                got ^= em_phash_word(&h);
        }
        if (got != check)
                return em_error_set_code(err, EILSEQ, "page delta: ZBLOCK pages fail their check");
        for (uint32_t i = 0; i < npages; i++) {
                em_phash_t h;
                if (em_pagecache_put(d->pc, out + (size_t)i * EM_PAGE_SIZE, &h, err) < 0)
                        return -1;
        }
        d->st.pages += npages;
        d->st.data += npages;
        d->st.zdata += npages;
        return (int)(at + 16 + len);
}

/* The wire layout of the ops: the length of op's arguments at p (left
 * bytes there), or -1 if they are truncated, empty or oversized. The one
 * reading of it, shared by the decoder and em_delta_ops_json. */
static int zblock_len(const uint8_t *p, size_t left, em_error_t *err)
{
        uint32_t nref = left >= 12 ? (uint32_t)em_le_get(p, 4) : 0, npages, len;
        size_t at = 12 + (size_t)nref * 8;

        if (nref == 0 || nref > EM_ZB_MAX_REF || left < at + 16)
                return em_error_set_code(err, EPROTO, "page delta: truncated or oversized ZBLOCK");
        npages = (uint32_t)em_le_get(p + at, 4);
        len = (uint32_t)em_le_get(p + at + 12, 4);
        if (npages == 0 || npages > EM_ZB_MAX_PAGES || left - at - 16 < len)
                return em_error_set_code(err, EPROTO, "page delta: truncated or oversized ZBLOCK");
        return (int)(at + 16 + len);
}

static int op_arg_len(uint8_t op, const uint8_t *p, size_t left, em_error_t *err)
{
        switch (op) {
        case EM_OP_BEGIN: {
                size_t nl = left >= 2 ? em_le_get(p, 2) : 0;
                if (left < 2 || nl > EM_DELTA_NAME_MAX || left < 2 + nl + 8)
                        return em_error_set_code(err, EPROTO,
                                                 "page delta: truncated or oversized BEGIN");
                return (int)(2 + nl + 8);
        }
        case EM_OP_PREFILL:
        case EM_OP_END_PREFILL:
                return 0;
        case EM_OP_ZERO:
                if (left < 4 || em_le_get(p, 4) == 0)
                        return em_error_set_code(err, EPROTO,
                                                 "page delta: truncated or empty ZERO run");
                return 4;
        case EM_OP_REF:
                return left < 16 ? em_error_set_code(err, EPROTO, "page delta: truncated REF") : 16;
        case EM_OP_REF_RUN:
                if (left < 20 || em_le_get(p + 8, 4) == 0)
                        return em_error_set_code(err, EPROTO,
                                                 "page delta: truncated or empty REF_RUN");
                return 20;
        case EM_OP_DATA:
                return left < EM_PAGE_SIZE
                           ? em_error_set_code(err, EPROTO, "page delta: truncated DATA")
                           : (int)EM_PAGE_SIZE;
        case EM_OP_XDATA:
                return left < 16 + EM_PAGE_SIZE
                           ? em_error_set_code(err, EPROTO, "page delta: truncated XDATA")
                           : (int)(16 + EM_PAGE_SIZE);
        case EM_OP_ZBLOCK:
                return zblock_len(p, left, err);
        case EM_OP_END:
                return left < EM_DIGEST_STR_LEN
                           ? em_error_set_code(err, EPROTO, "page delta: truncated END")
                           : EM_DIGEST_STR_LEN;
        default:
                return em_error_set_code(err, EPROTO, "page delta: unknown op 0x%02x", op);
        }
}

/* Whether op may come in the decoder's state (a BEGIN inside a section,
 * a REF outside a file, ...). */
static int state_check(const struct em_delta_dec *d, uint8_t op, em_error_t *err)
{
        bool in_file = d->state == ST_FILE, idle = d->state == ST_IDLE, ok;
        const char *where;

        switch (op) {
        case EM_OP_BEGIN:
        case EM_OP_PREFILL:
                ok = idle, where = "inside a section";
                break;
        case EM_OP_END_PREFILL:
                ok = d->state == ST_PREFILL, where = "outside a prefill";
                break;
        case EM_OP_DATA:
        case EM_OP_XDATA:
                ok = !idle, where = "outside a section";
                break;
        case EM_OP_ZBLOCK:
                ok = d->state == ST_PREFILL, where = "outside a prefill";
                break;
        case EM_OP_ZERO:
        case EM_OP_REF:
        case EM_OP_REF_RUN:
        case EM_OP_END:
                ok = in_file, where = "outside a file";
                break;
        default:
                return 0; /* unknown: op_arg_len says so */
        }
        return ok ? 0 : em_error_set_code(err, EPROTO, "page delta: %s %s", op_names[op], where);
}

/* Decodes one op; returns its argument length or -1. */
static int dec_op(struct em_delta_dec *d, uint8_t op, const uint8_t *p, size_t left,
                  em_error_t *err)
{
        if (state_check(d, op, err) < 0 || op_arg_len(op, p, left, err) < 0)
                return -1;
        switch (op) {
        case EM_OP_BEGIN:
                return op_begin(d, p, left, err);
        case EM_OP_PREFILL:
                d->state = ST_PREFILL;
                d->name[0] = '\0';
                return 0;
        case EM_OP_END_PREFILL:
                d->state = ST_IDLE;
                return 0;
        case EM_OP_DATA:
                return op_data(d, p, left, err);
        case EM_OP_XDATA:
                return op_xdata(d, p, left, err);
        case EM_OP_ZBLOCK:
                return op_zblock(d, p, left, err);
        case EM_OP_ZERO:
                return op_zero(d, p, left, err);
        case EM_OP_REF:
                return op_ref(d, p, left, err);
        case EM_OP_REF_RUN:
                return op_ref_run(d, p, left, err);
        default:
                return op_end(d, p, left, err);
        }
}

int em_delta_dec_feed(struct em_delta_dec *d, const uint8_t *buf, size_t len, em_error_t *err)
{
        size_t pos = 0;

        while (pos < len) {
                int n = dec_op(d, buf[pos], buf + pos + 1, len - pos - 1, err);
                if (n < 0) {
                        close_file(d, false);
                        return -1;
                }
                pos += 1 + (size_t)n;
        }
        d->st.bytes += len;
        return 0;
}

/* ---- describing a delta stream (edgemig debug decode) ---- */

static json_t *hash_json(const uint8_t *b)
{
        em_phash_t h;
        char hex[33];

        memcpy(h.b, b, 16);
        em_phash_hex(&h, hex);
        return json_string(hex);
}

static json_t *describe_op(uint8_t op, const uint8_t *p, int n)
{
        json_t *o = json_pack("{s:s, s:I}", "op", op_names[op], "bytes", (json_int_t)n + 1);
        em_phash_t h;
        size_t at;

        switch (op) {
        case EM_OP_BEGIN:
                json_object_set_new(o, "name", json_stringn((const char *)p + 2, em_le_get(p, 2)));
                json_object_set_new(
                    o, "nr_pages", json_integer((json_int_t)em_le_get(p + 2 + em_le_get(p, 2), 8)));
                break;
        case EM_OP_ZERO:
                json_object_set_new(o, "count", json_integer((json_int_t)em_le_get(p, 4)));
                break;
        case EM_OP_REF:
                json_object_set_new(o, "hash", hash_json(p));
                break;
        case EM_OP_DATA:
                em_page_hash(p, &h);
                json_object_set_new(o, "hash", hash_json(h.b));
                break;
        case EM_OP_END:
                json_object_set_new(o, "sha256", json_stringn((const char *)p, EM_DIGEST_STR_LEN));
                break;
        case EM_OP_REF_RUN:
                json_object_set_new(o, "first", json_integer((json_int_t)em_le_get(p, 8)));
                json_object_set_new(o, "count", json_integer((json_int_t)em_le_get(p + 8, 4)));
                break;
        case EM_OP_XDATA:
                json_object_set_new(o, "position", json_integer((json_int_t)em_le_get(p, 8)));
                break;
        case EM_OP_ZBLOCK:
                at = 12 + (size_t)em_le_get(p, 4) * 8;
                json_object_set_new(o, "references", json_integer((json_int_t)em_le_get(p, 4)));
                json_object_set_new(o, "pages", json_integer((json_int_t)em_le_get(p + at, 4)));
                json_object_set_new(o, "compressed",
                                    json_integer((json_int_t)em_le_get(p + at + 12, 4)));
                break;
        default:
                break;
        }
        return o;
}

int em_delta_ops_json(const uint8_t *buf, size_t len, json_t *ops, em_error_t *err)
{
        for (size_t pos = 0; pos < len;) {
                int n = op_arg_len(buf[pos], buf + pos + 1, len - pos - 1, err);
                if (n < 0)
                        return em_error_wrap(err, "at byte %zu", pos);
                json_t *o = describe_op(buf[pos], buf + pos + 1, n);
                if (o == NULL || json_array_append_new(ops, o) < 0)
                        return em_error_set(err, ENOMEM, "describing a page delta");
                pos += 1 + (size_t)n;
        }
        return 0;
}

int em_delta_dec_finish(struct em_delta_dec *d, em_error_t *err)
{
        if (d->state == ST_IDLE) /* the pages, for the lazy restore's own opener */
                return d->pc != NULL ? em_pagecache_flush(d->pc, err) : 0;
        close_file(d, false);
        return em_error_set_code(err, EPROTO, "page delta ended inside %s",
                                 d->name[0] ? d->name : "a prefill section");
}
