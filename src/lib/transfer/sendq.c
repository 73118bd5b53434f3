#include "transfer/sendq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/zadapt.h"
#include "util/log.h"

struct item {
        uint16_t type, flags;
        uint32_t stream;
        int level;
        uint8_t *buf;
        size_t len;
};

struct em_sendq {
        em_conn_t *c;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct item *ring;
        size_t depth, head, count;
        bool closing;
        em_error_t err;      /* the sender's first error */
        struct em_zadapt za; /* the sender's own: no lock */
};

/* Sends one frame at the level that keeps the link busy (zadapt.h), the
 * item's level being the policy's cap. */
static int send_item(em_sendq_t *q, const struct item *it, em_error_t *err)
{
        struct em_conn_stats a, b;
        bool waiting;
        int level, rc;

        pthread_mutex_lock(&q->lock);
        waiting = q->count > 1; /* count still holds it */
        pthread_mutex_unlock(&q->lock);
        level = em_zadapt_next(&q->za, it->level, it->len, em_zadapt_drain_s(q->c), waiting);

        em_conn_stats(q->c, &a);
        rc = em_conn_send(q->c, it->type, it->flags, it->stream, it->buf, it->len, level, err);
        em_conn_stats(q->c, &b);
        if (rc == 0 && b.compress_ns > a.compress_ns)
                em_zadapt_record(&q->za, it->len, (double)(b.compress_ns - a.compress_ns) / 1e9);
        return rc;
}

static void *sender(void *arg)
{
        em_sendq_t *q = arg;

        pthread_mutex_lock(&q->lock);
        for (;;) {
                while (q->count == 0 && !q->closing)
                        pthread_cond_wait(&q->cond, &q->lock);
                if (q->count == 0)
                        break;
                struct item it = q->ring[q->head];
                pthread_mutex_unlock(&q->lock);
                em_error_t e = NULL;
                if (q->err == NULL && send_item(q, &it, &e) < 0) {
                        pthread_mutex_lock(&q->lock);
                        em_error_move(&q->err, &e);
                        pthread_mutex_unlock(&q->lock);
                }
                free(it.buf);
                pthread_mutex_lock(&q->lock);
                q->head = (q->head + 1) % q->depth;
                q->count--;
                pthread_cond_broadcast(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return NULL;
}

int em_sendq_start(em_conn_t *c, size_t depth, em_sendq_t **out, em_error_t *err)
{
        em_sendq_t *q = calloc(1, sizeof(*q));

        if (q == NULL || depth == 0 || (q->ring = calloc(depth, sizeof(*q->ring))) == NULL) {
                free(q);
                return em_error_set(err, ENOMEM, "send queue");
        }
        q->c = c;
        q->depth = depth;
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        int rc = pthread_create(&q->thread, NULL, sender, q);
        if (rc != 0) {
                free(q->ring);
                free(q);
                return em_error_set(err, rc, "starting the sender thread");
        }
        *out = q;
        return 0;
}

int em_sendq_push(em_sendq_t *q, uint16_t type, uint16_t flags, uint32_t stream, const void *buf,
                  size_t len, int level, em_error_t *err)
{
        uint8_t *copy = malloc(len ? len : 1);

        if (copy == NULL)
                return em_error_set(err, ENOMEM, "send queue");
        memcpy(copy, buf, len);
        pthread_mutex_lock(&q->lock);
        while (q->count == q->depth && q->err == NULL)
                pthread_cond_wait(&q->cond, &q->lock);
        if (q->err != NULL) {
                pthread_mutex_unlock(&q->lock);
                free(copy);
                return em_error_set(err, em_error_status(q->err), "%s", em_error_msg(q->err));
        }
        q->ring[(q->head + q->count) % q->depth] =
            (struct item){type, flags, stream, level, copy, len};
        q->count++;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        return 0;
}

int em_sendq_finish(em_sendq_t **qp, em_error_t *err)
{
        em_sendq_t *q = *qp;
        int rc = 0;

        if (q == NULL)
                return 0;
        pthread_mutex_lock(&q->lock);
        q->closing = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
        if (q->za.down > 0)
                em_log_info("compression stepped down %lu times to keep the link busy "
                            "(level %d at the end)",
                            q->za.down, q->za.level);
        if (q->err != NULL) {
                em_error_move(err, &q->err);
                rc = -1;
        }
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        free(q->ring);
        free(q);
        *qp = NULL;
        return rc;
}
