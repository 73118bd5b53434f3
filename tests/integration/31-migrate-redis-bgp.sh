#!/bin/bash
# 31-migrate-redis over the BGP test bed (`scripts/testbed up --bgp`): bird2
# in the router and on each host, no static route for the service IP. The
# packaged route hook (dist/route-hook) announces the IP's /32 on the
# target after its restore, and the source withdraws it when the target's
# RESTORE_OK arrives. Besides 31's checks (one connection survives both
# handoffs, no acknowledged write lost, never on two hosts), the router's
# FIB must route the IP via the new host after each handoff (the
# convergence time is printed in the migration's timeline), and at the end
# the router knows exactly one path, via host 1.
set -euo pipefail
for t in bird birdc; do
	command -v "$t" >/dev/null || {
		echo "skip: $t is not installed (scripts/setup installs bird2)"
		exit 77
	}
done
export TESTBED_UP_OPTS=--bgp
exec "$(dirname "$0")/31-migrate-redis.sh"
