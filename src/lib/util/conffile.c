#include "util/conffile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

#define CONFFILE_MAX (1 << 20)

void em_conffile_free(struct em_conffile *cf)
{
        free(cf->text);
        cf->text = NULL;
        cf->path = NULL;
}

static int read_text(const char *path, char **out, em_error_t *err)
{
        cleanup_free char *text = NULL;
        size_t len;

        if (em_read_file(path, CONFFILE_MAX, &text, &len, err) < 0)
                return -1;
        if (strlen(text) != len)
                return em_error_set_code(err, EINVAL, "%s holds a NUL byte", path);
        *out = steal_pointer(&text);
        return 0;
}

static char *trim(char *s)
{
        char *end;

        s += strspn(s, " \t\r");
        end = s + strlen(s);
        while (end > s && strchr(" \t\r", end[-1]) != NULL)
                *--end = '\0';
        return s;
}

static const struct em_opt *find_key(const struct em_opt *t, const char *key)
{
        if (strcmp(key, "config") == 0)
                return NULL; /* a file cannot name another */
        for (; t->kind != EM_OPT_KIND_END; t++)
                if (t->name != NULL && strcmp(t->name, key) == 0)
                        return t;
        return NULL;
}

static int set_flag(const struct em_opt *o, const char *v, em_error_t *err)
{
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};

        for (size_t i = 0; i < 4; i++) {
                if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
                        *(bool *)o->dst = strcmp(v, yes[i]) == 0;
                        return 0;
                }
        }
        return em_error_set_code(err, EINVAL, "'%s' is not true or false", v);
}

/* value: after '=', trimmed; "..." keeps its inner blanks. */
static int unquote(char **value)
{
        char *v = *value;
        size_t n = strlen(v);

        if (n == 0 || v[0] != '"')
                return 0;
        if (n < 2 || v[n - 1] != '"')
                return -1;
        v[n - 1] = '\0';
        *value = v + 1;
        return 0;
}

static int parse_line(const struct em_opt *table, char *line, em_error_t *err)
{
        char *eq = strchr(line, '=');

        if (eq == NULL)
                return em_error_set_code(err, EINVAL, "expected 'key = value'");
        *eq = '\0';
        char *key = trim(line), *value = trim(eq + 1);
        const struct em_opt *o = find_key(table, key);

        if (o == NULL)
                return em_error_set_code(
                    err, EINVAL, "unknown key '%s' (keys are the long options, without --)", key);
        if (unquote(&value) < 0)
                return em_error_set_code(err, EINVAL, "%s: unbalanced quote", key);
        if (o->kind == EM_OPT_KIND_FLAG ? set_flag(o, value, err) : em_opt_apply(o, value, err))
                return em_error_wrap(err, "%s", key);
        return 0;
}

static int parse_text(const struct em_opt *table, const char *path, char *text, em_error_t *err)
{
        unsigned lineno = 0;

        for (char *line = text, *next; line != NULL; line = next) {
                next = strchr(line, '\n');
                if (next != NULL)
                        *next++ = '\0';
                lineno++;
                char *s = trim(line);
                if (*s == '\0' || *s == '#')
                        continue;
                if (parse_line(table, s, err) < 0)
                        return em_error_wrap(err, "%s:%u", path, lineno);
        }
        return 0;
}

int em_conffile_parse(const struct em_opt *table, const char *path, struct em_conffile *cf,
                      em_error_t *err)
{
        em_conffile_free(cf);
        /* Kept even when a line fails: the lines before it already point
         * string options into it. */
        if (read_text(path, &cf->text, err) < 0)
                return -1;
        cf->path = path;
        return parse_text(table, path, cf->text, err);
}

const char *em_conffile_choose(int argc, char **argv, const char *dflt, bool *named)
{
        const char *path = dflt;

        *named = false;
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
                if (strncmp(argv[i], "--config=", 9) == 0)
                        path = argv[i] + 9;
                else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
                        path = argv[++i];
                else
                        continue;
                *named = true;
        }
        return path != NULL && strcmp(path, "none") == 0 ? NULL : path;
}

int em_opts_parse_config(const struct em_opt *table, const char *dflt, int argc, char **argv,
                         unsigned flags, int *first, struct em_conffile *cf, em_error_t *err)
{
        cleanup_error em_error_t file_err = NULL;
        bool named;
        const char *path = em_conffile_choose(argc, argv, dflt, &named);

        if (path != NULL && em_conffile_parse(table, path, cf, &file_err) < 0 && !named &&
            em_error_status(file_err) == ENOENT)
                em_error_free(&file_err);
        int r = em_opts_parse(table, argc, argv, flags, first, err);
        if (r < 0 || r == EM_OPTS_HELP || r == EM_OPTS_VERSION || file_err == NULL)
                return r;
        *err = steal_pointer(&file_err);
        return -1;
}
