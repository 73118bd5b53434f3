/* The target's post-copy page server; see lazy_serve.h. */
#include "migrate/target/lazy_serve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "transfer/inbox.h"
#include "transfer/pswire.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"

/* Requests the daemon may have outstanding: one background request per
 * task plus one per faulting thread; far more is a broken daemon. */
#define MAX_PENDING  4096u
#define WAIT_SAMPLES 65536u
/* One request asked this many times more than all others together: the
 * daemon cannot place those pages (UFFDIO_COPY fails and CRIU puts the
 * range back to ask again; transient failures clear after a retry or
 * two), so the window cannot end (docs/postcopy.md, "Known problems"). */
#define SAME_ASK_MAX 1000u

/* A page's life: MISSING -> (ASKED ->) HELD -> DROPPED once served (its
 * memory given back); a DROPPED page asked for again (a task forked after
 * the restore asks for its parent's pages) goes back to ASKED. */
enum { MISSING = 0, ASKED = 1, HELD = 2, DROPPED = 3 };

struct req {
        struct em_ps_iov pi;
        uint64_t idx;
        int64_t t_in_us;
        bool waited;
};

struct em_lazy_serve {
        em_conn_t *conn;
        int fd, wake, store_fd;
        em_lazy_set_t *set;
        uint8_t *state, *store; /* store: the page file, read only */
        size_t store_len;
        char *dir; /* of the page file, for errors */
        em_inbox_t *inbox;
        pthread_t reader, server;
        bool reader_on, server_on;
        pthread_mutex_t lock; /* flags and stats below */
        bool closed, source_done, stop;
        size_t waiting;       /* the server's qlen: requests not answered yet */
        int64_t queue_change; /* when a request last came or was answered (ms) */
        struct em_lazy_serve_stats st;
        uint32_t *wait_us; /* samples of waited requests */
        uint64_t nwait;
        int64_t t0;
        /* the server thread's own */
        struct req q[MAX_PENDING];
        size_t qhead, qlen;
        uint8_t inbuf[EM_PS_IOV_LEN];
        size_t inlen;
        struct em_ps_iov last_ask; /* the most repeated request, and its lead */
        uint32_t same_asks;
};

static void fail(em_lazy_serve_t *s, em_error_t *e)
{
        em_inbox_fail(s->inbox, e);
}

static void kick(int fd)
{
        uint64_t one = 1;

        if (write(fd, &one, sizeof(one)) < 0) {
                /* saturated: still readable */
        }
}

/* ---- the reader: pages from the source ---- */

