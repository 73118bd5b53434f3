#!/bin/bash
# redis under continuous write load migrates A -> B -> A over 20 Mbit/s links.
# One client (edgemig-probe, ONE TCP connection, SET k<n> then GET k<n>,
# every 5 ms) runs through both handoffs: its connection survives (no reset,
# no error, every GET returns what was SET), every acknowledged write is
# present on the final host, and the service never runs on both hosts.
# On a BGP test bed (31-migrate-redis-bgp.sh) the route hooks move the
# service IP by BGP: after each handoff the router's FIB routes it to the
# new host, with the convergence time printed, and at the end exactly one
# path is left.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
[ -x "$PROBE" ] || skip "$PROBE not built"
mig_setup 2 redis

SIP=10.66.0.11
mig_run_redis "$SIP"
# Shape only the links the migrations cross (the images were seeded unshaped).
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null

mig_watch_single redis
[ -z "${EM_BGP_DIR:-}" ] || mig_route_watch

STOP=$MIG_LOGS/stop-probe
on_client "$PROBE" redis "$SIP:6379" --interval-ms 5 --until-file "$STOP" --json \
	>"$MIG_LOGS/probe.json" 2>"$MIG_LOGS/probe.log" &
PROBE_PID=$!
probe_past() { # the probe has made N successful requests (it logs nothing; ask redis)
	[ "$(h "$1" exec redis redis-cli DBSIZE 2>/dev/null)" -ge "$2" ]
}
wait_for 10 probe_past 1 100 || fail "probe not writing"

migrate() { # FROM TO
	local out=$MIG_LOGS/mig-$1-$2.json
	h "$1" migrate redis --to "$(haddr "$2"):$MIG_PORT" --json >"$out" ||
		fail "migrate $1 -> $2: $(cat "$out")"
	python3 - "$out" "$1" "$2" <<'PY' || fail "timeline $1 -> $2"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"], r
assert 0 <= r["downtime_ms"] <= r["handoff_ms"], r
print("redis %s -> %s: handoff %d ms, downtime %d ms, %d bytes on the wire, %d rounds" %
      (sys.argv[2], sys.argv[3], r["handoff_ms"], r["downtime_ms"], r["bytes_wire"], len(r["rounds"])))
PY
	[ -z "${EM_BGP_DIR:-}" ] || mig_route_report "$SIP" "$2" "$out" || fail "route $1 -> $2"
}

migrate 1 2
running_on 2 redis || fail "not running on host 2 after migration"
running_on 1 redis && fail "still running on host 1 after migration"
N=$(h 2 exec redis redis-cli DBSIZE)
wait_for 10 probe_past 2 $((N + 100)) || fail "probe does not advance on host 2"
migrate 2 1
running_on 1 redis || fail "not running on host 1 after migrating back"
running_on 2 redis && fail "still running on host 2 after migrating back"
N=$(h 1 exec redis redis-cli DBSIZE)
wait_for 10 probe_past 1 $((N + 100)) || fail "probe does not advance on host 1"

touch "$STOP"
PRC=0
wait "$PROBE_PID" || PRC=$?
mig_assert_single
[ "$PRC" = 0 ] || fail "probe exited $PRC: $(cat "$MIG_LOGS/probe.json" "$MIG_LOGS/probe.log")"
LAST=$(mig_probe_check "$MIG_LOGS/probe.json" 0 acked) || fail "probe summary: $(cat "$MIG_LOGS/probe.json")"

# Every acknowledged write is on the final host, read over a new connection.
mig_redis_verify "$SIP" "$LAST"
running_on 1 redis || fail "redis not running on host 1 at the end"
running_on 2 redis && fail "redis running on host 2 at the end"
[ -z "${EM_BGP_DIR:-}" ] || mig_route_single "$SIP" 1
[ -z "$(find "$EM_H1_ROOT/incoming" "$EM_H2_ROOT/incoming" -mindepth 1 2>/dev/null)" ] || fail "staging left behind"
echo "ok ($LAST acknowledged writes verified)"
