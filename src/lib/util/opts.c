#include "util/opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"
#include "util/log.h"

/* getopt_long codes for the built-in options and for table entries without a
 * short name (0x100 + index keeps them clear of every character). */
#define CODE_HELP    0x7001
#define CODE_VERSION 0x7002
#define CODE_BASE    0x100

/* Decimal digits with an optional sign; no blanks, no base prefixes (strtoll
 * alone would take " 12", "0x1f" and "12abc" as numbers). */
static int scan_integer(const char *s, int64_t *out, const char **rest)
{
        const char *p = s;
        char *end;

        if (*p == '-' || *p == '+')
                p++;
        if (*p < '0' || *p > '9')
                return -1;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        *out = v;
        *rest = end;
        return 0;
}

int em_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, em_error_t *err)
{
        const char *rest;
        int64_t v;
        int r = scan_integer(s, &v, &rest);

        if (r == -ERANGE || (r == 0 && *rest == '\0' && (v < min || v > max)))
                return em_error_set_code(err, ERANGE, "'%s' is out of range (%lld to %lld)", s,
                                         (long long)min, (long long)max);
        if (r < 0 || *rest != '\0')
                return em_error_set_code(err, EINVAL, "'%s' is not an integer", s);
        *out = v;
        return 0;
}

static int size_shift(const char *suffix)
{
        static const char units[] = "KMGT";
        const char *u;

        if (*suffix == '\0' || strcasecmp(suffix, "B") == 0)
                return 0;
        u = strchr(units, suffix[0] >= 'a' ? suffix[0] - 'a' + 'A' : suffix[0]);
        if (u == NULL || *u == '\0')
                return -1;
        suffix++;
        if (*suffix != '\0' && strcasecmp(suffix, "B") != 0 && strcasecmp(suffix, "iB") != 0)
                return -1;
        return 10 * (int)(u - units + 1);
}

int em_parse_size(const char *s, uint64_t *out, em_error_t *err)
{
        const char *rest;
        int64_t v;
        int r = scan_integer(s, &v, &rest);
        int shift = r == 0 ? size_shift(rest) : -1;

        if (r == -ERANGE || (shift >= 0 && v >= 0 && (uint64_t)v > (UINT64_MAX >> shift)))
                return em_error_set_code(err, ERANGE, "'%s' is too large", s);
        if (shift < 0 || v < 0)
                return em_error_set_code(err, EINVAL,
                                         "'%s' is not a size (N bytes, or N with K, M, G or T)", s);
        *out = (uint64_t)v << shift;
        return 0;
}

