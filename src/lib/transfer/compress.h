/* zstd compression of frame payloads, and the `--compress auto|none|zstd:N`
 * policy. Every payload is one self-contained zstd frame, so a frame can be
 * decoded (and verified) on its own. */
#ifndef EDGEMIG_TRANSFER_COMPRESS_H
#define EDGEMIG_TRANSFER_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

enum em_compress_mode { EM_COMPRESS_AUTO = 0, EM_COMPRESS_NONE, EM_COMPRESS_ZSTD };

struct em_compress_opt {
        enum em_compress_mode mode;
        int level; /* for EM_COMPRESS_ZSTD: 1..19 */
};

/* "auto", "none" or "zstd:N" (N in 1..19; plain "zstd" means 3). */
int em_compress_parse(const char *s, struct em_compress_opt *opt, em_error_t *err);

/* One measured level: compression speed in raw bytes per second of one core,
 * and ratio = compressed / raw (0 < ratio). */
struct em_compress_sample {
        int level;
        double speed;
        double ratio;
};

#define EM_COMPRESS_CAL_LEVELS 4 /* levels 1, 3, 9 and 19 (for links slower than ~30 Mbit/s) */
struct em_compress_calibration {
        int n;
        struct em_compress_sample s[EM_COMPRESS_CAL_LEVELS];
};

/* Measures levels 1, 3, 9 and 19 on (up to the first MiB of) a sample of
 * the real data. */
int em_compress_calibrate(const void *sample, size_t len, struct em_compress_calibration *cal,
                          em_error_t *err);
/* The same, calling fast_done(arg) once the fast levels (1, 3, 9) are in
 * cal->s[0..2] and before level 19 (EM_COMPRESS_SLOW_LEVEL), which takes
 * most of the time (0.15-0.45 s under load): from then on another thread
 * may read those three samples while this one measures the last. */
#define EM_COMPRESS_SLOW_LEVEL  19
#define EM_COMPRESS_FAST_LEVELS 3
int em_compress_calibrate_staged(const void *sample, size_t len,
                                 struct em_compress_calibration *cal, void (*fast_done)(void *),
                                 void *arg, em_error_t *err);

/* The auto rule. Compressing, hashing and sending run as a pipeline, so
 * shipping N raw bytes at level L costs about max(N / speed_L, N * ratio_L / bw)
 * seconds, and N / bw without compression. Pick the level with the lowest
 * cost; a level must beat "none" by more than 5 % (and a higher level must
 * beat a lower one by 5 %) to be worth its CPU. Consequences: on a fast link
 * (bw above every level's speed / ratio gain) it is off, on a slow link the
 * strongest level whose speed still exceeds bw / ratio wins. Returns 0 for
 * "none". Without a bandwidth measurement (bw <= 0) or a calibration it
 * returns 1: cheap and never a bottleneck below ~300 MB/s. */
int em_compress_choose(double bw_bytes_per_s, const struct em_compress_calibration *cal);

/* Level to use now: fixed modes return their level (0 for none), auto applies
 * em_compress_choose. */
int em_compress_level(const struct em_compress_opt *opt, double bw_bytes_per_s,
                      const struct em_compress_calibration *cal);

typedef struct em_zstd em_zstd_t;
/* A reusable compression + decompression context. The decompressor limits its
 * window to 16 MiB (hostile input cannot make it allocate more). */
em_zstd_t *em_zstd_new(void);
void em_zstd_free(em_zstd_t **z);
#define cleanup_zstd __attribute__((cleanup(em_zstd_free)))

/* Compresses src into a malloc'd buffer with ZSTD_compressStream2. */
int em_zstd_compress(em_zstd_t *z, int level, const void *src, size_t len, uint8_t **out,
                     size_t *out_len, em_error_t *err);
/* Decompresses exactly one zstd frame into out, which holds exactly raw_len
 * bytes; fails if the frame is corrupt, truncated, followed by garbage, or
 * decodes to any other size. */
int em_zstd_decompress(em_zstd_t *z, const void *src, size_t len, void *out, size_t raw_len,
                       em_error_t *err);

#endif
