/* Message helpers of the migration protocol on top of transfer/conn:
 * JSON control frames, and whole files streamed as chunked frames.
 *
 * A file travels as one JSON frame of the given type with
 *   {"file": NAME, "size": N, "digest": "sha256:…", "mode": M}
 * followed by N bytes in frames of the same type on stream 1, the last one
 * flagged EM_FRAME_F_LAST (an empty file has one empty LAST frame). */
#ifndef EDGEMIG_MIGRATE_PROTO_H
#define EDGEMIG_MIGRATE_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "transfer/conn.h"
#include "transfer/handshake.h"
#include "util/error.h"

#define EM_PROTO_CHUNK (1u << 20)
/* Writable-layer sync (source/upper_send.c): FILE_DATA of a live round
 * travels on this stream, so the receiver may accept a file that changed
 * while it was read. */
#define EM_UPPER_STREAM_LIVE 2
/* Pre-check sessions (source/precheck.h): HELLO mode, and the size of the
 * ROUND_END frame that times the link. */
#define EM_PRECHECK_MODE  "check"
#define EM_PRECHECK_PROBE (1u << 20)
/* Pod sessions (source/pod_source.h, target/pod_target.h): HELLO mode,
 * and the one file that carries the pod's checkpoint. */
#define EM_POD_MODE     "pod"
#define EM_POD_TAR_NAME "pod.tar"

/* Sends a JSON control frame. */
int em_proto_send_json(em_conn_t *c, uint16_t type, const json_t *j, em_error_t *err);
/* Receives the next frame, which must be `expect` and carry a JSON object.
 * A peer's ABORT/ERROR frame becomes an error quoting the peer's reason. */
int em_proto_recv_json(em_conn_t *c, uint16_t expect, json_t **out, em_error_t *err);
/* The same checks on a frame received elsewhere (a relay's queue,
 * transfer/relay.h): ABORT/ERROR become the peer's error (frame_check
 * only that). */
int em_proto_frame_check(const struct em_frame *f, em_error_t *err);
int em_proto_frame_json(const struct em_frame *f, uint16_t expect, json_t **out, em_error_t *err);
/* Receives any frame; turns ABORT/ERROR into an error; a clean end of stream
 * is an error too (the protocol always ends with DONE). */
int em_proto_recv(em_conn_t *c, struct em_frame *f, em_error_t *err);
/* Tells the peer why we stop (best effort). */
void em_proto_send_abort(em_conn_t *c, const char *reason);

/* Streams the file at path under the name `name` (a plain file name). */
int em_proto_send_file(em_conn_t *c, uint16_t type, const char *path, const char *name, int level,
                       uint64_t *raw_sent, em_error_t *err);
/* Having received the header frame `hdr` (JSON of a file), writes the file
 * into dirfd under its name (must be a plain name: no '/', not "." or ".."),
 * verifying size and digest; the verified digest goes to digest_out (may be
 * NULL). durable: fsync before returning (for what must survive a crash;
 * staged CRIU images need not: the source keeps its copy until commit). */
int em_proto_recv_file(em_conn_t *c, const json_t *hdr, uint16_t type, int dirfd, bool durable,
                       char *digest_out, em_error_t *err);
/* True for a safe plain file name. */
bool em_proto_name_ok(const char *name);

/* Sends HELLO h and reads the HELLO_ACK: *ok whether the peer accepts the
 * session, *reason (malloc'd, may be NULL) why not. target names the peer
 * in errors. */
int em_proto_hello(em_conn_t *c, const struct em_hello *h, const char *target, bool *ok,
                   char **reason, em_error_t *err);
/* The blobs of an image the target must hold: {name, manifest_digest,
 * blobs: [{digest[, diff_id]}]}; NULL on OOM. */
json_t *em_proto_image_plan(const struct em_image_info *im);

#endif
