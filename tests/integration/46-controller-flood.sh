#!/bin/bash
# A flood of 2,000 connections at edgemig-controller while a real migration
# goes through it (issue 15 §3). Two edges whose edgemigd register and
# heartbeat themselves (as in 50-platform); the controller in the router's
# namespace with its default limits (--max-connections 256,
# --max-connections-per-peer 16, --threads 2). From the client's address,
# 2,000 connections opened at once and held, half silent, half sending junk
# instead of a TLS hello. Meanwhile the operator (another address) registers
# a busybox service on h1 and reports its user at h2: the scheduler sends
# the authenticated control request (the controller's GnuTLS client to h1's
# OpenSSL edgemigd), the migration completes during the flood and the
# service ends on exactly one host, h2, never on two. The controller's
# descriptors, threads and memory stay bounded, the refusals are logged as
# counts, and it serves normally afterwards.
# EDGEMIG_CONTROLLER overrides the binary (to show an older one failing).
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
CTL=${EDGEMIG_CONTROLLER:-$BUILD/edgemig-controller}
[ -x "$CTL" ] || skip "$CTL not built"
command -v curl >/dev/null || skip "curl not installed"
CTL_IP=10.77.100.1
PORT=$((18000 + $$ % 1000))
URL=https://$CTL_IP:$PORT
MIG_CTL_URLS=$URL
MIG_DAEMON_OPTS_FN=mig_ctl_edge_opts
mig_setup 2 busybox

SIP=10.66.0.46
h 1 run --name counter --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
testbed route "$SIP" 1
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"

PKI=$MIG_LOGS/ctl-pki
"$EM" ca issue controller --ip "$CTL_IP" --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null ||
	fail "ca issue controller"
"$EM" ca issue admin --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null || fail "ca issue admin"
WAN=/run/netns/$TESTBED_PREFIX-wan
api() {
	nsenter --net="$WAN" curl -sf -m 20 --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		--cacert "$MIG_LOGS/ca/ca.crt" "$@"
}
nsenter --net="$WAN" "$CTL" --config none --state-dir "$MIG_LOGS/controller" \
	--listen "$CTL_IP:$PORT" --dwell-ms 300 --dwell-per-handoff 0 --action-timeout 60 \
	--tls-cert "$PKI/controller.crt" --tls-key "$PKI/controller.key" \
	--tls-ca "$MIG_LOGS/ca/ca.crt" --admin admin >"$MIG_LOGS/controller.log" 2>&1 &
CPID=$!
wait_for 10 api "$URL/healthz" -o /dev/null || fail "controller did not start"
edges_up() {
	api "$URL/edges" | python3 -c '
import json, sys
e = {x["name"]: x for x in json.load(sys.stdin)}
assert sorted(e) == ["h1", "h2"] and e["h1"]["container_names"] == ["counter"], e'
}
wait_for 30 edges_up || fail "edges did not register: $(api "$URL/edges")"
api -XPOST "$URL/services" -d "{\"name\":\"counter\",\"user\":\"u1\",\"edge\":\"h1\",\"ip\":\"$SIP\"}" \
	-o /dev/null || fail "POST /services"
api -XPOST "$URL/users/u1/position" -d '{"x":0,"y":0}' -o /dev/null || fail "first position"

st() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$CPID/status"; }
fds() { find "/proc/$CPID/fd" -mindepth 1 2>/dev/null | wc -l; }
RSS0=$(st VmRSS) THR0=$(st Threads) FD0=$(fds)

# The flood: every connection opened at once, held until STOP exists (at
# most 90 s); counts those still open then (the rest the controller closed).
STOP=$MIG_LOGS/stop-flood
cat >"$MIG_LOGS/flood.py" <<'PY'
import os, socket, sys, time
host, port, total, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
socks, failed = [], 0
for i in range(total):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))
        if i % 2:
            s.sendall(b"\x16\x03\x01 not a TLS hello" * 10)
        socks.append(s)
    except OSError:
        failed += 1
        s.close()
print("connected", flush=True)
t0 = time.time()
while not os.path.exists(stop) and time.time() - t0 < 90:
    time.sleep(0.1)
