#!/bin/bash
# A process `edgemig exec` started is in the container's cgroup but not in
# its pid 1's process tree, the only one CRIU dumps: a migration ended it
# without a word (the container moved, the process was gone on both
# hosts). Now `migrate` refuses, naming the process and the fix, before
# anything moves; both processes run on. Once it is stopped as the error
# says, the container migrates.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 memwriter

SIP=10.66.0.41
MWC=$REPO/scripts/memwriter-client.py
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
h 1 run --name mx --ip "$SIP/32" -e MEMWRITER_MB=1 memwriter >/dev/null ||
	fail "run memwriter on host 1"
testbed route "$SIP" 1
wait_for 10 on_client python3 "$MWC" "$SIP" 7000 >/dev/null || fail "memwriter does not answer"
# Its stdio the container's own /dev/null: CRIU could dump it.
h 1 exec mx sh -c 'exec /app/memwriter --mb 2 --port 7001 </dev/null >/dev/null 2>&1' \
	</dev/null >/dev/null 2>&1 &
wait_for 20 on_client python3 "$MWC" "$SIP" 7001 >/dev/null || fail "the exec'd memwriter does not answer"
B=$(on_client python3 "$MWC" "$SIP" 7001) || fail "status: $B"

h 1 migrate mx --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/mig.out" 2>&1 &&
	fail "migrated a container whose exec'd process the dump does not take: $(cat "$MIG_LOGS/mig.out")"
grep -q "not a descendant of its pid 1" "$MIG_LOGS/mig.out" || fail "refused, but why: $(cat "$MIG_LOGS/mig.out")"
running_on 1 mx || fail "mx does not run on host 1 after the refusal"
running_on 2 mx && fail "mx runs on host 2 after the refusal"
V=$(on_client python3 "$MWC" "$SIP" 7001 verify) || fail "the exec'd process after the refusal: $V"
[ "$(field "$V" token)" = "$(field "$B" token)" ] || fail "a different process answers: $B / $V"
h 1 check mx --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/check.out" 2>&1 &&
	fail "check passed a container with an exec'd process: $(cat "$MIG_LOGS/check.out")"
grep -q "not a descendant of its pid 1" "$MIG_LOGS/check.out" || fail "check: $(cat "$MIG_LOGS/check.out")"

# The fix the error names.
KILL=$(grep -o "edgemig exec mx kill [0-9]*" "$MIG_LOGS/mig.out" | head -n 1)
[ -n "$KILL" ] || fail "no fix named: $(cat "$MIG_LOGS/mig.out")"
h 1 exec mx ${KILL#edgemig exec mx } || fail "$KILL"
gone() { ! on_client python3 "$MWC" "$SIP" 7001 >/dev/null 2>&1; }
wait_for 10 gone || fail "the exec'd process still answers after $KILL"
h 1 migrate mx --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/mig2.out" 2>&1 ||
	fail "migrate after the exec'd process ended: $(cat "$MIG_LOGS/mig2.out")"
running_on 2 mx || fail "not running on host 2"
on_client python3 "$MWC" "$SIP" 7000 verify >/dev/null || fail "memwriter after the migration"
h 2 rm -f mx >/dev/null
echo "ok: a process the dump would not take is refused, and named; without it mx migrates"
