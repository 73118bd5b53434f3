#include "migrate/source/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrate/common/journal.h"
#include "migrate/source/phases.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define TICK_MS     250
#define EMIT_MS     1000
#define CANCEL_FILE "cancel"

struct em_monitor {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop, wake, final_began, cancelled, refused;
        char *cancel_path;
        em_conn_t *conn;
        struct em_progress p;
        uint64_t phase_wire0;
        uint64_t wire_at_emit; /* bytes_sent at the last snapshot */
        bool rate_measured;    /* p.rate is the phases' measurement */
        int64_t t0, last_emit;
        /* Snapshots taken at phase changes, not sent yet: a fast migration
         * changes phase more often than the thread runs, and each phase
         * still gets its line. */
        json_t *pending;
        em_migrate_progress_fn fn;
        void *ud;
};

static json_t *int_or_null(bool known, int64_t v)
{
        return known ? json_integer(v) : json_null();
}

json_t *em_progress_json(const struct em_progress *p)
{
        bool left_known = p->left_estimate > 0;
        uint64_t left =
            left_known && p->left_estimate > p->round_sent ? p->left_estimate - p->round_sent : 0;
        bool rated = p->rate > 0;
        int64_t eta = rated ? (int64_t)((double)(left + p->final_estimate) * 1000.0 / p->rate) : 0;
        int64_t down = rated ? (int64_t)((double)p->final_estimate * 1000.0 / p->rate) : 0;

        return json_pack(
            "{s:s, s:s?, s:s?, s:s?, s:i, s:I, s:I, s:o, s:f, s:f, s:o, s:o, s:i}", "event",
            "progress", "session", p->session, "container", p->container, "phase", p->phase,
            "round", (int)p->round, "elapsed_ms", (json_int_t)p->elapsed_ms, "bytes_sent",
            (json_int_t)p->bytes_sent, "bytes_left", int_or_null(left_known, (int64_t)left),
            "rate_bytes_per_s", p->rate, "dirty_bytes_per_s", p->dirty_rate, "eta_ms",
            int_or_null(rated && (left_known || p->final_estimate), eta), "expected_downtime_ms",
            int_or_null(rated && p->final_estimate, down), "throttle_pct", p->throttle_pct);
}

static uint64_t wire_out_locked(struct em_monitor *m)
{
        struct em_conn_stats cs = {0};

        if (m->conn != NULL)
                em_conn_stats(m->conn, &cs);
        return cs.wire_out;
}

/* A snapshot, built under the lock. */
static json_t *snapshot_locked(struct em_monitor *m)
{
        uint64_t w = wire_out_locked(m);
        int64_t now = em_mono_ms();

        if (w > m->p.bytes_sent)
                m->p.bytes_sent = w;
        m->p.round_sent = m->p.bytes_sent - m->phase_wire0;
        m->p.elapsed_ms = now - m->t0;
        /* Until a round measured the link: the send rate since the last
         * snapshot (from the counters; the connection's own meter would
         * wait for a sender blocked on a full link, and a cancel with it). */
        if (!m->rate_measured && now > m->last_emit && m->p.bytes_sent > m->wire_at_emit &&
            m->last_emit > 0)
                m->p.rate = (double)(m->p.bytes_sent - m->wire_at_emit) * 1000.0 /
                            (double)(now - m->last_emit);
        m->wire_at_emit = m->p.bytes_sent;
        return em_progress_json(&m->p);
}

static void check_cancel_locked(struct em_monitor *m)
{
        if (m->cancelled || m->refused || access(m->cancel_path, F_OK) != 0)
                return;
        if (m->final_began) {
                m->refused = true;
                em_log_warn("session %s: cancel refused, the final step has begun", m->p.session);
                return;
        }
        m->cancelled = true;
        em_log_warn("session %s: cancelled by the operator", m->p.session);
        if (m->conn != NULL)
                shutdown(em_conn_fd(m->conn), SHUT_RDWR);
}

static void wait_tick_locked(struct em_monitor *m)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!m->stop && !m->wake)
                pthread_cond_timedwait(&m->cond, &m->lock, &ts);
}

/* Sends the queued phase snapshots, in order (called without the lock:
 * takes the queue under it). */
