#include "util/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
        enum em_log_level level;
        bool json;
        int fd;
        char component[32];
        bool journal; /* fd is systemd's journal stream */
} log_cfg = {EM_LOG_INFO, false, 2, "edgemig", false};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_syslog[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

/* Under systemd, JOURNAL_STREAM names the device and inode of the stream
 * that stdout/stderr are connected to; a text line written there gets its
 * syslog priority from a "<N>" prefix (journalctl -p), and its time from
 * the journal. */
static bool is_journal(int fd)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(fd, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void em_log_setup(enum em_log_level level, bool json, int fd, const char *component)
{
        log_cfg.level = level;
        log_cfg.json = json;
        log_cfg.fd = fd >= 0 ? fd : 2;
        log_cfg.journal = is_journal(log_cfg.fd);
        if (component != NULL)
                snprintf(log_cfg.component, sizeof(log_cfg.component), "%s", component);
}

enum em_log_level em_log_get_level(void)
{
        return log_cfg.level;
}

int em_log_level_parse(const char *name, enum em_log_level *out)
{
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
                if (strcasecmp(name, level_names[i]) == 0) {
                        *out = (enum em_log_level)i;
                        return 0;
                }
        }
        return -1;
}

static void format_time(char *buf, size_t len)
{
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_all_fd(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t w = write(fd, buf, len);
                if (w <= 0)
                        return;
                buf += w;
                len -= (size_t)w;
        }
}

static char *render_json(const char *ts, enum em_log_level level, const char *msg)
{
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", ts, "level", level_names[level],
                              "component", log_cfg.component, "msg", msg);
        char *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return out;
}

/* "<N>line\n" for each line of msg: the journal takes every line as an
 * entry of its own, and a continuation line keeps the priority. */
static char *render_journal(enum em_log_level level, const char *msg)
{
        size_t lines = 1, len = strlen(msg);
        char *out, *p;

        for (const char *c = msg; *c; c++)
                lines += *c == '\n';
        out = malloc(len + lines * 4 + 2);
        if (out == NULL)
                return NULL;
        p = out + sprintf(out, "<%d>", level_syslog[level]);
        for (const char *c = msg; *c; c++) {
                *p++ = *c;
                if (*c == '\n')
                        p += sprintf(p, "<%d>", level_syslog[level]);
        }
        *p++ = '\n';
        *p = '\0';
        return out;
}

void em_log(enum em_log_level level, const char *fmt, ...)
{
        char ts[40], *msg = NULL, *line = NULL;
        va_list ap;
        int n;

        if (level > log_cfg.level)
                return;
        va_start(ap, fmt);
        n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        format_time(ts, sizeof(ts));
        if (log_cfg.journal && !log_cfg.json) {
                line = render_journal(level, msg);
        } else if (log_cfg.json) {
                char *j = render_json(ts, level, msg);
                if (j == NULL || asprintf(&line, "%s\n", j) < 0)
                        line = NULL;
                free(j);
        } else if (asprintf(&line, "%s %s %s: %s\n", ts, log_cfg.component, level_names[level],
                            msg) < 0) {
                line = NULL;
        }
        if (line != NULL) {
                pthread_mutex_lock(&log_lock);
                write_all_fd(log_cfg.fd, line, strlen(line));
                pthread_mutex_unlock(&log_lock);
        }
        free(line);
        free(msg);
}
