/* libFuzzer target: a receiver's checks of a peer's FILE_BLOCKS stream and
 * block list. Input: u64 announced size, u64 size held, then payloads each
 * prefixed by a u16 length; the rest of the checks are re-done here: an
 * accepted block is aligned, inside the size, of its exact length and
 * above the previous one, and a terminator is accepted only once every
 * block past the held size arrived. The block list decoder runs on the
 * whole input against the announced size. (A u16 length cannot hold a
 * whole 64 KiB block: accepted blocks are a file's short last one; the
 * offset and coverage rules are the same for every block.) Sources: src/lib/delta/blocks.c
 * src/lib/delta/hashset.c src/lib/util/error.c; libs: libcrypto libxxhash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta/blocks.h"
#include "delta/pagefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void list(const uint8_t *data, size_t size, uint64_t announced)
{
        struct em_blocks b = {0};
        em_error_t err = NULL;

        if (em_blocks_decode((const char *)data, size, announced, &b, &err) == 0 &&
            b.n != em_blocks_count(announced))
                abort();
        em_blocks_free(&b);
        em_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_blocks_rx r;
        uint64_t next = 0, need;

        if (size < 16)
                return 0;
        uint64_t announced = em_le_get(data, 8), have = em_le_get(data + 8, 8);
        list(data + 16, size - 16, announced);
        em_blocks_rx_init(&r, announced, have);
        need = have >= announced ? announced : have - have % EM_BLOCK_SIZE;
        for (size_t at = 16; at + 2 <= size;) {
                size_t n = (size_t)em_le_get(data + at, 2);
                const uint8_t *blk;
                em_error_t err = NULL;
                uint64_t off;
                size_t len;
                at += 2;
                if (n > size - at)
                        break;
                int rc = em_blocks_rx_next(&r, data + at, n, &off, &blk, &len, &err);
                em_error_free(&err);
                at += n;
                if (rc < 0)
                        break;
                if (rc == 1) {
                        if (off != announced || len != 0 || need < announced)
                                abort();
                        break;
                }
                if (off % EM_BLOCK_SIZE || off < next || off >= announced ||
                    len != em_block_len(announced, off) || (off > need && need < announced))
                        abort();
                if (off == need)
                        need += len;
                next = off + len;
        }
        return 0;
}
