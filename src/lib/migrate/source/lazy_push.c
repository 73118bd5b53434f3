/* The source's post-copy push; see lazy_push.h. */
#include "migrate/source/lazy_push.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "delta/lazy_known.h"
#include "delta/shadow.h"
#include "transfer/inbox.h"
#include "transfer/pswire.h"
#include "util/cleanup.h"
#include "util/clock.h"

/* Unsent bytes the kernel may hold for the session socket while we push:
 * about one compressed chunk, so an urgent answer is not queued behind
 * more. */
#define NOTSENT_LOWAT (32u << 10)
/* Pages after a fault pushed next (the fault's neighbourhood). */
#define HINT_SPAN 64u
#define HINTS     8u
#define CLOSE_MS  10000

struct task_mem {
        uint32_t pid;
        int fd;
};

struct hint {
        uint64_t at, limit;
};

struct em_lazy_push {
        em_conn_t *conn;
        em_lazy_set_t *set;
        uint8_t *state;
        struct task_mem *mem;
        size_t nmem;
        int level, server_fd;
        em_inbox_t *inbox;
        pthread_t reader, pusher;
        bool reader_on, pusher_on;
        pthread_mutex_t lock; /* the fields below */
        pthread_cond_t cond;
        int urgent_waiting;
        bool stop, pusher_done, reader_out;
        struct hint hints[HINTS];
        unsigned nhints;
        uint64_t cursor; /* the scan's position in its pass */
        int pass;        /* 0: hot pages, 1: all the rest */
        int64_t t0;
        struct em_lazy_push_stats st;
};

static int read_pages(em_lazy_push_t *p, uint32_t pid, uint64_t vaddr, uint32_t nr, uint8_t *buf,
                      em_error_t *err)
{
        size_t len = (size_t)nr * EM_PAGE_SIZE, got = 0;
        int fd = -1;

        for (size_t i = 0; i < p->nmem && fd < 0; i++)
                fd = p->mem[i].pid == pid ? p->mem[i].fd : -1;
        if (fd < 0)
                return em_error_set(err, ESRCH, "lazy pages of task %u: not a frozen task",
                                    (unsigned)pid);
        while (got < len) {
                ssize_t n = pread(fd, buf + got, len - got, (off_t)(vaddr + got));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return em_error_set(err, n < 0 ? errno : EIO,
                                            "reading task %u's memory at 0x%llx", (unsigned)pid,
                                            (unsigned long long)(vaddr + got));
                got += (size_t)n;
        }
        return 0;
}

/* A process closes its files before ptrace lets go of its tracees: while
 * our connection to CRIU's page server is open, the tasks are still held. */
static int server_alive(em_lazy_push_t *p, em_error_t *err)
{
        struct pollfd pf = {.fd = p->server_fd, .events = POLLIN | POLLRDHUP};

        if (p->server_fd < 0 || poll(&pf, 1, 0) == 0)
                return 0;
        return em_error_set(err, EPIPE,
                            "CRIU's page server ended: the frozen tasks are no longer held");
}

static void fail(em_lazy_push_t *p, em_error_t *e)
{
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        em_inbox_fail(p->inbox, e);
}

/* ---- the pusher ---- */

