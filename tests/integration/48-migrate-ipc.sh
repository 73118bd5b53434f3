#!/bin/bash
# A multi-process service that keeps its state in System V IPC and shared
# memory (images/ipcsvc: a prefork server; 4 front ends and 2 appliers
# share a SysV shm counter table guarded by a SysV semaphore, pass work and
# hold parked messages in a SysV message queue, and mirror their totals in
# POSIX shm and a shared anonymous mapping) migrates A -> B -> A -> B while
# a client drives it over 3 TCP connections every 5 ms (the middle hop in
# post-copy mode). Every answer is checked as it arrives; after the 3 hops
# the service's whole state (counters, totals, semaphore value, mirrors,
# the queue's messages in order) equals the client's model of every
# acknowledged update, the same processes answer (token), no connection
# was reset, and the service never ran on two hosts. Links are unshaped:
# nothing here is a measurement. Every process also maps a 16 MiB SysV
# segment (IPCSVC_SHM_MB), which must arrive intact, which pre-copy sends
# before the freeze (on the pre-copy hops; CRIU never restores shared
# memory lazily), and which the pre-check (`edgemig check`) counts once,
# not once per process.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 ipcsvc

SIP=10.66.0.48
CLIENT=$REPO/scripts/ipcsvc-client.py
SHM_MB=16
h 1 run --name ipc --ip "$SIP/32" -e IPCSVC_SHM_MB=$SHM_MB ipcsvc >/dev/null || fail "run ipcsvc on host 1"
testbed route "$SIP" 1
wait_for 20 on_client timeout 3 bash -c "exec 3<>/dev/tcp/$SIP/7100 && IFS= read -r l <&3 &&
	[[ \$l == HELLO* ]]" || fail "ipcsvc not reachable from the client"
# Its processes: the parent, 4 front ends, 2 appliers.
nprocs() { h "$1" exec ipc ps | grep -c '/app/ipcsvc' || true; }
[ "$(nprocs 1)" = 7 ] || fail "ipcsvc runs $(nprocs 1) processes, want 7: $(h 1 exec ipc ps)"

# The pre-check's memory: 7 processes map the segment; CRIU dumps it once
# and the migration sends it once, so the estimate holds it once.
h 1 check ipc --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/check.json" ||
	fail "check: $(cat "$MIG_LOGS/check.json")"
python3 - "$MIG_LOGS/check.json" "$SHM_MB" <<'PY' || fail "pre-check memory: $(cat "$MIG_LOGS/check.json")"
import json, sys
r = json.load(open(sys.argv[1]))
mib = int(sys.argv[2]) * 2**20
dump, resident = r["estimate"]["memory_bytes"], r["local"]["memory_bytes"]
assert r["ok"], r
assert mib <= dump < mib + 4 * 2**20, "estimated dump %.1f MiB for %d MiB shared" % (dump / 2**20, mib >> 20)
assert mib <= resident < mib + 8 * 2**20, "resident %.1f MiB for %d MiB shared" % (resident / 2**20, mib >> 20)
print("pre-check: memory %.1f MiB resident, %.1f MiB to dump, for 7 processes sharing %d MiB" %
      (resident / 2**20, dump / 2**20, mib >> 20))
PY

mig_watch_single ipc
STOP=$MIG_LOGS/stop-client
PROG=$MIG_LOGS/progress
on_client python3 "$CLIENT" --until-file "$STOP" --progress "$PROG" "$SIP" 7100 \
	>"$MIG_LOGS/client.json" 2>"$MIG_LOGS/client.log" &
CLIENT_PID=$!
acked() { cat "$PROG" 2>/dev/null || echo 0; }
advanced() { [ "$(acked)" -ge "$1" ]; }
wait_for 20 advanced 300 || fail "client not advancing: $(cat "$MIG_LOGS/client.json" "$MIG_LOGS/client.log")"

hop() { # FROM TO MODE
	local out=$MIG_LOGS/mig-$1-$2.json n
	h "$1" migrate ipc --to "$(haddr "$2"):$MIG_PORT" --mode "$3" --json >"$out" ||
		fail "migrate $1 -> $2 ($3): $(cat "$out")"
	python3 - "$out" "$1" "$2" "$3" "$SHM_MB" <<'PY' || fail "timeline $1 -> $2: $(cat "$out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"], r
final = [p for p in r["phases"] if p["name"] == "final"]
after = final[0]["bytes_raw"] / 2**20 if final else -1
print("ipcsvc %s -> %s (%s): handoff %d ms, downtime %d ms, %d bytes on the wire%s" %
      (sys.argv[2], sys.argv[3], sys.argv[4], r["handoff_ms"], r["downtime_ms"], r["bytes_wire"],
       ", %.1f MiB (raw) of it after the freeze" % after if final else ""))
# The segment does not change: pre-copy sends it while the service runs,
# also from a host where CRIU restored it (no process has touched its
# pages there), so it is not part of the downtime.
if sys.argv[4] == "precopy":
    assert 0 <= after < int(sys.argv[5]) / 4, "the shared segment went after the freeze"
PY
	running_on "$2" ipc || fail "not running on host $2 after migrating there"
	running_on "$1" ipc && fail "still running on host $1 after migrating away"
	[ "$(nprocs "$2")" = 7 ] || fail "host $2 restored $(nprocs "$2") processes"
	n=$(acked)
	wait_for 20 advanced $((n + 300)) || fail "client does not advance on host $2 (at $(acked))"
}
# The middle hop restores with CRIU's lazy pages: the IPC namespace and
# the shared memory come back before the service runs, the rest on demand.
hop 1 2 precopy
hop 2 1 postcopy
hop 1 2 precopy

touch "$STOP"
CRC=0
wait "$CLIENT_PID" || CRC=$?
mig_assert_single
[ "$CRC" = 0 ] || fail "state differs from the client's model: $(cat "$MIG_LOGS/client.json" "$MIG_LOGS/client.log")"
python3 - "$MIG_LOGS/client.json" <<'PY' || fail "client summary: $(cat "$MIG_LOGS/client.json")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["ok"] and c["acked"] > 900 and not c["errors"], c
print("client: %d acknowledged updates over 3 connections, %d messages parked at the end, "
      "longest gap %d ms; state exact after 3 hops" % (c["acked"], c["parked"], c["max_gap_ms"]))
PY
running_on 2 ipc || fail "ipcsvc not running on host 2 at the end"
[ -z "$(find "$EM_H1_ROOT/incoming" "$EM_H2_ROOT/incoming" -mindepth 1 2>/dev/null)" ] || fail "staging left behind"
echo ok
