#include "checkpoint/pbwire.h"

#include <string.h>

size_t em_pb_get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
        uint64_t r = 0;

        for (size_t i = 0; i < 10 && p + i < end; i++) {
                uint8_t b = p[i];
                /* The 10th byte may only carry the top bit of a u64. */
                if (i == 9 && b > 1)
                        return 0;
                r |= (uint64_t)(b & 0x7f) << (7 * i);
                if (!(b & 0x80)) {
                        *v = r;
                        return i + 1;
                }
        }
        return 0;
}

size_t em_pb_put_varint(uint8_t *p, uint64_t v)
{
        size_t n = 0;

        do {
                p[n] = (uint8_t)(v & 0x7f);
                v >>= 7;
                if (v != 0)
                        p[n] |= 0x80;
                n++;
        } while (v != 0);
        return n;
}

void em_pb_iter_init(struct em_pb_iter *it, const uint8_t *buf, size_t len)
{
        it->p = buf;
        it->end = buf + len;
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
        uint64_t v = 0;

        for (size_t i = 0; i < n; i++)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

/* The value part of a field whose key is already read; bytes used or 0. */
static size_t read_value(struct em_pb_field *f, const uint8_t *p, const uint8_t *end)
{
        size_t left = (size_t)(end - p), n;
        uint64_t len;

        switch (f->wt) {
        case EM_PB_VARINT:
                return em_pb_get_varint(p, end, &f->v);
        case EM_PB_FIXED64:
                if (left < 8)
                        return 0;
                f->v = get_le(p, 8);
                return 8;
        case EM_PB_FIXED32:
                if (left < 4)
                        return 0;
                f->v = get_le(p, 4);
                return 4;
        case EM_PB_LEN:
                n = em_pb_get_varint(p, end, &len);
                if (n == 0 || len > left - n)
                        return 0;
                f->p = p + n;
                f->len = (size_t)len;
                return n + (size_t)len;
        default:
                return 0;
        }
}

int em_pb_next(struct em_pb_iter *it, struct em_pb_field *f)
{
        uint64_t key;
        size_t n, m;

        if (it->p >= it->end)
                return 0;
        n = em_pb_get_varint(it->p, it->end, &key);
        if (n == 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
                return -1;
        memset(f, 0, sizeof(*f));
        f->num = (uint32_t)(key >> 3);
        f->wt = (uint8_t)(key & 7);
        m = read_value(f, it->p + n, it->end);
        if (m == 0)
                return -1;
        it->p += n + m;
        return 1;
}

int em_pb_u32(const struct em_pb_field *f, uint32_t *out)
{
        if (f->wt != EM_PB_VARINT || f->v > UINT32_MAX)
                return -1;
        *out = (uint32_t)f->v;
        return 0;
}

int em_pb_u64(const struct em_pb_field *f, uint64_t *out)
{
        if (f->wt != EM_PB_VARINT)
                return -1;
        *out = f->v;
        return 0;
}

int em_pb_rep_u32(const struct em_pb_field *f, uint32_t *out, size_t max, size_t *n)
{
        const uint8_t *p, *end;
        uint64_t v;
        size_t m;

        if (f->wt == EM_PB_VARINT) {
                if (*n >= max || f->v > UINT32_MAX)
                        return -1;
                out[(*n)++] = (uint32_t)f->v;
                return 0;
        }
        if (f->wt != EM_PB_LEN)
                return -1;
        p = f->p;
        end = p + f->len;
        for (; p < end; p += m) {
                m = em_pb_get_varint(p, end, &v);
                if (m == 0 || v > UINT32_MAX || *n >= max)
                        return -1;
                out[(*n)++] = (uint32_t)v;
        }
        return 0;
}

int em_pb_str(const struct em_pb_field *f, char *out, size_t cap)
{
        if (f->wt != EM_PB_LEN || f->len >= cap || memchr(f->p, 0, f->len) != NULL)
                return -1;
        memcpy(out, f->p, f->len);
        out[f->len] = 0;
        return 0;
}

int em_pb_once(uint64_t *seen, uint32_t num)
{
        if (num == 0 || num > 63 || (*seen & (1ull << num)))
                return -1;
        *seen |= 1ull << num;
        return 0;
}

bool em_pb_has(uint64_t seen, uint32_t num)
{
        return num > 0 && num < 64 && (seen & (1ull << num));
}
