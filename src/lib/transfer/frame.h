/* Versioned, length-prefixed, checksummed frames over a byte stream.
 *
 * Wire header (48 bytes, every field little-endian):
 *   0  u32 magic      "EMF1" (the digit is the frame format version)
 *   4  u16 type       enum em_frame_type
 *   6  u16 flags      EM_FRAME_F_*
 *   8  u64 session    first 8 bytes of the 128-bit session id (0 before HELLO)
 *  16  u64 seq        1, 2, 3, ... per direction: reorder, loss and replay show
 *  24  u32 stream     logical stream inside the session (0 = control)
 *  28  u32 length     payload bytes on the wire, <= EM_FRAME_MAX_PAYLOAD
 *  32  u32 raw_len    payload bytes after decompression, <= EM_FRAME_MAX_RAW
 *  36  u32 reserved   must be 0
 *  40  u64 checksum   XXH3-64 of header bytes 0..39 followed by the payload
 * Lengths are checked before anything is allocated. */
#ifndef EDGEMIG_TRANSFER_FRAME_H
#define EDGEMIG_TRANSFER_FRAME_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/error.h"

#define EM_FRAME_MAGIC       0x31464d45u /* "EMF1" as bytes on the wire */
#define EM_FRAME_HDR_LEN     48
#define EM_FRAME_MAX_PAYLOAD (16u << 20)
#define EM_FRAME_MAX_RAW     (16u << 20)

#define EM_FRAME_F_ZSTD  0x0001u /* payload is one zstd frame of raw_len bytes */
#define EM_FRAME_F_LAST  0x0002u /* last chunk of a multi-frame object */
#define EM_FRAME_F_KNOWN (EM_FRAME_F_ZSTD | EM_FRAME_F_LAST)

/* Error statuses (em_error_status) of the decoder, so callers and tests can
 * tell failures apart; the message says what happened in words. */
#define EM_FRAME_E_MAGIC    EBADMSG
#define EM_FRAME_E_TYPE     EPROTO
#define EM_FRAME_E_LENGTH   EMSGSIZE
#define EM_FRAME_E_TRUNC    ENODATA
#define EM_FRAME_E_CHECKSUM EILSEQ
#define EM_FRAME_E_ORDER    ERANGE
#define EM_FRAME_E_SESSION  EACCES

#define EM_FRAME_TYPES(X)                                                                          \
        X(HELLO, 1)                                                                                \
        X(HELLO_ACK, 2)                                                                            \
        X(LAYERS_HAVE, 3)                                                                          \
        X(LAYER_BLOB, 4)                                                                           \
        X(FILE_MANIFEST, 5)                                                                        \
        X(FILE_DATA, 6)                                                                            \
        X(FILE_DELETE, 7)                                                                          \
        X(PAGES_HASHES, 8)                                                                         \
        X(PAGES_DATA, 9)                                                                           \
        X(IMAGE_FILE, 10)                                                                          \
        X(ROUND_END, 11)                                                                           \
        X(FINAL, 12)                                                                               \
        X(RESTORE_OK, 13)                                                                          \
        X(ABORT, 14)                                                                               \
        X(DONE, 15)                                                                                \
        X(ERROR, 16)                                                                               \
        X(CONTROL, 17)                                                                             \
        X(CONTROL_REPLY, 18)                                                                       \
        X(LAZY_PAGES, 19)                                                                          \
        X(OUTCOME, 20)                                                                             \
        X(LOG_FILE, 21)                                                                            \
        X(FILE_ROOT, 22)                                                                           \
        X(FILE_BLOCKS, 23)

enum em_frame_type {
#define EM_FRAME_ENUM(name, val) EM_FRAME_##name = val,
        EM_FRAME_TYPES(EM_FRAME_ENUM)
#undef EM_FRAME_ENUM
            EM_FRAME_TYPE_MAX = 23,
};

/* "HELLO", ...; NULL for an unknown type. */
const char *em_frame_type_name(uint16_t type);
/* Accepts the name in any case; -1 if unknown. */
int em_frame_type_from_name(const char *name);
bool em_frame_type_valid(uint16_t type);

struct em_frame_hdr {
        uint16_t type;
        uint16_t flags;
        uint64_t session;
        uint64_t seq;
        uint32_t stream;
        uint32_t length;
        uint32_t raw_len;
        uint64_t checksum;
};

