#include "migrate/common/decode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "delta/pages.h"
#include "delta/shadow.h"
#include "delta/lazy_known.h"
#include "transfer/compress.h"
#include "transfer/frame.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define DECODE_MAX_FILE (1ull << 32)

static json_t *hex_hash(const em_phash_t *h)
{
        char hex[33];

        em_phash_hex(h, hex);
        return json_string(hex);
}

/* ---- EMPCIDX1, EMSHADW1, EMKNOWN1 ---- */

static int decode_pcidx(const uint8_t *buf, size_t len, json_t *o, em_error_t *err)
{
        const uint8_t *hashes;
        uint64_t n;
        json_t *arr = json_array();

        if (em_pagecache_index_parse(buf, len, &n, &hashes, err) < 0)
                return -1;
        for (uint64_t i = 0; arr && i < n; i++) {
                em_phash_t h;
                memcpy(h.b, hashes + i * 16, 16);
                json_array_append_new(arr, hex_hash(&h));
        }
        json_object_set_new(o, "count", json_integer((json_int_t)n));
        return json_object_set_new(o, "hashes", arr) < 0 ? em_error_set(err, ENOMEM, "decode") : 0;
}

static int shadow_record(void *ctx, uint64_t i, const struct em_shadow_record *r, em_error_t *err)
{
        char vaddr[24];

        snprintf(vaddr, sizeof(vaddr), "0x%" PRIx64, r->vaddr);
        json_t *rec = json_pack("{s:s, s:I, s:I, s:o}", "vaddr", vaddr, "slot", (json_int_t)r->slot,
                                "vpid", (json_int_t)r->vpid, "hash", hex_hash(&r->h));
        if (rec == NULL || json_array_append_new(ctx, rec) < 0)
                return em_error_set(err, ENOMEM, "decode");
        return 0;
}

static int decode_shadow(const uint8_t *buf, size_t len, json_t *o, em_error_t *err)
{
        json_t *arr = json_array();

        if (arr == NULL || json_object_set_new(o, "records", arr) < 0)
                return em_error_set(err, ENOMEM, "decode");
        if (em_shadow_index_parse(buf, len, shadow_record, arr, err) < 0)
                return -1;
        return json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
}

static int decode_known(const uint8_t *buf, size_t len, json_t *o, em_error_t *err)
{
        struct em_known_list l;

        if (em_known_parse(buf, len, &l, err) < 0)
                return -1;
        json_t *k = em_known_json(&l);
        if (k == NULL || json_object_update(o, k) < 0) {
                json_decref(k);
                return em_error_set(err, ENOMEM, "decode");
        }
        json_decref(k);
        return 0;
}

/* ---- frame streams ---- */

static json_t *frame_flags(uint16_t flags)
{
        json_t *a = json_array();

        if (flags & EM_FRAME_F_ZSTD)
                json_array_append_new(a, json_string("zstd"));
        if (flags & EM_FRAME_F_LAST)
                json_array_append_new(a, json_string("last"));
        return a;
}

/* The payload as the session reads it: decompressed; then, by type, the
 * delta ops, the count of hashes, JSON, or its size. */
static int frame_payload(const struct em_frame *f, json_t *o, em_error_t *err)
{
        cleanup_free uint8_t *raw = NULL;
        const uint8_t *p = f->payload;
        size_t len = f->length;

        if (f->hdr.flags & EM_FRAME_F_ZSTD) {
                __attribute__((cleanup(em_zstd_free))) em_zstd_t *z = em_zstd_new();
                raw = malloc(f->hdr.raw_len ? f->hdr.raw_len : 1);
                if (z == NULL || raw == NULL)
                        return em_error_set(err, ENOMEM, "decode");
                if (em_zstd_decompress(z, f->payload, f->length, raw, f->hdr.raw_len, err) < 0)
                        return -1;
                p = raw, len = f->hdr.raw_len;
        }
        if (f->hdr.type == EM_FRAME_PAGES_DATA) {
                json_t *ops = json_array();
                json_object_set_new(o, "ops", ops);
                return em_delta_ops_json(p, len, ops, err);
        }
        if (f->hdr.type == EM_FRAME_PAGES_HASHES)
                return json_object_set_new(o, "hashes", json_integer((json_int_t)(len / 16)));
        json_t *j = len > 0 && p[0] == '{' ? json_loadb((const char *)p, len, 0, NULL) : NULL;
        if (j != NULL)
                return json_object_set_new(o, "json", j);
        return json_object_set_new(o, "payload_bytes", json_integer((json_int_t)len));
}

