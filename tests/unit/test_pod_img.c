/* The pod member's inventory rewrite on images CRIU 4.2.1 wrote here
 * (tests/unit/data/criu-4.2.1-userns: runc's container in a user namespace
 * mapped 0 100000 65536, whose root_ids name the host's namespaces), and on
 * crafted inventories. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "checkpoint/criu_image.h"
#include "checkpoint/pod_img.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "support/fixture.h"

#define USERNS "tests/unit/data/criu-4.2.1-userns"

/* The first record of dir/name, decoded as ids (inventory: its root_ids). */
static void load_ids(const char *dir, const char *name, uint32_t magic, struct em_ck_ids *ids,
                     struct em_ck_inventory *inv)
{
        cleanup_criu_img struct em_criu_img img = {0};
        cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        const uint8_t *rec;
        size_t len;
        em_error_t err = NULL;

        assert_int_equal(em_criu_img_open(dfd, name, magic, &img, &err), 0);
        assert_int_equal(em_criu_img_next(&img, &rec, &len, &err), 1);
        if (inv == NULL) {
                assert_int_equal(em_ck_decode_ids(name, rec, len, ids, &err), 0);
                return;
        }
        assert_int_equal(em_ck_decode_inventory(name, rec, len, inv, &err), 0);
        *ids = inv->root_ids;
}

static void test_join_real(void **state)
{
        char *dir = em_test_copy_dir(USERNS, "podimg");
        struct em_ck_ids task, before, after;
        struct em_ck_inventory inv0, inv1;
        em_error_t err = NULL;
        (void)state;

        load_ids(dir, "ids-1.img", EM_CRIU_MAGIC_IDS, &task, NULL);
        load_ids(dir, "inventory.img", EM_CRIU_MAGIC_INVENTORY, &before, &inv0);
        /* The fixture's task is in its own user, IPC and UTS namespaces. */
        assert_int_not_equal(task.id[EM_CK_NS_USER], before.id[EM_CK_NS_USER]);
        assert_int_not_equal(task.id[EM_CK_NS_IPC], before.id[EM_CK_NS_IPC]);
        assert_int_equal(em_pod_img_join_ns(dir, &err), 0);
        load_ids(dir, "inventory.img", EM_CRIU_MAGIC_INVENTORY, &after, &inv1);
        assert_int_equal(after.id[EM_CK_NS_USER], task.id[EM_CK_NS_USER]);
        assert_int_equal(after.id[EM_CK_NS_IPC], task.id[EM_CK_NS_IPC]);
        assert_int_equal(after.id[EM_CK_NS_UTS], task.id[EM_CK_NS_UTS]);
        /* Everything else stays: the net, pid and mount namespaces CRIU
         * still creates or is given, and the inventory's other fields. */
        for (int k = 1; k <= EM_CK_NS_LAST; k++) {
                if (k != EM_CK_NS_USER && k != EM_CK_NS_IPC && k != EM_CK_NS_UTS)
                        assert_int_equal(after.id[k], before.id[k]);
        }
        assert_int_equal(after.seen, before.seen);
        assert_int_equal(inv1.img_version, inv0.img_version);
        assert_int_equal(inv1.ns_per_id, inv0.ns_per_id);
        em_test_rm(dir);
}

static void test_join_twice_same_bytes(void **state)
{
        char *dir = em_test_copy_dir(USERNS, "podimg");
        cleanup_free char *path = em_path_join(dir, "inventory.img");
        cleanup_free char *one = NULL, *two = NULL;
        size_t n1 = 0, n2 = 0;
        em_error_t err = NULL;
        (void)state;

        assert_int_equal(em_pod_img_join_ns(dir, &err), 0);
        assert_int_equal(em_read_file(path, 1 << 20, &one, &n1, &err), 0);
        assert_int_equal(em_pod_img_join_ns(dir, &err), 0);
        assert_int_equal(em_read_file(path, 1 << 20, &two, &n2, &err), 0);
        assert_int_equal(n1, n2);
        assert_memory_equal(one, two, n1);
        em_test_rm(dir);
}

/* An inventory entry of img_version 2 and, if ids_len, a root_ids. */
static size_t craft_inventory(uint8_t *b, const uint8_t *ids, size_t ids_len)
{
        size_t n = 0;

        b[n++] = 1 << 3, b[n++] = 2;
        if (ids_len) {
                b[n++] = 3 << 3 | 2, b[n++] = (uint8_t)ids_len;
                memcpy(b + n, ids, ids_len);
                n += ids_len;
        }
        return n;
}

static void test_refusals(void **state)
{
        /* vm, files, fs, sighand, then net 6 and user 10: no ipc, no uts */
        const uint8_t no_ipc[] = {0x08, 1, 0x10, 1, 0x18, 1, 0x20, 1, 0x30, 6, 0x50, 10};
        struct em_ck_ids task = {0};
        uint8_t in[64], out[64 + EM_POD_IMG_GROWTH];
        size_t out_len = 0;
        em_error_t err = NULL;
        (void)state;

        for (int k = 1; k <= EM_CK_NS_LAST; k++) {
                task.id[k] = 1000u + (uint32_t)k;
                task.seen |= 1ull << k;
        }
        size_t n = craft_inventory(in, NULL, 0);
        assert_int_equal(em_pod_img_inventory_join(in, n, &task, out, &out_len, &err), -1);
        assert_int_equal(em_error_status(err), EBADMSG);
        em_error_free(&err);
        n = craft_inventory(in, no_ipc, sizeof(no_ipc));
        assert_int_equal(em_pod_img_inventory_join(in, n, &task, out, &out_len, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "no ipc namespace"));
        em_error_free(&err);
        /* truncated: the root_ids length runs past the end */
        assert_int_equal(em_pod_img_inventory_join(in, n - 3, &task, out, &out_len, &err), -1);
        em_error_free(&err);
}

static void test_missing_images(void **state)
{
        char *dir = em_test_copy_dir(USERNS, "podimg");
        cleanup_free char *ids = em_path_join(dir, "ids-1.img");
        em_error_t err = NULL;
        (void)state;

        assert_int_equal(unlink(ids), 0);
        assert_int_equal(em_pod_img_join_ns(dir, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "ids-1.img"));
        em_error_free(&err);
        em_test_rm(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_join_real),
            cmocka_unit_test(test_join_twice_same_bytes),
            cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_missing_images),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
