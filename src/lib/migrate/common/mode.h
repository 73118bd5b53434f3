/* How a migration hands the container over (edgemig-migrate(1) --mode). */
#ifndef EDGEMIG_MIGRATE_COMMON_MODE_H
#define EDGEMIG_MIGRATE_COMMON_MODE_H

#include "util/error.h"

enum em_migrate_mode {
        EM_MIGRATE_PRECOPY = 0,
        EM_MIGRATE_STOP_AND_COPY,
        EM_MIGRATE_PREPARE,  /* pre-transfer only: layers + base memory, no handoff */
        EM_MIGRATE_POSTCOPY, /* lazy pages right away (migrate/common/postcopy.h) */
        EM_MIGRATE_HYBRID,   /* pre-copy rounds, then lazy pages for the rest */
        EM_MIGRATE_AUTO,     /* pre-copy if the final delta fits the downtime target, else hybrid */
};
int em_migrate_mode_parse(const char *s, enum em_migrate_mode *out, em_error_t *err);
const char *em_migrate_mode_name(enum em_migrate_mode m);

#endif
