#!/bin/bash
# A process `edgemig exec` started is in the container's cgroup but not in
# its pid 1's process tree, the only one CRIU dumps: a migration ended it
# without a word (the container moved, the process was gone on both
# hosts). Now `migrate` refuses, naming the process and the fix, before
# anything moves; both processes run on. Once it is stopped as the error
# says, the container migrates. A pod with such a process in a member is
# refused as early, by `check`, `migrate` and `prepare` alike: nothing of
# it crosses (no layers, no round), it runs on here only.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 memwriter busybox

SIP=10.66.0.41
MWC=$REPO/scripts/memwriter-client.py
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# exec_stray IP NAME: once NAME's memwriter answers on IP, a second one
# that `edgemig exec` starts in NAME (port 7001); its status into $B.
exec_stray() {
	testbed route "$1" 1
	wait_for 10 on_client python3 "$MWC" "$1" 7000 >/dev/null || fail "$2 does not answer"
	# Its stdio the container's own /dev/null: CRIU could dump it.
	h 1 exec "$2" sh -c 'exec /app/memwriter --mb 2 --port 7001 </dev/null >/dev/null 2>&1' \
		</dev/null >/dev/null 2>&1 &
	wait_for 20 on_client python3 "$MWC" "$1" 7001 >/dev/null ||
		fail "the memwriter exec'd in $2 does not answer"
	B=$(on_client python3 "$MWC" "$1" 7001) || fail "status: $B"
}
# same_stray IP: the exec'd process of exec_stray still answers, the same one.
same_stray() {
	local v
	v=$(on_client python3 "$MWC" "$1" 7001 verify) || fail "the exec'd process after the refusal: $v"
	[ "$(field "$v" token)" = "$(field "$B" token)" ] || fail "a different process answers: $B / $v"
}
h 1 run --name mx --ip "$SIP/32" -e MEMWRITER_MB=1 memwriter >/dev/null ||
	fail "run memwriter on host 1"
exec_stray "$SIP" mx

h 1 migrate mx --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/mig.out" 2>&1 &&
	fail "migrated a container whose exec'd process the dump does not take: $(cat "$MIG_LOGS/mig.out")"
grep -q "not a descendant of its pid 1" "$MIG_LOGS/mig.out" || fail "refused, but why: $(cat "$MIG_LOGS/mig.out")"
running_on 1 mx || fail "mx does not run on host 1 after the refusal"
running_on 2 mx && fail "mx runs on host 2 after the refusal"
same_stray "$SIP"
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

# --- a pod whose member has an exec'd process: refused before anything moves
PIP=10.66.0.42
h 1 pod create --ip "$PIP" px >/dev/null || fail "pod create px"
h 1 run --pod px --name pm -e MEMWRITER_MB=1 memwriter >/dev/null || fail "run pm in pod px"
exec_stray "$PIP" pm
h 1 check px --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/pcheck.out" 2>&1 &&
	fail "check passed a pod with an exec'd process: $(cat "$MIG_LOGS/pcheck.out")"
grep -q "pm: its process .* not a descendant of its pid 1" "$MIG_LOGS/pcheck.out" ||
	fail "pod check: $(cat "$MIG_LOGS/pcheck.out")"
for verb in migrate prepare; do
	h 1 "$verb" px --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/p$verb.out" 2>&1 &&
		fail "$verb of a pod with an exec'd process: $(cat "$MIG_LOGS/p$verb.out")"
	grep -q "pm: its process .* not a descendant of its pid 1" "$MIG_LOGS/p$verb.out" ||
		fail "pod $verb refused, but why: $(cat "$MIG_LOGS/p$verb.out")"
	# shellcheck disable=SC2012 # session ids: plain names
	python3 - "$(ls -t "$EM_H1_ROOT"/migrations/*.json | head -1)" <<'PY' ||
import json, sys
r = json.load(open(sys.argv[1]))
phases = [p["name"] for p in r.get("phases", [])]
assert r["pod"] and not r["ok"] and "layers" not in phases and not r.get("rounds"), r
PY
		fail "pod $verb moved something before its refusal"
done
for c in px pm; do running_on 1 "$c" || fail "$c does not run on host 1 after the refusals"; done
[ "$(h 2 ps --json)" = "[]" ] || fail "host 2 after the pod's refusals: $(h 2 ps)"
for c in px pm; do
	[ ! -e "$EM_H2_ROOT/pagecache/$c" ] || fail "host 2 caches $c's pages after the refusals"
done
same_stray "$PIP"
h 1 pod rm --force px >/dev/null || fail "pod rm px"
echo "ok: a process the dump would not take is refused, and named; without it mx migrates;" \
	"a pod with one is refused before anything moves"
