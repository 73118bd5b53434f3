#include "transfer/sendq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/zadapt.h"
#include "util/cleanup.h"
#include "util/log.h"

const int em_sendq_levels[EM_SENDQ_LEVELS] = {0, 1, 3, 9, 19};

static void count_level(struct em_sendq_stats *st, int level, size_t len)
{
        int i = EM_SENDQ_LEVELS - 1;

        while (i > 0 && em_sendq_levels[i] > level)
                i--;
        st->raw_at[i] += len;
}

struct item {
        uint16_t type, flags;
        uint32_t stream;
        int level;
        uint8_t *buf;
        size_t len;
        struct em_packed p; /* valid once the packer got past it */
};

/* Three stages: the caller fills the ring, the packer compresses items in
 * order, the writer sends packed items in order. Of the count items from
 * head, the first npacked are packed. */
struct em_sendq {
        em_conn_t *c;
        pthread_t packer, writer;
        bool packer_up, writer_up;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct item *ring;
        size_t depth, head, count, npacked;
        size_t packed_bytes; /* wire bytes packed and not written yet */
        bool closing;
        em_error_t err;      /* the first error of either thread */
        em_zstd_t *z;        /* the packer's own */
        struct em_zadapt za; /* the packer's own: no lock */
        struct em_sendq_stats stats;
};

static void fail_locked(em_sendq_t *q, em_error_t *e)
{
        if (q->err == NULL)
                em_error_move(&q->err, e);
        em_error_free(e);
}

/* Compresses one item at the level that keeps the link busy (zadapt.h),
 * the item's level being the policy's cap. The link is fed by what the
 * socket holds and what is packed ahead of this item. */
static int pack_item(em_sendq_t *q, struct item *it, size_t ahead, bool waiting, em_error_t *err)
{
        int level =
            em_zadapt_next(&q->za, it->level, it->len, em_zadapt_drain_s(q->c, ahead), waiting);

        if (em_conn_pack(q->z, level, it->buf, it->len, &it->p, err) < 0)
                return -1;
        it->level = level; /* what it was packed at, for the stats */
        if (it->p.compress_ns > 0)
                em_zadapt_record(&q->za, it->len, (double)it->p.compress_ns / 1e9);
        return 0;
}

static void *packer(void *arg)
{
        em_sendq_t *q = arg;

        pthread_mutex_lock(&q->lock);
        for (;;) {
                while (q->npacked == q->count && !q->closing)
                        pthread_cond_wait(&q->cond, &q->lock);
                if (q->npacked == q->count)
                        break;
                struct item *it = &q->ring[(q->head + q->npacked) % q->depth];
                size_t ahead = q->packed_bytes;
                bool waiting = q->count > q->npacked + 1, failed = q->err != NULL;
                pthread_mutex_unlock(&q->lock);
                em_error_t e = NULL;
                /* The ring slot is the packer's until npacked covers it. */
                int rc = failed ? 0 : pack_item(q, it, ahead, waiting, &e);
                pthread_mutex_lock(&q->lock);
                if (rc < 0)
                        fail_locked(q, &e);
                q->npacked++;
                q->packed_bytes += it->p.len;
                q->stats.packed++;
                count_level(&q->stats, rc == 0 && !failed ? it->level : 0, it->len);
                q->stats.steps_down = q->za.down;
                pthread_cond_broadcast(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return NULL;
}

static void *writer(void *arg)
{
        em_sendq_t *q = arg;

        pthread_mutex_lock(&q->lock);
        for (;;) {
                while (q->npacked == 0 && !(q->closing && q->count == 0))
                        pthread_cond_wait(&q->cond, &q->lock);
                if (q->npacked == 0)
                        break;
                struct item *it = &q->ring[q->head];
                bool failed = q->err != NULL;
                pthread_mutex_unlock(&q->lock);
                em_error_t e = NULL;
                int rc = failed ? 0
                                : em_conn_send_packed(q->c, it->type, it->flags, it->stream,
                                                      it->buf, &it->p, &e);
                size_t wire = it->p.len;
                free(steal_pointer(&it->buf));
                em_packed_clear(&it->p);
                pthread_mutex_lock(&q->lock);
                if (rc < 0)
                        fail_locked(q, &e);
                q->head = (q->head + 1) % q->depth;
                q->count--;
                q->npacked--;
                q->packed_bytes -= wire;
                q->stats.written++;
                pthread_cond_broadcast(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return NULL;
}

static void sendq_free(em_sendq_t *q)
{
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        em_zstd_free(&q->z);
        free(q->ring);
        free(q);
}

/* Stops and joins whichever threads run; the queue must be empty or failed. */
static void stop_threads(em_sendq_t *q)
{
        pthread_mutex_lock(&q->lock);
        q->closing = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        if (q->packer_up)
                pthread_join(q->packer, NULL);
        if (q->writer_up)
                pthread_join(q->writer, NULL);
}

int em_sendq_start(em_conn_t *c, size_t depth, em_sendq_t **out, em_error_t *err)
{
        em_sendq_t *q = calloc(1, sizeof(*q));
        int rc;

        if (q == NULL || depth == 0 || (q->ring = calloc(depth, sizeof(*q->ring))) == NULL ||
            (q->z = em_zstd_new()) == NULL) {
                if (q != NULL)
                        free(q->ring);
                free(q);
                return em_error_set(err, ENOMEM, "send queue");
        }
        q->c = c;
        q->depth = depth;
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        rc = pthread_create(&q->packer, NULL, packer, q);
        q->packer_up = rc == 0;
        if (rc == 0 && (rc = pthread_create(&q->writer, NULL, writer, q)) == 0)
                q->writer_up = true;
        if (rc != 0) {
                stop_threads(q);
                sendq_free(q);
                return em_error_set(err, rc, "starting the send threads");
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
            (struct item){type, flags, stream, level, copy, len, {0}};
        q->count++;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        return 0;
}

void em_sendq_stats(em_sendq_t *q, struct em_sendq_stats *out)
{
        pthread_mutex_lock(&q->lock);
        *out = q->stats;
        pthread_mutex_unlock(&q->lock);
}

int em_sendq_finish(em_sendq_t **qp, struct em_sendq_stats *st, em_error_t *err)
{
        em_sendq_t *q = *qp;
        int rc = 0;

        if (st != NULL)
                memset(st, 0, sizeof(*st));
        if (q == NULL)
                return 0;
        stop_threads(q);
        if (st != NULL)
                *st = q->stats;
        if (q->za.down > 0)
                em_log_info("compression stepped down %lu times to keep the link busy "
                            "(level %d at the end)",
                            q->za.down, q->za.level);
        if (q->err != NULL) {
                em_error_move(err, &q->err);
                rc = -1;
        }
        sendq_free(q);
        *qp = NULL;
        return rc;
}
