#include "delta/xorblock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "delta/pagefmt.h"
#include "delta/shadow.h"
#include "util/cleanup.h"
#include "util/log.h"

/* An XOR with fewer zero bytes than this is no better than the page. */
#define XOR_MIN_ZERO_WORDS (EM_PAGE_SIZE / 8 / 2)

int em_xor_delta(struct em_delta_enc *e, uint64_t vaddr, const uint8_t *page,
                 uint8_t arg[16 + EM_PAGE_SIZE])
{
        uint64_t *x = (uint64_t *)(arg + 16);
        const uint64_t *p = (const uint64_t *)page;
        em_phash_t old;
        uint64_t pos;
        size_t zeros = 0;
        em_error_t e2 = NULL;

        if (!em_shadow_hash(e->shadow, e->vpid, vaddr, &old) ||
            !em_hashset_position(e->known, &old, &pos))
                return 0;
        if (em_shadow_read(e->shadow, e->vpid, vaddr, &old, arg + 16, &e2) < 0) {
                em_log_debug("sending page %#" PRIx64 " whole: %s", vaddr, em_error_msg(e2));
                em_error_free(&e2);
                return 0;
        }
        for (size_t i = 0; i < EM_PAGE_SIZE / 8; i++) {
                x[i] ^= p[i];
                zeros += x[i] == 0;
        }
        em_le_put(arg, pos, 8);
        em_le_put(arg + 8, em_phash_word(&old), 8);
        return zeros < XOR_MIN_ZERO_WORDS ? 2 : 1;
}

int em_xor_put(struct em_delta_enc *e, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        uint8_t arg[16 + EM_PAGE_SIZE];
        int r = em_xor_delta(e, vaddr, page, arg);

        if (r != 1)
                return r;
        e->st.xdata++;
        return em_delta_enc_put_op(e, EM_OP_XDATA, arg, sizeof(arg), NULL, 0, err) < 0 ? -1 : 1;
}

/* Pages too different from their address's old content are gathered (in
 * address order) and compressed against the old content around them, which
 * often holds the same data elsewhere: a buffer rewritten with what moved. */
#define ZB_SPAN   (2ull << 20) /* a block's pages lie within 2 MiB */
#define ZB_MARGIN (4ull << 20) /* reference: 4 MiB either side of them */
#define ZB_LEVEL  3

struct em_zblock {
        uint8_t pages[EM_ZB_MAX_PAGES][EM_PAGE_SIZE];
        uint64_t vaddr[EM_ZB_MAX_PAGES];
        em_phash_t h[EM_ZB_MAX_PAGES];
        size_t n;
        uint32_t vpid;
        uint8_t ref[EM_ZB_MAX_REF][EM_PAGE_SIZE];
        uint8_t hdr[4 + 8 + EM_ZB_MAX_REF * 8 + 4 + 8 + 4];
        ZSTD_CCtx *cctx;
};

void em_zblock_free(struct em_zblock **zb)
{
        if (*zb == NULL)
                return;
        ZSTD_freeCCtx((*zb)->cctx);
        free(*zb);
        *zb = NULL;
}

/* The receiver's pages around the block's addresses, as the shadow says
 * it holds them: fills zb->ref and the positions into hdr; returns count. */
static size_t zblock_reference(struct em_delta_enc *e, struct em_zblock *zb, uint64_t *check)
{
        uint64_t lo = zb->vaddr[0] > ZB_MARGIN ? zb->vaddr[0] - ZB_MARGIN : 0;
        uint64_t hi = zb->vaddr[zb->n - 1] + ZB_MARGIN;
        size_t n = 0;
        em_error_t e2 = NULL;

        *check = 0;
        for (uint64_t va = lo; va < hi && n < EM_ZB_MAX_REF; va += EM_PAGE_SIZE) {
                em_phash_t h;
                uint64_t pos;
                if (!em_shadow_hash(e->shadow, zb->vpid, va, &h) ||
                    !em_hashset_position(e->known, &h, &pos))
                        continue;
                if (em_shadow_read(e->shadow, zb->vpid, va, &h, zb->ref[n], &e2) < 0) {
                        em_error_free(&e2);
                        continue;
                }
                em_le_put(zb->hdr + 12 + n * 8, pos, 8);
                *check ^= em_phash_word(&h);
                n++;
        }
        return n;
}

