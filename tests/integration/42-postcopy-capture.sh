#!/bin/bash
# Post-copy must not send memory in clear (issue 15, docs/postcopy.md).
# redis holds a 2 MB value made of a marker that exists nowhere else; a raw
# capture (AF_PACKET) on the router's side of host 1's link records every
# byte that crosses it while redis migrates with --mode postcopy:
#  1. mutual TLS (the default): the lazy pages are relayed over the session,
#     so the capture holds no copy of the marker, and the report says
#     lazy_relay;
#  2. `edgemig migrate --insecure` to a mutual-TLS edgemigd is refused
#     before anything moves (the target's own refusal of a plain page
#     server on a TLS session is 41-hostile-peer.sh's lazy-plain case);
#  3. the same migration with both sides --insecure (the only way to get
#     CRIU's plain page server): the capture holds the marker, which proves
#     that it sees the pages whenever they are in clear.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 redis

MARK="EMCLEAR-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')-"
SIP=10.66.0.41
CAP=$MIG_LOGS/capture.py
cat >"$CAP" <<'PY'
# capture.py IFACE OUT STOPFILE: every frame seen on IFACE appended to OUT
# (raw bytes, no framing) until STOPFILE exists.
import os, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: drop nothing
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
with open(sys.argv[2], "wb") as out:
    open(sys.argv[2] + ".ready", "w").close()
    while not os.path.exists(sys.argv[3]):
        try:
            out.write(s.recv(65536))
        except socket.timeout:
            pass
PY

# capture_migrate NAME FROM TO OUT [OPTION...]: migrates (postcopy) while
# capturing host 1's link; the capture goes to OUT.cap.
capture_migrate() {
	local name=$1 from=$2 to=$3 out=$4 cpid
	shift 4
	rm -f "$out.cap" "$out.cap.ready" "$out.stop"
	on_wan python3 "$CAP" h1 "$out.cap" "$out.stop" &
	cpid=$!
	wait_for 10 test -e "$out.cap.ready" || fail "capture did not start"
	h "$from" migrate "$name" --mode postcopy --to "$(haddr "$to"):$MIG_PORT" --json "$@" \
		>"$out" || fail "migrate $name $from -> $to: $(cat "$out")"
	sleep 0.5
	touch "$out.stop"
	wait "$cpid" || fail "capture failed"
}

# marks FILE: how many copies of the marker FILE holds.
marks() { { grep -aoF "$MARK" "$1" || true; } | wc -l; }

h 1 run --name redis --ip "$SIP/32" redis >/dev/null || fail "run redis"
testbed route "$SIP" 1
wait_for 20 h 1 exec redis redis-cli PING >/dev/null || fail "redis does not start"
# The value is built inside redis: the marker crosses no link before the
# migration, and there are ~90000 copies of it in redis's heap.
h 1 exec redis redis-cli EVAL "redis.call('SET', 'secret', string.rep(ARGV[1], 90000)) return 1" 0 \
	"$MARK" >/dev/null || fail "storing the marker"
[ "$(h 1 exec redis redis-cli STRLEN secret)" -gt 2000000 ] || fail "marker not stored"
# Shaped, so that the capture keeps up with the link.
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null

# --- 1. mutual TLS: relayed, nothing in clear ---
OUT=$MIG_LOGS/tls.json
capture_migrate redis 1 2 "$OUT"
SIZE=$(stat -c %s "$OUT.cap")
[ "$SIZE" -gt 100000 ] || fail "the capture saw only $SIZE bytes"
N=$(marks "$OUT.cap")
echo "TLS: $SIZE bytes captured, $N copies of the marker"
[ "$N" = 0 ] || fail "post-copy sent memory in clear: $N copies of the marker on the link"
python3 - "$OUT" <<'PY' || fail "report: $(cat "$OUT")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] and r["final_mode"] == "lazy" and r.get("lazy_relay") is True, r
# the 2 MB value was pulled lazily, i.e. it crossed the captured link
assert r["lazy_bytes"] >= 2 << 20, r
print("TLS: lazy_bytes %d, bytes_wire %d" % (r["lazy_bytes"], r["bytes_wire"]))
PY
[ "$(h 2 exec redis redis-cli GET secret | head -c ${#MARK})" = "$MARK" ] || fail "value lost"

# --- 2. the CLI refuses --insecure against a TLS edgemigd (nothing moves) ---
ERR=$MIG_LOGS/insecure-to-tls.err
if h 2 migrate redis --mode postcopy --insecure --to "$(haddr 1):$MIG_PORT" >/dev/null 2>"$ERR"; then
	fail "--insecure migrate to a TLS edgemigd succeeded"
fi
running_on 2 redis || fail "redis stopped on host 2 after a refused migration"

# --- 3. both sides --insecure: CRIU's own page server, in clear ---
# Each log already holds the TLS daemon's "ready": wait for one more (the
# insecure daemon's; its start takes from 0.1 s to over a second under load).
readies() { grep -c ' ready (root ' "$MIG_LOGS/edgemigd-h$1.log" || true; }
more_ready() { [ "$(readies "$1")" -gt "$2" ]; } # I COUNT
for i in 1 2; do
	mig_daemon_stop "$i"
	root=EM_H${i}_ROOT ns=EM_H${i}_NS ready=$(readies "$i")
	EDGEMIG_TESTBED_PREFIX=$TESTBED_PREFIX nsenter --net="/run/netns/${!ns}" "$EMD" \
		--root "${!root}" --listen "$(haddr "$i"):$MIG_PORT" --insecure \
		--route-hook "$REPO/scripts/testbed-route-hook" >>"$MIG_LOGS/edgemigd-h$i.log" 2>&1 &
	MIG_DAEMONS[$i]=$!
	wait_for 10 more_ready "$i" "$ready" || fail "insecure edgemigd on host $i did not start"
done
OUT=$MIG_LOGS/plain.json
capture_migrate redis 2 1 "$OUT" --insecure
python3 - "$OUT" <<'PY' || fail "report: $(cat "$OUT")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] and r["final_mode"] == "lazy" and r.get("lazy_relay") is False, r
PY
N=$(marks "$OUT.cap")
echo "--insecure: $(stat -c %s "$OUT.cap") bytes captured, $N copies of the marker"
[ "$N" -gt 100 ] || fail "the capture does not see pages sent in clear ($N copies): it proves nothing"
[ "$(h 1 exec redis redis-cli GET secret | head -c ${#MARK})" = "$MARK" ] || fail "value lost"
echo "ok"
