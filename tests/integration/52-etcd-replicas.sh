#!/bin/bash
# The controller's state in etcd, with replicas: a 3-member etcd cluster
# (Debian's etcd-server, each member its own data dir, on the loopback of
# the test bed's router namespace, plain HTTP: see docs/deploy.md for TLS)
# and two edgemig-controller replicas (--etcd) serving HTTPS with mutual TLS
# in the router namespace. Three edges (h1 x=0, h2 x=100, h3 x=200)
# heartbeat to either replica (--controller URL_A,URL_B: edge leases), one
# redis service, one user walking h1 -> h2 -> h3 in a replayed trace sent to
# both replicas (scripts/mobility-replay follows the leader). The follower
# answers a position report with 503 naming the leader. The leader is
# killed -9 once the source edge runs the first migration it ordered: the
# other replica takes over within 5 s (printed), settles that migration
# from the edges' heartbeats (not started again), and schedules the next.
# At the end: exactly the handoffs h1->h2 and h2->h3, each ordered once at
# the edges and recorded done once; redis ran
# on at most one edge at every sample and ends on h3 alone; the client's
# acknowledged writes are all there.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
CTL=$BUILD/edgemig-controller
[ -x "$PROBE" ] || skip "$PROBE not built"
[ -x "$CTL" ] || skip "$CTL not built"
command -v etcd >/dev/null || skip "etcd not installed (scripts/setup installs etcd-server)"
command -v curl >/dev/null || skip "curl not installed"

CTL_IP=10.77.100.1
PORT_A=$((18000 + $$ % 1000))
PORT_B=$((PORT_A + 1000))
URL_A=https://$CTL_IP:$PORT_A
URL_B=https://$CTL_IP:$PORT_B
MIG_CTL_URLS=$URL_A,$URL_B
MIG_DAEMON_OPTS_FN=mig_ctl_edge_opts
mig_setup 3 redis
WAN=/run/netns/$TESTBED_PREFIX-wan
ETCD_PIDS=() CTL_A= CTL_B= REPLAY= SAMPLER=
stop_all() {
	local p
	for p in "$REPLAY" "$SAMPLER" "$CTL_A" "$CTL_B" "${ETCD_PIDS[@]}"; do
		[ -z "$p" ] || kill -9 "$p" 2>/dev/null || true
	done
	for p in "$REPLAY" "$SAMPLER" "$CTL_A" "$CTL_B" "${ETCD_PIDS[@]}"; do
		[ -z "$p" ] || wait "$p" 2>/dev/null || true
	done
}
# set +e: under -e, the `(exit $st)` that hands mig_cleanup the status
# would end a failing test's trap before the clean-up.
trap 'st=$?; set +e; stop_all; (exit $st); mig_cleanup' EXIT

# etcd: three members on the router namespace's loopback.
EP=$((21000 + $$ % 1000 * 6))
CLUSTER=
for i in 1 2 3; do CLUSTER+="${CLUSTER:+,}m$i=http://127.0.0.1:$((EP + 2 * i))"; done
ETCD=
for i in 1 2 3; do
	c=$((EP + 2 * i + 1))
	ETCD+="${ETCD:+,}http://127.0.0.1:$c"
	nsenter --net="$WAN" etcd --name "m$i" --data-dir "$MIG_LOGS/etcd-m$i" \
		--listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
		--listen-peer-urls "http://127.0.0.1:$((EP + 2 * i))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((EP + 2 * i))" \
		--initial-cluster "$CLUSTER" --initial-cluster-state new \
		--initial-cluster-token "edgemig-$$" >"$MIG_LOGS/etcd-m$i.log" 2>&1 &
	ETCD_PIDS+=($!)
done
etcd_healthy() { nsenter --net="$WAN" etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1; }
wait_for 30 etcd_healthy || fail "etcd cluster not healthy: $(tail -5 "$MIG_LOGS"/etcd-m*.log)"

PKI=$MIG_LOGS/ctl-pki
"$EM" ca issue controller --ip "$CTL_IP" --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null ||
	fail "ca issue controller"
"$EM" ca issue client --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null || fail "ca issue client"
CACERT=$MIG_LOGS/ca/ca.crt
CLIENT_TLS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$CACERT")
curl() { nsenter --net="$WAN" curl "${CLIENT_TLS[@]}" "$@"; }

