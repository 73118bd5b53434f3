#!/bin/bash
# The migration form of 29-checkpoint-setuid: a service that dropped
# privileges with setuid() and no exec (data/setuid-sleep.c, static, from
# a named volume in busybox) migrates 1 -> 2; the hop back is refused by
# the source in its first pre-copy round, before any memory goes out,
# with the error naming the fix (docs/security.md, "Services that drop
# privileges themselves checkpoint once"), and the service keeps running
# on host 2 alone. Without the check the hop back failed only at the
# final dump, inside CRIU.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 busybox
BIN=$MIG_LOGS/setuid-sleep
"${CC:-cc}" -static -O2 -o "$BIN" "$(dirname "$0")/data/setuid-sleep.c" 2>/dev/null ||
	skip "cannot build a static program (libc6-dev's libc.a)"
h 1 run --name nd --ip 10.66.0.29/32 -v ndbin:/bin-x busybox sh -c \
	'while [ ! -x /bin-x/s ]; do sleep 0.1; done; exec /bin-x/s' >/dev/null || fail "run nd"
install -m 755 "$BIN" "$EM_H1_ROOT/volumes/ndbin/s"
dropped() { h "$1" exec nd cat /proc/1/status | grep -q '^Uid:.1000'; }
wait_for 20 dropped 1 || fail "nd did not drop to uid 1000"

h 1 migrate nd --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/there.out" 2>&1 ||
	fail "first hop: $(cat "$MIG_LOGS/there.out")"
running_on 2 nd || fail "nd not running on host 2"
dropped 2 || fail "nd on host 2 is not the dropped process"
h 2 migrate nd --to "$(haddr 1):$MIG_PORT" >"$MIG_LOGS/back.out" 2>&1 &&
	fail "a restored non-dumpable service migrated again"
grep -q "dropped privileges without an exec" "$MIG_LOGS/back.out" ||
	fail "the hop back's error: $(cat "$MIG_LOGS/back.out")"
grep -q "pre-copy round 1" "$MIG_LOGS/back.out" ||
	fail "not refused in the first round: $(cat "$MIG_LOGS/back.out")"
running_on 2 nd || fail "nd no longer runs on host 2 after the refused hop"
running_on 1 nd && fail "nd runs on host 1 too"
echo "ok: first hop migrated; the hop back refused in round 1 with the fix named: $(tail -n 1 "$MIG_LOGS/back.out")"