static int64_t duration_unit(const char *suffix, int64_t bare)
{
        static const struct {
                const char *name;
                int64_t ms;
        } units[] = {{"", 0}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (strcmp(suffix, units[i].name) == 0)
                        return units[i].ms ? units[i].ms : bare;
        return -1;
}

int em_parse_duration_ms(const char *s, int64_t unit_ms, int64_t *out, em_error_t *err)
{
        const char *rest;
        int64_t v, unit;
        int r = scan_integer(s, &v, &rest);

        unit = r == 0 ? duration_unit(rest, unit_ms) : -1;
        if (r == -ERANGE || (unit > 0 && v > INT64_MAX / unit))
                return em_error_set_code(err, ERANGE, "'%s' is too long", s);
        if (unit < 0 || v < 0)
                return em_error_set_code(err, EINVAL,
                                         "'%s' is not a duration (N, or N with ms, s, m or h)", s);
        *out = v * unit;
        return 0;
}

/* Stores v into an integer of the entry's size; the bounds were checked. */
static void store_int(const struct em_opt *o, int64_t v)
{
        switch (o->size) {
        case 1:
                *(int8_t *)o->dst = (int8_t)v;
                break;
        case 2:
                *(uint16_t *)o->dst = (uint16_t)v;
                break;
        case 4:
                *(uint32_t *)o->dst = (uint32_t)v;
                break;
        default:
                *(uint64_t *)o->dst = (uint64_t)v;
                break;
        }
}

/* unit: "" or the destination's unit ("ms", "s", " bytes") for the message. */
static int check_range(const struct em_opt *o, int64_t v, const char *arg, const char *unit,
                       em_error_t *err)
{
        if (v >= o->min && v <= o->max)
                return 0;
        return em_error_set_code(err, ERANGE, "'%s' is out of range (%lld%s to %lld%s)", arg,
                                 (long long)o->min, unit, (long long)o->max, unit);
}

static int set_duration(const struct em_opt *o, const char *arg, em_error_t *err)
{
        int64_t ms;

        if (em_parse_duration_ms(arg, o->unit, &ms, err) < 0)
                return -1;
        if (ms % o->store_unit != 0)
                return em_error_set_code(err, EINVAL, "'%s' is not a whole number of %s", arg,
                                         o->store_unit == EM_OPT_S ? "seconds" : "units");
        if (check_range(o, ms / o->store_unit, arg, o->store_unit == EM_OPT_S ? "s" : "ms", err) <
            0)
                return -1;
        store_int(o, ms / o->store_unit);
        return 0;
}

static int set_size(const struct em_opt *o, const char *arg, em_error_t *err)
{
        uint64_t v;

        if (em_parse_size(arg, &v, err) < 0)
                return -1;
        if (v > (uint64_t)INT64_MAX)
                return em_error_set_code(err, ERANGE, "'%s' is too large", arg);
        if (check_range(o, (int64_t)v, arg, " bytes", err) < 0)
                return -1;
        store_int(o, (int64_t)v);
        return 0;
}

static int set_double(const struct em_opt *o, const char *arg, em_error_t *err)
{
        char *end;

        errno = 0;
        double v = strtod(arg, &end);
        if (end == arg || *end != '\0' || errno != 0 || !isfinite(v))
                return em_error_set_code(err, EINVAL, "'%s' is not a number", arg);
        bool above = o->unit == 1;

        if (v < (double)o->min || (above && v == (double)o->min) || v > (double)o->max)
                return em_error_set_code(err, ERANGE, "'%s' is out of range (%s %lld, up to %lld)",
                                         arg, above ? "above" : "from", (long long)o->min,
                                         (long long)o->max);
        *(double *)o->dst = v;
        return 0;
}

static int list_add(struct em_opt_list *l, const char *v)
{
        const char **grown = realloc(l->v, (l->n + 2) * sizeof(char *));

        if (grown == NULL)
                return -1;
        grown[l->n++] = v;
        grown[l->n] = NULL;
        l->v = grown;
        return 0;
}

int em_opt_apply(const struct em_opt *o, const char *arg, em_error_t *err)
{
        int64_t v;

        switch (o->kind) {
        case EM_OPT_KIND_FLAG:
                *(bool *)o->dst = true;
                return 0;
        case EM_OPT_KIND_STRING:
                *(const char **)o->dst = arg;
                return 0;
        case EM_OPT_KIND_LIST:
                return list_add(o->dst, arg) < 0 ? em_error_set(err, ENOMEM, "out of memory") : 0;
        case EM_OPT_KIND_INT:
                if (em_parse_int(arg, o->min, o->max, &v, err) < 0)
                        return -1;
                store_int(o, v);
                return 0;
        case EM_OPT_KIND_SIZE:
                return set_size(o, arg, err);
        case EM_OPT_KIND_DURATION:
                return set_duration(o, arg, err);
        case EM_OPT_KIND_DOUBLE:
                return set_double(o, arg, err);
        case EM_OPT_KIND_CALL:
                return o->fn(arg, o->dst, err);
        default:
                return em_error_set_code(err, EINVAL, "bad option table");
        }
}

static size_t table_len(const struct em_opt *t)
{
        size_t n = 0;

        while (t[n].kind != EM_OPT_KIND_END)
                n++;
        return n;
}

/* Builds getopt_long's optstring and long options from the table. */
static int build(const struct em_opt *t, size_t n, unsigned flags, struct option *lo, char *s)
{
        size_t k = 0, j = 0;

        if (flags & EM_OPTS_STOP_AT_OPERAND)
                s[k++] = '+';
        s[k++] = ':'; /* a missing argument returns ':', reported by us */
        for (size_t i = 0; i < n; i++) {
                int arg = t[i].kind == EM_OPT_KIND_FLAG ? no_argument : required_argument;
                int code = t[i].short_name ? t[i].short_name : CODE_BASE + (int)i;
                if (t[i].short_name) {
                        s[k++] = (char)t[i].short_name;
                        if (arg == required_argument)
                                s[k++] = ':';
                }
                if (t[i].name)
                        lo[j++] = (struct option){t[i].name, arg, NULL, code};
        }
        if (!(flags & EM_OPTS_NO_STD)) {
                s[k++] = 'h';
                lo[j++] = (struct option){"help", no_argument, NULL, CODE_HELP};
                lo[j++] = (struct option){"version", no_argument, NULL, CODE_VERSION};
        }
        s[k] = '\0';
        lo[j] = (struct option){NULL, 0, NULL, 0};
        return 0;
}

static const struct em_opt *find_entry(const struct em_opt *t, size_t n, int code)
{
        if (code >= CODE_BASE && code < CODE_BASE + (int)n)
                return &t[code - CODE_BASE];
        for (size_t i = 0; i < n; i++)
                if (t[i].short_name && t[i].short_name == code)
                        return &t[i];
        return NULL;
}

/* "--name" or "-x" for messages. */
static void entry_label(const struct em_opt *o, char *buf, size_t len)
{
        if (o->name)
                snprintf(buf, len, "--%s", o->name);
        else
                snprintf(buf, len, "-%c", o->short_name);
}

/* The option getopt could not match, as the user typed it: a long one is
 * argv[optind - 1]; a short one is optopt, possibly inside a cluster. */
static int usage_error(int c, int argc, char **argv, em_error_t *err)
{
        const char *arg = optind - 1 >= 1 && optind - 1 < argc ? argv[optind - 1] : "?";
        char what[64];

        if (strncmp(arg, "--", 2) == 0 || optopt == 0 || optopt >= CODE_BASE)
                snprintf(what, sizeof(what), "%.*s", (int)strcspn(arg, "="), arg);
        else
                snprintf(what, sizeof(what), "-%c", optopt);
        if (c == ':')
                return em_error_set_code(err, EINVAL, "option %s needs a value", what);
        return em_error_set_code(err, EINVAL, "unknown option '%s'", what);
}

static int dispatch(const struct em_opt *t, size_t n, int c, int argc, char **argv, em_error_t *err)
{
        const struct em_opt *o = find_entry(t, n, c);
        char label[64];

        if (o == NULL)
                return usage_error(c, argc, argv, err);
        if (em_opt_apply(o, optarg, err) < 0) {
                entry_label(o, label, sizeof(label));
                return em_error_wrap(err, "%s", label);
        }
        return 0;
}

int em_opts_parse(const struct em_opt *table, int argc, char **argv, unsigned flags, int *first,
                  em_error_t *err)
{
        size_t n = table_len(table);
        cleanup_free struct option *lo = calloc(n + 3, sizeof(*lo));
        cleanup_free char *optstring = malloc(3 * n + 4);
        int c, found = EM_OPTS_OK;

        if (lo == NULL || optstring == NULL)
                return em_error_set(err, ENOMEM, "parsing options");
        build(table, n, flags, lo, optstring);
        optind = 0; /* re-initialise glibc getopt: a new argv each call */
        opterr = 0;
        while ((c = getopt_long(argc, argv, optstring, lo, NULL)) != -1) {
                if (c == CODE_HELP || (c == 'h' && !(flags & EM_OPTS_NO_STD))) {
                        found = EM_OPTS_HELP;
                        continue;
                }
                if (c == CODE_VERSION) {
                        found = found == EM_OPTS_HELP ? found : EM_OPTS_VERSION;
                        continue;
                }
                if (dispatch(table, n, c, argc, argv, err) < 0)
                        return -1;
        }
        *first = optind;
        return found;
}

void em_opt_list_free(struct em_opt_list *l)
{
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

int em_opt_bool(const char *arg, void *dst, em_error_t *err)
{
        static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                    "off", "0"};

        for (size_t i = 0; i < 4; i++) {
                if (strcasecmp(arg, yes[i]) == 0 || strcasecmp(arg, no[i]) == 0) {
                        *(bool *)dst = strcasecmp(arg, yes[i]) == 0;
                        return 0;
                }
        }
        return em_error_set_code(err, EINVAL, "'%s' is not true or false", arg);
}

int em_opt_bool_not(const char *arg, void *dst, em_error_t *err)
{
        if (em_opt_bool(arg, dst, err) < 0)
                return -1;
        *(bool *)dst = !*(bool *)dst;
        return 0;
}

int em_opt_log_level(const char *arg, void *dst, em_error_t *err)
{
        struct em_log_opts *lo = dst;

        if (em_log_level_parse(arg, &lo->level) < 0)
                return em_error_set_code(err, EINVAL,
                                         "unknown log level '%s' (use error, warn, info "
                                         "or debug)",
                                         arg);
        return 0;
}

int em_opt_log_format(const char *arg, void *dst, em_error_t *err)
{
        struct em_log_opts *lo = dst;

        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0)
                return em_error_set_code(err, EINVAL, "takes text or json, not '%s'", arg);
        lo->json = strcmp(arg, "json") == 0;
        return 0;
}
