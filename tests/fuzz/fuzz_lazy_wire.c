/* libFuzzer target: what a post-copy peer or CRIU's lazy-pages daemon can
 * put on the wire (docs/postcopy.md, "Background push and urgent faults"):
 * a page-server iov (em_ps_request_check), a page chunk or urgent request
 * (em_lazy_chunk_parse), and the lookup of the addresses they name in a
 * lazy set (em_lazy_set_find), whose ranges come from the input too. The
 * invariant: whatever is accepted lies inside the set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta/lazy_set.h"
#include "transfer/pswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Up to 8 ranges of {u32 pid, u64 vaddr, u16 pages} from the input. */
static em_lazy_set_t *set_from(const uint8_t **data, size_t *size)
{
        em_lazy_set_t *s = NULL;
        em_error_t err = NULL;
        unsigned n = *size ? (*data)[0] % 9 : 0;

        if (em_lazy_set_new(&s, &err) < 0)
                abort();
        (*data)++, (*size)--;
        for (unsigned i = 0; i < n && *size >= 14; i++, *data += 14, *size -= 14) {
                uint32_t pid;
                uint64_t vaddr;
                uint16_t nr;
                memcpy(&pid, *data, 4);
                memcpy(&vaddr, *data + 4, 8);
                memcpy(&nr, *data + 12, 2);
                em_lazy_set_add(s, pid % 4, vaddr & ~0xfffull, nr, &err);
                em_error_free(&err);
        }
        if (em_lazy_set_seal(s, &err) < 0)
                s->n = 0, s->pages = 0;
        em_error_free(&err);
        return s;
}

static void check_in_set(const em_lazy_set_t *s, uint32_t pid, uint64_t vaddr, uint64_t nr)
{
        uint64_t idx;

        if (!em_lazy_set_find(s, pid, vaddr, nr, &idx))
                return;
        const struct em_lazy_range *r = em_lazy_set_range(s, idx);
        if (idx + nr > s->pages || r == NULL || r->pid != pid ||
            em_lazy_set_range(s, idx + nr - 1) != r || r->vaddr + (idx - r->first) * 4096 != vaddr)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        em_lazy_set_t *s = set_from(&data, &size);
        em_error_t err = NULL;

        if (size >= EM_PS_IOV_LEN) {
                struct em_ps_iov pi;
                em_ps_iov_unpack(data, &pi);
                if (em_ps_request_check(&pi, &err) == EM_PS_IOV_GET)
                        check_in_set(s, (uint32_t)pi.dst_id, pi.vaddr, pi.nr_pages);
                em_error_free(&err);
        }
        for (int pages = 0; pages < 2; pages++) {
                struct em_lazy_chunk c;
                if (em_lazy_chunk_parse(data, size, pages, &c, &err) == 0) {
                        if (size != EM_LAZY_HDR_LEN + (pages ? c.nr_pages * 4096u : 0))
                                abort();
                        check_in_set(s, c.pid, c.vaddr, c.nr_pages);
                }
                em_error_free(&err);
        }
        em_lazy_set_free(&s);
        return 0;
}