static int store_page(em_lazy_serve_t *s, uint64_t i, const uint8_t *page, em_error_t *err)
{
        off_t off = (off_t)(i * EM_PAGE_SIZE);

        for (size_t done = 0; done < EM_PAGE_SIZE;) {
                ssize_t n = pwrite(s->store_fd, page + done, EM_PAGE_SIZE - done, off + done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return em_error_set(err, n < 0 ? errno : EIO,
                                            "lazy pages: writing the page file in %s (it needs "
                                            "up to %zu MiB free there)",
                                            s->dir, s->store_len >> 20);
                done += (size_t)n;
        }
        return 0;
}

static int take_page(em_lazy_serve_t *s, uint64_t i, const uint8_t *page, bool urgent,
                     em_error_t *err)
{
        uint8_t st = __atomic_load_n(&s->state[i], __ATOMIC_ACQUIRE);

        if (st < HELD && store_page(s, i, page, err) < 0)
                return -1;
        /* Only this thread makes pages HELD; the server only MISSING or
         * DROPPED -> ASKED. */
        while (st < HELD && !__atomic_compare_exchange_n(&s->state[i], &st, HELD, false,
                                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        }
        pthread_mutex_lock(&s->lock);
        if (st >= HELD)
                s->st.dup_pages++;
        else if (urgent)
                s->st.urgent_pages++;
        else
                s->st.pushed_pages++;
        pthread_mutex_unlock(&s->lock);
        return 0;
}

static int take_chunk(em_lazy_serve_t *s, const struct em_frame *f, bool urgent, em_error_t *err)
{
        struct em_lazy_chunk c;
        uint64_t idx;

        if (em_lazy_chunk_parse(f->payload, f->length, true, &c, err) < 0)
                return -1;
        if (!em_lazy_set_find(s->set, c.pid, c.vaddr, c.nr_pages, &idx))
                return em_error_set(err, EPROTO,
                                    "protocol error: the source sent %u pages at 0x%llx of task "
                                    "%u, not lazy pages of these images",
                                    (unsigned)c.nr_pages, (unsigned long long)c.vaddr,
                                    (unsigned)c.pid);
        for (uint32_t i = 0; i < c.nr_pages; i++)
                if (take_page(s, idx + i, c.pages + (size_t)i * EM_PAGE_SIZE, urgent, err) < 0)
                        return -1;
        kick(s->wake);
        return 0;
}

/* 1: go on, 0: the source's last frame, -1: error. */
static int read_one(em_lazy_serve_t *s, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        int rc = em_conn_recv(s->conn, &f, err);

        if (rc <= 0)
                return rc == 0 ? em_error_set(err, ECONNRESET, "source closed the connection") : -1;
        if (f.hdr.type != EM_FRAME_LAZY_PAGES) {
                em_inbox_put(s->inbox, &f);
                return 1;
        }
        bool last = f.hdr.flags & EM_FRAME_F_LAST;
        if (f.hdr.stream == EM_LAZY_STREAM_URGENT && last)
                return 0;
        if (f.hdr.stream == EM_LAZY_STREAM_PUSH && last) {
                pthread_mutex_lock(&s->lock);
                s->st.push_done_ms = em_mono_ms() - s->t0;
                pthread_mutex_unlock(&s->lock);
                return 1;
        }
        if (f.hdr.stream != EM_LAZY_STREAM_PUSH && f.hdr.stream != EM_LAZY_STREAM_URGENT)
                return em_error_set(err, EPROTO, "protocol error: LAZY_PAGES on stream %u",
                                    (unsigned)f.hdr.stream);
        return take_chunk(s, &f, f.hdr.stream == EM_LAZY_STREAM_URGENT, err) < 0 ? -1 : 1;
}

/* The source went quiet for the I/O timeout. It owes us something while
 * its push runs, while a request waits for its pages and after our LAST;
 * otherwise silence is its normal state, and what stalled is the daemon:
 * with every request answered, a running daemon always asks for more
 * (criu/uffd.c: one background request as soon as none is in flight)
 * until it has every page and closes. Says which side it was. */
static void blame_stall(em_lazy_serve_t *s, em_error_t *e)
{
        pthread_mutex_lock(&s->lock);
        bool owed = s->st.push_done_ms < 0 || s->waiting > 0 || s->closed;
        size_t waiting = s->waiting;
        uint64_t requests = s->st.requests;
        int64_t idle = em_mono_ms() - s->queue_change;
        pthread_mutex_unlock(&s->lock);

        if (em_error_status(*e) != ETIMEDOUT)
                return;
        if (owed) {
                em_error_wrap(e,
                              "the source stalled (%zu of the lazy-pages daemon's requests "
                              "waiting for its pages)",
                              waiting);
                return;
        }
        em_error_free(e);
        em_error_set_code(e, ETIMEDOUT,
                          "criu lazy-pages stalled: it asked for nothing for %lld ms with each "
                          "of its %llu requests answered, yet has not finished (the source, "
                          "silent by design once its push is over and nothing is asked of it, "
                          "is not at fault; docs/postcopy.md, \"Known problems\")",
                          (long long)idle, (unsigned long long)requests);
}

static void *reader_main(void *arg)
{
        em_lazy_serve_t *s = arg;
        em_error_t e = NULL;
        int rc;

        while ((rc = read_one(s, &e)) == 1) {
        }
        if (rc < 0) {
                blame_stall(s, &e);
                fail(s, &e);
        } else {
                pthread_mutex_lock(&s->lock);
                s->source_done = true;
                pthread_mutex_unlock(&s->lock);
        }
        em_inbox_end(s->inbox);
        kick(s->wake);
        return NULL;
}

/* ---- the server: the daemon's requests ---- */

/* For blame_stall and em_lazy_serve_daemon_idle_ms: the queue as the
 * other threads may see it. */
static void queue_changed(em_lazy_serve_t *s)
{
        pthread_mutex_lock(&s->lock);
        s->waiting = s->qlen;
        s->queue_change = em_mono_ms();
        pthread_mutex_unlock(&s->lock);
}

static bool stopped(em_lazy_serve_t *s)
{
        pthread_mutex_lock(&s->lock);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->lock);
        return stop;
}

/* An urgent request for the pages from r's first one that nobody asked
 * for yet (at most one chunk; a fault asks for its one page): pages never
 * here, or pages served and dropped (then on EM_LAZY_STREAM_AGAIN: the
 * source sent them already). */
static int ask(em_lazy_serve_t *s, const struct req *r, em_error_t *err)
{
        uint8_t hdr[EM_LAZY_HDR_LEN], from = __atomic_load_n(&s->state[r->idx], __ATOMIC_ACQUIRE);
        uint32_t n = 0;

        while ((from == MISSING || from == DROPPED) && n < EM_LAZY_CHUNK_PAGES &&
               n < r->pi.nr_pages) {
                uint8_t want = from;
                if (!__atomic_compare_exchange_n(&s->state[r->idx + n], &want, ASKED, false,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                        break;
                n++;
        }
        if (n == 0)
                return 0;
        pthread_mutex_lock(&s->lock);
        s->st.asks++;
        s->st.asked_again += from == DROPPED;
        pthread_mutex_unlock(&s->lock);
        em_lazy_chunk_hdr((uint32_t)r->pi.dst_id, n, r->pi.vaddr, hdr);
        return em_conn_send(s->conn, EM_FRAME_LAZY_PAGES, 0,
                            from == DROPPED ? EM_LAZY_STREAM_AGAIN : EM_LAZY_STREAM_ASK, hdr,
                            sizeof(hdr), 0, err);
}

/* CRIU 4.2.1 can loop on one range for ever: see SAME_ASK_MAX. The
 * faults it serves meanwhile ask for other pages, so a majority count
 * (one candidate: +1 when asked again, -1 for any other request) rather
 * than a run length. */
static int check_repeat(em_lazy_serve_t *s, const struct em_ps_iov *pi, em_error_t *err)
{
        bool same = pi->vaddr == s->last_ask.vaddr && pi->nr_pages == s->last_ask.nr_pages &&
                    pi->dst_id == s->last_ask.dst_id;

        if (same) {
                s->same_asks++;
        } else if (s->same_asks > 1) {
                s->same_asks--;
        } else {
                s->last_ask = *pi;
                s->same_asks = 1;
        }
        if (!same || s->same_asks < SAME_ASK_MAX)
                return 0;
        return em_error_set(err, ELOOP,
                            "criu lazy-pages asked for the same %llu pages at 0x%llx of task %llu "
                            "over and over (%u times more than all other requests): it cannot "
                            "place them (the process freed that memory while they were in flight), "
                            "and cannot finish (docs/postcopy.md, \"Known problems\")",
                            (unsigned long long)pi->nr_pages, (unsigned long long)pi->vaddr,
                            (unsigned long long)pi->dst_id, s->same_asks);
}

static int enqueue(em_lazy_serve_t *s, const struct em_ps_iov *pi, em_error_t *err)
{
        struct req *r;
        uint64_t idx;

        if (!em_lazy_set_find(s->set, (uint32_t)pi->dst_id, pi->vaddr, pi->nr_pages, &idx))
                return em_error_set(err, EPROTO,
                                    "the lazy-pages daemon asked for %llu pages at 0x%llx of task "
                                    "%llu, not lazy pages of the images",
                                    (unsigned long long)pi->nr_pages, (unsigned long long)pi->vaddr,
                                    (unsigned long long)pi->dst_id);
        if (s->qlen == MAX_PENDING)
                return em_error_set(err, EOVERFLOW,
                                    "the lazy-pages daemon has over %u requests outstanding",
                                    MAX_PENDING);
        if (check_repeat(s, pi, err) < 0)
                return -1;
        r = &s->q[(s->qhead + s->qlen++) % MAX_PENDING];
        *r = (struct req){.pi = *pi, .idx = idx, .t_in_us = em_mono_ns() / 1000};
        r->waited = __atomic_load_n(&s->state[idx], __ATOMIC_ACQUIRE) != HELD;
        pthread_mutex_lock(&s->lock);
        s->st.requests++;
        s->st.waited += r->waited;
        pthread_mutex_unlock(&s->lock);
        queue_changed(s);
        return r->waited ? ask(s, r, err) : 0;
}

static void answered(em_lazy_serve_t *s, const struct req *r, uint64_t n)
{
        int64_t us = em_mono_ns() / 1000 - r->t_in_us;

        pthread_mutex_lock(&s->lock);
        s->st.served_pages += n;
        if (r->waited) {
                s->wait_us[s->nwait % WAIT_SAMPLES] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
                s->nwait++;
        }
        pthread_mutex_unlock(&s->lock);
        s->qhead = (s->qhead + 1) % MAX_PENDING;
        s->qlen--;
        queue_changed(s);
}

/* Answers the oldest request once its first page is here, with the pages
 * here from there on (CRIU takes fewer than it asked for and asks again
 * for the rest), then drops them: only pages not served yet take memory.
 * 1: answered, 0: not yet. */
static int answer_head(em_lazy_serve_t *s, em_error_t *err)
{
        const struct req *r = &s->q[s->qhead];
        uint8_t hdr[EM_PS_IOV_LEN];
        uint64_t n = 0;

        while (n < r->pi.nr_pages &&
               __atomic_load_n(&s->state[r->idx + n], __ATOMIC_ACQUIRE) == HELD)
                n++;
        /* Not here: asked for already, or served to an earlier request for
         * the same page after this one came (then it is asked again now). */
        if (n == 0)
                return ask(s, r, err) < 0 ? -1 : 0;
        em_ps_answer(&r->pi, n, hdr);
        struct iovec iov[2] = {{hdr, sizeof(hdr)},
                               {s->store + r->idx * EM_PAGE_SIZE, n * EM_PAGE_SIZE}};
        if (em_fd_writev_full(s->fd, iov, 2, 0, err) < 0)
                return em_error_wrap(err, "answering the lazy-pages daemon");
        for (uint64_t i = 0; i < n; i++)
                __atomic_store_n(&s->state[r->idx + i], DROPPED, __ATOMIC_RELEASE);
        /* Gives back their page cache and disk; best effort, as reads of
         * them never happen again before a new write. */
        (void)fallocate(s->store_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        (off_t)(r->idx * EM_PAGE_SIZE), (off_t)(n * EM_PAGE_SIZE));
        answered(s, r, n);
        return 1;
}

/* The daemon has every page: its status, then our LAST to the source. */
static int daemon_done(em_lazy_serve_t *s, em_error_t *err)
{
        int32_t status = 0;

        if (s->qlen > 0)
                return em_error_set(err, EPROTO,
                                    "the lazy-pages daemon closed with %zu requests unanswered",
                                    s->qlen);
        if (em_write_all(s->fd, &status, sizeof(status), err) < 0)
                return em_error_wrap(err, "answering the lazy-pages daemon");
        pthread_mutex_lock(&s->lock);
        s->closed = true;
        pthread_mutex_unlock(&s->lock);
        em_inbox_kick(s->inbox);
        return em_conn_send(s->conn, EM_FRAME_LAZY_PAGES, EM_FRAME_F_LAST, EM_LAZY_STREAM_ASK, NULL,
                            0, 0, err);
}

/* One read from the daemon; *done once it closed. */
static int read_daemon(em_lazy_serve_t *s, bool *done, em_error_t *err)
{
        struct em_ps_iov pi;
        ssize_t n = read(s->fd, s->inbuf + s->inlen, sizeof(s->inbuf) - s->inlen);
        int cmd;

        if (n < 0)
                return errno == EINTR || errno == EAGAIN
                           ? 0
                           : em_error_set(err, errno, "reading the lazy-pages daemon");
        if (n == 0)
                return em_error_set(err, EPIPE,
                                    "the lazy-pages daemon closed its socket before it had every "
                                    "page");
        s->inlen += (size_t)n;
        if (s->inlen < EM_PS_IOV_LEN)
                return 0;
        s->inlen = 0;
        em_ps_iov_unpack(s->inbuf, &pi);
        if ((cmd = em_ps_request_check(&pi, err)) < 0)
                return -1;
        if (cmd == EM_PS_IOV_CLOSE) {
                *done = true;
                return daemon_done(s, err);
        }
        return enqueue(s, &pi, err);
}

static int serve_loop(em_lazy_serve_t *s, em_error_t *err)
{
        bool done = false;
        uint64_t v;
        int rc = 0;

        while (!done) {
                struct pollfd p[2] = {
                    {.fd = s->fd, .events = s->qlen < MAX_PENDING ? POLLIN : 0},
                    {.fd = s->wake, .events = POLLIN},
                };
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        return em_error_set(err, errno, "lazy pages: poll");
                if ((p[1].revents & POLLIN) && read(s->wake, &v, sizeof(v)) < 0) {
                        /* EAGAIN: a racing drain */
                }
                if (stopped(s))
                        return 0;
                if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && read_daemon(s, &done, err) < 0)
                        return -1;
                while (s->qlen > 0 && (rc = answer_head(s, err)) == 1) {
                }
                if (rc < 0)
                        return -1;
        }
        return 0;
}

static void *server_main(void *arg)
{
        em_lazy_serve_t *s = arg;
        em_error_t e = NULL;

        if (serve_loop(s, &e) < 0)
                fail(s, &e);
        return NULL;
}

/* ---- the engine ---- */

/* A file without a name: gone with its last descriptor, however the
 * session ends (a killed daemon leaves nothing behind). mkostemp for file
 * systems without O_TMPFILE. */
static int open_unnamed(const char *dir, em_error_t *err)
{
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
                return fd >= 0 ? fd
                               : em_error_set(err, errno, "lazy pages: a page file in %s", dir);
        cleanup_free char *path = NULL;
        if (asprintf(&path, "%s/lazy-pages.XXXXXX", dir) < 0)
                return em_error_set(err, ENOMEM, "out of memory");
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
                return em_error_set(err, errno, "lazy pages: a page file in %s", dir);
        unlink(path);
        return fd;
}

/* Pages that arrive go to a sparse file in the session's staging
 * directory, not to anonymous memory: page cache the session's memory
 * cgroup can write back and reclaim, so a lazy set larger than its limit
 * fits (docs/postcopy.md). Served from a read-only mapping of it. */
static int open_store(em_lazy_serve_t *s, const char *dir, em_error_t *err)
{
        s->dir = strdup(dir);
        if (s->dir == NULL)
                return em_error_set(err, ENOMEM, "out of memory");
        if ((s->store_fd = open_unnamed(dir, err)) < 0)
                return -1;
        if (ftruncate(s->store_fd, (off_t)s->store_len) < 0)
                return em_error_set(err, errno, "lazy pages: sizing the page file in %s", dir);
        s->store = mmap(NULL, s->store_len, PROT_READ, MAP_SHARED, s->store_fd, 0);
        if (s->store == MAP_FAILED) {
                s->store = NULL;
                return em_error_set(err, errno, "lazy pages: mapping the page file in %s", dir);
        }
        return 0;
}

static int init(em_lazy_serve_t *s, em_conn_t *conn, em_lazy_set_t *set, const char *dir,
                em_error_t *err)
{
        s->conn = conn;
        s->set = set;
        s->t0 = em_mono_ms();
        s->queue_change = s->t0;
        s->st.push_done_ms = -1;
        pthread_mutex_init(&s->lock, NULL);
        s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        s->store_len = (set->pages ? set->pages : 1) * (size_t)EM_PAGE_SIZE;
        s->state = calloc(set->pages ? set->pages : 1, 1);
        s->wait_us = calloc(WAIT_SAMPLES, sizeof(*s->wait_us));
        if (s->wake < 0 || s->state == NULL || s->wait_us == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "lazy pages: %llu pages",
                                    (unsigned long long)set->pages);
        if (open_store(s, dir, err) < 0)
                return -1;
        return em_inbox_new(&s->inbox, err);
}

int em_lazy_serve_start(em_conn_t *conn, int fd, em_lazy_set_t *set, const char *dir,
                        em_lazy_serve_t **out, em_error_t *err)
{
        em_lazy_serve_t *s = calloc(1, sizeof(*s));
        int e;

        if (s == NULL) {
                close(fd);
                em_lazy_set_free(&set);
                return em_error_set(err, ENOMEM, "lazy pages");
        }
        s->fd = fd;
        s->wake = -1;
        s->store_fd = -1;
        if (init(s, conn, set, dir, err) < 0) {
                em_lazy_serve_free(&s);
                return -1;
        }
        e = pthread_create(&s->reader, NULL, reader_main, s);
        s->reader_on = e == 0;
        if (e == 0) {
                e = pthread_create(&s->server, NULL, server_main, s);
                s->server_on = e == 0;
        }
        if (e != 0) {
                em_lazy_serve_free(&s);
                return em_error_set(err, e, "lazy pages: starting a thread");
        }
        *out = s;
        return 0;
}

int em_lazy_serve_recv(em_lazy_serve_t *s, struct em_frame *f, int wait_ms, em_error_t *err)
{
        return em_inbox_take(s->inbox, f, wait_ms, "lazy pages", err);
}

int em_lazy_serve_event_fd(const em_lazy_serve_t *s)
{
        return em_inbox_event_fd(s->inbox);
}

int em_lazy_serve_finished(em_lazy_serve_t *s, em_error_t *err)
{
        if (em_inbox_error(s->inbox, "lazy pages", err) < 0)
                return -1;
        pthread_mutex_lock(&s->lock);
        int rc = s->closed && s->source_done;
        pthread_mutex_unlock(&s->lock);
        return rc;
}

int64_t em_lazy_serve_daemon_idle_ms(em_lazy_serve_t *s)
{
        pthread_mutex_lock(&s->lock);
        int64_t idle = s->waiting > 0 || s->closed ? -1 : em_mono_ms() - s->queue_change;
        pthread_mutex_unlock(&s->lock);
        return idle;
}

uint64_t em_lazy_serve_progress(em_lazy_serve_t *s)
{
        pthread_mutex_lock(&s->lock);
        uint64_t n = s->st.pushed_pages + s->st.urgent_pages + s->st.dup_pages +
                     s->st.served_pages + s->st.requests;
        pthread_mutex_unlock(&s->lock);
        return n;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

void em_lazy_serve_stats(em_lazy_serve_t *s, struct em_lazy_serve_stats *st)
{
        pthread_mutex_lock(&s->lock);
        *st = s->st;
        size_t n = s->nwait < WAIT_SAMPLES ? s->nwait : WAIT_SAMPLES;
        cleanup_free uint32_t *w = n ? malloc(n * sizeof(*w)) : NULL;
        if (w != NULL)
                memcpy(w, s->wait_us, n * sizeof(*w));
        pthread_mutex_unlock(&s->lock);
        if (w == NULL)
                return;
        qsort(w, n, sizeof(*w), cmp_u32);
        st->wait_p50_ms = w[n / 2] / 1000.0;
        st->wait_p99_ms = w[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
        st->wait_max_ms = w[n - 1] / 1000.0;
}

void em_lazy_serve_free(em_lazy_serve_t **sp)
{
        em_lazy_serve_t *s = *sp;

        if (s == NULL)
                return;
        *sp = NULL;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        bool source_done = s->source_done;
        pthread_mutex_unlock(&s->lock);
        if (s->inbox != NULL)
                em_inbox_cut(s->inbox);
        if (s->wake >= 0)
                kick(s->wake);
        shutdown(s->fd, SHUT_RDWR);
        if (s->reader_on && !source_done)
                shutdown(em_conn_fd(s->conn), SHUT_RD);
        if (s->reader_on)
                pthread_join(s->reader, NULL);
        if (s->server_on)
                pthread_join(s->server, NULL);
        em_inbox_free(&s->inbox);
        if (s->store != NULL)
                munmap(s->store, s->store_len);
        if (s->store_fd >= 0)
                close(s->store_fd);
        free(s->dir);
        free(s->state);
        free(s->wait_us);
        em_lazy_set_free(&s->set);
        if (s->wake >= 0)
                close(s->wake);
        close(s->fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
