/* edgemig debug decode: what is inside one of edgemig's binary files, so
 * that an operator can look into a stuck session's staging directory, as
 * CRIU's crit does for CRIU's images. The format is found by its magic:
 *
 *   "EMF1"      a frame stream (transfer/frame.h), e.g. a captured
 *               session; PAGES_DATA payloads are listed op by op, JSON
 *               payloads shown as JSON
 *   ops         a raw page-delta stream (delta/pages.h), if it starts
 *               with BEGIN or PREFILL and parses to the end
 *   "EMPCIDX1"  a page cache index (pagecache/.../index.bin)
 *   "EMSHADW1"  the source's memory shadow index (delta/shadow.h)
 *   "EMKNOWN1"  a known-pages list (edgemig-known-<pid>.bin, post-copy)
 *   CRIU        pagemap-<id>.img, with a summary of its pages-<n>.img
 *               next to it; or a pages-<n>.img named so
 *
 * Each part is read by the library code that reads it in a migration (the
 * frame decoder, the delta decoder's op layout, the index loaders), so the
 * decoder never disagrees with the engine. */
#ifndef EDGEMIG_MIGRATE_DECODE_H
#define EDGEMIG_MIGRATE_DECODE_H

#include <jansson.h>

#include "util/error.h"

/* The whole file as JSON: {"file", "format", ...}. A frame stream that
 * breaks off keeps the frames before the break and says why in "error". */
int em_decode_file(const char *path, json_t **out, em_error_t *err);

#endif
