/* libFuzzer target: the readers of edgemig's own index files, as a peer or
 * a damaged disk could present them: the known-pages list (EMKNOWN1,
 * em_known_parse + em_known_json, post-copy), and by the first input byte
 * also the page cache index (EMPCIDX1) and the memory shadow index
 * (EMSHADW1). The magic is prepended when the input lacks it, so the
 * fuzzer spends its time past it. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta/pages.h"
#include "delta/shadow.h"
#include "delta/lazy_known.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_record(void *ctx, uint64_t i, const struct em_shadow_record *r, em_error_t *err)
{
        (void)i, (void)r, (void)err;
        ++*(uint64_t *)ctx;
        return 0;
}

static void parse(int which, const uint8_t *buf, size_t len)
{
        em_error_t err = NULL;
        uint64_t n = 0;
        const uint8_t *hashes;
        struct em_known_list l;

        if (which == 0 && em_known_parse(buf, len, &l, &err) == 0) {
                json_t *j = em_known_json(&l);
                if (j == NULL || (uint64_t)json_array_size(json_object_get(j, "pages")) != l.n)
                        abort();
                json_decref(j);
        } else if (which == 1 && em_pagecache_index_parse(buf, len, &n, &hashes, &err) == 0) {
                if (16 + n * 16 != len || hashes != buf + 16)
                        abort();
        } else if (which == 2) {
                em_shadow_index_parse(buf, len, count_record, &n, &err);
        }
        em_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const magic[] = {"EMKNOWN1", "EMPCIDX1", "EMSHADW1"};
        uint8_t *buf;
        int which;

        if (size == 0)
                return 0;
        which = data[0] % 3;
        data++, size--;
        if (size >= 8 && memcmp(data, magic[which], 8) == 0) {
                parse(which, data, size);
                return 0;
        }
        buf = malloc(size + 8);
        if (buf == NULL)
                return 0;
        memcpy(buf, magic[which], 8);
        memcpy(buf + 8, data, size);
        parse(which, buf, size + 8);
        free(buf);
        return 0;
}
