/* libFuzzer target: a peer's inventory_entry (inventory.img of a pod
 * member's checkpoint) rewritten by checkpoint/pod_img.c so that CRIU
 * creates no user, IPC or UTS namespace. A rewrite must stay within the
 * EM_POD_IMG_GROWTH the caller allocates, decode again, name the task's
 * namespaces and keep the others. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/pod_img.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *out, size_t n, const struct em_ck_ids *task,
                  const struct em_ck_inventory *in)
{
        struct em_ck_inventory back;
        em_error_t err = NULL;

        if (em_ck_decode_inventory("fuzz", out, n, &back, &err) < 0 || !back.has_root_ids ||
            back.img_version != in->img_version)
                abort();
        for (int k = 1; k <= EM_CK_NS_LAST; k++) {
                bool joined = k == EM_CK_NS_USER || k == EM_CK_NS_IPC || k == EM_CK_NS_UTS;
                if (back.root_ids.id[k] != (joined ? task->id[k] : in->root_ids.id[k]))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_ck_ids task = {0};
        struct em_ck_inventory in;
        em_error_t err = NULL;
        size_t n = 0;

        for (int k = 1; k <= EM_CK_NS_LAST; k++) {
                task.id[k] = 0xfffffff0u + (uint32_t)k; /* the longest varints */
                task.seen |= 1ull << k;
        }
        uint8_t *out = malloc(size + EM_POD_IMG_GROWTH);
        if (out == NULL)
                return 0;
        if (em_pod_img_inventory_join(data, size, &task, out, &n, &err) < 0) {
                em_error_free(&err);
                free(out);
                return 0;
        }
        if (n > size + EM_POD_IMG_GROWTH ||
            em_ck_decode_inventory("fuzz", data, size, &in, &err) < 0)
                abort();
        check(out, n, &task, &in);
        free(out);
        return 0;
}
