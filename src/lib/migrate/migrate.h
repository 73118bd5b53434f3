/* Live migration of a container between two edge hosts.
 *
 * The source side runs in `edgemig migrate` (daemonless, like podman); the
 * target side runs in edgemigd, one forked child per incoming session.
 * Phases: handshake, layers, pre-copy rounds (writable layer + memory),
 * final (checkpoint, last deltas), restore, switch, cleanup. The service runs
 * on at most one host at any moment and is never lost: a failure before the
 * final state left restores the container on the source; after that, the
 * target's answer decides which copy stays (migrate/common/resolve.h).
 *
 * The subsystem's layout follows the protocol: source/ (the sending side:
 * phases, page and writable-layer sync, stop rule, pre-check), target/ (the
 * receiving side: session, image rebuild, policy) and common/ (the wire
 * protocol, session ids, journal, outcome and doubt resolution, reports,
 * post-copy). This header gathers the two entry points for front ends. */
#ifndef EDGEMIG_MIGRATE_MIGRATE_H
#define EDGEMIG_MIGRATE_MIGRATE_H

#include "migrate/source/source.h"
#include "migrate/target/target.h"

#endif
