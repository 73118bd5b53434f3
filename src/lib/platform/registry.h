/* The controller's state in SQLite (<state dir>/controller.db): edges,
 * services, users (with their scheduler memory) and the migration history.
 * Every write is a committed transaction, so a killed controller restarts
 * where it stopped. Callers serialize access (one connection, one mutex). */
#ifndef EDGEMIG_PLATFORM_REGISTRY_H
#define EDGEMIG_PLATFORM_REGISTRY_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "platform/scheduler.h"
#include "util/clock.h"
#include "util/error.h"

int em_registry_open(const char *path, sqlite3 **out, em_error_t *err);

/* Runs sql with parameters bound from fmt: 's' text, 'd' double, 'i' int64
 * ('S' text or NULL). Returns the number of rows changed, < 0 on error. */
int em_registry_exec(sqlite3 *db, em_error_t *err, const char *sql, const char *fmt, ...);

/* Runs a query and returns its rows as a JSON array of objects keyed by
 * column name (integers, reals, text, null). */
int em_registry_query(sqlite3 *db, const char *sql, const char *fmt, json_t **out, em_error_t *err,
                      ...);

/* The edges last seen (registered or heartbeat, column seen_ms) after
 * seen_after_ms, as the scheduler sees them (load = max(reported load,
 * services placed there)). *out is malloc'ed. */
int em_registry_load_edges(sqlite3 *db, int64_t seen_after_ms, struct em_sched_edge **out,
                           size_t *n, em_error_t *err);

/* A user's scheduler memory; a new user starts empty. */
/* The scheduler memory as JSON text (shared with the etcd backend); NULL
 * text decodes as a new user. */
int em_registry_user_decode(const char *text, struct em_sched_user *u, em_error_t *err);
char *em_registry_user_encode(const struct em_sched_user *u);

int em_registry_load_user(sqlite3 *db, const char *name, struct em_sched_user *u, em_error_t *err);
int em_registry_save_user(sqlite3 *db, const char *name, double x, double y, int64_t now_ms,
                          const struct em_sched_user *u, em_error_t *err);

#endif
