/* libFuzzer target: the CRIU pagemap parser. A parsed image must re-encode
 * and re-parse to the same entries, and every present page must map to a
 * vaddr. Sources: src/lib/delta/criu_img.c src/lib/util/{error,cleanup,fsutil}.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta/criu_img.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_pagemap pm, again;
        em_error_t err = NULL;
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        uint64_t va;

        if (em_pagemap_parse(data, size, &pm, &err) < 0) {
                em_error_free(&err);
                return 0;
        }
        if (em_pagemap_encode(&pm, &enc, &enc_len, &err) < 0 ||
            em_pagemap_parse(enc, enc_len, &again, &err) < 0)
                abort();
        if (again.n != pm.n || again.nr_present != pm.nr_present || again.pages_id != pm.pages_id)
                abort();
        for (size_t i = 0; i < pm.n; i++)
                if (again.e[i].vaddr != pm.e[i].vaddr || again.e[i].nr_pages != pm.e[i].nr_pages ||
                    again.e[i].flags != pm.e[i].flags)
                        abort();
        for (uint64_t p = 0; p < pm.nr_present && p < 4096; p++)
                if (em_pagemap_page_vaddr(&pm, p, &va, &err) < 0)
                        abort();
        free(enc);
        em_pagemap_free(&again);
        em_pagemap_free(&pm);
        return 0;
}