static bool claim(em_lazy_push_t *p, uint64_t i, bool hot_only)
{
        uint8_t want = EM_PUSH_HOT;

        if (__atomic_compare_exchange_n(&p->state[i], &want, EM_PUSH_SENT, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
                return true;
        want = EM_PUSH_TODO;
        return !hot_only && __atomic_compare_exchange_n(&p->state[i], &want, EM_PUSH_SENT, false,
                                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Extends a claimed first page to a run of at most one chunk in its range. */
static uint32_t extend(em_lazy_push_t *p, uint64_t first, bool hot_only)
{
        const struct em_lazy_range *r = em_lazy_set_range(p->set, first);
        uint64_t end = r->first + r->nr_pages;
        uint32_t nr = 1;

        while (nr < EM_LAZY_CHUNK_PAGES && first + nr < end && claim(p, first + nr, hot_only))
                nr++;
        return nr;
}

/* The neighbourhood of recent faults, newest first. Callers hold p->lock. */
static bool from_hints(em_lazy_push_t *p, uint64_t *idx, uint32_t *nr)
{
        while (p->nhints > 0) {
                struct hint *h = &p->hints[p->nhints - 1];
                for (; h->at < h->limit; h->at++) {
                        if (claim(p, h->at, false)) {
                                *idx = h->at;
                                *nr = extend(p, h->at, false);
                                h->at += *nr;
                                return true;
                        }
                }
                p->nhints--;
        }
        return false;
}

static bool next_chunk(em_lazy_push_t *p, uint64_t *idx, uint32_t *nr)
{
        bool found;

        pthread_mutex_lock(&p->lock);
        found = from_hints(p, idx, nr);
        for (; !found && p->pass < 2; p->pass++, p->cursor = 0) {
                for (; p->cursor < p->set->pages; p->cursor++) {
                        if (claim(p, p->cursor, p->pass == 0)) {
                                *idx = p->cursor;
                                *nr = extend(p, p->cursor, p->pass == 0);
                                p->cursor += *nr;
                                found = true;
                                break;
                        }
                }
                if (found)
                        break;
        }
        pthread_mutex_unlock(&p->lock);
        return found;
}

/* Bulk waits while an urgent answer is pending; false once stopped. */
static bool gate(em_lazy_push_t *p)
{
        pthread_mutex_lock(&p->lock);
        while (p->urgent_waiting > 0 && !p->stop)
                pthread_cond_wait(&p->cond, &p->lock);
        bool go = !p->stop;
        pthread_mutex_unlock(&p->lock);
        return go;
}

static int send_chunk(em_lazy_push_t *p, uint32_t stream, uint64_t idx, uint32_t nr, uint8_t *buf,
                      em_error_t *err)
{
        const struct em_lazy_range *r = em_lazy_set_range(p->set, idx);
        uint64_t vaddr = r->vaddr + (idx - r->first) * EM_PAGE_SIZE;

        em_lazy_chunk_hdr(r->pid, nr, vaddr, buf);
        if (read_pages(p, r->pid, vaddr, nr, buf + EM_LAZY_HDR_LEN, err) < 0 ||
            server_alive(p, err) < 0)
                return -1;
        return em_conn_send(p->conn, EM_FRAME_LAZY_PAGES, 0, stream, buf,
                            EM_LAZY_HDR_LEN + (size_t)nr * EM_PAGE_SIZE, p->level, err);
}

static int push_all(em_lazy_push_t *p, uint8_t *buf, em_error_t *err)
{
        uint64_t idx;
        uint32_t nr;

        while (next_chunk(p, &idx, &nr)) {
                if (!gate(p))
                        return 0;
                if (send_chunk(p, EM_LAZY_STREAM_PUSH, idx, nr, buf, err) < 0)
                        return -1;
                __atomic_add_fetch(&p->st.pushed_pages, nr, __ATOMIC_RELAXED);
        }
        if (!gate(p))
                return 0;
        pthread_mutex_lock(&p->lock);
        p->st.push_ms = em_mono_ms() - p->t0;
        pthread_mutex_unlock(&p->lock);
        return em_conn_send(p->conn, EM_FRAME_LAZY_PAGES, EM_FRAME_F_LAST, EM_LAZY_STREAM_PUSH,
                            NULL, 0, 0, err);
}

static void *pusher_main(void *arg)
{
        em_lazy_push_t *p = arg;
        cleanup_free uint8_t *buf = malloc(EM_LAZY_HDR_LEN + EM_LAZY_CHUNK_PAGES * EM_PAGE_SIZE);
        em_error_t e = NULL;

        if (buf == NULL)
                em_error_set(&e, ENOMEM, "pushing lazy pages");
        if (e != NULL || push_all(p, buf, &e) < 0)
                fail(p, &e);
        pthread_mutex_lock(&p->lock);
        p->pusher_done = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* ---- the reader ---- */

static void add_hint(em_lazy_push_t *p, uint64_t idx)
{
        const struct em_lazy_range *r = em_lazy_set_range(p->set, idx);
        uint64_t end = r->first + r->nr_pages;
        struct hint h = {idx, idx + HINT_SPAN < end ? idx + HINT_SPAN : end};

        if (p->nhints == HINTS) {
                memmove(p->hints, p->hints + 1, (HINTS - 1) * sizeof(h));
                p->nhints--;
        }
        p->hints[p->nhints++] = h;
}

/* Any page the target asks for that was not sent yet, even one it should
 * hold (its known-pages list did not check out). */
static bool claim_urgent(em_lazy_push_t *p, uint64_t i)
{
        return __atomic_exchange_n(&p->state[i], EM_PUSH_SENT, __ATOMIC_ACQ_REL) != EM_PUSH_SENT;
}

/* The runs of the asked pages not sent yet; pages already pushed are on
 * their way, ahead of anything we could send now. */
static int send_unsent(em_lazy_push_t *p, uint64_t idx, uint32_t nr, uint8_t *buf, uint64_t *sent,
                       em_error_t *err)
{
        for (uint32_t i = 0, n; i < nr; i += n) {
                n = 1;
                if (!claim_urgent(p, idx + i))
                        continue;
                while (i + n < nr && claim_urgent(p, idx + i + n))
                        n++;
                if (send_chunk(p, EM_LAZY_STREAM_URGENT, idx + i, n, buf, err) < 0)
                        return -1;
                *sent += n;
        }
        return 0;
}

/* A fault on the target: its pages go out now, ahead of the bulk; again:
 * pages the target had and dropped, sent whatever their state. */
static int answer(em_lazy_push_t *p, const struct em_frame *f, bool again, uint8_t *buf,
                  em_error_t *err)
{
        struct em_lazy_chunk c;
        uint64_t idx, sent = 0;
        int rc;

        if (em_lazy_chunk_parse(f->payload, f->length, false, &c, err) < 0)
                return -1;
        if (!em_lazy_set_find(p->set, c.pid, c.vaddr, c.nr_pages, &idx))
                return em_error_set(err, EPROTO,
                                    "protocol error: the target asked for %u pages at 0x%llx of "
                                    "task %u, not lazy pages of this dump",
                                    (unsigned)c.nr_pages, (unsigned long long)c.vaddr,
                                    (unsigned)c.pid);
        pthread_mutex_lock(&p->lock);
        p->urgent_waiting++;
        if (idx + c.nr_pages < p->set->pages)
                add_hint(p, idx + c.nr_pages);
        pthread_mutex_unlock(&p->lock);
        if (again)
                for (uint32_t i = 0; i < c.nr_pages; i++)
                        __atomic_store_n(&p->state[idx + i], EM_PUSH_TODO, __ATOMIC_RELEASE);
        rc = send_unsent(p, idx, c.nr_pages, buf, &sent, err);
        pthread_mutex_lock(&p->lock);
        p->urgent_waiting--;
        p->st.urgent_asks++;
        p->st.urgent_pages += sent;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return rc;
}

/* The target's daemon has every page: stop pushing, then our LAST. */
static int finish(em_lazy_push_t *p, em_error_t *err)
{
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        while (!p->pusher_done)
                pthread_cond_wait(&p->cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
        return em_conn_send(p->conn, EM_FRAME_LAZY_PAGES, EM_FRAME_F_LAST, EM_LAZY_STREAM_URGENT,
                            NULL, 0, 0, err);
}

/* 1: go on, 0: the window's traffic ended, -1: error. */
static int read_one(em_lazy_push_t *p, uint8_t *buf, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        int rc = em_conn_recv(p->conn, &f, err);

        if (rc <= 0)
                return rc == 0 ? em_error_set(err, ECONNRESET, "target closed the connection") : -1;
        if (f.hdr.type != EM_FRAME_LAZY_PAGES) {
                em_inbox_put(p->inbox, &f);
                return 1;
        }
        if (f.hdr.stream != EM_LAZY_STREAM_ASK && f.hdr.stream != EM_LAZY_STREAM_AGAIN)
                return em_error_set(err, EPROTO, "protocol error: LAZY_PAGES on stream %u",
                                    (unsigned)f.hdr.stream);
        if (f.hdr.flags & EM_FRAME_F_LAST)
                return finish(p, err) < 0 ? -1 : 0;
        return answer(p, &f, f.hdr.stream == EM_LAZY_STREAM_AGAIN, buf, err) < 0 ? -1 : 1;
}

static void *reader_main(void *arg)
{
        em_lazy_push_t *p = arg;
        cleanup_free uint8_t *buf = malloc(EM_LAZY_HDR_LEN + EM_LAZY_CHUNK_PAGES * EM_PAGE_SIZE);
        em_error_t e = NULL;
        int rc = buf ? 1 : em_error_set(&e, ENOMEM, "lazy pages");

        while (rc == 1)
                rc = read_one(p, buf, &e);
        if (rc < 0)
                fail(p, &e);
        pthread_mutex_lock(&p->lock);
        p->reader_out = true;
        pthread_mutex_unlock(&p->lock);
        em_inbox_end(p->inbox);
        return NULL;
}

/* ---- setup ---- */

static int open_mem(em_lazy_push_t *p, const struct em_lazy_push_opts *o, em_error_t *err)
{
        p->mem = calloc(o->ntasks ? o->ntasks : 1, sizeof(*p->mem));
        if (p->mem == NULL)
                return em_error_set(err, ENOMEM, "lazy pages");
        for (size_t i = 0; i < o->ntasks; i++) {
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/mem", (int)o->tasks[i].host);
                p->mem[i] = (struct task_mem){o->tasks[i].pid, open(path, O_RDONLY | O_CLOEXEC)};
                p->nmem++;
                if (p->mem[i].fd < 0)
                        return em_error_set(err, errno, "opening %s", path);
        }
        return 0;
}

static int init(em_lazy_push_t *p, const struct em_lazy_push_opts *o, em_error_t *err)
{
        int lowat = NOTSENT_LOWAT;

        p->conn = o->conn;
        p->level = o->level;
        p->server_fd = o->server_fd;
        p->t0 = em_mono_ms();
        p->st.push_ms = -1;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        /* Not a TCP socket (a socketpair in tests): nothing to bound. */
        (void)setsockopt(em_conn_fd(o->conn), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat,
                         sizeof(lowat));
        if (open_mem(p, o, err) < 0 || em_inbox_new(&p->inbox, err) < 0)
                return -1;
        return 0;
}

int em_lazy_push_start(const struct em_lazy_push_opts *o, em_lazy_push_t **out, em_error_t *err)
{
        em_lazy_push_t *p = calloc(1, sizeof(*p));
        int e;

        if (p == NULL) {
                free(o->state);
                em_lazy_set_t *set = o->set;
                em_lazy_set_free(&set);
                return em_error_set(err, ENOMEM, "lazy pages");
        }
        p->state = o->state;
        p->set = o->set;
        if (init(p, o, err) < 0) {
                em_lazy_push_free(&p);
                return -1;
        }
        e = pthread_create(&p->reader, NULL, reader_main, p);
        p->reader_on = e == 0;
        if (e == 0) {
                e = pthread_create(&p->pusher, NULL, pusher_main, p);
                p->pusher_on = e == 0;
        }
        if (e != 0) {
                em_lazy_push_free(&p);
                return em_error_set(err, e, "lazy pages: starting a thread");
        }
        *out = p;
        return 0;
}

/* Rewritten during pre-copy: the target got an older version of the page
 * at that address (it lacks this one, or it would be known). */
static void mark_hot(const em_lazy_set_t *set, uint8_t *state, const em_shadow_t *shadow)
{
        em_phash_t h;

        for (size_t i = 0; shadow != NULL && i < set->n; i++) {
                const struct em_lazy_range *r = &set->r[i];
                for (uint64_t k = 0; k < r->nr_pages; k++) {
                        if (state[r->first + k] == EM_PUSH_TODO &&
                            em_shadow_hash(shadow, r->pid, r->vaddr + k * EM_PAGE_SIZE, &h))
                                state[r->first + k] = EM_PUSH_HOT;
                }
        }
}

static int plan_tasks(pid_t root, struct em_lazy_task **out, size_t *n, em_error_t *err)
{
        cleanup_free pid_t *host = calloc(EM_LAZY_MAX_TASKS, sizeof(*host));
        cleanup_free long *nspid = calloc(EM_LAZY_MAX_TASKS, sizeof(*nspid));

        if (host == NULL || nspid == NULL)
                return em_error_set(err, ENOMEM, "lazy pages");
        if (em_lazy_tasks(root, host, nspid, EM_LAZY_MAX_TASKS, n, err) < 0)
                return em_error_wrap(err, "the frozen tasks");
        *out = calloc(*n, sizeof(**out));
        if (*out == NULL)
                return em_error_set(err, ENOMEM, "lazy pages");
        for (size_t i = 0; i < *n; i++)
                (*out)[i] = (struct em_lazy_task){(uint32_t)nspid[i], host[i]};
        return 0;
}

void em_lazy_push_plan_free(struct em_lazy_push_plan *plan)
{
        em_lazy_set_free(&plan->set);
        free(plan->state);
        free(plan->tasks);
        *plan = (struct em_lazy_push_plan){0};
}

int em_lazy_push_plan(const char *images, pid_t root, const struct em_shadow *shadow,
                      struct em_lazy_push_plan *plan, em_error_t *err)
{
        uint64_t known = 0;

        *plan = (struct em_lazy_push_plan){0};
        if (plan_tasks(root, &plan->tasks, &plan->ntasks, err) < 0 ||
            em_lazy_set_load(images, &plan->set, err) < 0)
                goto fail;
        plan->state = calloc(plan->set->pages ? plan->set->pages : 1, 1);
        if (plan->state == NULL) {
                em_error_set(err, ENOMEM, "lazy pages");
                goto fail;
        }
        if (em_lazy_set_mark_known(plan->set, images, plan->state, EM_PUSH_HELD, &known, err) < 0)
                goto fail;
        mark_hot(plan->set, plan->state, shadow);
        return 0;
fail:
        em_lazy_push_plan_free(plan);
        return -1;
}

int em_lazy_push_begin(em_conn_t *conn, struct em_lazy_push_plan *plan, int level, int server_fd,
                       em_lazy_push_t **out, em_error_t *err)
{
        struct em_lazy_push_opts o = {
            .conn = conn,
            .set = steal_pointer(&plan->set),
            .state = steal_pointer(&plan->state),
            .tasks = plan->tasks,
            .ntasks = plan->ntasks,
            .level = level,
            .server_fd = server_fd,
        };

        return em_lazy_push_start(&o, out, err);
}

int em_lazy_push_recv(em_lazy_push_t *p, struct em_frame *f, int timeout_ms, em_error_t *err)
{
        return em_inbox_take(p->inbox, f, timeout_ms > 0 ? timeout_ms : -1, "lazy pages", err);
}

void em_lazy_push_stats(em_lazy_push_t *p, struct em_lazy_push_stats *st)
{
        pthread_mutex_lock(&p->lock);
        *st = p->st;
        st->pushed_pages = __atomic_load_n(&p->st.pushed_pages, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&p->lock);
}

static void stop_threads(em_lazy_push_t *p)
{
        pthread_mutex_lock(&p->lock);
        bool reader_out = p->reader_out;
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        if (p->inbox != NULL)
                em_inbox_cut(p->inbox);
        if (p->reader_on && !reader_out)
                shutdown(em_conn_fd(p->conn), SHUT_RD);
        if (p->reader_on)
                pthread_join(p->reader, NULL);
        if (p->pusher_on)
                pthread_join(p->pusher, NULL);
}

void em_lazy_push_free(em_lazy_push_t **pp)
{
        em_lazy_push_t *p = *pp;

        if (p == NULL)
                return;
        *pp = NULL;
        stop_threads(p);
        for (size_t i = 0; i < p->nmem; i++) {
                if (p->mem[i].fd >= 0)
                        close(p->mem[i].fd);
        }
        free(p->mem);
        free(p->state);
        em_lazy_set_free(&p->set);
        em_inbox_free(&p->inbox);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
}

int em_lazy_push_close_server(int fd, em_error_t *err)
{
        struct em_ps_iov pi = {.cmd = EM_PS_IOV_CLOSE};
        uint8_t buf[EM_PS_IOV_LEN];
        int32_t status = -1;
        size_t got = 0;

        em_ps_iov_pack(&pi, buf);
        if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                return em_error_set(err, errno ? errno : EIO, "closing CRIU's page server");
        while (got < sizeof(status)) {
                struct pollfd pf = {.fd = fd, .events = POLLIN};
                if (poll(&pf, 1, CLOSE_MS) <= 0)
                        return em_error_set(err, ETIMEDOUT, "CRIU's page server did not answer");
                ssize_t n = read(fd, (uint8_t *)&status + got, sizeof(status) - got);
                if (n <= 0 && !(n < 0 && errno == EINTR))
                        return em_error_set(err, n < 0 ? errno : EPIPE,
                                            "CRIU's page server closed early");
                got += n > 0 ? (size_t)n : 0;
        }
        if (status != 0)
                return em_error_set(err, EIO, "CRIU's page server ended with status %d",
                                    (int)status);
        return 0;
}
