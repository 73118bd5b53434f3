#include "checkpoint/pod_img.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/criu_image.h"
#include "checkpoint/pbwire.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define INVENTORY_ROOT_IDS 3

/* The namespaces a member shares with its pod and that CRIU must not
 * create; the network namespace is runc's (an external one, inherited). */
static const int joined_ns[] = {EM_CK_NS_USER, EM_CK_NS_IPC, EM_CK_NS_UTS};

static bool is_joined(uint32_t num)
{
        for (size_t i = 0; i < sizeof(joined_ns) / sizeof(joined_ns[0]); i++) {
                if (num == (uint32_t)joined_ns[i])
                        return true;
        }
        return false;
}

static int check_has_joined(const char *what, const struct em_ck_ids *ids, em_error_t *err)
{
        for (size_t i = 0; i < sizeof(joined_ns) / sizeof(joined_ns[0]); i++) {
                if (!em_pb_has(ids->seen, (uint32_t)joined_ns[i]))
                        return em_error_set_code(err, EBADMSG, "%s: no %s namespace id", what,
                                                 em_ck_ns_name(joined_ns[i]));
        }
        return 0;
}

/* task_kobj_ids_entry with the joined namespaces' ids taken from task;
 * every other field copied as it came. Returns the length, 0 if malformed. */
static size_t ids_rewrite(const uint8_t *p, size_t len, const struct em_ck_ids *task, uint8_t *out)
{
        struct em_pb_iter it;
        struct em_pb_field f;
        const uint8_t *start = p;
        size_t n = 0;
        int r;

        em_pb_iter_init(&it, p, len);
        while ((r = em_pb_next(&it, &f)) == 1) {
                if (is_joined(f.num) && f.wt == EM_PB_VARINT) {
                        n += em_pb_put_varint(out + n, (uint64_t)f.num << 3 | EM_PB_VARINT);
                        n += em_pb_put_varint(out + n, task->id[f.num]);
                } else {
                        memcpy(out + n, start, (size_t)(it.p - start));
                        n += (size_t)(it.p - start);
                }
                start = it.p;
        }
        return r < 0 ? 0 : n;
}

static int put_root_ids(const struct em_pb_field *f, const struct em_ck_ids *task, uint8_t *out,
                        size_t *n, em_error_t *err)
{
        uint8_t body[128];
        struct em_ck_ids root;

        /* CRIU writes seven to twelve small ids: far below body's size. */
        if (f->wt != EM_PB_LEN || f->len > sizeof(body) - 16)
                return em_error_set_code(err, EBADMSG, "inventory: root_ids of %zu bytes", f->len);
        if (em_ck_decode_ids("inventory root_ids", f->p, f->len, &root, err) < 0 ||
            check_has_joined("inventory root_ids", &root, err) < 0)
                return -1;
        size_t blen = ids_rewrite(f->p, f->len, task, body);
        if (blen == 0)
                return em_error_set_code(err, EBADMSG, "inventory: malformed root_ids");
        *n += em_pb_put_varint(out + *n, INVENTORY_ROOT_IDS << 3 | EM_PB_LEN);
        *n += em_pb_put_varint(out + *n, blen);
        memcpy(out + *n, body, blen);
        *n += blen;
        return 0;
}

int em_pod_img_inventory_join(const uint8_t *rec, size_t len, const struct em_ck_ids *task,
                              uint8_t *out, size_t *out_len, em_error_t *err)
{
        struct em_ck_inventory inv;
        struct em_pb_iter it;
        struct em_pb_field f;
        const uint8_t *start = rec;
        size_t n = 0;

        if (em_ck_decode_inventory("inventory.img", rec, len, &inv, err) < 0 ||
            check_has_joined("root task ids", task, err) < 0)
                return -1;
        if (!inv.has_root_ids)
                return em_error_set_code(err, EBADMSG, "inventory.img: no root_ids");
        em_pb_iter_init(&it, rec, len);
        while (em_pb_next(&it, &f) == 1) {
                if (f.num == INVENTORY_ROOT_IDS) {
                        if (put_root_ids(&f, task, out, &n, err) < 0)
                                return -1;
                } else {
                        memcpy(out + n, start, (size_t)(it.p - start));
                        n += (size_t)(it.p - start);
                }
                start = it.p;
        }
        *out_len = n;
        return 0;
}

/* The first record of image name in dfd, decoded by the caller. */
static int first_record(int dfd, const char *name, uint32_t magic, struct em_criu_img *img,
                        const uint8_t **rec, size_t *len, em_error_t *err)
{
        if (em_criu_img_open(dfd, name, magic, img, err) < 0)
                return -1;
        int r = em_criu_img_next(img, rec, len, err);

        if (r < 0)
                return -1;
        if (r == 0)
                return em_error_set_code(err, EBADMSG, "%s: empty", name);
        return 0;
}

static int root_task_ids(int dfd, struct em_ck_ids *ids, em_error_t *err)
{
        cleanup_criu_img struct em_criu_img ps = {0}, idimg = {0};
        struct em_ck_pstree root = {0};
        const uint8_t *rec;
        size_t len;
        char name[32];

        if (first_record(dfd, "pstree.img", EM_CRIU_MAGIC_PSTREE, &ps, &rec, &len, err) < 0 ||
            em_ck_decode_pstree("pstree.img", rec, len, &root, err) < 0)
                return -1;
        snprintf(name, sizeof(name), "ids-%u.img", root.pid);
        em_ck_pstree_free(&root);
        if (first_record(dfd, name, EM_CRIU_MAGIC_IDS, &idimg, &rec, &len, err) < 0)
                return -1;
        return em_ck_decode_ids(name, rec, len, ids, err);
}

static int write_inventory(const char *dir, const uint8_t *rec, size_t len, em_error_t *err)
{
        cleanup_free uint8_t *buf = malloc(len + 8);
        cleanup_free char *path = NULL;
        const uint32_t head[2] = {EM_CRIU_MAGIC_INVENTORY, (uint32_t)len};

        if (buf == NULL || asprintf(&path, "%s/inventory.img", dir) < 0)
                return em_error_set(err, ENOMEM, "rewriting %s/inventory.img", dir);
        /* CRIU's images are little-endian, as every host edgemig runs on. */
        memcpy(buf, head, sizeof(head));
        memcpy(buf + 8, rec, len);
        return em_write_file_atomic(path, buf, len + 8, 0600, err);
}

int em_pod_img_join_ns(const char *dir, em_error_t *err)
{
        cleanup_criu_img struct em_criu_img inv = {0};
        cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_free uint8_t *out = NULL;
        struct em_ck_ids task;
        const uint8_t *rec;
        size_t len, out_len;

        if (dfd < 0)
                return em_error_set(err, errno, "opening %s", dir);
        if (root_task_ids(dfd, &task, err) < 0 ||
            first_record(dfd, "inventory.img", EM_CRIU_MAGIC_INVENTORY, &inv, &rec, &len, err) < 0)
                return em_error_wrap(err, "making %s restorable into its pod", dir);
        out = malloc(len + EM_POD_IMG_GROWTH);
        if (out == NULL)
                return em_error_set(err, ENOMEM, "%s/inventory.img", dir);
        if (em_pod_img_inventory_join(rec, len, &task, out, &out_len, err) < 0)
                return em_error_wrap(err, "making %s restorable into its pod", dir);
        return write_inventory(dir, out, out_len, err);
}
