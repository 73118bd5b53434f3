/* The timeline of a migration (migrate/common/report.h) as the table
 * `edgemig migrate` prints: one line per phase, source's and target's, then
 * the pre-copy rounds, why they stopped, any throttle, and the paper's
 * handoff time and downtime. Front ends call it to print. */
#ifndef EDGEMIG_MIGRATE_COMMON_TIMELINE_H
#define EDGEMIG_MIGRATE_COMMON_TIMELINE_H

#include <jansson.h>
#include <stdio.h>

void em_timeline_print(FILE *f, const json_t *report);

#endif
