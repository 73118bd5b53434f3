/* edgemig debug decode (migrate/common/decode.h) on files the library's own
 * writers make: a frame stream with a page delta in it, a raw delta, a page
 * cache index, a shadow index, a known-pages list and a real CRIU pagemap. */
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

#include "delta/pages.h"
#include "delta/shadow.h"
#include "migrate/common/decode.h"
#include "transfer/compress.h"
#include "transfer/frame.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

static char tmp[] = "/tmp/em-decode-test-XXXXXX";

static const char *P(const char *rel)
{
        static char buf[4][512];
        static int n;
        char *b = buf[n++ % 4];

        snprintf(b, 512, "%s/%s", tmp, rel);
        return b;
}

static int setup(void **state)
{
        em_log_setup(EM_LOG_ERROR, false, 2, "unit");
        return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
        em_rm_rf(tmp, NULL);
        return 0;
}

struct bytes {
        uint8_t *b;
        size_t len;
};

static int collect(void *ctx, const void *buf, size_t len, em_error_t *err)
{
        struct bytes *o = ctx;

        o->b = realloc(o->b, o->len + len);
        assert_non_null(o->b);
        memcpy(o->b + o->len, buf, len);
        o->len += len;
        return 0;
}

/* pages-1.img of: zero page, page A, page A again; its delta stream. */
static struct bytes delta_stream(void)
{
        uint8_t pages[3 * EM_PAGE_SIZE] = {0};
        struct em_delta_enc e;
        struct bytes out = {0};
        cleanup_hashset em_hashset_t *known = em_hashset_new();
        cleanup_close int dfd = open(tmp, O_RDONLY | O_DIRECTORY);

        memset(pages + EM_PAGE_SIZE, 'A', EM_PAGE_SIZE);
        memset(pages + 2 * EM_PAGE_SIZE, 'A', EM_PAGE_SIZE);
        assert_int_equal(em_write_file_atomic(P("pages-1.img"), pages, sizeof(pages), 0600, NULL),
                         0);
        assert_int_equal(em_delta_enc_init(&e, known, 1 << 20, collect, &out, NULL), 0);
        assert_int_equal(em_delta_encode_file(&e, dfd, "pages-1.img", NULL, NULL), 0);
        assert_int_equal(em_delta_enc_flush(&e, NULL), 0);
        em_delta_enc_free(&e);
        return out;
}

static json_t *decode(const char *path)
{
        json_t *j = NULL;
        em_error_t err = NULL;

        if (em_decode_file(path, &j, &err) < 0)
                fail_msg("decoding %s: %s", path, em_error_msg(err));
        return j;
}

static const char *op_at(const json_t *ops, size_t i)
{
        return em_json_str(json_array_get(ops, i), "op");
}

static void test_delta_ops(void **state)
{
        struct bytes d = delta_stream();
        cleanup_json json_t *j = NULL;

        assert_int_equal(em_write_file_atomic(P("delta.bin"), d.b, d.len, 0600, NULL), 0);
        j = decode(P("delta.bin"));
        assert_string_equal(em_json_str(j, "format"), "page delta ops");
        json_t *ops = json_object_get(j, "ops");
        assert_string_equal(op_at(ops, 0), "BEGIN");
        assert_string_equal(em_json_str(json_array_get(ops, 0), "name"), "pages-1.img");
        assert_int_equal(em_json_int(json_array_get(ops, 0), "nr_pages", 0), 3);
        assert_string_equal(op_at(ops, 1), "ZERO");
        assert_string_equal(op_at(ops, 2), "DATA");
        /* The second copy of A is sent by reference to the first. */
        const char *third = op_at(ops, 3);
        assert_true(strcmp(third, "REF") == 0 || strcmp(third, "REF_RUN") == 0);
        assert_string_equal(op_at(ops, json_array_size(ops) - 1), "END");
        free(d.b);
}

/* HELLO (JSON), PAGES_DATA (the delta, zstd-compressed), ROUND_END. */
static struct bytes frame_stream(void)
{
        struct em_frame_writer w = {.session = 0x1122334455667788ull};
        struct bytes d = delta_stream(), out = {0};
        cleanup_zstd em_zstd_t *z = em_zstd_new();
        cleanup_free uint8_t *zd = NULL;
        size_t zlen = 0;
        const char *hello = "{\"container\":\"web\"}";

        assert_int_equal(em_frame_encode(&w, EM_FRAME_HELLO, 0, 0, hello, (uint32_t)strlen(hello),
                                         (uint32_t)strlen(hello), &out.b, &out.len, NULL),
                         0);
        assert_int_equal(em_zstd_compress(z, 3, d.b, d.len, &zd, &zlen, NULL), 0);
        assert_int_equal(em_frame_encode(&w, EM_FRAME_PAGES_DATA, EM_FRAME_F_ZSTD, 2, zd,
                                         (uint32_t)zlen, (uint32_t)d.len, &out.b, &out.len, NULL),
                         0);
        assert_int_equal(
            em_frame_encode(&w, EM_FRAME_ROUND_END, 0, 0, "{}", 2, 2, &out.b, &out.len, NULL), 0);
        free(d.b);
        return out;
}

