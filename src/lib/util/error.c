#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fallback_oom_msg(void)
{
        return strdup("out of memory while formatting an error");
}

int em_error_setv(em_error_t *err, int status, const char *fmt, va_list ap)
{
        char *msg = NULL;
        em_error_t e;

        if (err == NULL)
                return -1;
        em_error_free(err);
        e = calloc(1, sizeof(*e));
        if (e == NULL)
                return -1;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = fallback_oom_msg();
        if (status != 0 && msg != NULL) {
                char *full = NULL;
                if (asprintf(&full, "%s: %s", msg, strerror(status)) >= 0) {
                        free(msg);
                        msg = full;
                }
        }
        e->status = status;
        e->msg = msg;
        *err = e;
        return -1;
}

int em_error_set(em_error_t *err, int status, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        em_error_setv(err, status, fmt, ap);
        va_end(ap);
        return -1;
}

int em_error_set_code(em_error_t *err, int status, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        em_error_setv(err, 0, fmt, ap);
        va_end(ap);
        if (err != NULL && *err != NULL)
                (*err)->status = status;
        return -1;
}

int em_error_wrap(em_error_t *err, const char *fmt, ...)
{
        char *ctx = NULL, *full = NULL;
        va_list ap;

        if (err == NULL)
                return -1;
        va_start(ap, fmt);
        if (vasprintf(&ctx, fmt, ap) < 0)
                ctx = NULL;
        va_end(ap);
        if (ctx == NULL)
                return -1;
        if (*err == NULL) {
                em_error_set(err, 0, "%s", ctx);
                free(ctx);
                return -1;
        }
        if (asprintf(&full, "%s: %s", ctx, (*err)->msg ? (*err)->msg : "unknown error") >= 0) {
                free((*err)->msg);
                (*err)->msg = full;
        }
        free(ctx);
        return -1;
}

void em_error_move(em_error_t *dst, em_error_t *src)
{
        em_error_free(dst);
        *dst = *src;
        *src = NULL;
}

int em_error_status(em_error_t err)
{
        return err ? err->status : 0;
}

const char *em_error_msg(em_error_t err)
{
        if (err == NULL)
                return "no error";
        return err->msg ? err->msg : "unknown error";
}

void em_error_free(em_error_t *err)
{
        if (err == NULL || *err == NULL)
                return;
        free((*err)->msg);
        free(*err);
        *err = NULL;
}
