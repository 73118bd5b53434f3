/* One option layer for every front end: a table of options over
 * getopt_long, with checked numbers, sizes and durations, so that a bad
 * value is an error that names the option and the value instead of a
 * silent 0. The usage text stays hand-written in each front end (it reads
 * better than a generated one); the table only says how to parse.
 *
 *   bool json = false;
 *   int timeout_ms = 120000;
 *   const struct em_opt table[] = {
 *       EM_OPT_FLAG("json", 0, &json),
 *       EM_OPT_DURATION("io-timeout", 0, &timeout_ms, EM_OPT_S, EM_OPT_MS, 1, INT_MAX),
 *       EM_OPT_END,
 *   };
 *   int first;
 *   int r = em_opts_parse(table, argc, argv, 0, &first, &err);
 *   // r < 0: usage error in err; EM_OPTS_HELP / EM_OPTS_VERSION: print and exit
 */
#ifndef EDGEMIG_UTIL_OPTS_H
#define EDGEMIG_UTIL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

enum em_opt_kind {
        EM_OPT_KIND_END,
        EM_OPT_KIND_FLAG,     /* bool, set to true */
        EM_OPT_KIND_STRING,   /* const char *, last one wins */
        EM_OPT_KIND_LIST,     /* struct em_opt_list, repeatable */
        EM_OPT_KIND_INT,      /* decimal integer in [min, max] */
        EM_OPT_KIND_SIZE,     /* bytes: N, NK, NM, NG, NT (powers of 1024, optional B/iB) */
        EM_OPT_KIND_DURATION, /* N (default unit), Nms, Ns, Nm, Nh */
        EM_OPT_KIND_DOUBLE,   /* finite decimal number in [min, max] ((min, max] if unit 1) */
        EM_OPT_KIND_CALL,     /* fn(arg, dst, err) parses */
};

/* Duration units, in milliseconds. */
#define EM_OPT_MS 1
#define EM_OPT_S  1000

/* A repeatable string option: a NULL-terminated array; free with
 * em_opt_list_free. */
struct em_opt_list {
        const char **v;
        size_t n;
};

typedef int (*em_opt_fn)(const char *arg, void *dst, em_error_t *err);

struct em_opt {
        const char *name; /* long name without "--" */
        int short_name;   /* 'e' for -e, 0 for none */
        enum em_opt_kind kind;
        void *dst;
        size_t size;        /* sizeof(*dst) for integer kinds: 1, 2, 4 or 8 */
        int64_t min, max;   /* inclusive bounds, in the destination's unit */
        int64_t unit;       /* DURATION: ms per unit of a bare number */
        int64_t store_unit; /* DURATION: ms per unit of *dst */
        em_opt_fn fn;       /* CALL */
};

#define EM_OPT_END                                                                                 \
        {                                                                                          \
                NULL, 0, EM_OPT_KIND_END, NULL, 0, 0, 0, 0, 0, NULL                                \
        }
#define EM_OPT_FLAG(n, s, p)                                                                       \
        {                                                                                          \
                n, s, EM_OPT_KIND_FLAG, (bool *){p}, sizeof(bool), 0, 0, 0, 0, NULL                \
        }
#define EM_OPT_STRING(n, s, p)                                                                     \
        {                                                                                          \
                n, s, EM_OPT_KIND_STRING, (const char **){p}, sizeof(char *), 0, 0, 0, 0, NULL     \
        }
#define EM_OPT_LIST(n, s, p)                                                                       \
        {                                                                                          \
                n, s, EM_OPT_KIND_LIST, (struct em_opt_list *){p}, 0, 0, 0, 0, 0, NULL             \
        }
#define EM_OPT_INT(n, s, p, lo, hi)                                                                \
        {                                                                                          \
                n, s, EM_OPT_KIND_INT, p, sizeof(*(p)), lo, hi, 0, 0, NULL                         \
        }
#define EM_OPT_SIZE(n, s, p, lo, hi)                                                               \
        {                                                                                          \
                n, s, EM_OPT_KIND_SIZE, p, sizeof(*(p)), lo, hi, 0, 0, NULL                        \
        }
#define EM_OPT_DURATION(n, s, p, unit, store, lo, hi)                                              \
        {                                                                                          \
                n, s, EM_OPT_KIND_DURATION, p, sizeof(*(p)), lo, hi, unit, store, NULL             \
        }
#define EM_OPT_DOUBLE(n, s, p, lo, hi)                                                             \
        {                                                                                          \
                n, s, EM_OPT_KIND_DOUBLE, (double *){p}, sizeof(double), lo, hi, 0, 0, NULL        \
        }
/* A number above lo (lo 0: positive), at most hi. */
#define EM_OPT_DOUBLE_ABOVE(n, s, p, lo, hi)                                                       \
        {                                                                                          \
                n, s, EM_OPT_KIND_DOUBLE, (double *){p}, sizeof(double), lo, hi, 1, 0, NULL        \
        }
#define EM_OPT_CALL(n, s, p, f)                                                                    \
        {                                                                                          \
                n, s, EM_OPT_KIND_CALL, p, 0, 0, 0, 0, 0, f                                        \
        }

/* em_opts_parse's flags. */
#define EM_OPTS_STOP_AT_OPERAND 1u /* "+": options end at the first operand */
#define EM_OPTS_NO_STD          2u /* no built-in -h/--help/--version */

/* What em_opts_parse found besides options. */
#define EM_OPTS_OK      0
#define EM_OPTS_HELP    1
#define EM_OPTS_VERSION 2

/* Parses argv[1..] against table (ended by EM_OPT_END); -h/--help and
 * --version are built in. On success stores each value, sets *first to the
 * index of the first operand and returns EM_OPTS_OK, EM_OPTS_HELP or
 * EM_OPTS_VERSION. On a usage error (unknown option, missing or bad value)
 * returns -1 with a message naming the option and the value. Reentrant
 * use is not supported (getopt's globals), which front ends never need. */
int em_opts_parse(const struct em_opt *table, int argc, char **argv, unsigned flags, int *first,
                  em_error_t *err);

/* Stores arg into one entry's destination, as the command line would
 * (a FLAG is set to true; util/conffile.h handles false). */
int em_opt_apply(const struct em_opt *o, const char *arg, em_error_t *err);

/* The value parsers, for callers with a value outside argv. */
int em_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, em_error_t *err);
int em_parse_size(const char *s, uint64_t *out, em_error_t *err);
/* Milliseconds; a bare number is in units of unit_ms. */
int em_parse_duration_ms(const char *s, int64_t unit_ms, int64_t *out, em_error_t *err);

void em_opt_list_free(struct em_opt_list *l);
#define cleanup_opt_list __attribute__((cleanup(em_opt_list_free)))

/* CALL parsers for the logging options every binary has; dst is a
 * struct em_log_opts (util/log.h). */
/* For EM_OPT_CALL with a bool *: true/false, yes/no, on/off, 1/0
 * (`--tls-verify=false`). */
int em_opt_bool(const char *arg, void *dst, em_error_t *err);
/* The same, storing the negation (`--tls-verify=false` into a no_verify). */
int em_opt_bool_not(const char *arg, void *dst, em_error_t *err);
int em_opt_log_level(const char *arg, void *dst, em_error_t *err);
int em_opt_log_format(const char *arg, void *dst, em_error_t *err);
#define EM_OPT_LOG(lo)                                                                             \
        EM_OPT_CALL("log-level", 0, lo, em_opt_log_level),                                         \
            EM_OPT_CALL("log-format", 0, lo, em_opt_log_format)

#endif
