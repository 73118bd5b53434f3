#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/criu_img.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

/* A pagemap written by CRIU 4.2.1 (criu dump of a python3 process). */
#define REAL_PAGEMAP "tests/unit/data/criu-4.2.1-pagemap.img"

static void test_varint(void **state)
{
        uint8_t buf[10];
        uint64_t v;
        const uint64_t vals[] = {0, 1, 127, 128, 300, 0xffffffffull, UINT64_MAX};

        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
                size_t n = em_pb_put_varint(buf, vals[i]);
                assert_int_equal(em_pb_get_varint(buf, buf + n, &v), n);
                assert_true(v == vals[i]);
                /* Truncated: never reads past the end. */
                assert_int_equal(em_pb_get_varint(buf, buf + n - 1, &v), 0);
        }
        /* 11-byte and overflowing 10-byte varints are malformed. */
        memset(buf, 0xff, sizeof(buf));
        assert_int_equal(em_pb_get_varint(buf, buf + 10, &v), 0);
        buf[9] = 0x02;
        assert_int_equal(em_pb_get_varint(buf, buf + 10, &v), 0);
}

static void test_real_image_roundtrip(void **state)
{
        struct em_pagemap pm cleanup_pagemap = {0};
        cleanup_free char *raw = NULL;
        cleanup_free uint8_t *enc = NULL;
        size_t raw_len = 0, enc_len = 0;
        uint64_t present = 0, va;
        em_error_t err = NULL;

        assert_int_equal(em_read_file(REAL_PAGEMAP, 1 << 20, &raw, &raw_len, &err), 0);
        assert_int_equal(em_pagemap_parse((uint8_t *)raw, raw_len, &pm, &err), 0);
        assert_true(pm.n > 10);
        for (size_t i = 0; i < pm.n; i++) {
                assert_true(pm.e[i].has & EM_PME_HAS_NR_PAGES); /* CRIU 4 layout */
                if (pm.e[i].flags & EM_PE_PRESENT)
                        present += pm.e[i].nr_pages;
        }
        assert_true(present == pm.nr_present);
        /* The sample came with a pages-1.img of 25059328 bytes. */
        assert_int_equal(pm.pages_id, 1);
        assert_true(pm.nr_present * EM_PAGE_SIZE == 25059328);
        assert_int_equal(em_pagemap_encode(&pm, &enc, &enc_len, &err), 0);
        assert_int_equal(enc_len, raw_len);
        assert_memory_equal(enc, raw, raw_len);
        /* Page → vaddr mapping at the edges of the first and last entries. */
        assert_int_equal(em_pagemap_page_vaddr(&pm, 0, &va, &err), 0);
        assert_true(va == pm.e[0].vaddr);
        assert_int_equal(em_pagemap_page_vaddr(&pm, pm.nr_present - 1, &va, &err), 0);
        assert_true(va == pm.e[pm.n - 1].vaddr + (pm.e[pm.n - 1].nr_pages - 1) * EM_PAGE_SIZE);
        assert_int_equal(em_pagemap_page_vaddr(&pm, pm.nr_present, &va, &err), -1);
        em_error_free(&err);
}

static size_t rec(uint8_t *p, const uint8_t *body, size_t n)
{
        p[0] = (uint8_t)n;
        p[1] = p[2] = p[3] = 0;
        memcpy(p + 4, body, n);
        return 4 + n;
}

static size_t build(uint8_t *buf, const uint8_t *entry, size_t elen)
{
        static const uint8_t head[] = {0x08, 0x07};
        size_t n = 8;

        memcpy(buf, "\x19\x43\x56\x54\x25\x40\x08\x56", 8);
        n += rec(buf + n, head, sizeof(head));
        if (entry != NULL)
                n += rec(buf + n, entry, elen);
        return n;
}

static int parse_status(const uint8_t *buf, size_t len)
{
        struct em_pagemap pm cleanup_pagemap = {0};
        cleanup_error em_error_t err = NULL;

        if (em_pagemap_parse(buf, len, &pm, &err) == 0)
                return 0;
        return em_error_status(err);
}

static void test_old_layout_and_parent(void **state)
{
        /* vaddr 0x1000, nr_pages (field 2) 3, in_parent true: no flags field. */
        static const uint8_t e[] = {0x08, 0x80, 0x20, 0x10, 0x03, 0x18, 0x01};
        uint8_t buf[64];
        size_t n = build(buf, e, sizeof(e));
        struct em_pagemap pm cleanup_pagemap = {0};
        cleanup_free uint8_t *enc = NULL;
        size_t enc_len;
        em_error_t err = NULL;

        assert_int_equal(em_pagemap_parse(buf, n, &pm, &err), 0);
        assert_int_equal(pm.pages_id, 7);
        assert_int_equal(pm.e[0].nr_pages, 3);
        assert_int_equal(pm.e[0].flags, EM_PE_PARENT);
        assert_int_equal(pm.nr_present, 0);
        assert_int_equal(em_pagemap_encode(&pm, &enc, &enc_len, &err), 0);
        assert_int_equal(enc_len, n);
        assert_memory_equal(enc, buf, n);
}

