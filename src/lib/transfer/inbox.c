/* One-frame hand-over from a connection's reader thread; see inbox.h. */
#include "transfer/inbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct em_inbox {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int evfd;
        struct em_frame queued;
        bool has, ended, cut;
        em_error_t err;
};

int em_inbox_new(em_inbox_t **out, em_error_t *err)
{
        em_inbox_t *b = calloc(1, sizeof(*b));
        pthread_condattr_t ca;

        if (b == NULL)
                return em_error_set(err, ENOMEM, "inbox");
        b->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (b->evfd < 0) {
                free(b);
                return em_error_set(err, errno, "inbox: eventfd");
        }
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&b->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&b->lock, NULL);
        *out = b;
        return 0;
}

void em_inbox_free(em_inbox_t **bp)
{
        em_inbox_t *b = *bp;

        if (b == NULL)
                return;
        *bp = NULL;
        em_frame_clear(&b->queued);
        em_error_free(&b->err);
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->cond);
        close(b->evfd);
        free(b);
}

/* Callers hold b->lock. */
static void changed(em_inbox_t *b)
{
        uint64_t one = 1;

        pthread_cond_broadcast(&b->cond);
        if (write(b->evfd, &one, sizeof(one)) < 0) {
                /* saturated: still readable */
        }
}

void em_inbox_put(em_inbox_t *b, struct em_frame *f)
{
        pthread_mutex_lock(&b->lock);
        while (b->has && !b->cut)
                pthread_cond_wait(&b->cond, &b->lock);
        if (!b->cut) {
                b->queued = *f;
                memset(f, 0, sizeof(*f));
                b->has = true;
                changed(b);
        }
        pthread_mutex_unlock(&b->lock);
        em_frame_clear(f);
}

void em_inbox_fail(em_inbox_t *b, em_error_t *e)
{
        pthread_mutex_lock(&b->lock);
        if (b->err == NULL)
                em_error_move(&b->err, e);
        changed(b);
        pthread_mutex_unlock(&b->lock);
        em_error_free(e);
}

void em_inbox_end(em_inbox_t *b)
{
        pthread_mutex_lock(&b->lock);
        b->ended = true;
        changed(b);
        pthread_mutex_unlock(&b->lock);
}

void em_inbox_cut(em_inbox_t *b)
{
        pthread_mutex_lock(&b->lock);
        b->cut = true;
        changed(b);
        pthread_mutex_unlock(&b->lock);
}

void em_inbox_kick(em_inbox_t *b)
{
        pthread_mutex_lock(&b->lock);
        changed(b);
        pthread_mutex_unlock(&b->lock);
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

/* Callers hold b->lock. */
static int copy_error(em_inbox_t *b, const char *what, em_error_t *err)
{
        return em_error_set_code(err, em_error_status(b->err), "%s: %s", what,
                                 em_error_msg(b->err));
}

int em_inbox_take(em_inbox_t *b, struct em_frame *f, int wait_ms, const char *what, em_error_t *err)
{
        struct timespec dl;
        uint64_t v;
        int rc = 0, w = 0;

        if (read(b->evfd, &v, sizeof(v)) < 0) {
                /* EAGAIN: nothing pending */
        }
        deadline_after(&dl, wait_ms > 0 ? wait_ms : 0);
        pthread_mutex_lock(&b->lock);
        while (!b->has && b->err == NULL && !b->ended && !b->cut && w == 0 && wait_ms != 0)
                w = wait_ms > 0 ? pthread_cond_timedwait(&b->cond, &b->lock, &dl)
                                : pthread_cond_wait(&b->cond, &b->lock);
        if (b->has) {
                *f = b->queued;
                memset(&b->queued, 0, sizeof(b->queued));
                b->has = false;
                pthread_cond_broadcast(&b->cond);
                rc = 1;
        } else if (b->err != NULL) {
                rc = copy_error(b, what, err);
        } else if (!b->ended && wait_ms != 0) {
                rc = em_error_set(err, ETIMEDOUT, "%s: nothing from the peer for %d ms", what,
                                  wait_ms);
        }
        pthread_mutex_unlock(&b->lock);
        return rc;
}

int em_inbox_error(em_inbox_t *b, const char *what, em_error_t *err)
{
        int rc = 0;

        pthread_mutex_lock(&b->lock);
        if (b->err != NULL)
                rc = copy_error(b, what, err);
        pthread_mutex_unlock(&b->lock);
        return rc;
}

bool em_inbox_ended(em_inbox_t *b)
{
        pthread_mutex_lock(&b->lock);
        bool e = b->ended;
        pthread_mutex_unlock(&b->lock);
        return e;
}

int em_inbox_event_fd(const em_inbox_t *b)
{
        return b->evfd;
}
