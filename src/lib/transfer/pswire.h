/* Wire formats of post-copy page traffic (docs/postcopy.md, "Background
 * push and urgent faults").
 *
 * CRIU's page-server protocol as its lazy-pages daemon speaks it on
 * --ps-socket (facts from CRIU's criu/page-xfer.c and criu/uffd.c): every
 * message is a 32-byte iov {u32 cmd, 4 bytes padding, u64 nr_pages, u64
 * vaddr, u64 dst_id}, host byte order. The daemon sends PS_IOV_GET
 * (dst_id: the task's pid in the dump, vaddr, nr_pages) and reads the
 * answers strictly in request order: an iov (cmd PS_IOV_ADD_F with
 * PE_PRESENT in its flag bits, the same dst_id and vaddr, nr_pages at most
 * the number asked for, never 0) followed by the pages. When it has every
 * page it sends PS_IOV_FORCE_CLOSE and waits for an int32 status (0).
 *
 * Our own chunks on the session (LAZY_PAGES frames, little-endian):
 *   {u32 pid, u32 nr_pages, u64 vaddr} then nr_pages pages (push and urgent
 *   answers), or the 16-byte header alone (an urgent request). */
#ifndef EDGEMIG_TRANSFER_PSWIRE_H
#define EDGEMIG_TRANSFER_PSWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_PS_IOV_LEN         32
#define EM_PS_IOV_ADD_F       6
#define EM_PS_IOV_GET         7
#define EM_PS_IOV_CLOSE       0x1023
#define EM_PS_IOV_FORCE_CLOSE 0x1024
#define EM_PS_CMD_BITS        16
#define EM_PS_PE_PRESENT      (1u << 2)
/* CRIU asks for at most 4 MiB at once (its MAX_XFER_LEN). */
#define EM_PS_MAX_PAGES 1024u

struct em_ps_iov {
        uint32_t cmd;
        uint64_t nr_pages, vaddr, dst_id;
};

void em_ps_iov_pack(const struct em_ps_iov *pi, uint8_t out[EM_PS_IOV_LEN]);
void em_ps_iov_unpack(const uint8_t in[EM_PS_IOV_LEN], struct em_ps_iov *pi);
/* A message from the lazy-pages daemon: returns EM_PS_IOV_GET (1 to
 * EM_PS_MAX_PAGES pages at a page-aligned address that does not wrap, a
 * pid that fits 32 bits) or EM_PS_IOV_CLOSE (either close); anything else
 * is an error. */
int em_ps_request_check(const struct em_ps_iov *pi, em_error_t *err);
/* The answer header for pi, carrying nr pages. */
void em_ps_answer(const struct em_ps_iov *req, uint64_t nr, uint8_t out[EM_PS_IOV_LEN]);

/* Session streams of LAZY_PAGES frames while the source pushes (stream 3
 * is the byte relay of transfer/relay.h). */
#define EM_LAZY_STREAM_PUSH   4 /* source -> target: bulk pages; LAST: push done */
#define EM_LAZY_STREAM_ASK    5 /* target -> source: urgent requests; LAST: no more */
#define EM_LAZY_STREAM_URGENT 6 /* source -> target: answers; LAST: nothing follows */
#define EM_LAZY_STREAM_AGAIN  7 /* target -> source: pages it had and dropped, asked again */
#define EM_LAZY_HDR_LEN       16
/* Pages in one chunk, pushed or urgent: small, so that an urgent answer
 * waits behind at most one bulk chunk. */
#define EM_LAZY_CHUNK_PAGES 16u

struct em_lazy_chunk {
        uint32_t pid, nr_pages;
        uint64_t vaddr;
        const uint8_t *pages; /* NULL in a request */
};

void em_lazy_chunk_hdr(uint32_t pid, uint32_t nr, uint64_t vaddr, uint8_t out[EM_LAZY_HDR_LEN]);
/* Checks a chunk from the peer: 1 to EM_LAZY_CHUNK_PAGES pages at a
 * page-aligned address that does not wrap, and a length that is the header
 * alone (with_pages false) or header plus exactly those pages. */
int em_lazy_chunk_parse(const void *payload, size_t len, bool with_pages, struct em_lazy_chunk *c,
                        em_error_t *err);

#endif
