#include "util/notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "util/cleanup.h"

char *em_notify_take(void)
{
        const char *s = getenv("NOTIFY_SOCKET");
        char *copy = s != NULL && *s != '\0' ? strdup(s) : NULL;

        unsetenv("NOTIFY_SOCKET");
        return copy;
}

int em_notify_ready(const char *socket, const char *status, em_error_t *err)
{
        cleanup_free char *msg = NULL;

        if (socket != NULL && setenv("NOTIFY_SOCKET", socket, 1) < 0)
                return em_error_set(err, errno, "NOTIFY_SOCKET");
        if (getenv("NOTIFY_SOCKET") == NULL)
                return 0;
        if (asprintf(&msg, "READY=1\nSTATUS=%s", status) < 0) {
                unsetenv("NOTIFY_SOCKET");
                return em_error_set(err, ENOMEM, "notifying systemd");
        }
        int r = sd_notify(1, msg); /* 1: unsets NOTIFY_SOCKET */
        if (r < 0)
                return em_error_set(err, -r, "notifying systemd (sd_notify READY=1)");
        return 0;
}
