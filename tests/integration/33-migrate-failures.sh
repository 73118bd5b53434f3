#!/bin/bash
# Failures during a migration leave the service running on the source (still
# serving its data) and nothing on the target:
#  (a) in the middle of the pre-copy transfer, the target's session is
#      killed (SIGKILL; the daemon cleans up after it at once), then, in a
#      second attempt, the daemon and its session are killed (the restarted
#      daemon cleans up what they left); a retry then succeeds;
#  (b) the link to the target is cut (down) in the middle of the transfer and
#      stays down until both ends gave up on their own (an I/O timeout of
#      10 s on both ends: edgemigd --io-timeout, edgemig migrate --io-timeout);
#  (c) the target refuses: a container with the same name exists there; the
#      refusal comes before any data moves.
# The workload is redis holding ~37 MB (100,000 random hex values, ~11 MB
# after compression), so that its first pre-copy round at 5 Mbit/s lasts ~18 s.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
MIG_IO_TIMEOUT=10
mig_setup 2 redis

SIP=10.66.0.13
h 1 run --name redis --ip "$SIP/32" redis >/dev/null || fail "run redis on host 1"
testbed route "$SIP" 1
wait_for 20 h 1 exec redis redis-cli PING || fail "redis does not start"
h 1 exec redis redis-cli EVAL "math.randomseed(7) for i = 1, 100000 do local s = {}
	for j = 1, 16 do s[j] = string.format('%08x', math.random(0, 2147483647)) end
	redis.call('SET', 'r' .. i, table.concat(s)) end return 1" 0 >/dev/null || fail "filling redis"
h 1 exec redis redis-cli SET canary before-the-failures >/dev/null

# The client reads the canary over the network (new connection, bash only).
canary_on() { # EXPECTED: GET canary through the service IP from the client
	local got
	got=$(on_client timeout 5 bash -c "exec 3<>/dev/tcp/$SIP/6379 &&
		printf 'GET canary\r\n' >&3 && IFS= read -r l <&3 && IFS= read -r v <&3 && echo \"\$v\"" |
		tr -d '\r') || return 1
	[ "$got" = "$1" ]
}
canary_on before-the-failures || fail "canary not readable from the client"

# only_on I: redis runs on host I and on no other host.
only_on() {
	local i
	for i in 1 2; do
		if [ "$i" = "$1" ]; then
			running_on "$i" redis || fail "redis not running on host $i"
		else
			running_on "$i" redis && fail "redis running on host $i too"
		fi
	done
	canary_on before-the-failures || fail "redis on host $1 does not serve the canary"
	[ "$(on_host "$1" "$EM" --root "$(eval echo "\$EM_H$1_ROOT")" exec redis redis-cli DBSIZE)" = 100001 ] ||
		fail "redis on host $1 lost keys"
}

# leftovers I [staging]: what a migration left in host I's root (empty: nothing).
# With staging, a dead session's staging directory and the directory that
# reserved its container name (HELLO), with the empty directories the
# target pre-warmed in it (migrate/target/prewarm.h), are inert and may
# stay: no file, netns, mount or runc state.
leftovers() {
	local root=EM_H$1_ROOT
	root=${!root}
	h "$1" ps --json | python3 -c 'import json,sys; [print("container", c["name"]) for c in json.load(sys.stdin)]'
	find "$root/netns" -mindepth 1 -maxdepth 1 2>/dev/null || true
	if [ "${2:-}" = staging ]; then
		find "$root/containers" -mindepth 1 ! -type d 2>/dev/null || true
	else
		find "$root/containers" "$root/incoming" -mindepth 1 -maxdepth 1 2>/dev/null || true
	fi
	grep " $root/" /proc/self/mountinfo || true
	runc --root "$root/runc" list -q 2>/dev/null || true
}
nothing_left() { [ -z "$(leftovers "$@")" ]; }
target_clean() { # I: fails with what is left over after a grace of 10 s
	wait_for 10 nothing_left "$1" || fail "left over on host $1: $(leftovers "$1")"
}

count_past() { [ "$(grep -c "$2" "$1")" -gt "$3" ]; } # FILE PATTERN N

