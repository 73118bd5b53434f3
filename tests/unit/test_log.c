#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/log.h"
#include "util/opts.h"

/* Logs into a temp file through em_log_setup's fd and returns its content. */
static char *capture(enum em_log_level level, bool json, void (*emit)(void))
{
        FILE *f = tmpfile();
        assert_non_null(f);
        em_log_setup(level, json, fileno(f), "unit");
        emit();
        em_log_setup(EM_LOG_INFO, false, 2, "edgemig");
        long n = ftell(f);
        assert_true(n >= 0);
        char *buf = calloc(1, 65536);
        assert_non_null(buf);
        rewind(f);
        ssize_t r = pread(fileno(f), buf, 65535, 0);
        assert_true(r >= 0);
        fclose(f);
        return buf;
}

static void emit_all(void)
{
        em_log_error("E %d", 1);
        em_log_warn("W");
        em_log_info("I");
        em_log_debug("D");
}

static void emit_tricky(void)
{
        em_log_info("quote \" backslash \\ newline\n tab\t ctl\x01 end");
        em_log_warn("second");
}

static void test_level_filter(void **state)
{
        char *out = capture(EM_LOG_WARN, false, emit_all);
        assert_non_null(strstr(out, "unit error: E 1\n"));
        assert_non_null(strstr(out, "unit warn: W\n"));
        assert_null(strstr(out, ": I\n"));
        assert_null(strstr(out, ": D\n"));
        free(out);
        out = capture(EM_LOG_DEBUG, false, emit_all);
        assert_non_null(strstr(out, "unit debug: D\n"));
        free(out);
        out = capture(EM_LOG_ERROR, false, emit_all);
        assert_null(strstr(out, "W"));
        free(out);
}

static void test_json_lines_valid(void **state)
{
        char *out = capture(EM_LOG_DEBUG, true, emit_tricky);
        int lines = 0;
        char *save = NULL;
        for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                json_error_t je;
                json_t *j = json_loads(l, 0, &je);
                assert_non_null(j);
                assert_string_equal(json_string_value(json_object_get(j, "component")), "unit");
                assert_non_null(json_string_value(json_object_get(j, "time")));
                if (lines == 0) {
                        assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
                        assert_string_equal(json_string_value(json_object_get(j, "msg")),
                                            "quote \" backslash \\ newline\n tab\t ctl\x01 end");
                } else {
                        assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
                }
                json_decref(j);
                lines++;
        }
        assert_int_equal(lines, 2);
        free(out);
}

/* With JOURNAL_STREAM naming the log's fd, text lines carry their syslog
 * priority on every line and no time stamp; JSON stays JSON; another
 * stream (a terminal, a file) keeps the plain format. */
static void test_journal_priorities(void **state)
{
        FILE *f = tmpfile();
        struct stat st;
        char env[64], buf[512] = {0};

        assert_non_null(f);
        assert_int_equal(fstat(fileno(f), &st), 0);
        snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", env, 1);
        em_log_setup(EM_LOG_DEBUG, false, fileno(f), "unit");
        em_log_error("E %d", 1);
        em_log_warn("two\nlines");
        em_log_info("I");
        em_log_debug("D");
        em_log_setup(EM_LOG_INFO, true, fileno(f), "unit");
        em_log_info("J");
        unsetenv("JOURNAL_STREAM");
        em_log_setup(EM_LOG_INFO, false, 2, "edgemig");
        assert_true(pread(fileno(f), buf, sizeof(buf) - 1, 0) > 0);
        fclose(f);
        assert_non_null(strstr(buf, "<3>E 1\n<4>two\n<4>lines\n<6>I\n<7>D\n{"));
        assert_non_null(strstr(buf, "\"msg\":\"J\""));
        char *out = capture(EM_LOG_INFO, false, emit_all); /* JOURNAL_STREAM unset */
        assert_non_null(strstr(out, "unit error: E 1\n"));
        assert_null(strstr(out, "<3>"));
        free(out);
}

static void test_level_parse(void **state)
{
        enum em_log_level l;
        assert_int_equal(em_log_level_parse("DEBUG", &l), 0);
        assert_int_equal(l, EM_LOG_DEBUG);
        assert_int_equal(em_log_level_parse("warn", &l), 0);
        assert_int_equal(l, EM_LOG_WARN);
        assert_int_equal(em_log_level_parse("verbose", &l), -1);
        em_log_setup(EM_LOG_ERROR, false, 2, NULL);
        assert_int_equal(em_log_get_level(), EM_LOG_ERROR);
        em_log_setup(EM_LOG_INFO, false, 2, "edgemig");
}

/* The options every front end takes (util/opts.h EM_OPT_LOG), and
 * messages that name the fix. */
static void test_log_options(void **state)
{
        struct em_log_opts o = EM_LOG_OPTS_INIT;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(o.level, EM_LOG_INFO);
        assert_false(o.json);
        assert_int_equal(em_opt_log_level("debug", &o, &err), 0);
        assert_int_equal(em_opt_log_format("json", &o, &err), 0);
        assert_int_equal(o.level, EM_LOG_DEBUG);
        assert_true(o.json);
        assert_int_equal(em_opt_log_format("JSON", &o, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "text or json"));
        em_error_free(&err);
        assert_true(o.json); /* unchanged by a refused value */
        assert_int_equal(em_opt_log_level("loud", &o, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "error, warn, info or debug"));
        em_error_free(&err);
        assert_int_equal(o.level, EM_LOG_DEBUG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_level_filter), cmocka_unit_test(test_json_lines_valid),
            cmocka_unit_test(test_level_parse),  cmocka_unit_test(test_journal_priorities),
            cmocka_unit_test(test_log_options),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
