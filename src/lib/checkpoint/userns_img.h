/* The user namespace a CRIU checkpoint restores (userns-N.img: the ID
 * mappings CRIU writes to the new namespace's uid_map and gid_map).
 *
 * CRIU takes these mappings from the images, not from config.json. So
 * before every restore the images must name exactly the container's range:
 * a checkpoint dumped with another range (a migration whose target gave the
 * container a different range) is rewritten to this host's, and one that
 * maps anything outside the range (a hostile peer asking for host root) is
 * refused. */
#ifndef EDGEMIG_CHECKPOINT_USERNS_IMG_H
#define EDGEMIG_CHECKPOINT_USERNS_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/criu_decode.h"
#include "state/state.h"
#include "util/error.h"

#define EM_USERNS_IMG_MAX_EXTENTS 16

/* Decodes one userns image file's bytes (magics, one length-prefixed
 * UsernsEntry, read by em_ck_decode_userns). EPROTO when the framing is
 * wrong or it has more than EM_USERNS_IMG_MAX_EXTENTS extents a side,
 * EBADMSG when the entry is malformed. */
int em_userns_img_decode(const uint8_t *buf, size_t len, struct em_ck_userns *out, em_error_t *err);
/* The most em_userns_img_encode writes: the header, then per extent a tag,
 * a length and three tagged varints of at most 5 bytes. */
#define EM_USERNS_IMG_ENCODED_MAX (12 + 2 * EM_USERNS_IMG_MAX_EXTENTS * (2 + 3 * 6))

/* Encodes it back, with the magics of the original (buf must hold
 * EM_USERNS_IMG_ENCODED_MAX bytes). Returns the length. */
size_t em_userns_img_encode(const struct em_ck_userns *m, uint32_t magic2, uint8_t *buf);

/* Every extent of m must lie in `from`; moves them to `to` (same offsets).
 * EPERM naming the extent otherwise. */
int em_userns_map_move(struct em_ck_userns *m, const struct em_idrange *from,
                       const struct em_idrange *to, em_error_t *err);

/* For the images in dir: requires one userns image whose mappings lie in
 * `from` and rewrites it onto `to` (from == to: only checks). ENOENT when
 * the checkpoint has no user namespace. */
int em_userns_img_remap(const char *dir, const struct em_idrange *from, const struct em_idrange *to,
                        em_error_t *err);

#endif
