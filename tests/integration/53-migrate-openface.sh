#!/bin/bash
# The OpenFace-class workload (images/openface: detection, 68 landmarks and
# alignment, a 128-d embedding, gallery matching) migrates A -> B once over a
# 20 Mbit/s link while a client sends photos back to back over one TCP
# connection: every identity it gets back is right, before, during and after
# the handoff, and the connection survives. Prints the service's resident
# memory and what it dirties under the client's load in 2 s and in 10 s
# (scripts/dirty-pages.py: pages whose content changed, as between a base
# dump and a final dump), the pre-copy rounds and the final phase's bytes.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
CLIENT=$REPO/scripts/openface-client.py
EXPECT=$REPO/images/openface/expect.json
mig_setup 2
mig_pull 1 openface
mig_pull 2 openface

SIP=10.66.0.14
h 1 run --name of --ip "$SIP/32" openface >/dev/null || fail "run openface on host 1"
testbed route "$SIP" 1
# Enrolling the gallery takes ~10 s on an idle core, minutes on a loaded one.
wait_for 300 on_client python3 "$CLIENT" --count 1 "$SIP" 8080 "$EXPECT" >/dev/null ||
	fail "openface does not answer on host 1"
on_client python3 "$CLIENT" --count 7 "$SIP" 8080 "$EXPECT" >/dev/null || fail "wrong answers on host 1"
rss=$(h 1 exec of cat /proc/1/status | awk '$1 == "VmRSS:" { printf "%.0f", $2 / 1024 }')
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null

mig_watch_single of
rm -f "$MIG_LOGS/stop"
on_client python3 "$CLIENT" --until-file "$MIG_LOGS/stop" "$SIP" 8080 "$EXPECT" >"$MIG_LOGS/client.json" &
CLIENT_PID=$!
sleep 3
pid=$(h 1 inspect of | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
python3 "$REPO/scripts/dirty-pages.py" "$pid" 2 10 >"$MIG_LOGS/dirty.json" || fail "dirty-pages $pid"
out=$MIG_LOGS/mig.json
h 1 migrate of --to "$(haddr 2):$MIG_PORT" --json >"$out" || fail "migrate 1 -> 2: $(cat "$out")"
sleep 3
touch "$MIG_LOGS/stop"
wait "$CLIENT_PID" || fail "client: $(cat "$MIG_LOGS/client.json")"
running_on 2 of || fail "not running on host 2"
running_on 1 of && fail "still running on host 1"
on_client python3 "$CLIENT" --count 7 "$SIP" 8080 "$EXPECT" >/dev/null || fail "wrong answers on host 2"
mig_assert_single
python3 - "$out" "$MIG_LOGS/client.json" "$rss" "$MIG_LOGS/dirty.json" <<'PY' || fail "report"
import json, sys
r, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert r["ok"] and c["ok"] and c["requests"] > 0, (r, c)
final = next(p for p in r["phases"] if p["name"] == "final")
print("openface 1 -> 2 at 20 Mbit/s: RSS %s MB; handoff %d ms, downtime %d ms, %.1f MB on the wire; "
      "final phase %.1f MB raw, %.1f MB on the wire; client: %d answers right, longest %.1f s" %
      (sys.argv[3], r["handoff_ms"], r["downtime_ms"], r["bytes_wire"] / 1e6,
       final["bytes_raw"] / 1e6, final["bytes_wire"] / 1e6, c["requests"], c["max_latency_s"]))
print("rounds:", json.dumps(r.get("rounds")), "stop:", r.get("stop_reason"))
print("dirtied under load:", open(sys.argv[4]).read().strip())
PY
echo "ok"
