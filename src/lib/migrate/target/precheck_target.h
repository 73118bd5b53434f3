/* Target side of the pre-check session (source/precheck.h describes it). */
#ifndef EDGEMIG_MIGRATE_TARGET_PRECHECK_TARGET_H
#define EDGEMIG_MIGRATE_TARGET_PRECHECK_TARGET_H

#include "migrate/common/proto.h"
#include "migrate/target/target.h"
#include "transfer/conn.h"
#include "util/config.h"
#include "util/error.h"

/* After the HELLO of mode "check" was accepted. */
int em_precheck_serve(const struct em_config *cfg, em_conn_t *conn, const struct em_target_opts *o,
                      const char *container, em_error_t *err);

/* A service IP this host uses already: a container, or a reservation for
 * another one (EADDRINUSE, naming the user); 0 if free or reserved for
 * `name` itself. */
int em_precheck_ip_free(const struct em_config *cfg, const char *ip, const char *name,
                        em_error_t *err);

#endif
