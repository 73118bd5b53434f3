#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "transfer/pswire.h"

/* CRIU's layout: u32 cmd, 4 bytes padding, then three u64. */
static void test_iov_layout(void **state)
{
        struct em_ps_iov pi = {.cmd = EM_PS_IOV_GET,
                               .nr_pages = 3,
                               .vaddr = 0x7f0000001000,
                               .dst_id = 42},
                         back;
        uint8_t b[EM_PS_IOV_LEN];
        uint64_t v;

        (void)state;
        em_ps_iov_pack(&pi, b);
        memcpy(&v, b + 16, 8);
        assert_int_equal(v, 0x7f0000001000);
        em_ps_iov_unpack(b, &back);
        assert_int_equal(back.cmd, EM_PS_IOV_GET);
        assert_int_equal(back.nr_pages, 3);
        assert_int_equal(back.dst_id, 42);
        em_ps_answer(&pi, 2, b);
        em_ps_iov_unpack(b, &back);
        assert_int_equal(back.cmd, EM_PS_IOV_ADD_F | (EM_PS_PE_PRESENT << 16));
        assert_int_equal(back.nr_pages, 2);
        assert_int_equal(back.vaddr, pi.vaddr);
        assert_int_equal(back.dst_id, 42);
}

static int check(uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t id)
{
        struct em_ps_iov pi = {cmd, nr, vaddr, id};
        em_error_t err = NULL;
        int rc = em_ps_request_check(&pi, &err);

        em_error_free(&err);
        return rc;
}

/* Whatever the daemon's socket carries, only well-formed GETs and closes
 * pass. */
static void test_request_hostile(void **state)
{
        (void)state;
        assert_int_equal(check(EM_PS_IOV_GET, 1, 0x1000, 1), EM_PS_IOV_GET);
        assert_int_equal(check(EM_PS_IOV_GET, EM_PS_MAX_PAGES, 0x1000, 1), EM_PS_IOV_GET);
        assert_int_equal(check(EM_PS_IOV_FORCE_CLOSE, 0, 0, 0), EM_PS_IOV_CLOSE);
        assert_int_equal(check(EM_PS_IOV_CLOSE, 0, 0, 0), EM_PS_IOV_CLOSE);
        assert_int_equal(check(EM_PS_IOV_ADD_F, 1, 0x1000, 1), -1);
        assert_int_equal(check(0xffffffffu, 1, 0x1000, 1), -1);
        assert_int_equal(check(EM_PS_IOV_GET, 0, 0x1000, 1), -1);
        assert_int_equal(check(EM_PS_IOV_GET, EM_PS_MAX_PAGES + 1, 0x1000, 1), -1);
        assert_int_equal(check(EM_PS_IOV_GET, UINT64_MAX, 0x1000, 1), -1);
        assert_int_equal(check(EM_PS_IOV_GET, 1, 0x1001, 1), -1);
        assert_int_equal(check(EM_PS_IOV_GET, 2, UINT64_MAX & ~0xfffull, 1), -1);
        assert_int_equal(check(EM_PS_IOV_GET, 1, 0x1000, 1ull << 32), -1);
}

static int parse(const uint8_t *b, size_t len, bool pages)
{
        struct em_lazy_chunk c;
        em_error_t err = NULL;
        int rc = em_lazy_chunk_parse(b, len, pages, &c, &err);

        em_error_free(&err);
        return rc;
}

static void test_chunk_hostile(void **state)
{
        static uint8_t b[EM_LAZY_HDR_LEN + 17 * 4096];
        struct em_lazy_chunk c;
        em_error_t err = NULL;

        (void)state;
        em_lazy_chunk_hdr(7, 2, 0x5000, b);
        assert_int_equal(em_lazy_chunk_parse(b, EM_LAZY_HDR_LEN + 2 * 4096, true, &c, &err), 0);
        assert_int_equal(c.pid, 7);
        assert_int_equal(c.nr_pages, 2);
        assert_int_equal(c.vaddr, 0x5000);
        assert_ptr_equal(c.pages, b + EM_LAZY_HDR_LEN);
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN, false), 0);
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN, true), -1);            /* pages missing */
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN + 4096, true), -1);     /* one short */
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN + 3 * 4096, true), -1); /* one too many */
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN + 1, false), -1);
        assert_int_equal(parse(b, 15, false), -1);
        assert_int_equal(parse(b, 0, false), -1);
        em_lazy_chunk_hdr(7, 0, 0x5000, b);
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN, false), -1);
        em_lazy_chunk_hdr(7, EM_LAZY_CHUNK_PAGES + 1, 0x5000, b);
        assert_int_equal(parse(b, sizeof(b), true), -1);
        em_lazy_chunk_hdr(7, 1, 0x5008, b);
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN, false), -1);
        em_lazy_chunk_hdr(7, 16, UINT64_MAX & ~0xfffull, b);
        assert_int_equal(parse(b, EM_LAZY_HDR_LEN, false), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_iov_layout),
            cmocka_unit_test(test_request_hostile),
            cmocka_unit_test(test_chunk_hostile),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
