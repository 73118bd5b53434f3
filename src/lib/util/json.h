/* JSON through jansson, with errors in the project's error type. */
#ifndef EDGEMIG_UTIL_JSON_H
#define EDGEMIG_UTIL_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "util/error.h"

void em_json_decrefp(json_t **j);
#define cleanup_json __attribute__((cleanup(em_json_decrefp)))

/* Parses a buffer; the error names `what` and jansson's line/column. */
int em_json_parse(const char *buf, size_t len, const char *what, json_t **out, em_error_t *err);
int em_json_load_file(const char *path, size_t max_len, json_t **out, em_error_t *err);
/* Pretty-printed, written atomically. */
int em_json_write_file(const char *path, const json_t *j, em_error_t *err);
/* Prints compact JSON plus newline to stdout. */
int em_json_print(const json_t *j, em_error_t *err);

/* Typed getters: return NULL / fallback when the key is absent or mistyped. */
const char *em_json_str(const json_t *obj, const char *key);
long long em_json_int(const json_t *obj, const char *key, long long fallback);

#endif
