#include "util/fault.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"

const char *em_fault_action(const char *spec, const char *point, char *buf, size_t len)
{
        size_t plen = strlen(point);

        for (const char *p = spec; p && *p;) {
                size_t n = strcspn(p, ",");
                if (n > plen && strncmp(p, point, plen) == 0 && p[plen] == '=') {
                        size_t alen = n - plen - 1;
                        if (alen >= len)
                                return NULL;
                        memcpy(buf, p + plen + 1, alen);
                        buf[alen] = '\0';
                        return buf;
                }
                p += n;
                if (*p == ',')
                        p++;
        }
        return NULL;
}

/* A frame header with magic "EMF1" and garbage after it: the peer's
 * decoder must reject it (bad type, length or checksum). */
static void write_corrupt_frame(int fd)
{
        unsigned char junk[48] = {'E', 'M', 'F', '1'};

        for (size_t i = 4; i < sizeof(junk); i++)
                junk[i] = (unsigned char)(0xa5 ^ i);
        (void)!write(fd, junk, sizeof(junk));
}

int em_fault(const char *point, int fd, em_error_t *err)
{
        char buf[16];
        const char *a = em_fault_action(getenv("EDGEMIG_FAULT"), point, buf, sizeof(buf));

        if (a == NULL)
                return 0;
        em_log_warn("fault injection: %s at %s", a, point);
        if (strcmp(a, "crash") == 0)
                _exit(113);
        if (strcmp(a, "drop") == 0 && fd >= 0) {
                shutdown(fd, SHUT_RDWR);
                return em_error_set(err, ECONNRESET, "injected fault at %s: link dropped", point);
        }
        if (strcmp(a, "corrupt") == 0 && fd >= 0) {
                write_corrupt_frame(fd);
                return 0; /* the peer notices */
        }
        if (strcmp(a, "stall") == 0) {
                /* Long enough for a test to act (cut a link) at this point. */
                poll(NULL, 0, 3000);
                return 0;
        }
        if (strcmp(a, "enospc") == 0)
                return em_error_set(err, ENOSPC, "injected fault at %s", point);
        return em_error_set(err, EIO, "injected fault at %s", point);
}
