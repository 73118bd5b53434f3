/* The lazy-pages relay; see relay.h. Two threads per relay: the pump (local
 * socket -> frames) and the reader (frames -> local socket, other frames
 * queued one at a time for the caller). */
#include "transfer/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/clock.h"

/* What one read of the local socket may carry into one frame. */
#define PUMP_CHUNK (256u << 10)

struct em_relay {
        em_conn_t *conn;
        int fd, evfd, level;
        pthread_t pump, reader;
        bool pump_on, reader_on;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct em_frame queued; /* a frame for em_relay_recv */
        bool has_queued;
        bool sent_last, got_last, reader_out, cut, local_gone;
        em_error_t err; /* the first failure of either thread */
        uint64_t to_peer, from_peer;
};

/* Callers hold r->lock. */
static void changed(em_relay_t *r)
{
        uint64_t one = 1;

        pthread_cond_broadcast(&r->cond);
        if (write(r->evfd, &one, sizeof(one)) < 0) {
                /* the counter saturates only after 2^64 - 2 events */
        }
}

static void fail(em_relay_t *r, em_error_t *e)
{
        pthread_mutex_lock(&r->lock);
        if (r->err == NULL)
                em_error_move(&r->err, e);
        changed(r);
        pthread_mutex_unlock(&r->lock);
        em_error_free(e);
}

static void *pump_main(void *arg)
{
        em_relay_t *r = arg;
        cleanup_free uint8_t *buf = malloc(PUMP_CHUNK);
        em_error_t e = NULL;
        ssize_t n;

        if (buf == NULL) {
                em_error_set(&e, ENOMEM, "lazy pages relay");
                fail(r, &e);
                return NULL;
        }
        /* End of stream, a reset or our own shutdown all end this direction. */
        while ((n = read(r->fd, buf, PUMP_CHUNK)) > 0 || (n < 0 && errno == EINTR)) {
                if (n < 0)
                        continue;
                if (em_conn_send(r->conn, EM_FRAME_LAZY_PAGES, 0, EM_RELAY_STREAM, buf, (size_t)n,
                                 r->level, &e) < 0) {
                        fail(r, &e);
                        return NULL;
                }
                __atomic_add_fetch(&r->to_peer, (uint64_t)n, __ATOMIC_RELAXED);
        }
        if (__atomic_load_n(&r->cut, __ATOMIC_ACQUIRE))
                return NULL;
        if (em_conn_send(r->conn, EM_FRAME_LAZY_PAGES, EM_FRAME_F_LAST, EM_RELAY_STREAM, NULL, 0, 0,
                         &e) < 0) {
                fail(r, &e);
                return NULL;
        }
        pthread_mutex_lock(&r->lock);
        r->sent_last = true;
        changed(r);
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

/* Hands a control frame to em_relay_recv, one at a time. */
static void queue_frame(em_relay_t *r, struct em_frame *f)
{
        pthread_mutex_lock(&r->lock);
        while (r->has_queued && !r->cut)
                pthread_cond_wait(&r->cond, &r->lock);
        if (!r->cut) {
                r->queued = *f;
                memset(f, 0, sizeof(*f));
                r->has_queued = true;
                changed(r);
        }
        pthread_mutex_unlock(&r->lock);
}

/* Into the local socket. Once the local side is gone (the helper exited),
 * what still arrives is dropped: the helper's exit status tells the caller
 * whether that was an error. */
static void deliver(em_relay_t *r, const struct em_frame *f)
{
        struct iovec iov = {.iov_base = f->payload, .iov_len = f->length};
        em_error_t e = NULL;

        __atomic_add_fetch(&r->from_peer, f->length, __ATOMIC_RELAXED);
        if (r->local_gone || f->length == 0)
                return;
        if (em_fd_writev_full(r->fd, &iov, 1, 0, &e) < 0)
                r->local_gone = true;
        em_error_free(&e);
}

/* One frame from the peer; false when the reader is done. */
static bool read_one(em_relay_t *r)
{
        cleanup_frame struct em_frame f = {0};
        em_error_t e = NULL;
        int rc = em_conn_recv(r->conn, &f, &e);

        if (rc <= 0) {
                if (rc == 0)
                        em_error_set(&e, ECONNRESET, "peer closed the connection mid-relay");
                fail(r, &e);
                return false;
        }
        if (f.hdr.type != EM_FRAME_LAZY_PAGES) {
                queue_frame(r, &f);
                return true;
        }
        if (f.hdr.stream != EM_RELAY_STREAM) {
                em_error_set(&e, EPROTO, "protocol error: LAZY_PAGES on stream %u",
                             (unsigned)f.hdr.stream);
                fail(r, &e);
                return false;
        }
        deliver(r, &f);
        if (!(f.hdr.flags & EM_FRAME_F_LAST))
                return true;
        shutdown(r->fd, SHUT_WR);
        pthread_mutex_lock(&r->lock);
        r->got_last = true;
        pthread_mutex_unlock(&r->lock);
        return false;
}

static void *reader_main(void *arg)
{
        em_relay_t *r = arg;

        while (read_one(r)) {
        }
        pthread_mutex_lock(&r->lock);
        r->reader_out = true;
        changed(r);
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

static int relay_init(em_relay_t *r, em_conn_t *conn, int fd, int level, em_error_t *err)
{
        pthread_condattr_t ca;

        r->conn = conn;
        r->fd = fd;
        r->level = level;
        r->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->evfd < 0)
                return em_error_set(err, errno, "lazy pages relay: eventfd");
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&r->lock, NULL);
        return 0;
}