/* Compresses the pages against ref (nref pages) into out; 0 if it failed. */
static size_t zblock_compress(struct em_zblock *zb, size_t nref, uint8_t *out, size_t cap)
{
        size_t src = zb->n * EM_PAGE_SIZE, span = nref * EM_PAGE_SIZE + src, r;
        int wlog = 10;

        while (((size_t)1 << wlog) < span)
                wlog++;
        if (zb->cctx == NULL && (zb->cctx = ZSTD_createCCtx()) == NULL)
                return 0;
        ZSTD_CCtx_reset(zb->cctx, ZSTD_reset_session_and_parameters);
        if (ZSTD_isError(ZSTD_CCtx_setParameter(zb->cctx, ZSTD_c_compressionLevel, ZB_LEVEL)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(zb->cctx, ZSTD_c_windowLog, wlog)) ||
            ZSTD_isError(ZSTD_CCtx_refPrefix(zb->cctx, zb->ref, nref * EM_PAGE_SIZE)))
                return 0;
        r = ZSTD_compress2(zb->cctx, out, cap, zb->pages, src);
        return ZSTD_isError(r) ? 0 : r;
}

int em_zblock_flush(struct em_delta_enc *e, em_error_t *err)
{
        struct em_zblock *zb = e->zb;
        size_t nref, len = 0, hl;
        uint64_t ref_check, check = 0;
        cleanup_free uint8_t *out = NULL;

        if (zb == NULL || zb->n == 0)
                return 0;
        nref = zblock_reference(e, zb, &ref_check);
        hl = 4 + 8 + nref * 8 + 4 + 8 + 4;
        size_t cap = ZSTD_compressBound(zb->n * EM_PAGE_SIZE);
        if (nref > 0 && hl + cap + 1 <= e->chunk && (out = malloc(cap)) != NULL)
                len = zblock_compress(zb, nref, out, cap);
        for (size_t i = 0; i < zb->n; i++)
                check ^= em_phash_word(&zb->h[i]);
        if (len > 0) {
                em_le_put(zb->hdr, nref, 4);
                em_le_put(zb->hdr + 4, ref_check, 8);
                em_le_put(zb->hdr + 12 + nref * 8, zb->n, 4);
                em_le_put(zb->hdr + 16 + nref * 8, check, 8);
                em_le_put(zb->hdr + 24 + nref * 8, len, 4);
                if (em_delta_enc_put_op(e, EM_OP_ZBLOCK, zb->hdr, hl, out, len, err) < 0)
                        return -1;
                e->st.zdata += zb->n;
        }
        for (size_t i = 0; i < zb->n; i++) {
                /* Positions count every add: a page the receiver already
                 * has (a duplicate) is neither sent nor added again. */
                if (!em_hashset_has(e->known, &zb->h[i])) {
                        e->st.data++;
                        if ((len == 0 && em_delta_enc_put_op(e, EM_OP_DATA, zb->pages[i],
                                                             EM_PAGE_SIZE, NULL, 0, err) < 0) ||
                            em_hashset_add(e->known, &zb->h[i], err) < 0)
                                return -1;
                }
                if (em_shadow_record(e->shadow, zb->vpid, zb->vaddr[i], &zb->h[i], zb->pages[i],
                                     err) < 0)
                        return -1;
        }
        zb->n = 0;
        return 0;
}

int em_zblock_add(struct em_delta_enc *e, uint64_t vaddr, const em_phash_t *h, const uint8_t *page,
                  em_error_t *err)
{
        struct em_zblock *zb = e->zb;

        if (zb == NULL && (zb = e->zb = calloc(1, sizeof(*zb))) == NULL)
                return em_error_set(err, ENOMEM, "page delta");
        if (zb->n > 0 &&
            (zb->n == EM_ZB_MAX_PAGES || zb->vpid != e->vpid || vaddr - zb->vaddr[0] >= ZB_SPAN) &&
            em_zblock_flush(e, err) < 0)
                return -1;
        zb->vpid = e->vpid;
        zb->vaddr[zb->n] = vaddr;
        zb->h[zb->n] = *h;
        memcpy(zb->pages[zb->n++], page, EM_PAGE_SIZE);
        return 0;
}