static void flush_pending(struct em_monitor *m)
{
        pthread_mutex_lock(&m->lock);
        cleanup_json json_t *q = steal_pointer(&m->pending);
        pthread_mutex_unlock(&m->lock);
        size_t i;
        json_t *j;

        json_array_foreach(q, i, j) m->fn(m->ud, j);
}

static void *monitor_main(void *arg)
{
        struct em_monitor *m = arg;

        pthread_mutex_lock(&m->lock);
        while (!m->stop) {
                check_cancel_locked(m);
                json_t *j = NULL;
                bool queued = m->pending != NULL;
                if (m->fn && !queued && (m->wake || em_mono_ms() - m->last_emit >= EMIT_MS)) {
                        j = snapshot_locked(m);
                        m->last_emit = em_mono_ms();
                }
                m->wake = false;
                pthread_mutex_unlock(&m->lock);
                if (queued)
                        flush_pending(m);
                if (j != NULL)
                        m->fn(m->ud, j);
                json_decref(j);
                pthread_mutex_lock(&m->lock);
                wait_tick_locked(m);
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

static void monitor_free(struct em_monitor *m)
{
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->cond);
        json_decref(m->pending);
        free(m->cancel_path);
        free(m);
}

int em_monitor_start(struct source *s, em_error_t *err)
{
        struct em_monitor *m = calloc(1, sizeof(*m));

        if (m == NULL || (m->cancel_path = em_path_join(s->workdir, CANCEL_FILE)) == NULL) {
                free(m);
                return em_error_set(err, ENOMEM, "migration monitor");
        }
        pthread_mutex_init(&m->lock, NULL);
        pthread_cond_init(&m->cond, NULL);
        m->p = (struct em_progress){.session = s->session, .container = s->name, .phase = "start"};
        m->t0 = em_mono_ms();
        m->fn = s->o->progress;
        m->ud = s->o->progress_ud;
        if (pthread_create(&m->thread, NULL, monitor_main, m) != 0) {
                monitor_free(m);
                return em_error_set(err, EAGAIN, "starting the migration monitor");
        }
        s->mon = m;
        return 0;
}

void em_monitor_stop(struct source *s, bool ok)
{
        struct em_monitor *m = s->mon;

        if (m == NULL)
                return;
        pthread_mutex_lock(&m->lock);
        m->stop = true;
        pthread_cond_signal(&m->cond);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
        if (m->fn)
                flush_pending(m);
        if (m->fn) {
                m->p.phase = ok ? "done" : m->cancelled ? "cancelled" : "failed";
                m->p.left_estimate = m->p.final_estimate = 0;
                json_t *j = snapshot_locked(m);
                m->fn(m->ud, j);
                json_decref(j);
        }
        monitor_free(m);
        s->mon = NULL;
}

/* Runs fn on the monitor under its lock, then wakes it for a snapshot. */
#define WITH_MONITOR(s, wake_it, body)                                                             \
        do {                                                                                       \
                struct em_monitor *m_ = (s)->mon;                                                  \
                if (m_ == NULL)                                                                    \
                        break;                                                                     \
                pthread_mutex_lock(&m_->lock);                                                     \
                body;                                                                              \
                if (wake_it) {                                                                     \
                        m_->wake = true;                                                           \
                        pthread_cond_signal(&m_->cond);                                            \
                }                                                                                  \
                pthread_mutex_unlock(&m_->lock);                                                   \
        } while (0)

/* The phase's snapshot is taken now and queued for the thread. */
static void queue_snapshot_locked(struct em_monitor *m)
{
        if (m->fn == NULL || (m->pending == NULL && (m->pending = json_array()) == NULL))
                return;
        json_array_append_new(m->pending, snapshot_locked(m));
        m->last_emit = em_mono_ms();
}

void em_monitor_phase(struct source *s, const char *phase, uint64_t left_estimate)
{
        WITH_MONITOR(s, true, {
                m_->p.phase = phase;
                m_->p.left_estimate = left_estimate;
                m_->phase_wire0 = wire_out_locked(m_);
                queue_snapshot_locked(m_);
        });
}

void em_monitor_round(struct source *s, unsigned round, uint64_t left_estimate)
{
        WITH_MONITOR(s, false, {
                m_->p.round = round;
                m_->p.left_estimate = left_estimate;
                m_->phase_wire0 = wire_out_locked(m_);
        });
}

void em_monitor_rates(struct source *s, uint64_t final_estimate, double dirty_rate, double rate)
{
        WITH_MONITOR(s, true, {
                m_->p.final_estimate = final_estimate;
                m_->p.dirty_rate = dirty_rate;
                if (rate > 0) {
                        m_->p.rate = rate;
                        m_->rate_measured = true;
                }
        });
}

void em_monitor_throttle(struct source *s, int pct)
{
        WITH_MONITOR(s, true, m_->p.throttle_pct = pct);
}

void em_monitor_conn(struct source *s, em_conn_t *conn)
{
        WITH_MONITOR(s, false, {
                if (conn == NULL)
                        m_->p.bytes_sent = wire_out_locked(m_);
                m_->conn = conn;
                if (conn != NULL && m_->cancelled)
                        shutdown(em_conn_fd(conn), SHUT_RDWR);
        });
}

int em_monitor_enter_final(struct source *s, em_error_t *err)
{
        bool cancelled = false;

        WITH_MONITOR(s, false, {
                check_cancel_locked(m_);
                cancelled = m_->cancelled;
                m_->final_began = true;
        });
        if (cancelled)
                return em_error_set_code(err, ECANCELED, "cancelled by the operator");
        return 0;
}

void em_monitor_report_cancel(struct source *s, em_error_t *err)
{
        em_report_set(s->report, "cancelled", json_true());
        em_error_set_code(err, ECANCELED,
                          "cancelled by the operator; %s keeps running here and nothing of it "
                          "stays on the target",
                          s->name);
}

bool em_monitor_cancelled(const struct source *s)
{
        bool c = false;

        WITH_MONITOR(s, false, c = m_->cancelled);
        return c;
}

static bool session_id_ok(const char *id)
{
        if (strlen(id) != 32)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static int load_report(const struct em_config *cfg, const char *session, json_t **report,
                       em_error_t *err)
{
        cleanup_free char *path = NULL;

        json_error_t je;

        if (asprintf(&path, "%s/migrations/%s.json", cfg->root, session) < 0)
                return em_error_set(err, ENOMEM, "cancel");
        *report = json_load_file(path, 0, &je);
        if (*report == NULL)
                return em_error_set(err, ENOENT, "reading %s: %s", path, je.text);
        return 0;
}

static int ask_cancel(const char *dir, em_error_t *err)
{
        cleanup_free char *path = em_path_join(dir, CANCEL_FILE);
        cleanup_close int fd = -1;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "cancel");
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return em_error_set(err, errno, "asking for the cancel: %s", path);
        return 0;
}

int em_migrate_cancel(const struct em_config *cfg, const char *session, int wait_ms,
                      json_t **report, em_error_t *err)
{
        cleanup_free char *dir = NULL;
        int64_t deadline = em_mono_ms() + wait_ms;

        if (!session_id_ok(session))
                return em_error_set(err, EINVAL,
                                    "'%.40s' is not a session id (32 hex digits: the \"session\" "
                                    "of a --progress line, or the \"id\" of the timeline)",
                                    session);
        if (asprintf(&dir, "%s/outgoing/%s", cfg->root, session) < 0)
                return em_error_set(err, ENOMEM, "cancel");
        if (!em_journal_alive(dir)) {
                if (load_report(cfg, session, report, NULL) == 0)
                        return em_error_set(
                            err, EALREADY, "migration %s already ended (%s)", session,
                            json_is_true(json_object_get(*report, "ok")) ? "it committed"
                                                                         : "it failed");
                return em_error_set(err, ENOENT, "no migration with session %s runs on this host",
                                    session);
        }
        if (ask_cancel(dir, err) < 0)
                return -1;
        while (em_journal_alive(dir) && em_mono_ms() < deadline)
                em_sleep_ns(100 * 1000000LL);
        if (em_journal_alive(dir))
                return em_error_set(err, ETIMEDOUT,
                                    "migration %s still runs after %d s: it may be in its final "
                                    "step, where a cancel is too late",
                                    session, wait_ms / 1000);
        if (load_report(cfg, session, report, err) < 0)
                return -1;
        if (json_is_true(json_object_get(*report, "ok")))
                return em_error_set(err, EALREADY,
                                    "too late: migration %s committed before the cancel", session);
        return 0;
}