# start_migration FROM TO: in the background; waits until pre-copy runs.
MPID=
start_migration() {
	local log=$MIG_LOGS/edgemigd-h$2.log before
	before=$(grep -c 'blobs missing' "$log" || true)
	h "$1" migrate redis --to "$(haddr "$2"):$MIG_PORT" --io-timeout "$MIG_IO_TIMEOUT" \
		>"$MIG_LOGS/mig.out" 2>"$MIG_LOGS/mig.err" &
	MPID=$!
	wait_for 20 count_past "$log" 'blobs missing' "$before" || fail "migration did not start"
	sleep 2
	kill -0 "$MPID" 2>/dev/null || fail "migration ended before the failure: $(cat "$MIG_LOGS/mig.err")"
}

# end_migration: the migration must fail with a clear message; prints seconds.
end_migration() {
	local rc=0 t0=$SECONDS
	wait "$MPID" || rc=$?
	[ "$rc" = 1 ] || fail "migrate exited $rc, expected 1: $(cat "$MIG_LOGS/mig.out" "$MIG_LOGS/mig.err")"
	grep -q "migrating redis to $(haddr "$2")" "$MIG_LOGS/mig.err" ||
		fail "unclear error: $(cat "$MIG_LOGS/mig.err")"
	echo "$1: migrate failed after $((SECONDS - t0)) more s: $(tail -n 1 "$MIG_LOGS/mig.err")"
}

session_pids() { pgrep -P "${MIG_DAEMONS[$1]}" || true; }

testbed shape 1 5 >/dev/null 2>&1
testbed shape 2 5 >/dev/null 2>&1

# --- (a) the target's session, then the target's daemon, die ----------------------
start_migration 1 2
SESS=$(session_pids 2)
[ -n "$SESS" ] || fail "no session child on host 2"
kill -9 "$SESS"
end_migration "(a1) target session killed" 2
only_on 1
target_clean 2
grep -q "recovering migration session" "$MIG_LOGS/edgemigd-h2.log" || fail "the daemon did not recover the session"

start_migration 1 2
SESS=$(session_pids 2)
[ -n "$SESS" ] || fail "no session child on host 2"
kill -9 "${MIG_DAEMONS[2]}" "$SESS"
wait "${MIG_DAEMONS[2]}" 2>/dev/null || true
MIG_DAEMONS[2]=
end_migration "(a2) target daemon and session killed" 2
only_on 1
# Only inert staging files may stay until a daemon runs again.
nothing_left 2 staging || fail "left over on host 2 with its daemon dead: $(leftovers 2 staging)"
# The orphaned session is reaped by init (here, pid 1 reaps every ~2 s);
# recovery takes a live (or zombie) owner pid for a session in progress.
wait_for 10 test ! -e "/proc/$SESS" || fail "killed session $SESS never reaped"
READY=$(grep -c ready "$MIG_LOGS/edgemigd-h2.log")
mig_daemon 2
wait_for 10 count_past "$MIG_LOGS/edgemigd-h2.log" ready "$READY" || fail "edgemigd on host 2 did not restart"
target_clean 2
testbed unshape 1 >/dev/null 2>&1
testbed unshape 2 >/dev/null 2>&1
h 1 migrate redis --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/retry.out" || fail "retry after restart failed"
echo "(a) retry: $(cat "$MIG_LOGS/retry.out")"
only_on 2

# --- (b) the link is cut ---------------------------------------------------------
testbed shape 1 5 >/dev/null 2>&1
testbed shape 2 5 >/dev/null 2>&1
start_migration 2 1
SESS=$(session_pids 1)
[ -n "$SESS" ] || fail "no session child on host 1"
on_wan ip link set h1 down
T0=$SECONDS
canary_on before-the-failures || fail "redis on host 2 stopped serving when the link to host 1 went down"
wait_for 60 bash -c "! kill -0 $SESS 2>/dev/null" || fail "the target's session never noticed the dead link"
echo "(b) the target's session gave up after $((SECONDS - T0)) s"
end_migration "(b) link cut" 1
on_wan ip link set h1 up
only_on 2
target_clean 1