/* A received frame; payload is owned (malloc'd), NUL-terminated for
 * convenience (the terminator is not counted in length). */
struct em_frame {
        struct em_frame_hdr hdr;
        uint8_t *payload;
        uint32_t length;
};
void em_frame_clear(struct em_frame *f);
#define cleanup_frame __attribute__((cleanup(em_frame_clear)))

/* Per-direction state. The writer numbers frames; the reader checks the
 * numbering and the session (session 0 in the reader: bind to the first
 * non-zero session seen). */
struct em_frame_writer {
        uint64_t session;
        uint64_t seq; /* last sequence number sent */
};
struct em_frame_reader {
        uint64_t session;
        uint64_t seq; /* last sequence number accepted */
};

/* Pure header packing/parsing. parse validates magic, type, flags, reserved
 * and the length limits, but not the checksum (it covers the payload). */
void em_frame_hdr_pack(const struct em_frame_hdr *h, uint8_t out[EM_FRAME_HDR_LEN]);
int em_frame_hdr_parse(const uint8_t in[EM_FRAME_HDR_LEN], struct em_frame_hdr *h, em_error_t *err);
/* XXH3-64 over header bytes 0..39 and the payload. */
uint64_t em_frame_checksum(const uint8_t hdr[EM_FRAME_HDR_LEN], const void *payload, size_t len);

/* Byte-source/sink callbacks so one code path serves fds, connections and
 * memory. read: fills up to len, sets *got (< len only at end of stream). */
typedef int (*em_frame_read_fn)(void *ctx, void *buf, size_t len, size_t *got, em_error_t *err);
typedef int (*em_frame_writev_fn)(void *ctx, const struct iovec *iov, int iovcnt, em_error_t *err);

/* Reads one frame. Returns 1 with a frame, 0 on a clean end of stream before
 * the first header byte, -1 on error (see EM_FRAME_E_*). */
int em_frame_recv(struct em_frame_reader *r, em_frame_read_fn rd, void *ctx, struct em_frame *out,
                  em_error_t *err);
/* Numbers, checksums and writes one frame. raw_len is the decompressed size for
 * EM_FRAME_F_ZSTD payloads and must equal len otherwise. */
int em_frame_send(struct em_frame_writer *w, em_frame_writev_fn wr, void *ctx, uint16_t type,
                  uint16_t flags, uint32_t stream, const void *payload, uint32_t len,
                  uint32_t raw_len, em_error_t *err);

/* Memory buffers: decode one frame from buf (*consumed = bytes used);
 * encode appends one frame to a malloc'd buffer. */
int em_frame_decode(struct em_frame_reader *r, const uint8_t *buf, size_t len, struct em_frame *out,
                    size_t *consumed, em_error_t *err);
int em_frame_encode(struct em_frame_writer *w, uint16_t type, uint16_t flags, uint32_t stream,
                    const void *payload, uint32_t len, uint32_t raw_len, uint8_t **buf,
                    size_t *buf_len, em_error_t *err);

/* Plain fds: full-length loops that retry EINTR/EAGAIN and wait with poll.
 * timeout_ms bounds each wait for progress (<= 0: no timeout); a stalled peer
 * fails with ETIMEDOUT. */
int em_fd_read_full(int fd, void *buf, size_t len, size_t *got, int timeout_ms, em_error_t *err);
/* Waits up to timeout_ms (<= 0: forever) for events (poll's) on fd:
 * ETIMEDOUT when none came. */
int em_fd_wait(int fd, short events, int timeout_ms, em_error_t *err);
int em_fd_writev_full(int fd, const struct iovec *iov, int iovcnt, int timeout_ms, em_error_t *err);
int em_frame_read_fd(struct em_frame_reader *r, int fd, int timeout_ms, struct em_frame *out,
                     em_error_t *err);
int em_frame_write_fd(struct em_frame_writer *w, int fd, int timeout_ms, uint16_t type,
                      uint16_t flags, uint32_t stream, const void *payload, uint32_t len,
                      em_error_t *err);

/* The per-frame session tag from a 128-bit session id. Never 0. */
uint64_t em_frame_session_tag(const uint8_t id[16]);

#endif
