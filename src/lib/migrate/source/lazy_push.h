/* The source's side of a post-copy window with a background push
 * (docs/postcopy.md, "Background push and urgent faults").
 *
 * While the target's CRIU lazy-pages daemon runs, two threads own the
 * session connection on this side:
 * - the pusher reads the lazy pages the target lacks straight from the
 *   frozen tasks (/proc/PID/mem) and sends them as small compressed chunks
 *   (EM_LAZY_STREAM_PUSH), hot pages (rewritten during pre-copy) first, and
 *   the neighbourhood of every fault next;
 * - the reader answers the target's urgent requests (a fault for a page not
 *   here yet) at once on EM_LAZY_STREAM_URGENT. Answers go ahead of bulk
 *   chunks: the pusher waits while one is pending, and the socket's
 *   unsent queue is kept small (TCP_NOTSENT_LOWAT), so an answer waits
 *   behind at most one chunk. Every other frame is handed to the caller.
 * CRIU keeps the tasks frozen for as long as its page server runs (it
 * serves nothing here): every read is followed by a check that its
 * connection is still open, so no page read after CRIU ended (and the tasks
 * might have run on) reaches the target.
 * The target's LAST on EM_LAZY_STREAM_ASK (its daemon has every page) stops
 * the push; our LAST on EM_LAZY_STREAM_URGENT ends the window's traffic. */
#ifndef EDGEMIG_MIGRATE_SOURCE_LAZY_PUSH_H
#define EDGEMIG_MIGRATE_SOURCE_LAZY_PUSH_H

#include <stdint.h>
#include <sys/types.h>

#include "delta/lazy_set.h"
#include "transfer/conn.h"
#include "util/error.h"

/* Per-page state (opts.state). */
enum {
        EM_PUSH_TODO = 0, /* the target lacks it */
        EM_PUSH_HOT = 1,  /* the same, rewritten during pre-copy: goes first */
        EM_PUSH_HELD = 2, /* the target holds it (known-pages list) */
        EM_PUSH_SENT = 3,
};

struct em_lazy_task {
        uint32_t pid; /* in the dump (CRIU's, the pagemap's) */
        pid_t host;   /* the frozen task on this host */
};

struct em_lazy_push_opts {
        em_conn_t *conn;
        em_lazy_set_t *set; /* every lazy page of the dump; taken over */
        uint8_t *state;     /* set->pages bytes, EM_PUSH_*; taken over */
        const struct em_lazy_task *tasks;
        size_t ntasks;
        int level;     /* zstd level of the chunks */
        int server_fd; /* our connection to CRIU's page server (not taken), or -1 */
};

struct em_lazy_push_stats {
        uint64_t pushed_pages, urgent_pages, urgent_asks;
        int64_t push_ms; /* start to the last pushed chunk; -1 if the push was stopped */
};

typedef struct em_lazy_push em_lazy_push_t;

int em_lazy_push_start(const struct em_lazy_push_opts *o, em_lazy_push_t **out, em_error_t *err);
/* The push of a lazy dump, planned before FINAL (a plan that fails leaves
 * the pages to CRIU's pull) and started after it. */
struct em_lazy_push_plan {
        em_lazy_set_t *set;
        uint8_t *state;
        struct em_lazy_task *tasks;
        size_t ntasks;
};
/* Every lazy page in images not in a known-pages list (the target holds
 * those), pages the shadow has an older version of (rewritten during
 * pre-copy: the working set) first; tasks: the frozen tree under root. */
struct em_shadow;
int em_lazy_push_plan(const char *images, pid_t root, const struct em_shadow *shadow,
                      struct em_lazy_push_plan *plan, em_error_t *err);
void em_lazy_push_plan_free(struct em_lazy_push_plan *plan);
/* Starts a plan; its set and state are taken over either way. */
int em_lazy_push_begin(em_conn_t *conn, struct em_lazy_push_plan *plan, int level, int server_fd,
                       em_lazy_push_t **out, em_error_t *err);
/* The next frame that is not page traffic (see em_inbox_take): 1, 0 once
 * the target's LAST came (read the connection directly then), -1. */
int em_lazy_push_recv(em_lazy_push_t *p, struct em_frame *f, int timeout_ms, em_error_t *err);
void em_lazy_push_stats(em_lazy_push_t *p, struct em_lazy_push_stats *st);
/* Stops both threads (cutting the connection's receiving side if the
 * window did not end) and frees. */
void em_lazy_push_free(em_lazy_push_t **p);
#define cleanup_lazy_push __attribute__((cleanup(em_lazy_push_free)))

/* Ends CRIU's page server politely on its connection fd (PS_IOV_CLOSE, its
 * status), so that the lazy `runc checkpoint` returns. */
int em_lazy_push_close_server(int fd, em_error_t *err);

#endif
