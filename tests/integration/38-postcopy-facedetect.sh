#!/bin/bash
# Post-copy and hybrid migration of the paper's facedetect workload (python +
# OpenCV, a large anonymous heap) between two seeded hosts, unshaped links:
# postcopy A -> B, then hybrid B -> A, while one edgemig-probe facedetect
# client holds a single TCP connection and checks every answer (one face in
# face.jpg, seq growing by one). Asserts: zero resets, errors, timeouts and
# verify failures; each timeline is lazy with degraded_ms; the service
# answers correctly afterwards (the probe's image and, from a new client,
# noface.png -> 0 faces); it never runs on both hosts at once.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
DATA=$HERE/data
[ -x "$PROBE" ] || skip "$PROBE not built"
mig_setup 2 facedetect

SIP=10.66.0.38
h 1 run --name fd --ip "$SIP/32" facedetect >/dev/null || fail "run facedetect on host 1"
testbed route "$SIP" 1
ask() { fd_ask "$SIP" "$@"; } # IMAGE EXPECTED_FACES, from a new connection
wait_for 60 ask face.jpg 1 || fail "facedetect does not answer on host 1"

mig_watch_single fd

# migrate MODE FROM TO: must succeed with a lazy final step.
migrate() {
	local out=$MIG_LOGS/mig-$1-$2-$3.json
	h "$2" migrate fd --mode "$1" --to "$(haddr "$3"):$MIG_PORT" --json >"$out" ||
		fail "migrate fd ($1) $2 -> $3: $(cat "$out")"
	python3 - "$out" "$1" "$2" "$3" <<'PY' || fail "timeline of fd ($1): $(cat "$out")"
import json, sys
r = json.load(open(sys.argv[1]))
mode = sys.argv[2]
assert r["ok"] and r["mode"] == mode and r["final_mode"] == "lazy", r
assert isinstance(r["degraded_ms"], int) and r["degraded_ms"] >= 0, r
assert 0 <= r["downtime_ms"] <= r["handoff_ms"], r
m = r["marks"]
assert m["source_stopped"] <= m["target_running"] <= m["lazy_done"] <= m["source_cleaned"], m
assert [p["name"] for p in r["phases"] if p.get("side") != "target"][-2:] == ["final", "lazy"], r["phases"]
assert (len(r["rounds"]) == 0) == (mode == "postcopy"), r["rounds"]
assert r["layers_sent"] == 0, r["layers_sent"]  # both stores are seeded
assert r["lazy_known_used"] == r["lazy_known_pages"], r
if mode == "postcopy":  # the python/OpenCV heap is not all zero pages
    assert r["lazy_bytes"] >= 4 << 20, r
print("facedetect %s %s -> %s: handoff %d ms, downtime %d ms, degraded %d ms, wire %d B, "
      "lazy %d B, %d lazy pages known" % (mode, sys.argv[3], sys.argv[4], r["handoff_ms"],
      r["downtime_ms"], r["degraded_ms"], r["bytes_wire"], r.get("lazy_bytes", 0),
      r["lazy_known_used"]))
PY
}

STOP=$MIG_LOGS/stop-probe
on_client "$PROBE" facedetect "$SIP:8080" --image "$DATA/face.jpg" --expect-faces 1 \
	--interval-ms 50 --timeout 30 --until-file "$STOP" --json >"$MIG_LOGS/probe.json" \
	2>"$MIG_LOGS/probe.log" &
PROBE_PID=$!
sleep 1

migrate postcopy 1 2
running_on 2 fd || fail "not running on host 2 after postcopy"
running_on 1 fd && fail "still running on host 1 after postcopy"
sleep 1
migrate hybrid 2 1
running_on 1 fd || fail "not running on host 1 after hybrid"
running_on 2 fd && fail "still running on host 2 after hybrid"
sleep 1

touch "$STOP"
PRC=0
wait "$PROBE_PID" || PRC=$?
[ "$PRC" = 0 ] || fail "probe exited $PRC: $(cat "$MIG_LOGS/probe.json" "$MIG_LOGS/probe.log")"
mig_probe_check "$MIG_LOGS/probe.json" 20 >/dev/null || fail "probe: $(cat "$MIG_LOGS/probe.json")"

# The probe is done: new clients may ask now (seq is shared by all clients).
ask face.jpg 1 || fail "wrong answer after the migrations"
ask noface.png 0 || fail "wrong answer for noface.png after the migrations"
mig_assert_single
[ -z "$(find "$EM_H1_ROOT/incoming" "$EM_H2_ROOT/incoming" "$EM_H1_ROOT/outgoing" \
	"$EM_H2_ROOT/outgoing" -mindepth 1 2>/dev/null)" ] || fail "staging left behind"
echo "ok"
