/* libFuzzer target: the upper-layer manifest decoder. An accepted manifest
 * must only hold safe relative paths, re-serialize to an equal manifest, and
 * diff cleanly against itself. Sources: src/lib/delta/upper.c
 * src/lib/util/{error,cleanup,fsutil,json}.c; libs: jansson libxxhash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta/upper.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Independent re-check: no absolute path, no empty, "." or ".." component. */
static void check_path(const char *p)
{
        if (p[0] == '/' || p[0] == '\0')
                abort();
        for (const char *c = p;;) {
                size_t l = strcspn(c, "/");
                if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
                        abort();
                if (c[l] == '\0')
                        break;
                c += l + 1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_upper_manifest m, again;
        struct em_upper_diff d;
        em_error_t err = NULL;
        char *js = NULL;
        size_t len;

        if (em_upper_manifest_from_json((const char *)data, size, &m, &err) < 0) {
                em_error_free(&err);
                return 0;
        }
        for (size_t i = 0; i < m.n; i++)
                check_path(m.e[i].path);
        if (em_upper_manifest_to_json(&m, true, &js, &len, &err) < 0 ||
            em_upper_manifest_from_json(js, len, &again, &err) < 0 || again.n != m.n)
                abort();
        if (em_upper_diff(&m, &again, &d, &err) < 0 || d.nchanged != 0 || d.ndeleted != 0)
                abort();
        em_upper_diff_free(&d);
        em_upper_manifest_free(&again);
        em_upper_manifest_free(&m);
        free(js);
        return 0;
}
