/* The target's side of a post-copy window with a background push
 * (docs/postcopy.md, "Background push and urgent faults").
 *
 * edgemig itself is the page server of the local `criu lazy-pages` daemon
 * (transfer/pswire.h): it keeps the pages the source pushes and answers the
 * daemon's requests from them without a round trip. A request whose first
 * page has not arrived yet goes to the source at once as an urgent request
 * (EM_LAZY_STREAM_ASK, at most one chunk) and is answered when those pages
 * come, in the daemon's request order. Every page a peer sends is checked
 * against the lazy pages of the images (delta/lazy_set.h); a page is
 * accepted once, and dropped once served (a page asked for again, by a
 * task forked after the restore, is asked of the source again). Pages
 * here live in an unnamed sparse file in the session's staging directory:
 * page cache its memory cgroup can reclaim, not anonymous memory.
 *
 * Two threads: the reader (the connection's only reader in the window;
 * other frames go to the caller) and the server (the daemon's socket). */
#ifndef EDGEMIG_MIGRATE_TARGET_LAZY_SERVE_H
#define EDGEMIG_MIGRATE_TARGET_LAZY_SERVE_H

#include <stdint.h>

#include "delta/lazy_set.h"
#include "transfer/conn.h"
#include "util/error.h"

typedef struct em_lazy_serve em_lazy_serve_t;

struct em_lazy_serve_stats {
        uint64_t pushed_pages; /* new pages from the push */
        uint64_t urgent_pages; /* new pages from urgent answers */
        uint64_t dup_pages;    /* arrived when already here (push and fault crossed) */
        uint64_t served_pages; /* handed to the daemon */
        uint64_t requests;     /* the daemon's requests */
        uint64_t waited;       /* of which had to wait for the source */
        uint64_t asks;         /* urgent requests sent */
        uint64_t asked_again;  /* of which for pages served and dropped before */
        double wait_p50_ms, wait_p99_ms, wait_max_ms; /* the waited requests' wait */
        int64_t push_done_ms; /* start to the source's last pushed chunk (-1: not yet) */
};

/* fd: our end of the daemon's --ps-socket (taken over); set: its lazy pages
 * (taken over); dir: where the page file goes (room for the whole set). */
int em_lazy_serve_start(em_conn_t *conn, int fd, em_lazy_set_t *set, const char *dir,
                        em_lazy_serve_t **out, em_error_t *err);
/* The next frame that is not page traffic: as em_inbox_take (wait_ms 0:
 * poll). */
int em_lazy_serve_recv(em_lazy_serve_t *s, struct em_frame *f, int wait_ms, em_error_t *err);
/* Readable when something changed (for poll loops; never read it). */
int em_lazy_serve_event_fd(const em_lazy_serve_t *s);
/* 1 once the daemon said it has every page and the source's last frame
 * came, 0 while not, -1 with the error of a failed side. */
int em_lazy_serve_finished(em_lazy_serve_t *s, em_error_t *err);
/* How long the daemon has had every request answered without asking for
 * more (ms since its last request or our last answer), -1 while a
 * request waits or once it closed. Once the restore has finished, a
 * running daemon is never idle for long: it asks for the next pages as
 * soon as none are in flight, so a long idle daemon that has not closed
 * has stopped fetching
 * (docs/postcopy.md, "Known problems"). */
int64_t em_lazy_serve_daemon_idle_ms(em_lazy_serve_t *s);
/* Pages that arrived plus pages served: grows while the window moves. */
uint64_t em_lazy_serve_progress(em_lazy_serve_t *s);
void em_lazy_serve_stats(em_lazy_serve_t *s, struct em_lazy_serve_stats *st);
void em_lazy_serve_free(em_lazy_serve_t **s);
#define cleanup_lazy_serve __attribute__((cleanup(em_lazy_serve_free)))

#endif
