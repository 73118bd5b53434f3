/* libFuzzer target: manifest, index, image config and reference parsers on
 * arbitrary bytes. Built by tests/fuzz/run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/manifest.h"
#include "store/osarch.h"
#include "store/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        struct em_manifest *m = NULL;
        struct em_index *ix = NULL;
        struct em_image_config *c = NULL;
        em_error_t err = NULL;

        (void)em_doc_kind_of(buf, size, NULL);
        if (em_manifest_parse(buf, size, &m, &err) == 0) {
                for (size_t i = 0; i < m->n_layers; i++) {
                        enum em_compression comp;
                        if (em_layer_compression(m->layers[i].media_type, &comp, &err) < 0)
                                abort(); /* the parser accepted an unsupported layer */
                }
        }
        em_manifest_free(&m);
        em_error_free(&err);
        if (em_index_parse(buf, size, &ix, &err) == 0) {
                (void)em_index_select(ix, "linux", "amd64", NULL);
                (void)em_index_select(ix, "linux", "amd64", "latest");
                static const char *const plats[] = {"linux/amd64", "linux/arm64", "linux/arm/v7",
                                                    "linux/arm"};
                for (size_t i = 0; i < 4; i++) {
                        struct em_osarch p;
                        if (em_osarch_parse(plats[i], &p, NULL) < 0)
                                abort();
                        const struct em_descriptor *d = em_osarch_select(ix, &p);
                        if (d != NULL &&
                            (d->media_type == NULL || strcmp(d->media_type, EM_MT_OCI_INDEX) == 0))
                                abort(); /* a nested index is never an image */
                }
        }
        em_index_free(&ix);
        em_error_free(&err);
        if (em_image_config_parse(buf, size, &c, &err) == 0 && c->config == NULL)
                abort();
        em_image_config_free(&c);
        em_error_free(&err);

        /* References are short strings. */
        if (size < 512) {
                char *s = strndup(buf, size);
                struct em_ref r;
                if (s != NULL && em_ref_parse(s, &r, &err) == 0) {
                        free(em_ref_string(&r));
                        em_ref_free(&r);
                }
                em_error_free(&err);
                free(s);
        }
        return 0;
}
