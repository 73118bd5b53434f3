#!/bin/bash
# The paper's facedetect workload (python + OpenCV, ~310 MB of layers)
# migrates A -> B between two seeded hosts: only the container's state
# crosses the link (the layers phase is a few KB), a client holding one TCP
# connection gets correct answers before, during and after the handoff, and
# new clients get correct answers from the target. Then it migrates B -> C,
# a host whose store lacks the image: the source streams the missing layers
# and the service still restores and answers correctly.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
DATA=$HERE/data
[ -x "$PROBE" ] || skip "$PROBE not built"
mig_setup 3 # seeded below: hosts 1 and 2 with facedetect, host 3 with busybox only
mig_pull 1 facedetect
mig_pull 2 facedetect
mig_pull 3 busybox

SIP=10.66.0.12
h 1 run --name fd --ip "$SIP/32" facedetect >/dev/null || fail "run facedetect on host 1"
testbed route "$SIP" 1
ask() { fd_ask "$SIP" "$@"; } # IMAGE EXPECTED_FACES, from a new connection
wait_for 60 ask face.jpg 1 || fail "facedetect does not answer on host 1"
ask noface.png 0 || fail "wrong answer on host 1"

mig_watch_single fd

# One connection through each handoff; the service's seq must grow by one per
# request (it counts every client's requests, so no other client may ask while
# a probe runs).
PROBE_PID=
probe_start() { # NAME
	rm -f "$MIG_LOGS/stop-probe"
	on_client "$PROBE" facedetect "$SIP:8080" --image "$DATA/face.jpg" --expect-faces 1 \
		--interval-ms 50 --until-file "$MIG_LOGS/stop-probe" --json >"$MIG_LOGS/probe-$1.json" \
		2>"$MIG_LOGS/probe-$1.log" &
	PROBE_PID=$!
	sleep 1
}
probe_end() { # NAME
	local rc=0 f=$MIG_LOGS/probe-$1.json
	sleep 1
	touch "$MIG_LOGS/stop-probe"
	wait "$PROBE_PID" || rc=$?
	[ "$rc" = 0 ] || fail "probe $1 exited $rc: $(cat "$f" "$MIG_LOGS/probe-$1.log")"
	echo "probe $1:"
	mig_probe_check "$f" 10 >/dev/null || fail "probe $1: $(cat "$f")"
}

migrate() { # FROM TO EXPECT(seeded|missing)
	local out=$MIG_LOGS/mig-$1-$2.json
	h "$1" migrate fd --to "$(haddr "$2"):$MIG_PORT" --json >"$out" ||
		fail "migrate $1 -> $2: $(cat "$out")"
	python3 - "$out" "$1" "$2" "$3" <<'PY' || fail "timeline $1 -> $2"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"], r
layers = next(p for p in r["phases"] if p["name"] == "layers")
if sys.argv[4] == "seeded":
    # Both stores hold every layer: only the plan and the hash list cross.
    assert r["layers_sent"] == 0, r["layers_sent"]
    assert layers["bytes_wire"] < 100 * 1024, layers
else:
    assert r["layers_sent"] > 0, r["layers_sent"]
    assert layers["bytes_wire"] > 100 * 1024 * 1024, layers
print("facedetect %s -> %s: handoff %d ms, downtime %d ms, layers: %d blobs, %d bytes on the wire "
      "(%d ms); total %d bytes on the wire" %
      (sys.argv[2], sys.argv[3], r["handoff_ms"], r["downtime_ms"], r["layers_sent"],
       layers["bytes_wire"], layers["duration_ms"], r["bytes_wire"]))
PY
}

probe_start 1-2
migrate 1 2 seeded
probe_end 1-2
running_on 2 fd || fail "not running on host 2"
running_on 1 fd && fail "still running on host 1"
running_on 3 fd && fail "running on host 3"
ask face.jpg 1 || fail "wrong answer on host 2"
ask noface.png 0 || fail "wrong answer on host 2"

h 3 image ls | grep -q facedetect && fail "host 3 already has the facedetect image"
probe_start 2-3
migrate 2 3 missing
probe_end 2-3
running_on 3 fd || fail "not running on host 3"
running_on 1 fd && fail "running on host 1"
running_on 2 fd && fail "still running on host 2"
h 3 image ls | grep -q facedetect || fail "host 3 did not register the streamed image"
ask face.jpg 1 || fail "wrong answer on host 3"
ask noface.png 0 || fail "wrong answer on host 3"
mig_assert_single
[ -z "$(find "$EM_H1_ROOT/incoming" "$EM_H2_ROOT/incoming" "$EM_H3_ROOT/incoming" -mindepth 1 2>/dev/null)" ] ||
	fail "staging left behind"
echo "ok"
