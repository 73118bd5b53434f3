#include "transfer/compress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "util/clock.h"
#include "util/cleanup.h"

#define MAX_LEVEL 19

int em_compress_parse(const char *s, struct em_compress_opt *opt, em_error_t *err)
{
        char *end = NULL;
        long lvl;

        if (strcmp(s, "auto") == 0) {
                *opt = (struct em_compress_opt){EM_COMPRESS_AUTO, 0};
                return 0;
        }
        if (strcmp(s, "none") == 0) {
                *opt = (struct em_compress_opt){EM_COMPRESS_NONE, 0};
                return 0;
        }
        if (strcmp(s, "zstd") == 0) {
                *opt = (struct em_compress_opt){EM_COMPRESS_ZSTD, 3};
                return 0;
        }
        if (strncmp(s, "zstd:", 5) != 0)
                return em_error_set(err, EINVAL,
                                    "unknown compression '%s' (want auto, none or zstd:LEVEL)", s);
        errno = 0;
        lvl = strtol(s + 5, &end, 10);
        if (errno != 0 || end == s + 5 || *end != '\0' || lvl < 1 || lvl > MAX_LEVEL)
                return em_error_set(err, EINVAL, "bad zstd level in '%s' (want 1..%d)", s,
                                    MAX_LEVEL);
        *opt = (struct em_compress_opt){EM_COMPRESS_ZSTD, (int)lvl};
        return 0;
}

static double cost(double bw, double speed, double ratio)
{
        double c_cpu = 1.0 / speed, c_net = ratio / bw;

        return c_cpu > c_net ? c_cpu : c_net;
}

int em_compress_choose(double bw, const struct em_compress_calibration *cal)
{
        double best_cost;
        int best = 0;

        if (bw <= 0 || cal == NULL || cal->n == 0)
                return 1;
        best_cost = 1.0 / bw;
        /* Samples are in increasing level order; a stronger level must win by 5 %. */
        for (int i = 0; i < cal->n; i++) {
                const struct em_compress_sample *s = &cal->s[i];
                double c;

                if (s->speed <= 0 || s->ratio <= 0)
                        continue;
                c = cost(bw, s->speed, s->ratio);
                if (c < best_cost * 0.95) {
                        best_cost = c;
                        best = s->level;
                }
        }
        return best;
}

int em_compress_level(const struct em_compress_opt *opt, double bw,
                      const struct em_compress_calibration *cal)
{
        switch (opt->mode) {
        case EM_COMPRESS_NONE:
                return 0;
        case EM_COMPRESS_ZSTD:
                return opt->level;
        case EM_COMPRESS_AUTO:
                break;
        }
        return em_compress_choose(bw, cal);
}

struct em_zstd {
        ZSTD_CCtx *c;
        ZSTD_DCtx *d;
};

em_zstd_t *em_zstd_new(void)
{
        em_zstd_t *z = calloc(1, sizeof(*z));

        if (z == NULL)
                return NULL;
        z->c = ZSTD_createCCtx();
        z->d = ZSTD_createDCtx();
        if (z->c == NULL || z->d == NULL ||
            ZSTD_isError(ZSTD_DCtx_setParameter(z->d, ZSTD_d_windowLogMax, 24))) {
                em_zstd_free(&z);
                return NULL;
        }
        return z;
}

void em_zstd_free(em_zstd_t **zp)
{
        em_zstd_t *z = *zp;

        if (z == NULL)
                return;
        ZSTD_freeCCtx(z->c);
        ZSTD_freeDCtx(z->d);
        free(z);
        *zp = NULL;
}

