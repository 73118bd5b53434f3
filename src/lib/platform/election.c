/* Leader election through etcd (see election.h). */
#include "platform/election.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/clock.h"
#include "util/log.h"

void em_election_init(struct em_election_state *s, const char *id)
{
        memset(s, 0, sizeof(*s));
        snprintf(s->id, sizeof(s->id), "%s", id);
}

enum em_election_step em_election_next(const struct em_election_state *s, int64_t now_ms)
{
        return s->lease == 0 || now_ms >= s->lease_until_ms ? EM_ELECTION_GRANT
                                                            : EM_ELECTION_KEEPALIVE;
}

static void lose(struct em_election_state *s)
{
        s->elected = false;
        s->leader = false;
}

void em_election_on_grant(struct em_election_state *s, int64_t lease, int64_t ttl_s,
                          int64_t sent_ms)
{
        /* A new lease: the key of an old one, if any, is not ours to count. */
        lose(s);
        s->lease = lease;
        s->lease_until_ms = sent_ms + ttl_s * 1000;
}

void em_election_on_keepalive(struct em_election_state *s, int64_t ttl_s, int64_t sent_ms)
{
        if (ttl_s <= 0) {
                s->lease = 0;
                lose(s);
                return;
        }
        s->lease_until_ms = sent_ms + ttl_s * 1000;
}

void em_election_on_error(struct em_election_state *s, int64_t now_ms)
{
        if (now_ms >= s->lease_until_ms) {
                s->lease = 0;
                lose(s);
        }
}

void em_election_on_campaign(struct em_election_state *s, bool won, const char *holder)
{
        won = won || (holder != NULL && strcmp(holder, s->id) == 0);
        snprintf(s->holder, sizeof(s->holder), "%s", won ? s->id : holder ? holder : "");
        s->elected = won;
        if (!won)
                s->leader = false;
}

bool em_election_is_leader(const struct em_election_state *s, int64_t now_ms)
{
        return s->leader && s->elected && s->lease != 0 && now_ms < s->lease_until_ms;
}

json_t *em_election_campaign_txn(const char *key, const char *id, int64_t lease)
{
        json_t *cmps = json_array(), *ok = json_array(), *fail = json_array();

        json_array_append_new(cmps, em_etcd_cmp_create(key, 0));
        json_array_append_new(ok, em_etcd_op_put(key, id, lease));
        json_array_append_new(fail, em_etcd_op_range(key));
        return em_etcd_txn_req(cmps, ok, fail);
}

/* ---- the thread ---- */

struct em_election {
        struct em_etcd *etcd;
        char *key;
        int ttl_s;
        em_election_takeover_fn takeover;
        void *ud;
        pthread_mutex_t lock; /* guards st */
        struct em_election_state st;
        pthread_t thread;
        volatile bool stop;
};

/* Renews (or gets) the lease; on the working copy s. */
static int renew(struct em_election *e, struct em_election_state *s, em_error_t *err)
{
        int64_t sent = em_mono_ms(), id, ttl;

        if (em_election_next(s, sent) == EM_ELECTION_GRANT) {
                if (em_etcd_lease_grant(e->etcd, e->ttl_s, &id, err) < 0)
                        return -1;
                em_election_on_grant(s, id, e->ttl_s, sent);
                return 0;
        }
        if (em_etcd_lease_keepalive(e->etcd, s->lease, &ttl, err) < 0)
                return -1;
        if (ttl <= 0 && s->elected)
                em_log_warn("leader: lease expired (etcd unreachable for %d s?): stepping down",
                            e->ttl_s);
        em_election_on_keepalive(s, ttl, sent);
        return 0;
}

static int campaign(struct em_election *e, struct em_election_state *s, em_error_t *err)
{
        struct em_etcd_kv *kvs = NULL;
        size_t n = 0;
        bool won = false;

        if (em_etcd_txn(e->etcd, em_election_campaign_txn(e->key, s->id, s->lease), &won, &kvs, &n,
                        err) < 0)
                return -1;
        char before[EM_ELECTION_ID_MAX];
        snprintf(before, sizeof(before), "%s", s->holder);
        em_election_on_campaign(s, won, n > 0 ? kvs[0].value : "");
        em_etcd_kvs_free(kvs, n);
        if (!s->elected && strcmp(before, s->holder) != 0)
                em_log_info("leader: %s", s->holder[0] ? s->holder : "(none)");
        return 0;
}