static json_t *frame_json(const struct em_frame *f, size_t offset)
{
        const char *type = em_frame_type_name(f->hdr.type);
        char session[24];

        snprintf(session, sizeof(session), "%016" PRIx64, f->hdr.session);
        return json_pack("{s:I, s:s, s:I, s:o, s:s, s:I, s:I, s:I}", "offset", (json_int_t)offset,
                         "type", type ? type : "?", "seq", (json_int_t)f->hdr.seq, "flags",
                         frame_flags(f->hdr.flags), "session", session, "stream",
                         (json_int_t)f->hdr.stream, "length", (json_int_t)f->hdr.length, "raw_len",
                         (json_int_t)f->hdr.raw_len);
}

static int decode_frames(const uint8_t *buf, size_t len, json_t *o, em_error_t *err)
{
        struct em_frame_reader r = {0};
        json_t *frames = json_array();
        size_t pos = 0;

        if (frames == NULL || json_object_set_new(o, "frames", frames) < 0)
                return em_error_set(err, ENOMEM, "decode");
        while (pos < len) {
                cleanup_error em_error_t e = NULL;
                cleanup_frame struct em_frame f = {0};
                size_t used = 0;
                if (em_frame_decode(&r, buf + pos, len - pos, &f, &used, &e) < 0) {
                        json_object_set_new(o, "error",
                                            json_sprintf("at byte %zu: %s", pos, em_error_msg(e)));
                        break;
                }
                json_t *fj = frame_json(&f, pos);
                if (fj == NULL || json_array_append_new(frames, fj) < 0)
                        return em_error_set(err, ENOMEM, "decode");
                if (frame_payload(&f, fj, &e) < 0)
                        json_object_set_new(fj, "payload_error", json_string(em_error_msg(e)));
                pos += used;
        }
        return json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(frames)));
}

/* ---- CRIU pagemap + pages ---- */