int em_relay_start(em_conn_t *conn, int fd, int level, em_relay_t **out, em_error_t *err)
{
        em_relay_t *r = calloc(1, sizeof(*r));
        int e;

        if (r == NULL) {
                close(fd);
                return em_error_set(err, ENOMEM, "lazy pages relay");
        }
        if (relay_init(r, conn, fd, level, err) < 0) {
                close(fd);
                free(r);
                return -1;
        }
        e = pthread_create(&r->reader, NULL, reader_main, r);
        r->reader_on = e == 0;
        if (e == 0) {
                e = pthread_create(&r->pump, NULL, pump_main, r);
                r->pump_on = e == 0;
        }
        if (e != 0) {
                em_relay_free(&r);
                return em_error_set(err, e, "lazy pages relay: starting a thread");
        }
        *out = r;
        return 0;
}

static void drain_event(em_relay_t *r)
{
        uint64_t v;

        if (read(r->evfd, &v, sizeof(v)) < 0) {
                /* EAGAIN: nothing pending */
        }
}

static void deadline_after(struct timespec *ts, int ms)
{
        clock_gettime(CLOCK_MONOTONIC, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static int copy_error(em_relay_t *r, em_error_t *err)
{
        return em_error_set_code(err, em_error_status(r->err), "lazy pages relay: %s",
                                 em_error_msg(r->err));
}

/* wait_ms: < 0 forever, 0 not at all. */
static int take(em_relay_t *r, struct em_frame *f, int wait_ms, em_error_t *err)
{
        struct timespec dl;
        int rc = 0, w = 0;

        drain_event(r);
        deadline_after(&dl, wait_ms > 0 ? wait_ms : 0);
        pthread_mutex_lock(&r->lock);
        while (!r->has_queued && r->err == NULL && !r->reader_out && w == 0 && wait_ms != 0)
                w = wait_ms > 0 ? pthread_cond_timedwait(&r->cond, &r->lock, &dl)
                                : pthread_cond_wait(&r->cond, &r->lock);
        if (r->has_queued) {
                *f = r->queued;
                memset(&r->queued, 0, sizeof(r->queued));
                r->has_queued = false;
                pthread_cond_broadcast(&r->cond);
                rc = 1;
        } else if (r->err != NULL) {
                rc = copy_error(r, err);
        } else if (!r->reader_out && wait_ms != 0) {
                rc = em_error_set(err, ETIMEDOUT,
                                  "lazy pages relay: nothing from the peer for %d ms", wait_ms);
        }
        pthread_mutex_unlock(&r->lock);
        return rc;
}

int em_relay_recv(em_relay_t *r, struct em_frame *f, int timeout_ms, em_error_t *err)
{
        return take(r, f, timeout_ms > 0 ? timeout_ms : -1, err);
}

int em_relay_poll(em_relay_t *r, struct em_frame *f, em_error_t *err)
{
        return take(r, f, 0, err);
}

int em_relay_event_fd(const em_relay_t *r)
{
        return r->evfd;
}

int em_relay_finished(em_relay_t *r, em_error_t *err)
{
        int rc;

        drain_event(r);
        pthread_mutex_lock(&r->lock);
        if (r->err != NULL)
                rc = copy_error(r, err);
        else
                rc = r->sent_last && r->got_last;
        pthread_mutex_unlock(&r->lock);
        return rc;
}

int em_relay_wait(em_relay_t *r, int timeout_ms, em_error_t *err)
{
        struct timespec dl;
        int rc = 0, w = 0;

        deadline_after(&dl, timeout_ms);
        pthread_mutex_lock(&r->lock);
        while (r->err == NULL && !(r->sent_last && r->got_last) && w == 0)
                w = pthread_cond_timedwait(&r->cond, &r->lock, &dl);
        if (r->err != NULL)
                rc = copy_error(r, err);
        else if (!(r->sent_last && r->got_last))
                rc = em_error_set(err, ETIMEDOUT, "lazy pages relay: not finished after %d ms",
                                  timeout_ms);
        pthread_mutex_unlock(&r->lock);
        return rc;
}

void em_relay_bytes(em_relay_t *r, uint64_t *to_peer, uint64_t *from_peer)
{
        *to_peer = __atomic_load_n(&r->to_peer, __ATOMIC_RELAXED);
        *from_peer = __atomic_load_n(&r->from_peer, __ATOMIC_RELAXED);
}

/* Wakes both threads wherever they block: the pump in read(fd), the reader
 * in a conn read or waiting for its queued frame to be taken. */
static void cut(em_relay_t *r)
{
        pthread_mutex_lock(&r->lock);
        __atomic_store_n(&r->cut, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        shutdown(r->fd, SHUT_RDWR);
        if (!r->reader_out)
                shutdown(em_conn_fd(r->conn), SHUT_RD);
}

void em_relay_free(em_relay_t **rp)
{
        em_relay_t *r = *rp;

        if (r == NULL)
                return;
        *rp = NULL;
        pthread_mutex_lock(&r->lock);
        bool done = r->sent_last && r->reader_out;
        pthread_mutex_unlock(&r->lock);
        if (!done)
                cut(r);
        if (r->reader_on)
                pthread_join(r->reader, NULL);
        if (r->pump_on)
                pthread_join(r->pump, NULL);
        em_frame_clear(&r->queued);
        em_error_free(&r->err);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        close(r->fd);
        if (r->evfd >= 0)
                close(r->evfd);
        free(r);
}

/* ---- a private loopback namespace ---- */

struct ns_job {
        int nsfd, port, fd, err;
};

static int lo_up(void)
{
        struct ifreq ifr = {0};
        cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return -1;
        ifr.ifr_flags |= IFF_UP;
        return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static void loopback_addr(int port, struct sockaddr_in *sa)
{
        *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* Runs in its own thread: unshare and setns change only the calling
 * thread's namespace, and it ends right after. */
static void *ns_new_main(void *arg)
{
        struct ns_job *j = arg;
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        cleanup_close int s = -1;

        if (unshare(CLONE_NEWNET) < 0 || lo_up() < 0) {
                j->err = errno;
                return NULL;
        }
        loopback_addr(0, &sa);
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            getsockname(s, (struct sockaddr *)&sa, &len) < 0) {
                j->err = errno;
                return NULL;
        }
        j->port = ntohs(sa.sin_port);
        j->nsfd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        j->err = j->nsfd < 0 ? errno : 0;
        return NULL;
}

static void *ns_socket_main(void *arg)
{
        struct ns_job *j = arg;

        if (setns(j->nsfd, CLONE_NEWNET) < 0) {
                j->err = errno;
                return NULL;
        }
        j->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        j->err = j->fd < 0 ? errno : 0;
        return NULL;
}

static int run_job(void *(*fn)(void *), struct ns_job *j, const char *what, em_error_t *err)
{
        pthread_t t;
        int e = pthread_create(&t, NULL, fn, j);

        if (e != 0)
                return em_error_set(err, e, "%s: starting a thread", what);
        pthread_join(t, NULL);
        if (j->err != 0)
                return em_error_set(err, j->err, "%s", what);
        return 0;
}

int em_relay_netns_new(int *nsfd, int *port, em_error_t *err)
{
        struct ns_job j = {.nsfd = -1, .fd = -1};

        if (run_job(ns_new_main, &j, "creating a private loopback network namespace", err) < 0)
                return -1;
        *nsfd = j.nsfd;
        *port = j.port;
        return 0;
}

int em_relay_netns_connect(int nsfd, int port, int timeout_ms, int *fd, em_error_t *err)
{
        int64_t end = em_mono_ms() + timeout_ms;

        for (;;) {
                struct ns_job j = {.nsfd = nsfd, .port = port, .fd = -1};
                struct sockaddr_in sa;
                if (run_job(ns_socket_main, &j, "socket in the page server's namespace", err) < 0)
                        return -1;
                cleanup_close int s = j.fd;
                loopback_addr(port, &sa);
                if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        *fd = steal_fd(&s);
                        return 0;
                }
                if (errno != ECONNREFUSED || em_mono_ms() >= end)
                        return em_error_set(err, errno,
                                            "connecting to the page server at 127.0.0.1:%d", port);
                poll(NULL, 0, 20);
        }
}
