/* The encoder's changed pages against the receiver's old content (the
 * sender's shadow, delta/shadow.h): a page as its XOR with what the
 * receiver holds for its address (XDATA), or, in a prefill section, pages
 * gathered and compressed against the old content around them (ZBLOCK). */
#ifndef EDGEMIG_DELTA_XORBLOCK_H
#define EDGEMIG_DELTA_XORBLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delta/encode.h"
#include "util/error.h"

/* The XOR of page with what the receiver holds for its address, into
 * arg (16-byte XDATA header, then the XOR). Returns 1 if it is worth
 * sending, 0 if the shadow cannot say what the receiver holds there, 2 if
 * the content is too different for an XOR to pay. */
int em_xor_delta(struct em_delta_enc *e, uint64_t vaddr, const uint8_t *page,
                 uint8_t arg[16 + EM_PAGE_SIZE]);
/* XDATA if it pays (1); else em_xor_delta's 0 or 2; -1 on error. */
int em_xor_put(struct em_delta_enc *e, uint64_t vaddr, const uint8_t *page, em_error_t *err);
/* Gathers a page for a ZBLOCK (flushing the block it does not fit). */
int em_zblock_add(struct em_delta_enc *e, uint64_t vaddr, const em_phash_t *h, const uint8_t *page,
                  em_error_t *err);
/* Emits the gathered pages: one ZBLOCK, or DATA if no reference helps;
 * then the receiver holds them. */
int em_zblock_flush(struct em_delta_enc *e, em_error_t *err);
void em_zblock_free(struct em_zblock **zb);
#endif