ctl_start() { # PORT LOG: starts a replica, prints its pid
	nsenter --net="$WAN" "$CTL" --etcd "$ETCD" --listen "$CTL_IP:$1" --leader-ttl 2 \
		--edge-ttl 4 --margin 10 --dwell-ms 1500 --action-timeout 120 \
		--tls-cert "$PKI/controller.crt" --tls-key "$PKI/controller.key" --tls-ca "$CACERT" \
		--admin client >>"$2" 2>&1 &
	echo $!
}
role() { curl -sf "$1/healthz" | python3 -c 'import json, sys; print(json.load(sys.stdin)["role"])'; }
is_leader() { [ "$(role "$1" 2>/dev/null)" = leader ]; }
# A first, so that it leads; then B follows.
CTL_A=$(ctl_start "$PORT_A" "$MIG_LOGS/controller-a.log")
wait_for 15 is_leader "$URL_A" || fail "replica A never led: $(cat "$MIG_LOGS/controller-a.log")"
CTL_B=$(ctl_start "$PORT_B" "$MIG_LOGS/controller-b.log")
wait_for 15 curl -sf "$URL_B/healthz" -o /dev/null || fail "replica B did not start"
[ "$(role "$URL_B")" = follower ] || fail "two leaders: $(curl -s "$URL_B/healthz")"

SIP=10.66.0.21
mig_run_redis "$SIP"
edges_live() {
	curl -sf "$URL_B/edges" | python3 -c '
import json, sys
e = {x["name"]: x for x in json.load(sys.stdin)}
assert sorted(e) == ["h1", "h2", "h3"] and all(x["alive"] for x in e.values()), e
assert e["h1"]["container_names"] == ["redis"], e'
}
wait_for 30 edges_live || fail "edges not registered/alive: $(curl -s "$URL_B/edges")"
curl -sf -XPOST "$URL_A/services" -o /dev/null \
	-d "{\"name\":\"redis\",\"user\":\"alice\",\"edge\":\"h1\",\"ip\":\"$SIP\"}" ||
	fail "registering the service with the leader"
# The follower serves reads (from etcd) and refuses scheduling writes,
# naming the leader.
curl -sf "$URL_B/services" | grep -q '"edge":"h1"' || fail "the follower does not serve reads"
st=$(curl -s -o "$MIG_LOGS/follower.json" -w '%{http_code}' -XPOST "$URL_B/users/alice/position" \
	-d '{"x":0,"y":0}')
[ "$st" = 503 ] && grep -q "\"leader\":\"$URL_A\"" "$MIG_LOGS/follower.json" ||
	fail "follower answered a position report $st: $(cat "$MIG_LOGS/follower.json")"

# Trace, 4 reports/s: 3 s at h1, walk to h2, 12 s there, walk to h3, 8 s.
TRACE=$MIG_LOGS/trace.csv
python3 - "$TRACE" <<'PY'
import sys
rows, t = [], 0.0
def at(x):
    global t
    rows.append("%.2f,alice,%g,0" % (t, x)); t += 0.25
for _ in range(12): at(0)
for x in range(0, 101, 5): at(x)
for _ in range(48): at(100)
for x in range(105, 201, 5): at(x)
for _ in range(32): at(200)
open(sys.argv[1], "w").write("time,user,x,y\n" + "\n".join(rows) + "\n")
PY

STOP=$MIG_LOGS/stop-probe
on_client "$PROBE" redis "$SIP:6379" --interval-ms 5 --until-file "$STOP" --json \
	--out "$MIG_LOGS/probe.csv" >"$MIG_LOGS/probe.json" 2>"$MIG_LOGS/probe.log" &
PROBE_PID=$!
wait_for 10 bash -c "[ \"\$(nsenter --net=/run/netns/$TESTBED_PREFIX-h1 $EM --root $EM_H1_ROOT exec redis redis-cli DBSIZE 2>/dev/null)\" -ge 100 ]" ||
	fail "probe not writing"
