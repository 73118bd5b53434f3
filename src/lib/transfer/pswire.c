/* Post-copy page wire formats; see pswire.h. */
#include "transfer/pswire.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define PAGE 4096u

void em_ps_iov_pack(const struct em_ps_iov *pi, uint8_t out[EM_PS_IOV_LEN])
{
        memset(out, 0, EM_PS_IOV_LEN);
        memcpy(out, &pi->cmd, 4);
        memcpy(out + 8, &pi->nr_pages, 8);
        memcpy(out + 16, &pi->vaddr, 8);
        memcpy(out + 24, &pi->dst_id, 8);
}

void em_ps_iov_unpack(const uint8_t in[EM_PS_IOV_LEN], struct em_ps_iov *pi)
{
        memcpy(&pi->cmd, in, 4);
        memcpy(&pi->nr_pages, in + 8, 8);
        memcpy(&pi->vaddr, in + 16, 8);
        memcpy(&pi->dst_id, in + 24, 8);
}

/* nr pages from vaddr stay below 2^64 and in the user half of 64 bits. */
static bool range_ok(uint64_t vaddr, uint64_t nr)
{
        return vaddr % PAGE == 0 && vaddr < (1ull << 56) && nr <= (1ull << 44) &&
               vaddr + nr * PAGE <= (1ull << 56);
}

int em_ps_request_check(const struct em_ps_iov *pi, em_error_t *err)
{
        uint32_t cmd = pi->cmd & ((1u << EM_PS_CMD_BITS) - 1);

        if (pi->cmd == EM_PS_IOV_CLOSE || pi->cmd == EM_PS_IOV_FORCE_CLOSE)
                return EM_PS_IOV_CLOSE;
        if (cmd != EM_PS_IOV_GET)
                return em_error_set(err, EPROTO, "lazy-pages daemon: unexpected command 0x%x",
                                    (unsigned)pi->cmd);
        if (pi->nr_pages == 0 || pi->nr_pages > EM_PS_MAX_PAGES || pi->dst_id > UINT32_MAX ||
            !range_ok(pi->vaddr, pi->nr_pages))
                return em_error_set(
                    err, EPROTO, "lazy-pages daemon: bad request (%llu pages at 0x%llx, id %llu)",
                    (unsigned long long)pi->nr_pages, (unsigned long long)pi->vaddr,
                    (unsigned long long)pi->dst_id);
        return EM_PS_IOV_GET;
}

void em_ps_answer(const struct em_ps_iov *req, uint64_t nr, uint8_t out[EM_PS_IOV_LEN])
{
        struct em_ps_iov a = {
            .cmd = EM_PS_IOV_ADD_F | (EM_PS_PE_PRESENT << EM_PS_CMD_BITS),
            .nr_pages = nr,
            .vaddr = req->vaddr,
            .dst_id = req->dst_id,
        };

        em_ps_iov_pack(&a, out);
}

void em_lazy_chunk_hdr(uint32_t pid, uint32_t nr, uint64_t vaddr, uint8_t out[EM_LAZY_HDR_LEN])
{
        uint32_t p = htole32(pid), n = htole32(nr);
        uint64_t v = htole64(vaddr);

        memcpy(out, &p, 4);
        memcpy(out + 4, &n, 4);
        memcpy(out + 8, &v, 8);
}

int em_lazy_chunk_parse(const void *payload, size_t len, bool with_pages, struct em_lazy_chunk *c,
                        em_error_t *err)
{
        const uint8_t *b = payload;
        uint32_t p, n;
        uint64_t v;

        if (len < EM_LAZY_HDR_LEN)
                return em_error_set(err, EPROTO, "protocol error: lazy page chunk of %zu bytes",
                                    len);
        memcpy(&p, b, 4);
        memcpy(&n, b + 4, 4);
        memcpy(&v, b + 8, 8);
        *c = (struct em_lazy_chunk){le32toh(p), le32toh(n), le64toh(v), NULL};
        if (c->nr_pages == 0 || c->nr_pages > EM_LAZY_CHUNK_PAGES ||
            !range_ok(c->vaddr, c->nr_pages))
                return em_error_set(err, EPROTO,
                                    "protocol error: lazy page chunk of %u pages at 0x%llx",
                                    (unsigned)c->nr_pages, (unsigned long long)c->vaddr);
        if (len != EM_LAZY_HDR_LEN + (with_pages ? (size_t)c->nr_pages * PAGE : 0))
                return em_error_set(err, EPROTO,
                                    "protocol error: lazy page chunk of %zu bytes for %u pages",
                                    len, (unsigned)c->nr_pages);
        c->pages = with_pages ? b + EM_LAZY_HDR_LEN : NULL;
        return 0;
}
