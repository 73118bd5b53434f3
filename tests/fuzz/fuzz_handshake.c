/* libFuzzer target: HELLO and HELLO_ACK parsing and the accept decision.
 * Sources: src/lib/transfer/handshake.c src/lib/util/{error,cleanup,fsutil,json}.c;
 * libs: jansson. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct em_hello h;
        em_error_t err = NULL;
        uint8_t sid[16] = {0};
        char *reason = NULL, *text = NULL;
        bool ok;

        if (em_hello_parse((const char *)data, size, &h, &err) == 0) {
                /* A valid HELLO must survive a rebuild and be judged against itself. */
                if (em_hello_build(&h, &text, &err) == 0) {
                        struct em_hello again;
                        if (em_hello_parse(text, strlen(text), &again, &err) != 0)
                                abort();
                        if (memcmp(again.session, h.session, 16) != 0)
                                abort();
                        em_hello_free(&again);
                }
                free(text);
                em_hello_accept(&h, &h, &reason);
                free(reason);
                reason = NULL;
                em_hello_free(&h);
        }
        em_error_free(&err);
        if (em_hello_ack_parse((const char *)data, size, sid, &ok, &reason, &err) < 0)
                em_error_free(&err);
        free(reason);
        return 0;
}
