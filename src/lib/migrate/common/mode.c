/* Migration modes by name (--mode, the CONTROL request's "mode"). */
#include "migrate/common/mode.h"

#include <errno.h>
#include <string.h>

static const char *const mode_names[] = {"precopy",  "stop-and-copy", "prepare",
                                         "postcopy", "hybrid",        "auto"};

int em_migrate_mode_parse(const char *s, enum em_migrate_mode *out, em_error_t *err)
{
        for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
                if (strcmp(s, mode_names[i]) == 0) {
                        *out = (enum em_migrate_mode)i;
                        return 0;
                }
        }
        return em_error_set(
            err, EINVAL, "unknown mode '%s' (use precopy, stop-and-copy, postcopy, hybrid or auto)",
            s);
}

const char *em_migrate_mode_name(enum em_migrate_mode m)
{
        return (size_t)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}
