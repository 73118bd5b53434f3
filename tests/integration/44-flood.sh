#!/bin/bash
# A flood of 2,000 connections at edgemigd (issue 15 §3): from the client's
# address, 200 open at a time, each held a second or sent junk. Meanwhile a
# real migration from host 1 completes, edgemigd's children stay within its
# per-peer limit (plus the migration's own session), its memory stays
# bounded, and the refusals are logged as a count, not line by line.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 busybox

SIP=10.66.0.42
h 1 run --name counter --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
testbed route "$SIP" 1
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"

DPID=${MIG_DAEMONS[2]}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$DPID/status"; }
children() { { pgrep -P "$DPID" || true; } | wc -l; }
RSS0=$(rss)

# The flood: 2,000 connections from the client namespace, 200 at a time.
cat >"$MIG_LOGS/flood.py" <<'PY'
import socket, sys, threading, time
host, port, total, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
done = [0, 0]  # connected, failed
lock = threading.Lock()
def one(i):
    try:
        s = socket.create_connection((host, port), timeout=5)
        if i % 2:
            s.sendall(b"\x16\x03\x01 not a TLS hello" * 10)
        time.sleep(1)
        s.close()
        with lock: done[0] += 1
    except OSError:
        with lock: done[1] += 1
sem = threading.Semaphore(width)
def run(i):
    with sem:
        one(i)
ts = [threading.Thread(target=run, args=(i,)) for i in range(total)]
for t in ts: t.start()
for t in ts: t.join()
print(done[0], done[1])
PY
on_client python3 "$MIG_LOGS/flood.py" "$(haddr 2)" "$MIG_PORT" 2000 200 >"$MIG_LOGS/flood.out" &
FLOOD=$!
(
	peak=0
	while kill -0 "$FLOOD" 2>/dev/null; do
		c=$(children)
		[ "$c" -le "$peak" ] || peak=$c
		echo "$peak" >"$MIG_LOGS/peak"
		sleep 0.1
	done
) &
WATCH=$!
sleep 2 # the flood is on
h 1 migrate counter --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig.json" ||
	fail "migration during the flood: $(cat "$MIG_LOGS/mig.json")"
wait "$FLOOD" || fail "flood client failed"
wait "$WATCH" || true
read -r ok failed <"$MIG_LOGS/flood.out"
[ $((ok + failed)) -eq 2000 ] || fail "flood: $ok + $failed connections"
running_on 2 counter || fail "counter not running on host 2"
running_on 1 counter && fail "counter still running on host 1"
peak=$(cat "$MIG_LOGS/peak")
RSS1=$(rss)
echo "flood: $ok connections made, $failed failed; edgemigd children peak $peak; RSS $RSS0 -> $RSS1 kB"
# 8 per peer address (the flood's) + the migration's session + slack for
# children being reaped.
[ "$peak" -le 12 ] || fail "edgemigd had $peak children during the flood"
[ "$RSS1" -le $((RSS0 + 8192)) ] || fail "edgemigd grew from $RSS0 to $RSS1 kB"
grep -q "refused [0-9]* connections over the limit" "$MIG_LOGS/edgemigd-h2.log" ||
	fail "no refusal count logged"
n=$(grep -c "refused [0-9]* connections over the limit" "$MIG_LOGS/edgemigd-h2.log")
[ "$n" -le 60 ] || fail "$n refusal lines: the log is flooded too"
wait_for 20 sh -c "[ \$(pgrep -P $DPID | wc -l) -eq 0 ]" || fail "flood children still alive"
echo "PASS: 2000-connection flood bounded, migration completed"
