#!/bin/bash
# The paper's busybox workload migrates A -> B -> A between two edge hosts of
# the test bed: the counter continues without a gap larger than the
# downtime, files written on each host are present, the container never runs
# on both hosts, and the timeline follows the paper's definitions. The
# container's log goes on across hosts (the target appends to the source's). A second
# container on the target keeps running undisturbed.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 busybox

SIP=10.66.0.10
h 1 run --name counter --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
testbed route "$SIP" 1
h 2 run --name bystander --ip 10.66.0.20/32 busybox >/dev/null || fail "run bystander on host 2"
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"
h 1 exec counter sh -c 'echo written-on-a >/data/a.txt'
# Output to the container's stdout (its init's, a pipe to the log forwarder).
logs_have() { h "$1" logs counter | grep -q "$2"; }
h 1 exec counter sh -c 'echo log-on-a >/proc/1/fd/1'
wait_for 10 logs_have 1 log-on-a || fail "stdout not in the log on host 1"
BY_PID=$(h 2 inspect bystander | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')

mig_watch_single counter

migrate() { # FROM TO
	h "$1" migrate counter --to "$(haddr "$2"):$MIG_PORT" --json >"$MIG_LOGS/mig-$1-$2.json" ||
		fail "migrate $1 -> $2: $(cat "$MIG_LOGS/mig-$1-$2.json")"
	python3 - "$MIG_LOGS/mig-$1-$2.json" <<'PY' || fail "timeline $1 -> $2"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"], r
for k in ("handoff_ms", "downtime_ms", "bytes_wire", "bytes_raw"):
    assert isinstance(r[k], int) and r[k] >= 0, k
assert r["downtime_ms"] <= r["handoff_ms"], r
names = [p["name"] for p in r["phases"]]
assert names[:2] == ["handshake", "layers"] and "final" in names, names
assert len(r["rounds"]) >= 1
print("handoff %d ms, downtime %d ms, %d bytes on the wire, %d rounds" %
      (r["handoff_ms"], r["downtime_ms"], r["bytes_wire"], len(r["rounds"])))
PY
}

sleep 1
migrate 1 2
running_on 2 counter || fail "not running on host 2 after migration"
h 1 ps | grep -q '^counter ' && fail "still present on host 1 after migration"
h 2 exec counter cat /data/a.txt | grep -q written-on-a || fail "file written on A missing on B"
h 2 exec counter sh -c 'echo written-on-b >/data/b.txt'
h 2 logs counter | grep -q log-on-a || fail "the log did not move to host 2: $(h 2 logs counter | tail -3)"
h 2 exec counter sh -c 'echo log-on-b >/proc/1/fd/1'
wait_for 10 logs_have 2 log-on-b || fail "stdout not in the log on host 2"
B1=$(h 2 exec counter tail -n 1 /data/counter.log)
counter_past() { [ "$(h "$1" exec counter tail -n 1 /data/counter.log)" -gt "$2" ]; }
wait_for 10 counter_past 2 $((B1 + 3)) || fail "counter does not advance on host 2"
busybox ping -c 1 -W 2 "$SIP" >/dev/null 2>&1 || true

sleep 1
migrate 2 1
running_on 1 counter || fail "not running on host 1 after migrating back"
h 2 ps | grep -q '^counter ' && fail "still present on host 2 after migrating back"
for f in a b; do
	h 1 exec counter cat /data/$f.txt | grep -q "written-on-$f" || fail "file $f.txt lost"
done
mig_assert_single
[ "$(h 1 logs counter | grep '^log-on-')" = "$(printf 'log-on-a\nlog-on-b')" ] ||
	fail "the log is not the source's followed by the target's: $(h 1 logs counter | grep '^log-on-')"
[ "$(h 1 logs --tail 1 counter)" = log-on-b ] || fail "logs --tail 1: $(h 1 logs --tail 1 counter)"

# The counter continues: each value is the previous + 1 (no restart, no
# duplicate, no hole: the counter's state is in memory and in the file).
h 1 exec counter cat /data/counter.log | awk 'NR > 1 && $1 != prev + 1 { print "gap at " NR ": " prev " -> " $1; bad = 1 }
	{ prev = $1 } END { exit bad }' || fail "counter sequence broken"

# The bystander on host 2 ran through two incoming/outgoing migrations.
[ "$(h 2 inspect bystander | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')" = "$BY_PID" ] ||
	fail "bystander container was disturbed"
running_on 2 bystander || fail "bystander not running"
[ -z "$(find "$EM_H1_ROOT/incoming" "$EM_H2_ROOT/incoming" -mindepth 1 2>/dev/null)" ] || fail "staging left behind"

# A container restored from a local checkpoint migrates like any other.
h 1 checkpoint counter --to "$MIG_LOGS/ck" >/dev/null || fail "local checkpoint"
h 1 restore "$MIG_LOGS/ck" >/dev/null || fail "local restore"
migrate 1 2
running_on 2 counter || fail "restored container did not migrate"
echo "ok"