still = 0
for s in socks:
    s.setblocking(False)
    try:
        still += 0 if s.recv(1) == b"" else 1
    except BlockingIOError:
        still += 1
    except OSError:
        pass
    s.close()
print(len(socks), failed, still)
PY
on_client python3 "$MIG_LOGS/flood.py" "$CTL_IP" "$PORT" 2000 "$STOP" >"$MIG_LOGS/flood.out" &
FLOOD=$!
(
	rss=0 thr=0 fd=0
	while kill -0 "$FLOOD" 2>/dev/null; do
		r=$(st VmRSS) t=$(st Threads) f=$(fds)
		[ "${r:-0}" -le "$rss" ] || rss=$r
		[ "${t:-0}" -le "$thr" ] || thr=$t
		[ "$f" -le "$fd" ] || fd=$f
		echo "$rss $thr $fd" >"$MIG_LOGS/peak"
		sleep 0.2
	done
) &
WATCH=$!
wait_for 30 grep -q connected "$MIG_LOGS/flood.out" || fail "the flood did not connect"

# The real migration, started during the flood: the user at h2.
migrated() {
	api "$URL/migrations" | python3 -c '
import json, sys
m = [x for x in json.load(sys.stdin) if x["kind"] == "migrate"]
bad = [x for x in m if x["status"] not in ("running", "done")]
if bad:
    print("failed: %s" % bad, file=sys.stderr)
    sys.exit(2)
sys.exit(0 if [(x["source"], x["target"], x["status"]) for x in m] == [("h1", "h2", "done")] else 1)'
}
mig_watch_single counter
T0=$(date +%s%N)
served=yes mst=1
for ((i = 0; i < 200; i++)); do
	api -XPOST "$URL/users/u1/position" -d '{"x":100,"y":0}' -o /dev/null ||
		served="no: a position report failed"
	mst=0
	migrated || mst=$?
	[ "$mst" -eq 1 ] || break
	sleep 0.3
done
MS=$((($(date +%s%N) - T0) / 1000000))
[ "$mst" -eq 0 ] || fail "the migration did not complete: $(api "$URL/migrations")"
kill -0 "$FLOOD" 2>/dev/null || fail "the flood ended before the migration completed"
touch "$STOP"
wait "$FLOOD" || fail "flood client failed"
wait "$WATCH" || true
mig_assert_single
read -r made failed still < <(tail -n 1 "$MIG_LOGS/flood.out")
read -r rss thr fd <"$MIG_LOGS/peak"
echo "flood: $made connections made, $failed failed, $still still open at the end;" \
	"migration h1 -> h2 done $MS ms after the user moved;" \
	"controller peak RSS $RSS0 -> $rss kB, threads $THR0 -> $thr, fds $FD0 -> $fd"
[ $((made + failed)) -eq 2000 ] || fail "flood: $made + $failed connections"
[ "$served" = yes ] || fail "the operator's requests during the flood were not served ($served)"
kill -0 "$CPID" || fail "the controller died in the flood"
running_on 2 counter || fail "counter not running on h2"
running_on 1 counter && fail "counter still running on h1"
wait_for 10 h 2 exec counter test -s /data/counter.log || fail "counter not counting on h2"
# 16 from the flood's address, the operator's, the edges' heartbeats, the
# control request and slack for closing ones.
[ "$fd" -le $((FD0 + 28)) ] || fail "the controller held $fd descriptors (was $FD0)"
# One more: the worker that sends the control request.
[ "$thr" -le $((THR0 + 5)) ] || fail "the controller grew from $THR0 to $thr threads"
[ "$rss" -le $((RSS0 + 16384)) ] || fail "the controller grew from $RSS0 to $rss kB"
[ "$still" -le 16 ] || fail "$still flood connections held open from one address"
api "$URL/healthz" -o /dev/null || fail "the controller stopped serving after the flood"
n=$(grep -c "refused [0-9]* connections over the limit" "$MIG_LOGS/controller.log" || true)
[ "$n" -ge 1 ] || fail "no refusal count logged"
[ "$n" -le 30 ] || fail "$n refusal lines: the log is flooded too"
echo "PASS: 2000-connection flood at the controller bounded; a migration through it completed"
