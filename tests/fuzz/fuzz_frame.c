/* libFuzzer target: the frame decoder (and zstd payload inflation) on
 * arbitrary bytes. Build: clang -fsanitize=fuzzer,address,undefined -Isrc/lib
 * -Isrc tests/fuzz/fuzz_frame.c src/lib/transfer/frame.c
 * src/lib/transfer/compress.c src/lib/util/error.c src/lib/util/cleanup.c
 * $(pkg-config --libs libxxhash libzstd) */
#include <stdint.h>
#include <stdlib.h>

#include "transfer/compress.h"
#include "transfer/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_frame_reader r = {0};
        em_zstd_t *z = em_zstd_new();
        size_t pos = 0;

        while (pos < size) {
                struct em_frame f = {0};
                em_error_t err = NULL;
                size_t used = 0;

                if (em_frame_decode(&r, data + pos, size - pos, &f, &used, &err) < 0) {
                        em_error_free(&err);
                        break;
                }
                pos += used;
                if (f.hdr.flags & EM_FRAME_F_ZSTD) {
                        uint8_t *raw = malloc((size_t)f.hdr.raw_len + 1);
                        if (raw != NULL && em_zstd_decompress(z, f.payload, f.length, raw,
                                                              f.hdr.raw_len, &err) < 0)
                                em_error_free(&err);
                        free(raw);
                }
                em_frame_clear(&f);
        }
        em_zstd_free(&z);
        return 0;
}
