/* One error type carried upward: errno plus a message that gains context
 * at each level ("restoring web1: unpacking layer sha256:…: No space left"). */
#ifndef EDGEMIG_UTIL_ERROR_H
#define EDGEMIG_UTIL_ERROR_H

#include <stdarg.h>

struct em_error_s {
        int status; /* errno value, 0 if none applies */
        char *msg;
};
typedef struct em_error_s *em_error_t;

/* Sets *err (which must be NULL) and returns -1 so callers can
 * `return em_error_set(err, errno, "opening %s", path);`.
 * A non-zero status appends ": strerror(status)" to the message. */
__attribute__((format(printf, 3, 4))) int em_error_set(em_error_t *err, int status, const char *fmt,
                                                       ...);
__attribute__((format(printf, 3, 0))) int em_error_setv(em_error_t *err, int status,
                                                        const char *fmt, va_list ap);

/* Like em_error_set, but the message does not quote strerror(status): for
 * callers whose own words say more (decoders, OpenSSL), while the status
 * still lets callers and tests tell failures apart. */
__attribute__((format(printf, 3, 4))) int em_error_set_code(em_error_t *err, int status,
                                                            const char *fmt, ...);

/* Prepends context: "ctx: previous message". Returns -1. Safe if *err is NULL
 * (then it creates an error without status). */
__attribute__((format(printf, 2, 3))) int em_error_wrap(em_error_t *err, const char *fmt, ...);

/* Moves *src into *dst (freeing any previous *dst). */
void em_error_move(em_error_t *dst, em_error_t *src);

int em_error_status(em_error_t err);
const char *em_error_msg(em_error_t err);
void em_error_free(em_error_t *err);

#define cleanup_error __attribute__((cleanup(em_error_free)))

#endif
