/* libFuzzer target: the page-delta decoder against a small page cache
 * (pages filled with bytes 0..3 are known), verify-only output. The first
 * input byte splits the rest into two chunks, as two PAGES_DATA frames.
 * The whole input also goes through em_delta_ops_json (edgemig debug
 * decode), which shares the decoder's reading of the op layout.
 * Sources: src/lib/delta/pages.c src/lib/delta/criu_img.c
 * src/lib/util/{error,cleanup,fsutil,digest}.c; libs: libxxhash libcrypto. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta/pages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fresh cache per input keeps runs deterministic. */
static em_pagecache_t *cache(void)
{
        em_pagecache_t *pc = NULL;
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;
        em_error_t err = NULL;

        if (em_pagecache_open(NULL, &pc, &err) < 0)
                abort();
        for (int i = 0; i < 4; i++) {
                memset(page, i + 1, sizeof(page));
                if (em_pagecache_put(pc, page, &h, &err) < 0)
                        abort();
        }
        return pc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_delta_dec dec;
        em_pagecache_t *pc;
        em_error_t err = NULL;
        size_t split;

        if (size == 0)
                return 0;
        split = data[0] < size - 1 ? data[0] : size - 1;
        pc = cache();
        em_delta_dec_init(&dec, pc, -1);
        dec.max_pages = 4096; /* bounds the work per input */
        if (em_delta_dec_feed(&dec, data + 1, split, &err) < 0 ||
            em_delta_dec_feed(&dec, data + 1 + split, size - 1 - split, &err) < 0 ||
            em_delta_dec_finish(&dec, &err) < 0)
                em_error_free(&err);
        em_delta_dec_free(&dec);
        em_pagecache_free(&pc);
        json_t *ops = json_array();
        if (ops == NULL)
                abort();
        if (em_delta_ops_json(data + 1, size - 1, ops, &err) < 0)
                em_error_free(&err);
        json_decref(ops);
        return 0;
}