# --- (c) the target refuses --------------------------------------------------------
h 1 run --name redis --ip 10.66.0.14/32 redis >/dev/null || fail "run the namesake on host 1"
NAMESAKE=$(h 1 inspect redis | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
RC=0
h 2 migrate redis --to "$(haddr 1):$MIG_PORT" --json >"$MIG_LOGS/refused.json" 2>"$MIG_LOGS/refused.err" || RC=$?
[ "$RC" = 1 ] || fail "migrate to a host with a namesake exited $RC"
python3 - "$MIG_LOGS/refused.json" <<'PY' || fail "refusal: $(cat "$MIG_LOGS/refused.json" "$MIG_LOGS/refused.err")"
import json, sys
r = json.load(open(sys.argv[1]))
assert not r["ok"] and "already exists" in r["error"], r
assert r["bytes_wire"] < 64 * 1024, r["bytes_wire"]
assert all(p["name"] == "handshake" for p in r["phases"]), r["phases"]
print("(c) refused: %s" % r["error"])
PY
running_on 2 redis || fail "redis not running on host 2 after the refusal"
canary_on before-the-failures || fail "redis on host 2 does not serve after the refusal"
[ "$(h 1 inspect redis | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')" = "$NAMESAKE" ] ||
	fail "the namesake on host 1 was disturbed"
[ -z "$(find "$EM_H1_ROOT/incoming" -mindepth 1 2>/dev/null)" ] || fail "staging left on host 1"

# --- (d) service IPs stay unique -------------------------------------------------
# redis migrated away from host 1: its address stays reserved there.
h 1 rm -f redis >/dev/null || fail "rm the namesake"
h 1 run --name squatter --ip "$SIP/32" redis >/dev/null 2>"$MIG_LOGS/squat.err" &&
	fail "host 1 handed out $SIP while redis runs on host 2"
grep -q "reserved for container redis" "$MIG_LOGS/squat.err" || fail "reservation: $(cat "$MIG_LOGS/squat.err")"
h 1 ip ls --json | python3 -c 'import json,sys; r = json.load(sys.stdin); assert any(x["ip"] == sys.argv[1] and x["container"] == "redis" for x in r), r' "$SIP" ||
	fail "ip ls does not list $SIP for redis"
# A container whose address the target uses is refused before any state moves.
h 2 run --name web2 --ip 10.66.0.15/32 redis >/dev/null || fail "run web2 on host 2"
h 1 run --name squatter --ip 10.66.0.15/32 redis >/dev/null || fail "run squatter on host 1"
SQUAT=$(h 1 inspect squatter | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
RC=0
h 2 migrate web2 --to "$(haddr 1):$MIG_PORT" --json >"$MIG_LOGS/collide.json" 2>"$MIG_LOGS/collide.err" || RC=$?
[ "$RC" = 1 ] || fail "migrate onto a used service IP exited $RC"
python3 - "$MIG_LOGS/collide.json" <<'PY' || fail "collision: $(cat "$MIG_LOGS/collide.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert not r["ok"] and "service IP 10.66.0.15 of web2 is used on this host by squatter" in r["error"], r
assert not any(p["name"] in ("precopy", "final") for p in r["phases"]), r["phases"]
assert r["bytes_wire"] < 64 * 1024, r["bytes_wire"]
print("(d) refused: %s" % r["error"])
PY
running_on 2 web2 || fail "web2 not running on host 2 after the refusal"
[ "$(h 1 inspect squatter | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')" = "$SQUAT" ] ||
	fail "squatter on host 1 was disturbed"
[ -z "$(find "$EM_H1_ROOT/incoming" -mindepth 1 2>/dev/null)" ] || fail "staging left on host 1"
h 1 ps | grep -q '^web2 ' && fail "web2 appeared on host 1"
# An operator releases the address of a container gone for good.
h 1 ip release "$SIP" >/dev/null || fail "ip release"
h 1 ip release "$SIP" >/dev/null 2>&1 && fail "a second release succeeded"
h 1 run --name squatter2 --ip "$SIP/32" redis >/dev/null || fail "the released address is still kept"
echo "ok"
