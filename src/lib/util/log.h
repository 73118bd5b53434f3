/* Levelled logging to stderr (or a file), as text or one JSON object per line. */
#ifndef EDGEMIG_UTIL_LOG_H
#define EDGEMIG_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum em_log_level { EM_LOG_ERROR = 0, EM_LOG_WARN, EM_LOG_INFO, EM_LOG_DEBUG };

/* Process-wide sink. fd defaults to 2; json selects one JSON object a line.
 * Text lines to systemd's journal (fd is the stream JOURNAL_STREAM names)
 * carry their syslog priority ("<3>" error ... "<7>" debug) instead of a
 * time stamp. */
void em_log_setup(enum em_log_level level, bool json, int fd, const char *component);
enum em_log_level em_log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 on an unknown name. */
int em_log_level_parse(const char *name, enum em_log_level *out);

/* The --log-level/--log-format options every front end takes. */
struct em_log_opts {
        enum em_log_level level; /* default EM_LOG_INFO */
        bool json;               /* default text */
};
#define EM_LOG_OPTS_INIT                                                                           \
        {                                                                                          \
                EM_LOG_INFO, false                                                                 \
        }
/* Parsed by util/opts.h (EM_OPT_LOG). */

__attribute__((format(printf, 2, 3))) void em_log(enum em_log_level level, const char *fmt, ...);

#define em_log_error(...) em_log(EM_LOG_ERROR, __VA_ARGS__)
#define em_log_warn(...)  em_log(EM_LOG_WARN, __VA_ARGS__)
#define em_log_info(...)  em_log(EM_LOG_INFO, __VA_ARGS__)
#define em_log_debug(...) em_log(EM_LOG_DEBUG, __VA_ARGS__)

#endif