/* The takeover work, once per election won. */
static void take_over(struct em_election *e, struct em_election_state *s)
{
        cleanup_error em_error_t err = NULL;

        if (e->takeover != NULL && e->takeover(e->ud, &err) < 0) {
                em_log_error("leader: taking over: %s (retrying)", em_error_msg(err));
                return;
        }
        s->leader = true;
        em_log_info("leader: this replica (%s) leads", s->id);
}

static void tick(struct em_election *e)
{
        cleanup_error em_error_t err = NULL;
        struct em_election_state s;

        pthread_mutex_lock(&e->lock);
        s = e->st;
        pthread_mutex_unlock(&e->lock);
        int rc = renew(e, &s, &err);
        if (rc == 0 && !s.elected)
                rc = campaign(e, &s, &err);
        if (rc < 0) {
                em_election_on_error(&s, em_mono_ms());
                em_log_debug("election: %s", em_error_msg(err));
        } else if (s.elected && !s.leader) {
                take_over(e, &s);
        }
        pthread_mutex_lock(&e->lock);
        e->st = s;
        pthread_mutex_unlock(&e->lock);
}

static void *run(void *arg)
{
        struct em_election *e = arg;
        int64_t period = e->ttl_s * 1000 / 4;

        while (!e->stop) {
                int64_t next = em_mono_ms() + period;
                tick(e);
                while (!e->stop && em_mono_ms() < next) {
                        struct timespec ts = {0, 50 * 1000000L};
                        nanosleep(&ts, NULL);
                }
        }
        return NULL;
}

int em_election_start(struct em_etcd *etcd, const char *key, const char *id, int ttl_s,
                      em_election_takeover_fn takeover, void *ud, struct em_election **out,
                      em_error_t *err)
{
        struct em_election *e = calloc(1, sizeof(*e));

        if (e == NULL || (e->key = strdup(key)) == NULL) {
                free(e);
                return em_error_set(err, ENOMEM, "election");
        }
        if (strlen(id) >= EM_ELECTION_ID_MAX || ttl_s < 2) {
                free(e->key);
                free(e);
                return em_error_set(err, EINVAL,
                                    "election: an id under %d bytes and a TTL of 2 s or more",
                                    EM_ELECTION_ID_MAX);
        }
        e->etcd = etcd;
        e->ttl_s = ttl_s;
        e->takeover = takeover;
        e->ud = ud;
        em_election_init(&e->st, id);
        pthread_mutex_init(&e->lock, NULL);
        int rc = pthread_create(&e->thread, NULL, run, e);
        if (rc != 0) {
                pthread_mutex_destroy(&e->lock);
                free(e->key);
                free(e);
                return em_error_set(err, rc, "starting the election thread");
        }
        *out = e;
        return 0;
}

void em_election_stop(struct em_election *e)
{
        cleanup_error em_error_t err = NULL;

        if (e == NULL)
                return;
        e->stop = true;
        pthread_join(e->thread, NULL);
        if (e->st.lease != 0 && em_etcd_lease_revoke(e->etcd, e->st.lease, &err) < 0)
                em_log_warn("leader: resigning: %s", em_error_msg(err));
        pthread_mutex_destroy(&e->lock);
        free(e->key);
        free(e);
}

bool em_election_leader(struct em_election *e)
{
        pthread_mutex_lock(&e->lock);
        bool r = em_election_is_leader(&e->st, em_mono_ms());
        pthread_mutex_unlock(&e->lock);
        return r;
}

void em_election_holder(struct em_election *e, char *buf, size_t size)
{
        pthread_mutex_lock(&e->lock);
        snprintf(buf, size, "%s", e->st.holder);
        pthread_mutex_unlock(&e->lock);
}
