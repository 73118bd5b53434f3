/* edgemigd's registration and heartbeat with the controller (edge_agent.h). */
#include "platform/edge_agent.h"

#include <curl/curl.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "migrate/common/report.h"
#include "platform/http.h"
#include "state/state.h"
#include "transfer/conn.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 10000
/* Reports read per heartbeat for the bandwidth (newest first). */
#define REPORTS_SCANNED 64

void em_edge_agent_opts_init(struct em_edge_agent_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->capacity = 4;
        o->interval_s = 5;
        o->timeout_ms = 5000;
}

void em_edge_metrics_clear(struct em_edge_metrics *m)
{
        json_decref(m->containers);
        json_decref(m->peers);
        json_decref(m->rtts);
        memset(m, 0, sizeof(*m));
}

int em_edge_attachment_parse(const char *spec, char *name, size_t size, const char **hostport,
                             em_error_t *err)
{
        const char *eq = strchr(spec, '=');
        cleanup_free char *host = NULL, *port = NULL;
        size_t len = eq ? (size_t)(eq - spec) : 0;

        if (eq == NULL || len == 0 || len >= size || len > 63 ||
            strspn(spec, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                len)
                return em_error_set(err, EINVAL,
                                    "--attachment takes NAME=HOST:PORT (NAME of letters, digits, "
                                    "-_.), not '%s'",
                                    spec);
        if (em_hostport_parse(eq + 1, &host, &port, err) < 0)
                return em_error_wrap(err, "--attachment %s", spec);
        memcpy(name, spec, len);
        name[len] = '\0';
        *hostport = eq + 1;
        return 0;
}

int em_edge_attachments_parse(const char *const *specs, struct em_edge_attachment **out, size_t *n,
                              em_error_t *err)
{
        size_t count = 0;

        while (specs != NULL && specs[count] != NULL)
                count++;
        cleanup_free struct em_edge_attachment *atts = calloc(count + 1, sizeof(*atts));
        if (atts == NULL)
                return em_error_set(err, ENOMEM, "--attachment");
        for (size_t i = 0; i < count; i++)
                if (em_edge_attachment_parse(specs[i], atts[i].name, sizeof(atts[i].name),
                                             &atts[i].hostport, err) < 0)
                        return -1;
        *out = steal_pointer(&atts);
        *n = count;
        return 0;
}

json_t *em_edge_measure_rtts(const struct em_edge_attachment *atts, size_t n, int timeout_ms)
{
        json_t *out = NULL;

        for (size_t i = 0; i < n; i++) {
                cleanup_error em_error_t err = NULL;
                cleanup_conn em_conn_t *conn = NULL;
                int64_t t0 = em_mono_ns();
                int rc = em_tcp_connect(atts[i].hostport, timeout_ms, &conn, &err);
                double ms = (double)(em_mono_ns() - t0) / 1e6;
                if (rc < 0 && em_error_status(err) != ECONNREFUSED)
                        continue;
                if (out == NULL)
                        out = json_object();
                json_object_set_new(out, atts[i].name, json_real(ms > 0.001 ? ms : 0.001));
        }
        return out;
}

int em_loadavg_parse(const char *text, double *load1, em_error_t *err)
{
        char *end;

        errno = 0;
        *load1 = strtod(text ? text : "", &end);
        if (errno || end == text || *load1 < 0 || !isfinite(*load1))
                return em_error_set(err, EINVAL, "unexpected /proc/loadavg: '%.40s'",
                                    text ? text : "");
        return 0;
}

int em_meminfo_parse(const char *text, uint64_t *total, uint64_t *available, em_error_t *err)
{
        const char *t = text ? strstr(text, "MemTotal:") : NULL;
        const char *a = text ? strstr(text, "MemAvailable:") : NULL;
        unsigned long long kt, ka;

        if (t == NULL || a == NULL || sscanf(t, "MemTotal: %llu kB", &kt) != 1 ||
            sscanf(a, "MemAvailable: %llu kB", &ka) != 1)
                return em_error_set(err, EINVAL,
                                    "/proc/meminfo lacks MemTotal/MemAvailable (Linux >= 3.14)");
        *total = (uint64_t)kt * 1024;
        *available = (uint64_t)ka * 1024;
        return 0;
}

int em_edge_location_parse(const char *s, double *x, double *y, em_error_t *err)
{
        char *end, *end2;

        errno = 0;
        *x = strtod(s ? s : "", &end);
        if (errno || end == s || *end != ',' || !isfinite(*x))
                return em_error_set(err, EINVAL, "--location takes X,Y (two numbers), not '%s'",
                                    s ? s : "");
        *y = strtod(end + 1, &end2);
        if (errno || end2 == end + 1 || *end2 != '\0' || !isfinite(*y))
                return em_error_set(err, EINVAL, "--location takes X,Y (two numbers), not '%s'", s);
        return 0;
}

static int read_proc(const char *path, char **out, em_error_t *err)
{
        return em_read_file(path, 1 << 20, out, NULL, err);
}

static int collect_containers(const struct em_config *cfg, struct em_edge_metrics *m,
                              em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;
        struct em_container_rec **v = NULL;
        size_t n = 0;

        m->containers = json_array();
        if (m->containers == NULL)
                return em_error_set(err, ENOMEM, "heartbeat");
        if (em_state_open(cfg->root, &st, err) < 0 || em_state_container_list(st, &v, &n, err) < 0)
                return em_error_wrap(err, "listing containers");
        /* Running only: a container that is migrating away is the
         * controller's business until the migration reports back. */
        for (size_t i = 0; i < n; i++)
                if (v[i]->state == EM_CSTATE_RUNNING)
                        json_array_append_new(m->containers, json_string(v[i]->name));
        em_container_rec_list_free(&v, n);
        return 0;
}

/* Sessions under <root>/incoming|outgoing whose owner process lives. Read
 * from the owner file, not its lock: probing the flock could make a session
 * that is just starting fail to take it. */
static int count_sessions(const struct em_config *cfg, const char *sub)
{
        cleanup_free char *dir = em_path_join(cfg->root, sub);
        cleanup_dir DIR *d = dir ? opendir(dir) : NULL;
        struct dirent *e;
        int n = 0;

        while (d && (e = readdir(d)) != NULL) {
                cleanup_free char *path = NULL, *buf = NULL;
                em_error_t ign = NULL;
                if (e->d_name[0] == '.' || asprintf(&path, "%s/%s/owner", dir, e->d_name) < 0)
                        continue;
                if (em_read_file(path, 4096, &buf, NULL, &ign) < 0) {
                        em_error_free(&ign);
                        continue;
                }
                char *sp = strchr(buf, ' ');
                int pid = sp ? atoi(sp + 1) : 0;
                if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
                        n++;
        }
        return n;
}

struct peers_ctx {
        struct em_edge_metrics *m;
        int64_t latest; /* request time of the report behind bandwidth_mbps */
};

/* Newest first: the first report per peer is its latest throughput. */
static int note_peer(const json_t *r, void *ud)
{
        struct peers_ctx *c = ud;
        const char *peer = em_json_str(r, "target");
        double mbps = em_report_throughput_mbps(r);
        int64_t at = em_json_int(r, "requested_at_ms", 0);

        if (peer == NULL || mbps <= 0 || json_object_get(c->m->peers, peer) != NULL)
                return 0;
        json_object_set_new(c->m->peers, peer,
                            json_pack("{s:f, s:I}", "mbps", mbps, "at_ms", (json_int_t)at));
        if (at >= c->latest) {
                c->latest = at;
                c->m->bandwidth_mbps = mbps;
        }
        return 0;
}

/* The latest throughput per peer, from the newest saved reports of
 * completed outgoing sessions (migrate and prepare). */
static int collect_bandwidth(const struct em_config *cfg, struct em_edge_metrics *m,
                             em_error_t *err)
{
        struct peers_ctx c = {m, 0};

        m->peers = json_object();
        if (m->peers == NULL)
                return em_error_set(err, ENOMEM, "heartbeat");
        return em_report_foreach_recent(cfg->root, REPORTS_SCANNED, note_peer, &c, err);
}

int em_edge_metrics_collect(const struct em_config *cfg, struct em_edge_metrics *m, em_error_t *err)
{
        cleanup_free char *la = NULL, *mi = NULL;

        memset(m, 0, sizeof(*m));
        if (read_proc("/proc/loadavg", &la, err) < 0 || em_loadavg_parse(la, &m->load1, err) < 0 ||
            read_proc("/proc/meminfo", &mi, err) < 0 ||
            em_meminfo_parse(mi, &m->mem_total, &m->mem_available, err) < 0)
                return em_error_wrap(err, "host metrics");
        m->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (m->ncpu < 1)
                m->ncpu = 1;
        if (collect_containers(cfg, m, err) < 0 || collect_bandwidth(cfg, m, err) < 0)
                return -1;
        m->active_migrations = count_sessions(cfg, "incoming") + count_sessions(cfg, "outgoing");
        return 0;
}

json_t *em_edge_register_json(const struct em_edge_agent_opts *o)
{
        return json_pack("{s:s, s:s, s:f, s:f, s:i}", "name", o->name, "addr", o->advertise, "x",
                         o->x, "y", o->y, "capacity", o->capacity);
}

json_t *em_edge_heartbeat_json(const struct em_edge_metrics *m)
{
        json_t *cts = m->containers ? json_incref(m->containers) : json_array();
        json_t *peers = m->peers ? json_incref(m->peers) : json_object();
        uint64_t used = m->mem_total > m->mem_available ? m->mem_total - m->mem_available : 0;

        return json_pack("{s:I, s:o, s:f, s:f, s:I, s:I, s:i, s:f, s:o, s:O*}", "load",
                         (json_int_t)json_array_size(cts), "containers", cts, "cpu",
                         m->load1 / (double)(m->ncpu > 0 ? m->ncpu : 1), "load1", m->load1,
                         "mem_bytes", (json_int_t)used, "mem_available_bytes",
                         (json_int_t)m->mem_available, "active_migrations", m->active_migrations,
                         "bandwidth_mbps", m->bandwidth_mbps, "peers", peers, "rtts", m->rtts);
}

static int check_attachments(const char *const *specs, em_error_t *err)
{
        cleanup_free struct em_edge_attachment *atts = NULL;
        size_t n = 0;

        return em_edge_attachments_parse(specs, &atts, &n, err);
}

int em_edge_agent_check(const struct em_edge_agent_opts *o, em_error_t *err)
{
        cleanup_free char *host = NULL, *port = NULL;
        bool https = o->controller && strncmp(o->controller, "https://", 8) == 0;

        if (o->controller == NULL)
                return 0;
        if (!https && strncmp(o->controller, "http://", 7) != 0)
                return em_error_set(err, EINVAL, "--controller takes https://HOST:PORT, not '%s'",
                                    o->controller);
        if (https && (!o->tls_cert || !o->tls_key || !o->tls_ca))
                return em_error_set(err, EINVAL,
                                    "--controller %s needs this edge's certificate: pass "
                                    "--tls-cert/--tls-key/--tls-ca",
                                    o->controller);
        if (!https && o->tls_cert)
                return em_error_set(err, EINVAL,
                                    "--controller %s is plain HTTP while peers use mutual TLS: "
                                    "use https://",
                                    o->controller);
        if (o->name == NULL || *o->name == '\0')
                return em_error_set(err, EINVAL, "--controller needs --edge-name NAME");
        if (o->advertise == NULL || em_hostport_parse(o->advertise, &host, &port, err) < 0)
                return em_error_wrap(err, "--advertise ADDR:PORT");
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
                return em_error_set(err, EINVAL,
                                    "--listen %s is a wildcard: pass --advertise ADDR:PORT, the "
                                    "address peers and the controller dial",
                                    o->advertise);
        if (o->capacity < 0 || o->interval_s < 1)
                return em_error_set(
                    err, EINVAL, "--capacity takes N >= 0 and --heartbeat-interval SECONDS >= 1");
        return check_attachments(o->attachments, err);
}

int em_edge_agent_controllers(const char *list, char ***urls, size_t *n, em_error_t *err)
{
        cleanup_strv char **v = NULL;
        size_t count = 0;

        for (const char *p = list; *p != '\0';) {
                size_t len = strcspn(p, ",");
                if (len > 0 && em_strv_push_unique(&v, &count, p, len) < 0)
                        return em_error_set(err, ENOMEM, "--controller");
                p += len + (p[len] == ',');
        }
        *urls = steal_pointer(&v);
        *n = count;
        return 0;
}

/* The options as every request uses them, split once for the agent's
 * life. */
struct agent {
        const struct em_edge_agent_opts *o;
        char **urls;       /* --controller's replicas */
        size_t nurls, cur; /* cur: the one that answered last */
        struct em_edge_attachment *atts;
        size_t natts;
        json_t *reg;   /* the registration's body */
        char *hb_path; /* /edges/NAME/heartbeat */
        bool registered;
        int64_t backoff;
        char last[512]; /* the last failure logged */
};

static void agent_clear(struct agent *a)
{
        em_strv_free(a->urls);
        free(a->atts);
        json_decref(a->reg);
        free(a->hb_path);
        memset(a, 0, sizeof(*a));
}

static int agent_fill(struct agent *a, const struct em_edge_agent_opts *o, em_error_t *err)
{
        char *path = NULL;

        if (em_edge_agent_controllers(o->controller ? o->controller : "", &a->urls, &a->nurls,
                                      err) < 0 ||
            em_edge_attachments_parse(o->attachments, &a->atts, &a->natts, err) < 0)
                return -1;
        if (a->nurls == 0)
                return em_error_set(err, EINVAL, "--controller names no URL");
        a->reg = em_edge_register_json(o);
        if (a->reg == NULL || asprintf(&path, "/edges/%s/heartbeat", o->name) < 0)
                return em_error_set(err, ENOMEM, "edge agent");
        a->hb_path = path;
        return 0;
}

static int agent_init(struct agent *a, const struct em_edge_agent_opts *o, em_error_t *err)
{
        memset(a, 0, sizeof(*a));
        a->o = o;
        a->backoff = BACKOFF_MIN_MS;
        if (agent_fill(a, o, err) < 0) {
                agent_clear(a);
                return -1;
        }
        return 0;
}

/* POSTs body to path at the controller that answered last; one that does
 * not answer, or answers 5xx (a replica without its store), passes the
 * request to the next (a->cur follows). Returns the HTTP status or -1. */
static long post(struct agent *a, const char *path, const json_t *j, em_error_t *err)
{
        const struct em_edge_agent_opts *o = a->o;
        cleanup_free char *text = json_dumps(j, JSON_COMPACT);
        const struct em_http_tls tls = {.cert = o->tls_cert, .key = o->tls_key, .ca = o->tls_ca};
        char url[1024];
        long status = -1;

        if (text == NULL)
                return em_error_set(err, ENOMEM, "building a request");
        for (size_t k = 0; k < a->nurls; k++, a->cur = (a->cur + 1) % a->nurls) {
                cleanup_free char *resp = NULL;
                snprintf(url, sizeof(url), "%s%s", a->urls[a->cur], path);
                em_error_free(err);
                status = em_http_request(url, text, &tls, o->timeout_ms, &resp, err);
                if (status > 0 && status / 100 != 2)
                        em_error_set(err, EPROTO, "POST %s: HTTP %ld %s", url, status, resp);
                if (status > 0 && status < 500)
                        break;
        }
        return status;
}

/* Sleeps ms in small steps so a stop request is seen quickly. */
static void nap(int64_t ms, volatile sig_atomic_t *stop)
{
        int64_t until = em_mono_ms() + ms;

        while (!*stop && em_mono_ms() < until) {
                int64_t left = until - em_mono_ms();
                struct timespec ts = {0, (long)(left < 200 ? left : 200) * 1000000L};
                nanosleep(&ts, NULL);
        }
}

/* Logs a failure only when it differs from the previous one (a controller
 * that is down for an hour makes one line, not 720). */
static void report_failure(char *last, size_t size, const char *what, em_error_t e)
{
        char line[512];

        snprintf(line, sizeof(line), "%s: %s", what, em_error_msg(e));
        if (strcmp(line, last) != 0)
                em_log_warn("controller: %s (retrying)", line);
        snprintf(last, size, "%s", line);
}

/* This heartbeat's body: the metrics and the RTTs just measured. */
static int heartbeat_body(const struct em_config *cfg, const struct agent *a, json_t **hb,
                          em_error_t *err)
{
        struct em_edge_metrics m;
        int rc = em_edge_metrics_collect(cfg, &m, err);

        if (rc == 0) {
                m.rtts = em_edge_measure_rtts(a->atts, a->natts, 1000);
                *hb = em_edge_heartbeat_json(&m);
        }
        em_edge_metrics_clear(&m);
        return rc;
}

/* Registers, or retries later with a growing backoff. */
static void register_once(struct agent *a, volatile sig_atomic_t *stop)
{
        cleanup_error em_error_t e = NULL;
        const struct em_edge_agent_opts *o = a->o;

        if (post(a, "/edges", a->reg, &e) / 100 == 2) {
                em_log_info("edge %s: registered with %s", o->name, o->controller);
                a->registered = true;
                a->backoff = BACKOFF_MIN_MS;
                a->last[0] = '\0';
                return; /* first heartbeat right away */
        }
        report_failure(a->last, sizeof(a->last), "registering", e);
        nap(a->backoff, stop);
        a->backoff = a->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff * 2;
}

/* One heartbeat, then the interval; a controller that forgot this edge
 * gets it registered again. */
static void heartbeat_once(const struct em_config *cfg, struct agent *a,
                           volatile sig_atomic_t *stop)
{
        cleanup_error em_error_t e = NULL;
        cleanup_json json_t *hb = NULL;
        const struct em_edge_agent_opts *o = a->o;

        if (heartbeat_body(cfg, a, &hb, &e) < 0) {
                report_failure(a->last, sizeof(a->last), "collecting metrics", e);
                nap((int64_t)o->interval_s * 1000, stop);
                return;
        }
        long st = hb ? post(a, a->hb_path, hb, &e) : -1;
        if (st == 404) {
                em_log_warn("edge %s: the controller does not know this edge; registering again",
                            o->name);
                a->registered = false;
                return;
        }
        if (st / 100 != 2) {
                report_failure(a->last, sizeof(a->last), "heartbeat", e);
        } else if (a->last[0] != '\0') {
                em_log_info("edge %s: heartbeats reach %s again", o->name, o->controller);
                a->last[0] = '\0';
        }
        nap((int64_t)o->interval_s * 1000, stop);
}

int em_edge_agent_run(const struct em_config *cfg, const struct em_edge_agent_opts *o,
                      volatile sig_atomic_t *stop, em_error_t *err)
{
        struct agent a;

        if (em_edge_agent_check(o, err) < 0 || agent_init(&a, o, err) < 0)
                return -1;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
                agent_clear(&a);
                return em_error_set(err, EIO, "curl_global_init failed");
        }
        em_log_info("edge %s: registering with %s as %s (%g, %g), capacity %d", o->name,
                    o->controller, o->advertise, o->x, o->y, o->capacity);
        while (!*stop) {
                if (!a.registered)
                        register_once(&a, stop);
                else
                        heartbeat_once(cfg, &a, stop);
        }
        curl_global_cleanup();
        agent_clear(&a);
        return 0;
}
