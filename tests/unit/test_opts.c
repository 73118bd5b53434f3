#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/log.h"
#include "util/opts.h"

struct vals {
        bool json;
        const char *to;
        struct em_opt_list allow;
        int capacity;
        unsigned rounds;
        uint64_t downtime_ms;
        int io_timeout_ms;
        int interval_s;
        uint64_t memory;
        double cpus;
        struct em_log_opts lo;
};

/* Parses a NULL-terminated argument list (argv[0] is added) into v. */
static int parse(struct vals *v, int *first, em_error_t *err, ...)
{
        char *argv[32] = {"prog"};
        int argc = 1;
        va_list ap;

        va_start(ap, err);
        for (char *a; (a = va_arg(ap, char *)) != NULL;)
                argv[argc++] = a;
        va_end(ap);
        const struct em_opt table[] = {
            EM_OPT_FLAG("json", 'j', &v->json),
            EM_OPT_STRING("to", 0, &v->to),
            EM_OPT_LIST("allow-peer", 0, &v->allow),
            EM_OPT_INT("capacity", 0, &v->capacity, 0, 1000),
            EM_OPT_INT("max-rounds", 0, &v->rounds, 1, 1000),
            EM_OPT_DURATION("downtime-target", 0, &v->downtime_ms, EM_OPT_MS, EM_OPT_MS, 0,
                            INT64_MAX),
            EM_OPT_DURATION("io-timeout", 0, &v->io_timeout_ms, EM_OPT_S, EM_OPT_MS, 1, INT_MAX),
            EM_OPT_DURATION("heartbeat-interval", 0, &v->interval_s, EM_OPT_S, EM_OPT_S, 1, 3600),
            EM_OPT_SIZE("memory", 'm', &v->memory, 0, INT64_MAX),
            EM_OPT_DOUBLE_ABOVE("cpus", 0, &v->cpus, 0, 1024),
            EM_OPT_LOG(&v->lo),
            EM_OPT_END,
        };
        return em_opts_parse(table, argc, argv, 0, first, err);
}

static void test_values(void **state)
{
        struct vals v = {.lo = EM_LOG_OPTS_INIT};
        em_error_t err = NULL;
        int first = 0;

        assert_int_equal(parse(&v, &first, &err, "--json", "--to", "h2:7878", "--capacity=7",
                               "--max-rounds", "3", "--downtime-target", "2s", "--io-timeout", "90",
                               "--heartbeat-interval", "2m", "-m", "64M", "--cpus", "0.5",
                               "--allow-peer", "a", "--allow-peer", "b", "--log-level", "debug",
                               "--log-format", "json", "NAME", NULL),
                         EM_OPTS_OK);
        assert_null(err);
        assert_true(v.json);
        assert_string_equal(v.to, "h2:7878");
        assert_int_equal(v.capacity, 7);
        assert_int_equal(v.rounds, 3);
        assert_int_equal(v.downtime_ms, 2000);
        assert_int_equal(v.io_timeout_ms, 90000);
        assert_int_equal(v.interval_s, 120);
        assert_int_equal(v.memory, 64u << 20);
        assert_true(v.cpus == 0.5);
        assert_int_equal(v.allow.n, 2);
        assert_string_equal(v.allow.v[1], "b");
        assert_null(v.allow.v[2]);
        assert_int_equal(v.lo.level, EM_LOG_DEBUG);
        assert_true(v.lo.json);
        assert_int_equal(first, 25);
        em_opt_list_free(&v.allow);
}

/* Parses args expecting a usage error whose message contains want. */
static void expect_error(const char *want, ...)
{
        char *args[8] = {0};
        struct vals v = {.lo = EM_LOG_OPTS_INIT};
        em_error_t err = NULL;
        int first = 0, n = 0;
        va_list ap;

        va_start(ap, want);
        for (char *a; (a = va_arg(ap, char *)) != NULL;)
                args[n++] = a;
        va_end(ap);
        assert_int_equal(parse(&v, &first, &err, args[0], args[1], args[2], NULL), -1);
        assert_non_null(err);
        if (strstr(em_error_msg(err), want) == NULL)
                fail_msg("'%s' lacks '%s'", em_error_msg(err), want);
        em_error_free(&err);
        em_opt_list_free(&v.allow);
}

/* The examples: these used to become 0 silently. */
static void test_bad_numbers(void **state)
{
        expect_error("--capacity: 'x' is not an integer", "--capacity", "x", NULL);
        expect_error("--downtime-target: 'abc' is not a duration", "--downtime-target", "abc",
                     NULL);
        expect_error("--capacity: '12abc' is not an integer", "--capacity", "12abc", NULL);
        expect_error("--capacity: ' 1' is not an integer", "--capacity", " 1", NULL);
        expect_error("--capacity: '0x10' is not an integer", "--capacity", "0x10", NULL);
        expect_error("--capacity: '1001' is out of range (0 to 1000)", "--capacity", "1001", NULL);
        expect_error("--capacity: '-1' is out of range", "--capacity", "-1", NULL);
        expect_error("--capacity: '99999999999999999999' is out of range", "--capacity",
                     "99999999999999999999", NULL);
        expect_error("--max-rounds: '0' is out of range (1 to 1000)", "--max-rounds", "0", NULL);
        expect_error("--io-timeout: '0' is out of range", "--io-timeout", "0", NULL);
        expect_error("--io-timeout: '-5' is not a duration", "--io-timeout", "-5", NULL);
        expect_error("--io-timeout: '5x' is not a duration", "--io-timeout", "5x", NULL);
        expect_error("--io-timeout: '9999999999' is out of range", "--io-timeout", "9999999999",
                     NULL);
        expect_error("--heartbeat-interval: '1500ms' is not a whole number of seconds",
                     "--heartbeat-interval", "1500ms", NULL);
        expect_error("--memory: '12Q' is not a size", "--memory", "12Q", NULL);
        expect_error("--memory: '-1K' is not a size", "--memory", "-1K", NULL);
        expect_error("--memory: '99999999999T' is too large", "--memory", "99999999999T", NULL);
        expect_error("--cpus: 'many' is not a number", "--cpus", "many", NULL);
        expect_error("--cpus: '0' is out of range", "--cpus", "0", NULL);
        expect_error("--cpus: 'nan' is not a number", "--cpus", "nan", NULL);
        expect_error("--cpus: '2000' is out of range (above 0, up to 1024)", "--cpus", "2000",
                     NULL);
        expect_error("--log-level: unknown log level 'loud'", "--log-level", "loud", NULL);
}