/* pages-<id>.img next to the pagemap: how many pages, how many zero. */
static void pages_summary(const char *path, uint32_t pages_id, json_t *o)
{
        cleanup_free char *copy = strdup(path), *pages = NULL;
        char name[32];
        uint8_t page[EM_PAGE_SIZE];
        uint64_t n = 0, zero = 0;

        em_pages_img_name(pages_id, name, sizeof(name));
        if (copy == NULL || (pages = em_path_join(dirname(copy), name)) == NULL)
                return;
        cleanup_close int fd = open(pages, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        while (em_read_all(fd, page, sizeof(page), NULL) == (ssize_t)sizeof(page)) {
                n++;
                zero += em_page_is_zero(page);
        }
        json_object_set_new(o, "pages_file",
                            json_pack("{s:s, s:I, s:I}", "name", name, "pages", (json_int_t)n,
                                      "zero_pages", (json_int_t)zero));
}

static json_t *pme_json(const struct em_pagemap_entry *e)
{
        char vaddr[24];

        snprintf(vaddr, sizeof(vaddr), "0x%" PRIx64, e->vaddr);
        return json_pack("{s:s, s:I, s:b, s:b, s:b, s:b}", "vaddr", vaddr, "nr_pages",
                         (json_int_t)e->nr_pages, "present", (e->flags & EM_PE_PRESENT) != 0,
                         "lazy", (e->flags & EM_PE_LAZY) != 0, "parent",
                         (e->flags & EM_PE_PARENT) != 0, "in_parent", e->in_parent);
}

static int decode_pagemap(const char *path, const uint8_t *buf, size_t len, json_t *o,
                          em_error_t *err)
{
        cleanup_pagemap struct em_pagemap pm = {0};
        json_t *entries = json_array();

        if (entries == NULL || json_object_set_new(o, "entries", entries) < 0)
                return em_error_set(err, ENOMEM, "decode");
        if (em_pagemap_parse(buf, len, &pm, err) < 0)
                return -1;
        for (size_t i = 0; i < pm.n; i++)
                json_array_append_new(entries, pme_json(&pm.e[i]));
        json_object_set_new(o, "pages_id", json_integer(pm.pages_id));
        json_object_set_new(o, "present_pages", json_integer((json_int_t)pm.nr_present));
        pages_summary(path, pm.pages_id, o);
        return 0;
}

static int decode_pages_img(size_t len, const uint8_t *buf, json_t *o, em_error_t *err)
{
        uint64_t zero = 0;

        if (len % EM_PAGE_SIZE != 0)
                return em_error_set_code(err, EBADMSG, "%zu bytes: not whole pages", len);
        for (size_t i = 0; i < len; i += EM_PAGE_SIZE)
                zero += em_page_is_zero(buf + i);
        json_object_set_new(o, "pages", json_integer((json_int_t)(len / EM_PAGE_SIZE)));
        json_object_set_new(o, "zero_pages", json_integer((json_int_t)zero));
        return 0;
}

/* ---- detection ---- */

static bool is_pages_img(const char *path)
{
        const char *b = strrchr(path, '/');
        unsigned id;
        char tail[8];

        b = b ? b + 1 : path;
        return sscanf(b, "pages-%u%7s", &id, tail) == 2 && strcmp(tail, ".img") == 0;
}

static uint32_t le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int decode_buf(const char *path, const uint8_t *buf, size_t len, json_t *o, em_error_t *err)
{
        const char *fmt = NULL;
        int rc;

        if (len >= 8 && memcmp(buf, "EMPCIDX1", 8) == 0)
                fmt = "EMPCIDX1 page cache index", rc = decode_pcidx(buf, len, o, err);
        else if (len >= 8 && memcmp(buf, "EMSHADW1", 8) == 0)
                fmt = "EMSHADW1 memory shadow index", rc = decode_shadow(buf, len, o, err);
        else if (len >= 8 && memcmp(buf, "EMKNOWN1", 8) == 0)
                fmt = "EMKNOWN1 known pages", rc = decode_known(buf, len, o, err);
        else if (len >= 4 && le32(buf) == EM_FRAME_MAGIC)
                fmt = "EMF1 frame stream", rc = decode_frames(buf, len, o, err);
        else if (len >= 8 && le32(buf) == EM_CRIU_IMG_MAGIC &&
                 le32(buf + 4) == EM_CRIU_PAGEMAP_MAGIC)
                fmt = "CRIU pagemap", rc = decode_pagemap(path, buf, len, o, err);
        else if (is_pages_img(path))
                fmt = "CRIU pages", rc = decode_pages_img(len, buf, o, err);
        else if (len >= 1 && (buf[0] == 1 || buf[0] == 6)) {
                json_t *ops = json_array();
                fmt = "page delta ops";
                json_object_set_new(o, "ops", ops);
                rc = em_delta_ops_json(buf, len, ops, err);
        } else
                return em_error_set_code(err, EMEDIUMTYPE,
                                         "%s: not a format edgemig knows (frames EMF1, page "
                                         "delta ops, EMPCIDX1, EMSHADW1, EMKNOWN1, CRIU "
                                         "pagemap/pages)",
                                         path);
        json_object_set_new(o, "format", json_string(fmt));
        return rc < 0 ? em_error_wrap(err, "%s (%s)", path, fmt) : 0;
}

int em_decode_file(const char *path, json_t **out, em_error_t *err)
{
        cleanup_free char *buf = NULL;
        cleanup_json json_t *o = json_pack("{s:s}", "file", path);
        size_t len = 0;

        if (o == NULL)
                return em_error_set(err, ENOMEM, "decode");
        if (em_read_file(path, DECODE_MAX_FILE, &buf, &len, err) < 0)
                return -1;
        if (decode_buf(path, (const uint8_t *)buf, len, o, err) < 0)
                return -1;
        *out = steal_pointer(&o);
        return 0;
}
