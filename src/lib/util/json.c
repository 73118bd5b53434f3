#include "util/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

void em_json_decrefp(json_t **j)
{
        json_decref(*j);
        *j = NULL;
}

int em_json_parse(const char *buf, size_t len, const char *what, json_t **out, em_error_t *err)
{
        json_error_t jerr;
        json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);

        if (j == NULL)
                return em_error_set(err, EINVAL, "parsing %s: %s at line %d column %d", what,
                                    jerr.text, jerr.line, jerr.column);
        *out = j;
        return 0;
}

int em_json_load_file(const char *path, size_t max_len, json_t **out, em_error_t *err)
{
        cleanup_free char *buf = NULL;
        size_t len = 0;

        if (em_read_file(path, max_len, &buf, &len, err) < 0)
                return -1;
        return em_json_parse(buf, len, path, out, err);
}

int em_json_write_file(const char *path, const json_t *j, em_error_t *err)
{
        cleanup_free char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

        if (s == NULL)
                return em_error_set(err, ENOMEM, "serializing JSON for %s", path);
        size_t len = strlen(s);
        s[len] = '\0';
        cleanup_free char *withnl = NULL;
        if (asprintf(&withnl, "%s\n", s) < 0)
                return em_error_set(err, ENOMEM, "serializing JSON for %s", path);
        return em_write_file_atomic(path, withnl, len + 1, 0644, err);
}

int em_json_print(const json_t *j, em_error_t *err)
{
        cleanup_free char *s = json_dumps(j, JSON_COMPACT);

        if (s == NULL)
                return em_error_set(err, ENOMEM, "serializing JSON");
        if (printf("%s\n", s) < 0 || fflush(stdout) != 0)
                return em_error_set(err, errno, "writing JSON to stdout");
        return 0;
}

const char *em_json_str(const json_t *obj, const char *key)
{
        return json_string_value(json_object_get(obj, key));
}

long long em_json_int(const json_t *obj, const char *key, long long fallback)
{
        json_t *v = json_object_get(obj, key);
        return json_is_integer(v) ? json_integer_value(v) : fallback;
}