static void test_hostile(void **state)
{
        uint8_t buf[128];
        size_t n;

        n = build(buf, NULL, 0);
        buf[0] = 0; /* magic */
        assert_int_equal(parse_status(buf, n), EBADMSG);
        n = build(buf, NULL, 0);
        assert_int_equal(parse_status(buf, n - 1), EBADMSG); /* truncated head */
        assert_int_equal(parse_status(buf, 8), EBADMSG);     /* no head at all */
        /* Unaligned vaddr. */
        static const uint8_t unaligned[] = {0x08, 0x81, 0x20, 0x10, 0x00, 0x20, 0x04, 0x28, 0x01};
        assert_int_equal(parse_status(buf, build(buf, unaligned, sizeof(unaligned))), EBADMSG);
        /* Zero pages. */
        static const uint8_t zero[] = {0x08, 0x80, 0x20, 0x10, 0x00, 0x20, 0x04, 0x28, 0x00};
        assert_int_equal(parse_status(buf, build(buf, zero, sizeof(zero))), EBADMSG);
        /* vaddr near the top plus pages wraps around. */
        static const uint8_t wrap[] = {0x08, 0x80, 0xe0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0x01, 0x10, 0x00, 0x20, 0x04, 0x28, 0x02};
        assert_int_equal(parse_status(buf, build(buf, wrap, sizeof(wrap))), EBADMSG);
        /* Unknown flag bits. */
        static const uint8_t flags[] = {0x08, 0x80, 0x20, 0x10, 0x00, 0x20, 0x40, 0x28, 0x01};
        assert_int_equal(parse_status(buf, build(buf, flags, sizeof(flags))), EBADMSG);
        /* Missing vaddr. */
        static const uint8_t novaddr[] = {0x10, 0x01};
        assert_int_equal(parse_status(buf, build(buf, novaddr, sizeof(novaddr))), EBADMSG);
        /* Length-delimited field running past the record. */
        static const uint8_t lenfield[] = {0x08, 0x80, 0x20, 0x10, 0x01, 0x32, 0x7f};
        assert_int_equal(parse_status(buf, build(buf, lenfield, sizeof(lenfield))), EBADMSG);
        /* Unknown fields are skipped. */
        static const uint8_t unk[] = {0x08, 0x80, 0x20, 0x10, 0x01, 0x32, 0x01,
                                      0xaa, 0x3d, 1,    2,    3,    4};
        assert_int_equal(parse_status(buf, build(buf, unk, sizeof(unk))), 0);
        /* A record length beyond the file. */
        n = build(buf, unaligned, sizeof(unaligned));
        buf[8] = 0xff;
        assert_int_equal(parse_status(buf, n), EBADMSG);
}

static void test_dir_helpers(void **state)
{
        char tmpl[] = "/tmp/em-criuimg-XXXXXX";
        cleanup_close int dfd = -1;
        cleanup_strv char **names = NULL;
        struct em_pagemap pm cleanup_pagemap = {0};
        em_error_t err = NULL;
        char path[512];

        assert_non_null(mkdtemp(tmpl));
        dfd = open(tmpl, O_DIRECTORY | O_RDONLY);
        snprintf(path, sizeof(path),
                 "cp %s %s/pagemap-42.img && touch %s/pages-1.img "
                 "%s/core-42.img",
                 REAL_PAGEMAP, tmpl, tmpl, tmpl);
        assert_int_equal(system(path), 0);
        assert_int_equal(em_pagemap_list(dfd, &names, &err), 0);
        assert_non_null(names[0]);
        assert_string_equal(names[0], "pagemap-42.img");
        assert_null(names[1]);
        assert_int_equal(em_pagemap_load(dfd, names[0], &pm, &err), 0);
        /* pages-1.img is empty here: the check must notice. */
        assert_int_equal(em_pagemap_check_pages(&pm, dfd, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "pages-1.img has 0 bytes"));
        em_error_free(&err);
        assert_int_equal(truncate(strcat(strcpy(path, tmpl), "/pages-1.img"), 25059328), 0);
        assert_int_equal(em_pagemap_check_pages(&pm, dfd, &err), 0);
        assert_int_equal(em_rm_rf(tmpl, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_varint),
            cmocka_unit_test(test_real_image_roundtrip),
            cmocka_unit_test(test_old_layout_and_parent),
            cmocka_unit_test(test_hostile),
            cmocka_unit_test(test_dir_helpers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
