/* libFuzzer target: a whole CRIU image directory from a peer, decoded
 * (checkpoint/ckpt_info.c) and judged (checkpoint/ckpt_validate.c) under a
 * host-namespace and a user-namespace policy, as the target does before a
 * restore; then rendered as `checkpoint inspect --json` does. The input is
 * a list of files: u8 kind, u16 length (LE), bytes. Kind & 0x7f picks the
 * name; with 0x80 the bytes are the whole file, else one message that the
 * harness wraps in the image's magics and a record length. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/ckpt_info.h"
#include "checkpoint/ckpt_validate.h"
#include "checkpoint/criu_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
        const char *name;
        uint32_t magic;
} files[] = {
    {"inventory.img", EM_CRIU_MAGIC_INVENTORY},
    {"pstree.img", EM_CRIU_MAGIC_PSTREE},
    {"core-1.img", EM_CRIU_MAGIC_CORE},
    {"core-2.img", EM_CRIU_MAGIC_CORE},
    {"ids-1.img", EM_CRIU_MAGIC_IDS},
    {"ids-2.img", EM_CRIU_MAGIC_IDS},
    {"mountpoints-1.img", EM_CRIU_MAGIC_MNTS},
    {"files.img", EM_CRIU_MAGIC_FILES},
    {"seccomp.img", EM_CRIU_MAGIC_SECCOMP},
    {"userns-1.img", EM_CRIU_MAGIC_USERNS},
    {"fdinfo-1.img", EM_CRIU_MAGIC_FDINFO},
    {"mm-1.img", EM_CRIU_MAGIC_MM},
    {"pagemap-1.img", EM_CRIU_MAGIC_PAGEMAP},
    {"tcp-stream-1.img", EM_CRIU_MAGIC_TCPSTREAM},
    {"reg-files.img", 0x50363636u},
};
#define N_FILES (sizeof(files) / sizeof(files[0]))

static char dir[64];

static void put32(FILE *f, uint32_t v)
{
        uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        fwrite(b, 1, 4, f);
}

static void write_file(unsigned kind, const uint8_t *p, size_t n)
{
        char path[128];
        unsigned k = (kind & 0x7f) % N_FILES;
        bool exists;

        snprintf(path, sizeof(path), "%s/%s", dir, files[k].name);
        exists = access(path, F_OK) == 0;
        FILE *f = fopen(path, "ab");
        if (f == NULL)
                abort();
        if (!(kind & 0x80) && !exists) {
                if (files[k].magic != EM_CRIU_MAGIC_INVENTORY)
                        put32(f, EM_CRIU_MAGIC_COMMON);
                put32(f, files[k].magic);
        }
        if (!(kind & 0x80))
                put32(f, (uint32_t)n); /* a second entry of a kind is a second record */
        fwrite(p, 1, n, f);
        fclose(f);
}

static void clear_dir(void)
{
        for (size_t k = 0; k < N_FILES; k++) {
                char path[128];
                snprintf(path, sizeof(path), "%s/%s", dir, files[k].name);
                unlink(path);
        }
}

static void remove_dir(void)
{
        clear_dir();
        rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_ckpt_info ci;
        struct em_ckpt_policy p;
        em_error_t err = NULL;

        if (dir[0] == 0) {
                snprintf(dir, sizeof(dir), "/dev/shm/fuzz-ckpt.XXXXXX");
                if (mkdtemp(dir) == NULL)
                        abort();
                atexit(remove_dir);
        }
        clear_dir();
        for (size_t off = 0; off + 3 <= size;) {
                size_t n = data[off + 1] | (size_t)data[off + 2] << 8;
                if (n > size - off - 3)
                        n = size - off - 3;
                write_file(data[off], data + off + 3, n);
                off += 3 + n;
        }
        if (em_ckpt_info_load(dir, &ci, &err) == 0) {
                em_ckpt_policy_default(&p);
                if (em_ckpt_validate(&ci, &p, &err) < 0)
                        em_error_free(&err);
                p.userns = p.seccomp = true;
                p.uid_map = p.gid_map = (struct em_ck_extent){0, 100000, 65536};
                if (em_ckpt_validate(&ci, &p, &err) < 0)
                        em_error_free(&err);
                json_t *j = em_ckpt_info_json(&ci);
                if (j == NULL)
                        abort();
                json_decref(j);
        }
        em_ckpt_info_free(&ci);
        em_error_free(&err);
        return 0;
}