int em_zstd_compress(em_zstd_t *z, int level, const void *src, size_t len, uint8_t **out,
                     size_t *out_len, em_error_t *err)
{
        size_t cap = ZSTD_compressBound(len), r;
        cleanup_free uint8_t *buf = malloc(cap ? cap : 1);
        ZSTD_inBuffer in = {src, len, 0};
        ZSTD_outBuffer ob = {NULL, cap, 0};

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "allocating %zu bytes for zstd", cap);
        ob.dst = buf;
        ZSTD_CCtx_reset(z->c, ZSTD_reset_session_only);
        r = ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level);
        if (ZSTD_isError(r))
                return em_error_set(err, EINVAL, "zstd level %d: %s", level, ZSTD_getErrorName(r));
        ZSTD_CCtx_setPledgedSrcSize(z->c, len);
        /* The proven loop: call until the frame is complete (r == 0). */
        do {
                r = ZSTD_compressStream2(z->c, &ob, &in, ZSTD_e_end);
                if (ZSTD_isError(r))
                        return em_error_set(err, EIO, "zstd compression: %s", ZSTD_getErrorName(r));
        } while (r != 0);
        *out = steal_pointer(&buf);
        *out_len = ob.pos;
        return 0;
}

int em_zstd_decompress(em_zstd_t *z, const void *src, size_t len, void *out, size_t raw_len,
                       em_error_t *err)
{
        ZSTD_inBuffer in = {src, len, 0};
        ZSTD_outBuffer ob = {out, raw_len, 0};
        uint8_t extra;
        ZSTD_outBuffer probe = {&extra, 1, 0};
        size_t r;

        ZSTD_DCtx_reset(z->d, ZSTD_reset_session_only);
        for (;;) {
                /* Once out is full, decode into a 1-byte probe: any byte there
                 * means the payload is larger than announced. */
                ZSTD_outBuffer *o = ob.pos < ob.size ? &ob : &probe;

                r = ZSTD_decompressStream(z->d, o, &in);
                if (ZSTD_isError(r))
                        return em_error_set(err, EBADMSG, "corrupt zstd payload: %s",
                                            ZSTD_getErrorName(r));
                if (probe.pos > 0)
                        return em_error_set(err, EBADMSG,
                                            "zstd payload decodes to more than %zu bytes", raw_len);
                if (r == 0)
                        break; /* frame complete */
                if (in.pos == in.size && o->pos < o->size)
                        return em_error_set(err, EBADMSG, "truncated zstd payload");
        }
        if (ob.pos != raw_len || in.pos != in.size)
                return em_error_set(err, EBADMSG,
                                    "zstd payload decodes to %zu bytes (+%zu trailing), want %zu",
                                    ob.pos, in.size - in.pos, raw_len);
        return 0;
}

static int measure_level(em_zstd_t *z, int level, const void *sample, size_t len,
                         struct em_compress_calibration *cal, em_error_t *err)
{
        cleanup_free uint8_t *out = NULL;
        size_t out_len = 0, n = len;
        double t0 = em_mono_s(), dt;

        /* Every level sees the same bytes, so ratios compare; 256 KiB keep
         * level 19 (~4 MB/s) under ~70 ms on an idle core. */
        if (n > (256u << 10))
                n = 256u << 10;
        if (em_zstd_compress(z, level, sample, n, &out, &out_len, err) < 0)
                return -1;
        dt = em_mono_s() - t0;
        cal->s[cal->n++] = (struct em_compress_sample){
            .level = level,
            .speed = (double)n / (dt > 1e-6 ? dt : 1e-6),
            .ratio = (double)out_len / (double)n,
        };
        return 0;
}

int em_compress_calibrate_staged(const void *sample, size_t len,
                                 struct em_compress_calibration *cal, void (*fast_done)(void *),
                                 void *arg, em_error_t *err)
{
        static const int levels[EM_COMPRESS_CAL_LEVELS] = {1, 3, 9, 19};
        cleanup_zstd em_zstd_t *z = em_zstd_new();

        if (z == NULL)
                return em_error_set(err, ENOMEM, "creating zstd context");
        if (len == 0)
                return em_error_set(err, EINVAL, "calibrating on an empty sample");
        cal->n = 0;
        for (int i = 0; i < EM_COMPRESS_CAL_LEVELS; i++) {
                if (levels[i] == EM_COMPRESS_SLOW_LEVEL && fast_done != NULL)
                        fast_done(arg);
                if (measure_level(z, levels[i], sample, len, cal, err) < 0)
                        return -1;
        }
        return 0;
}

int em_compress_calibrate(const void *sample, size_t len, struct em_compress_calibration *cal,
                          em_error_t *err)
{
        return em_compress_calibrate_staged(sample, len, cal, NULL, NULL, err);
}
