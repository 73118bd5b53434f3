/* libFuzzer target: a peer's userns-N.img (checkpoint/userns_img.c), which
 * names the user namespace CRIU creates: decoded, moved from the range the
 * peer claims to this host's (refused unless it lies in it), and encoded
 * back; the encoding decodes to what was moved. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/userns_img.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const struct em_idrange from = {100000, 65536}, to = {1u << 30, 65536};
        struct em_ck_userns m, back;
        uint8_t out[2048];
        em_error_t err = NULL;

        if (em_userns_img_decode(data, size, &m, &err) < 0 ||
            em_userns_map_move(&m, &from, &to, &err) < 0) {
                em_error_free(&err);
                return 0;
        }
        size_t n = em_userns_img_encode(&m, 0, out);
        if (em_userns_img_decode(out, n, &back, &err) < 0 || back.n_uid != m.n_uid ||
            back.n_gid != m.n_gid || memcmp(back.uid, m.uid, sizeof(m.uid[0]) * m.n_uid) != 0)
                abort();
        return 0;
}
