/* The protobuf wire format, read without generated code: CRIU's images are
 * proto2 messages and a peer may send any bytes, so this reader is strict.
 * Every length is checked against what is left, varints are at most 10
 * bytes, and nothing recurses: a decoder walks one message with an iterator
 * and opens a sub-message only where its schema has one, so nesting depth
 * is fixed by the code, not by the input.
 *
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 (3 and 4,
 * groups, do not occur in CRIU's protos and are refused). */
#ifndef EDGEMIG_CHECKPOINT_PBWIRE_H
#define EDGEMIG_CHECKPOINT_PBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

enum { EM_PB_VARINT = 0, EM_PB_FIXED64 = 1, EM_PB_LEN = 2, EM_PB_FIXED32 = 5 };

struct em_pb_field {
        uint32_t num;     /* field number, 1 .. 2^29-1 */
        uint8_t wt;       /* wire type */
        uint64_t v;       /* value of VARINT, FIXED64, FIXED32 */
        const uint8_t *p; /* LEN: payload */
        size_t len;       /* LEN: payload length */
};

struct em_pb_iter {
        const uint8_t *p, *end;
};

/* Return bytes used, or 0 on malformed / truncated input. */
size_t em_pb_get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v);
size_t em_pb_put_varint(uint8_t *p, uint64_t v); /* p has >= 10 bytes */

void em_pb_iter_init(struct em_pb_iter *it, const uint8_t *buf, size_t len);
/* 1: *f holds the next field; 0: end of message; -1: malformed. */
int em_pb_next(struct em_pb_iter *it, struct em_pb_field *f);

/* A uint32 scalar (VARINT that fits in 32 bits); -1 otherwise. */
int em_pb_u32(const struct em_pb_field *f, uint32_t *out);
/* A uint64 scalar (VARINT); -1 otherwise. */
int em_pb_u64(const struct em_pb_field *f, uint64_t *out);
/* A repeated uint32 occurrence, unpacked (one VARINT) or packed (LEN of
 * varints), as protobuf-c accepts both: appends to out[*n], at most max in
 * total. -1 when malformed or when more than max values come. */
int em_pb_rep_u32(const struct em_pb_field *f, uint32_t *out, size_t max, size_t *n);
/* A string field copied into out (NUL-terminated, at most cap-1 bytes, no
 * NUL inside); -1 if not LEN, too long or containing NUL. */
int em_pb_str(const struct em_pb_field *f, char *out, size_t cap);

/* Field-presence bookkeeping for required and once-only fields: refuses a
 * second occurrence of a singular field (protobuf-c would keep the last one
 * or merge; the validator must see what CRIU sees, so both are refused).
 * Fields numbered 1..63 only. */
int em_pb_once(uint64_t *seen, uint32_t num);
bool em_pb_has(uint64_t seen, uint32_t num);

#endif
