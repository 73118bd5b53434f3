/* libFuzzer target: the CRIU image decoders of checkpoint/ (what a
 * migration target reads from a peer before it restores). The first byte
 * picks the message, the rest is its bytes; the whole input is also read
 * as an image file of records. A decoded message must free cleanly and
 * keep its bounds (words, groups, extents, threads, filter lengths). Sources:
 * src/lib/checkpoint/{pbwire, criu_image,criu_decode}.c src/lib/util/{error,cleanup,fsutil}.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/criu_decode.h"
#include "checkpoint/criu_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(uint8_t kind, const uint8_t *p, size_t n)
{
        em_error_t err = NULL;
        union {
                struct em_ck_core core;
                struct em_ck_ids ids;
                struct em_ck_inventory inv;
                struct em_ck_pstree ps;
                struct em_ck_mount m;
                struct em_ck_file f;
                struct em_ck_fdinfo fi;
                struct em_ck_seccomp s;
                struct em_ck_mm mm;
                struct em_ck_tcp t;
        } u;
        static struct em_ck_userns un;
        uint64_t pages = 0;
        bool beyond;

        switch (kind % 12) {
        case 0:
                if (em_ck_decode_core("f", p, n, &u.core, &err) == 0 &&
                    (u.core.creds.eff.n > EM_CK_CAP_WORDS ||
                     u.core.creds.n_groups > EM_CK_MAX_GROUPS))
                        abort();
                /* bits above 63 only come from a third word */
                em_ck_caps_mask(&u.core.creds.bnd, &beyond);
                if (beyond && u.core.creds.bnd.n < 3)
                        abort();
                break;
        case 1:
                em_ck_decode_ids("f", p, n, &u.ids, &err);
                break;
        case 2:
                em_ck_decode_inventory("f", p, n, &u.inv, &err);
                break;
        case 3:
                if (em_ck_decode_pstree("f", p, n, &u.ps, &err) == 0) {
                        if (u.ps.n_threads > EM_CK_MAX_THREADS)
                                abort();
                        em_ck_pstree_free(&u.ps);
                }
                break;
        case 4:
                if (em_ck_decode_userns("f", p, n, &un, &err) == 0 &&
                    (un.n_uid > EM_CK_MAX_EXTENTS || un.n_gid > EM_CK_MAX_EXTENTS))
                        abort();
                break;
        case 5:
                if (em_ck_decode_mount("f", p, n, &u.m, &err) == 0) {
                        if (u.m.mountpoint == NULL || u.m.root == NULL)
                                abort();
                        em_ck_mount_free(&u.m);
                }
                break;
        case 6:
                if (em_ck_decode_file("f", p, n, &u.f, &err) == 0)
                        em_ck_file_free(&u.f);
                break;
        case 7:
                em_ck_decode_fdinfo("f", p, n, &u.fi, &err);
                break;
        case 8:
                if (em_ck_decode_seccomp("f", p, n, &u.s, &err) == 0) {
                        for (size_t i = 0; i < u.s.n; i++)
                                if (u.s.f[i].len % 8 != 0 || u.s.f[i].prog == NULL)
                                        abort();
                        em_ck_seccomp_free(&u.s);
                }
                break;
        case 9:
                em_ck_decode_mm("f", p, n, &u.mm, &err);
                break;
        case 10:
                em_ck_decode_pagemap_entry("f", p, n, &pages, &err);
                break;
        default:
                em_ck_decode_tcp("f", p, n, &u.t, &err);
        }
        em_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_criu_img img;
        em_error_t err = NULL;
        const uint8_t *rec;
        size_t len;

        if (size == 0)
                return 0;
        decode(data[0], data + 1, size - 1);
        /* the same bytes as an image file: records, each decoded as data[0] says */
        if (em_criu_img_from("f", data, size, EM_CRIU_MAGIC_CORE, &img, &err) == 0)
                while (em_criu_img_next(&img, &rec, &len, &err) > 0)
                        decode(data[0], rec, len);
        em_criu_img_free(&img);
        em_error_free(&err);
        return 0;
}
