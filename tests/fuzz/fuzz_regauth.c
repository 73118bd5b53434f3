/* libFuzzer target: registry auth files (store/regauth.h) and platform
 * strings (store/osarch.h) on arbitrary bytes. Built by tests/fuzz/run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/osarch.h"
#include "store/regauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cred(const struct em_reg_cred *c)
{
        /* Accepted credentials never carry a control character or an empty user. */
        if (c->user[0] == '\0')
                abort();
        for (const char *p = c->user; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == ':')
                        abort();
        for (const char *p = c->pass; *p; p++)
                if ((unsigned char)*p < 0x20)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const hosts[] = {"h", "docker.io", "127.0.0.1:5000"};
        struct em_reg_cred c = {0};
        struct em_osarch p;
        em_error_t err = NULL;
        char *s = malloc(size + 1);

        for (size_t i = 0; i < 3; i++) {
                if (em_regauth_parse((const char *)data, size, hosts[i], &c, &err) == 1)
                        check_cred(&c);
                em_reg_cred_clear(&c);
                em_error_free(&err);
        }
        if (s == NULL)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (em_osarch_parse(s, &p, &err) == 0 &&
            (strlen(p.os) == 0 || strlen(p.arch) == 0 || strchr(p.arch, '/') != NULL))
                abort();
        em_error_free(&err);
        free(s);
        return 0;
}
