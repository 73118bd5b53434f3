/* The page-level content-hash delta for memory images, in pieces: page
 * hashes and sets (delta/hashset.h), the receiver's page cache
 * (delta/pagecache.h), the wire format (delta/pagefmt.h), the encoder
 * (delta/encode.h, with its XOR/ZBLOCK part delta/xorblock.h), live process
 * memory (delta/procmem.h) and the decoder (delta/decode.h). This header
 * includes them all for callers that use the whole engine. */
#ifndef EDGEMIG_DELTA_PAGES_H
#define EDGEMIG_DELTA_PAGES_H

#include "delta/decode.h"
#include "delta/encode.h"
#include "delta/hashset.h"
#include "delta/pagecache.h"
#include "delta/pagefmt.h"
#include "delta/procmem.h"

#endif