static void test_frames(void **state)
{
        struct bytes s = frame_stream();
        cleanup_json json_t *j = NULL, *cut = NULL;

        assert_int_equal(em_write_file_atomic(P("capture.bin"), s.b, s.len, 0600, NULL), 0);
        j = decode(P("capture.bin"));
        assert_string_equal(em_json_str(j, "format"), "EMF1 frame stream");
        assert_int_equal(em_json_int(j, "count", 0), 3);
        assert_null(json_object_get(j, "error"));
        json_t *f = json_object_get(j, "frames");
        assert_string_equal(em_json_str(json_array_get(f, 0), "type"), "HELLO");
        assert_string_equal(em_json_str(json_object_get(json_array_get(f, 0), "json"), "container"),
                            "web");
        json_t *pd = json_array_get(f, 1);
        assert_string_equal(em_json_str(pd, "type"), "PAGES_DATA");
        assert_string_equal(em_json_str(pd, "session"), "1122334455667788");
        assert_int_equal(em_json_int(pd, "seq", 0), 2);
        assert_string_equal(op_at(json_object_get(pd, "ops"), 0), "BEGIN");
        /* A capture cut in the last frame: the frames before it, and why. */
        assert_int_equal(em_write_file_atomic(P("cut.bin"), s.b, s.len - 5, 0600, NULL), 0);
        cut = decode(P("cut.bin"));
        assert_int_equal(em_json_int(cut, "count", 0), 2);
        assert_non_null(strstr(em_json_str(cut, "error"), "at byte"));
        free(s.b);
}

static void test_indexes(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        cleanup_shadow em_shadow_t *sh = NULL;
        cleanup_json json_t *a = NULL, *b = NULL;
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h1, h2;
        char hex[33];

        assert_int_equal(em_pagecache_open(P("pc"), &pc, NULL), 0);
        memset(page, 1, sizeof(page));
        assert_int_equal(em_pagecache_put(pc, page, &h1, NULL), 0);
        memset(page, 2, sizeof(page));
        assert_int_equal(em_pagecache_put(pc, page, &h2, NULL), 0);
        assert_int_equal(em_pagecache_save_index(pc, NULL), 0);
        a = decode(P("pc/index.bin"));
        assert_string_equal(em_json_str(a, "format"), "EMPCIDX1 page cache index");
        assert_int_equal(em_json_int(a, "count", 0), 2);
        em_phash_hex(&h2, hex);
        assert_string_equal(json_string_value(json_array_get(json_object_get(a, "hashes"), 1)),
                            hex);

        assert_int_equal(em_shadow_open(P("sh"), &sh, NULL), 0);
        assert_int_equal(em_shadow_record(sh, 7, 0x7f0000001000ull, &h2, page, NULL), 0);
        assert_int_equal(em_shadow_save(sh, NULL), 0);
        b = decode(P("sh/index.bin"));
        assert_string_equal(em_json_str(b, "format"), "EMSHADW1 memory shadow index");
        json_t *r = json_array_get(json_object_get(b, "records"), 0);
        assert_string_equal(em_json_str(r, "vaddr"), "0x7f0000001000");
        assert_int_equal(em_json_int(r, "vpid", 0), 7);
        assert_string_equal(em_json_str(r, "hash"), hex);
}

static void test_known_and_pagemap(void **state)
{
        uint8_t buf[16 + 24 + 71];
        uint64_t n = 1, vaddr = 0x400000;
        cleanup_json json_t *k = NULL, *pm = NULL;
        cleanup_free char *img = NULL;
        size_t len;

        memcpy(buf, "EMKNOWN1", 8);
        memcpy(buf + 8, &n, 8);
        memcpy(buf + 16, &vaddr, 8);
        memset(buf + 24, 0, 16); /* a zero page */
        memcpy(buf + 40, "sha256:", 7);
        memset(buf + 47, 'a', 64);
        assert_int_equal(
            em_write_file_atomic(P("edgemig-known-1.bin"), buf, sizeof(buf), 0600, NULL), 0);
        k = decode(P("edgemig-known-1.bin"));
        assert_int_equal(em_json_int(k, "count", 0), 1);
        json_t *p0 = json_array_get(json_object_get(k, "pages"), 0);
        assert_int_equal(em_json_int(p0, "vaddr", 0), 0x400000);
        assert_string_equal(em_json_str(p0, "hash"), "zero");

        assert_int_equal(
            em_read_file("tests/unit/data/criu-4.2.1-pagemap.img", 1 << 20, &img, &len, NULL), 0);
        assert_int_equal(em_write_file_atomic(P("pagemap-1.img"), img, len, 0600, NULL), 0);
        pm = decode(P("pagemap-1.img"));
        assert_string_equal(em_json_str(pm, "format"), "CRIU pagemap");
        assert_true(json_array_size(json_object_get(pm, "entries")) > 0);
}

static void test_refusals(void **state)
{
        json_t *j = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_write_file_atomic(P("junk"), "hello world", 11, 0600, NULL), 0);
        assert_int_equal(em_decode_file(P("junk"), &j, &err), -1);
        assert_int_equal(em_error_status(err), EMEDIUMTYPE);
        em_error_free(&err);
        /* A shadow index whose count overruns the file. */
        uint8_t bad[16] = "EMSHADW1\xff\xff\xff\xff\xff\xff\xff\x0f";
        assert_int_equal(em_write_file_atomic(P("bad"), bad, sizeof(bad), 0600, NULL), 0);
        assert_int_equal(em_decode_file(P("bad"), &j, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "truncated"));
        em_error_free(&err);
        /* A delta op cut short: the decoder's own refusal. */
        assert_int_equal(em_write_file_atomic(P("ops"), "\x01\x05\x00pa", 5, 0600, NULL), 0);
        assert_int_equal(em_decode_file(P("ops"), &j, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "truncated or oversized BEGIN"));
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_delta_ops), cmocka_unit_test(test_frames),
            cmocka_unit_test(test_indexes),   cmocka_unit_test(test_known_and_pagemap),
            cmocka_unit_test(test_refusals),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
