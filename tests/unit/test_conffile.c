#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/conffile.h"
#include "util/log.h"

struct vals {
        bool insecure, json;
        const char *listen, *config;
        struct em_opt_list allow;
        int capacity;
        int io_timeout_ms;
        struct em_log_opts lo;
};

static char path[64];

static void write_conf(const char *text)
{
        strcpy(path, "/tmp/test_conffile.XXXXXX");
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

/* Parses the file at path (unless --config in args says otherwise), then
 * args (a NULL-terminated list, argv[0] added). */
static int parse(struct vals *v, struct em_conffile *cf, em_error_t *err, ...)
{
        char *argv[16] = {"prog"};
        int argc = 1, first;
        va_list ap;

        va_start(ap, err);
        for (char *a; (a = va_arg(ap, char *)) != NULL;)
                argv[argc++] = a;
        va_end(ap);
        const struct em_opt table[] = {
            EM_OPT_STRING("config", 0, &v->config),
            EM_OPT_FLAG("insecure", 0, &v->insecure),
            EM_OPT_FLAG("json", 0, &v->json),
            EM_OPT_STRING("listen", 0, &v->listen),
            EM_OPT_LIST("allow-peer", 0, &v->allow),
            EM_OPT_INT("capacity", 0, &v->capacity, 0, 1000),
            EM_OPT_DURATION("io-timeout", 0, &v->io_timeout_ms, EM_OPT_S, EM_OPT_MS, 1, INT_MAX),
            EM_OPT_LOG(&v->lo),
            EM_OPT_END,
        };
        return em_opts_parse_config(table, path, argc, argv, 0, &first, cf, err);
}

static void test_values(void **state)
{
        struct vals v = {.json = true, .lo = EM_LOG_OPTS_INIT};
        struct em_conffile cf = {0};
        em_error_t err = NULL;

        write_conf("# edgemigd.conf\n"
                   "\n"
                   "  listen = 10.0.0.2:7878  \n"
                   "insecure=yes\r\n"
                   "json = off\n"
                   "allow-peer = h1\n"
                   "allow-peer = \" h 3 \"\n"
                   "io-timeout = 2m\n"
                   "log-level = debug\n"
                   "capacity = 3");
        assert_int_equal(parse(&v, &cf, &err, "--capacity", "9", "--allow-peer", "h4", NULL),
                         EM_OPTS_OK);
        assert_null(err);
        assert_string_equal(v.listen, "10.0.0.2:7878");
        assert_true(v.insecure);
        assert_false(v.json);
        assert_int_equal(v.allow.n, 3);
        assert_string_equal(v.allow.v[1], " h 3 ");
        assert_string_equal(v.allow.v[2], "h4");
        assert_int_equal(v.io_timeout_ms, 120000);
        assert_int_equal(v.lo.level, EM_LOG_DEBUG);
        assert_int_equal(v.capacity, 9); /* the command line wins */
        assert_string_equal(cf.path, path);
        em_opt_list_free(&v.allow);
        em_conffile_free(&cf);
        unlink(path);
}

/* A bad line fails with the file, the line and the option in the message. */
static void expect_error(const char *text, const char *want)
{
        struct vals v = {.lo = EM_LOG_OPTS_INIT};
        struct em_conffile cf = {0};
        em_error_t err = NULL;

        write_conf(text);
        assert_int_equal(parse(&v, &cf, &err, NULL), -1);
        assert_non_null(err);
        if (strstr(em_error_msg(err), want) == NULL || strstr(em_error_msg(err), path) == NULL)
                fail_msg("'%s' lacks '%s'", em_error_msg(err), want);
        em_error_free(&err);
        em_opt_list_free(&v.allow);
        em_conffile_free(&cf);
        unlink(path);
}

static void test_errors(void **state)
{
        expect_error("listen = a\ncapacity = x\n", ":2: capacity: 'x' is not an integer");
        expect_error("capacity = 1001\n", ":1: capacity: '1001' is out of range");
        expect_error("\n\nlisten\n", ":3: expected 'key = value'");
        expect_error("no-such = 1\n", ":1: unknown key 'no-such'");
        expect_error("config = /etc/other.conf\n", "unknown key 'config'");
        expect_error("--listen = a\n", "unknown key '--listen'");
        expect_error("insecure = maybe\n", ":1: insecure: 'maybe' is not true or false");
        expect_error("listen = \"a\n", "listen: unbalanced quote");
        expect_error("io-timeout = 0\n", "io-timeout: '0' is out of range");
        expect_error("log-level = loud\n", "log-level: unknown log level 'loud'");
}

/* --help still works with a broken file; a named file must exist, the
 * default need not; --config none reads nothing. */
static void test_choose(void **state)
{
        struct vals v = {.lo = EM_LOG_OPTS_INIT};
        struct em_conffile cf = {0};
        em_error_t err = NULL;

        write_conf("capacity = x\n");
        assert_int_equal(parse(&v, &cf, &err, "--help", NULL), EM_OPTS_HELP);
        assert_null(err);
        assert_int_equal(parse(&v, &cf, &err, "--config", "none", NULL), EM_OPTS_OK);
        assert_null(err);
        unlink(path);
        assert_int_equal(parse(&v, &cf, &err, NULL), EM_OPTS_OK);
        assert_null(err);
        assert_int_equal(parse(&v, &cf, &err, "--config=/nonexistent/e.conf", NULL), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_non_null(strstr(em_error_msg(err), "/nonexistent/e.conf"));
        em_error_free(&err);
        write_conf("listen = from-file\n");
        char named[64];
        strcpy(named, path);
        strcpy(path, "/nonexistent/default.conf");
        assert_int_equal(parse(&v, &cf, &err, "--config", named, NULL), EM_OPTS_OK);
        assert_string_equal(v.listen, "from-file");
        unlink(named);
        em_conffile_free(&cf);
        em_opt_list_free(&v.allow);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_values),
            cmocka_unit_test(test_errors),
            cmocka_unit_test(test_choose),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