# Where redis runs, sampled throughout: never on two edges at once.
(while [ ! -e "$STOP" ]; do
	on=""
	for i in 1 2 3; do running_on "$i" redis && on+="h$i "; done
	echo "$(date +%s.%N) $on"
	sleep 0.2
done >"$MIG_LOGS/placement.log") &
SAMPLER=$!

nsenter --net="$WAN" "$REPO/scripts/mobility-replay" "$TRACE" --controller "$URL_A,$URL_B" \
	"${CLIENT_TLS[@]}" --json-out "$MIG_LOGS/replay.json" >"$MIG_LOGS/replay.log" 2>&1 &
REPLAY=$!

# Kill -9 the leader once the migration it ordered runs on the source edge
# (h1 took its control request).
migrating() { grep -q "control request [0-9]* from 'controller': migrate redis" "$MIG_LOGS/edgemigd-h1.log"; }
wait_for 60 migrating || fail "no migration started: $(curl -s "$URL_B/migrations")"
kill -9 "$CTL_A"
T_KILL=$(date +%s.%N)
wait "$CTL_A" 2>/dev/null || true
CTL_A=
wait_for 10 is_leader "$URL_B" || fail "replica B did not take over: $(tail "$MIG_LOGS/controller-b.log")"
TAKEOVER=$(python3 -c "print(round($(date +%s.%N) - $T_KILL, 2))")
echo "leader killed -9 with a migration in flight; replica B took over in $TAKEOVER s" >&2
python3 -c "import sys; sys.exit(0 if $TAKEOVER < 5 else 1)" || fail "takeover took $TAKEOVER s (> 5 s)"

RRC=0
wait "$REPLAY" || RRC=$?
REPLAY=
[ "$RRC" = 0 ] || fail "replay failed ($RRC): $(tail -20 "$MIG_LOGS/replay.log")"
on_h3() { curl -sf "$URL_B/services" | grep -q '"edge":"h3"[^}]*"busy":0'; }
wait_for 60 on_h3 || fail "service never reached h3: $(curl -s "$URL_B/migrations")"
touch "$STOP"
PRC=0
wait "$PROBE_PID" || PRC=$?
[ "$PRC" = 0 ] || fail "probe exited $PRC: $(cat "$MIG_LOGS/probe.json" "$MIG_LOGS/probe.log")"
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=
running_on 3 redis || fail "redis not running on h3"
running_on 1 redis && fail "redis still on h1"
running_on 2 redis && fail "redis still on h2"
awk 'NF > 2 { print; bad = 1 } END { exit bad }' "$MIG_LOGS/placement.log" ||
	fail "redis ran on two edges at once (see $MIG_LOGS/placement.log)"
echo "placement samples: $(wc -l <"$MIG_LOGS/placement.log"), never on two edges" >&2

curl -sf "$URL_B/migrations" >"$MIG_LOGS/migrations.json"
python3 - "$MIG_LOGS/migrations.json" <<'PY' || fail "migration history: $(cat "$MIG_LOGS/migrations.json")"
import json, sys
hist = json.load(open(sys.argv[1]))
m = [x for x in hist if x["kind"] == "migrate"]
hops = [(x["source"], x["target"], x["status"]) for x in m]
assert hops == [("h1", "h2", "done"), ("h2", "h3", "done")], "lost, failed or twice: %s" % hops
# The killed leader never heard back: its successor settled it.
assert "settled by the next leader" in m[0]["detail"], m[0]
print("handoffs: %s" % "; ".join("%s->%s %s (%s)" % (x["source"], x["target"], x["status"],
      "settled by the new leader" if "next leader" in (x["detail"] or "") else "its report")
      for x in m), file=sys.stderr)
PY
# At the edges: each handoff was ordered (and run) exactly once.
for i in 1 2; do
	n=$(grep -c "control request [0-9]* from 'controller': migrate redis" "$MIG_LOGS/edgemigd-h$i.log") || true
	[ "$n" = 1 ] || fail "h$i took $n migrate requests for redis, not 1"
done
LAST=$(mig_probe_check "$MIG_LOGS/probe.json" 0 acked) || fail "probe summary: $(cat "$MIG_LOGS/probe.json")"
mig_redis_verify "$SIP" "$LAST"
echo "ok (takeover $TAKEOVER s; $LAST acknowledged writes verified across 2 handoffs)"