static void test_usage_errors(void **state)
{
        expect_error("unknown option '--nope'", "--nope", NULL);
        expect_error("unknown option '--nope'", "--nope=3", NULL);
        expect_error("unknown option '-z'", "-z", NULL);
        expect_error("option --capacity needs a value", "--capacity", NULL);
        expect_error("option -m needs a value", "-m", NULL);
}

static void test_help_version(void **state)
{
        struct vals v = {.lo = EM_LOG_OPTS_INIT};
        em_error_t err = NULL;
        int first;

        assert_int_equal(parse(&v, &first, &err, "--help", NULL), EM_OPTS_HELP);
        assert_int_equal(parse(&v, &first, &err, "-h", "--version", NULL), EM_OPTS_HELP);
        assert_int_equal(parse(&v, &first, &err, "--version", NULL), EM_OPTS_VERSION);
        assert_int_equal(parse(&v, &first, &err, "--json", NULL), EM_OPTS_OK);
        assert_int_equal(first, 2);
        assert_null(err);
}

/* EM_OPTS_STOP_AT_OPERAND leaves a command's own options alone. */
static void test_stop_at_operand(void **state)
{
        char *argv[] = {"edgemig", "--root", "/r", "run", "--name", "x", NULL};
        const char *root = NULL;
        const struct em_opt table[] = {EM_OPT_STRING("root", 0, &root), EM_OPT_END};
        em_error_t err = NULL;
        int first;

        assert_int_equal(em_opts_parse(table, 6, argv, EM_OPTS_STOP_AT_OPERAND, &first, &err),
                         EM_OPTS_OK);
        assert_string_equal(root, "/r");
        assert_int_equal(first, 3);
        assert_int_equal(em_opts_parse(table, 6, argv, 0, &first, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "unknown option '--name'"));
        em_error_free(&err);
}

static void test_value_parsers(void **state)
{
        em_error_t err = NULL;
        uint64_t sz;
        int64_t ms, i;

        assert_int_equal(em_parse_size("4096", &sz, &err), 0);
        assert_int_equal(sz, 4096);
        assert_int_equal(em_parse_size("2k", &sz, &err), 0);
        assert_int_equal(sz, 2048);
        assert_int_equal(em_parse_size("1GiB", &sz, &err), 0);
        assert_int_equal(sz, 1u << 30);
        assert_int_equal(em_parse_size("3MB", &sz, &err), 0);
        assert_int_equal(sz, 3u << 20);
        assert_int_equal(em_parse_size("2T", &sz, &err), 0);
        assert_int_equal(sz, 2ull << 40);
        assert_int_equal(em_parse_duration_ms("250", 1, &ms, &err), 0);
        assert_int_equal(ms, 250);
        assert_int_equal(em_parse_duration_ms("3", 1000, &ms, &err), 0);
        assert_int_equal(ms, 3000);
        assert_int_equal(em_parse_duration_ms("1h", 1, &ms, &err), 0);
        assert_int_equal(ms, 3600000);
        assert_int_equal(em_parse_int("-42", -100, 100, &i, &err), 0);
        assert_int_equal(i, -42);
        assert_int_equal(em_parse_int("", 0, 1, &i, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_parse_size("", &sz, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_parse_duration_ms("s", 1, &ms, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_parse_duration_ms("9223372036854775807h", 1, &ms, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "too long"));
        em_error_free(&err);
}

static void test_bool(void **state)
{
        bool b = false, nv = false;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_opt_bool("Yes", &b, NULL), 0);
        assert_true(b);
        assert_int_equal(em_opt_bool("off", &b, NULL), 0);
        assert_false(b);
        assert_int_equal(em_opt_bool_not("false", &nv, NULL), 0);
        assert_true(nv);
        assert_int_equal(em_opt_bool_not("1", &nv, NULL), 0);
        assert_false(nv);
        assert_int_equal(em_opt_bool_not("nope", &nv, &err), -1);
        assert_false(nv);
        assert_non_null(strstr(em_error_msg(err), "true or false"));
        em_error_free(&err);
        assert_int_equal(em_opt_bool("", &b, &err), -1);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_values),
            cmocka_unit_test(test_bad_numbers),
            cmocka_unit_test(test_usage_errors),
            cmocka_unit_test(test_help_version),
            cmocka_unit_test(test_stop_at_operand),
            cmocka_unit_test(test_value_parsers),
            cmocka_unit_test(test_bool),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
