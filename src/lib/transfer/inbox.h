/* A one-frame hand-over between a thread that is a connection's only
 * reader (post-copy engines: it consumes page frames itself) and the caller,
 * who gets every other frame (RESTORE_OK, progress, ABORT) with a timeout,
 * or the reader's failure. */
#ifndef EDGEMIG_TRANSFER_INBOX_H
#define EDGEMIG_TRANSFER_INBOX_H

#include <stdbool.h>

#include "transfer/frame.h"
#include "util/error.h"

typedef struct em_inbox em_inbox_t;

int em_inbox_new(em_inbox_t **out, em_error_t *err);
void em_inbox_free(em_inbox_t **b);

/* Reader side. put takes the frame over (*f cleared), waiting while the
 * previous one was not taken yet; after em_inbox_cut it drops it. fail
 * keeps the first error (and clears *e); end says no frame follows. */
void em_inbox_put(em_inbox_t *b, struct em_frame *f);
void em_inbox_fail(em_inbox_t *b, em_error_t *e);
void em_inbox_end(em_inbox_t *b);
/* Wakes whoever waits in put or take for good (the engine stops). */
void em_inbox_cut(em_inbox_t *b);
/* Wakes takers and the event fd (state of the engine changed). */
void em_inbox_kick(em_inbox_t *b);

/* Caller side: 1 with a frame, 0 once the reader ended with nothing
 * queued, -1 with the reader's error or on timeout. wait_ms: < 0 forever,
 * 0 not at all (then 0 also means "nothing yet"). what names the engine in
 * errors. */
int em_inbox_take(em_inbox_t *b, struct em_frame *f, int wait_ms, const char *what,
                  em_error_t *err);
/* -1 with the reader's error, 0 if none. */
int em_inbox_error(em_inbox_t *b, const char *what, em_error_t *err);
bool em_inbox_ended(em_inbox_t *b);
/* Readable when something changed; for poll loops (never read it). */
int em_inbox_event_fd(const em_inbox_t *b);

#endif
