#!/bin/bash
# The edge platform end to end: edgemig-controller (root namespace, loopback)
# with three edges (h1 x=0, h2 x=100, h3 x=200), one redis service and one
# user whose replayed trace walks h1 -> border h1/h2 (oscillating) -> h2 ->
# h3. The scheduler alone triggers the migrations (no manual migrate): one
# client connection (edgemig-probe) survives them with no reset, no lost
# acknowledged write; the border oscillation causes no ping-pong (exactly two
# migrations, h1->h2 and h2->h3); killing (-9) and restarting the controller
# while the user sits at h2 loses no state. The controller serves HTTPS with
# mutual TLS: its clients present certificates of the test bed's CA, and
# clients without one or with one of another CA are refused.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
CTL=$BUILD/edgemig-controller
[ -x "$PROBE" ] || skip "$PROBE not built"
[ -x "$CTL" ] || skip "$CTL not built"
command -v curl >/dev/null || skip "curl not installed"
command -v gnuplot >/dev/null || skip "gnuplot not installed (apt-get install gnuplot-nox)"
mig_setup 3 redis
REPLAY=
# A paused replay (below) must be resumed for the cleanup's kill to take.
trap 'st=$?; { [ -z "$REPLAY" ] || kill -CONT "$REPLAY" 2>/dev/null || true; }; (exit $st); mig_cleanup' EXIT

SIP=10.88.0.21
h 1 run --name redis --ip "$SIP/32" redis >/dev/null || fail "run redis on host 1"
testbed route "$SIP" 1
redis_ping() {
	on_client timeout 3 bash -c "exec 3<>/dev/tcp/$SIP/6379 && printf 'PING\r\n' >&3 &&
		IFS= read -r l <&3 && [[ \$l == +PONG* ]]"
}
wait_for 20 redis_ping || fail "redis not reachable from the client"

# The trigger: the source edge's own `edgemig migrate`, inside its netns.
TRIG=$MIG_LOGS/migrate-trigger
cat >"$TRIG" <<SH
#!/bin/bash
# migrate-trigger SOURCE_EDGE SERVICE TARGET_ADDR
i=\${1#h}
case \$i in 1) root=$EM_H1_ROOT ;; 2) root=$EM_H2_ROOT ;; 3) root=$EM_H3_ROOT ;; *) exit 2 ;; esac
echo "\$(date +%T.%N) migrate \$2 from \$1 to \$3" >>$MIG_LOGS/trigger.log
EDGEMIG_TESTBED_PREFIX=$TESTBED_PREFIX EDGEMIG_ROUTE_HOOK=$REPO/scripts/testbed-route-hook \\
	exec nsenter --net=/run/netns/$TESTBED_PREFIX-h\$i $EM --root "\$root" migrate "\$2" --to "\$3" --json \\
	2>>$MIG_LOGS/trigger.log
SH
chmod +x "$TRIG"

# Certificates from the test bed's CA (mig_pki made it): the controller's
# names the host its clients dial (localhost), the client's is used by curl,
# `edgemig platform` and mobility-replay; "rogue" is a client of another CA.
PKI=$MIG_LOGS/ctl-pki
"$EM" ca issue localhost --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null || fail "ca issue localhost"
"$EM" ca issue client --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null || fail "ca issue client"
"$EM" ca init --dir "$MIG_LOGS/rogue-ca" >/dev/null || fail "ca init (rogue)"
"$EM" ca issue client --dir "$MIG_LOGS/rogue-ca" --out "$MIG_LOGS/rogue" >/dev/null ||
	fail "ca issue client (rogue)"
CACERT=$MIG_LOGS/ca/ca.crt
CLIENT_TLS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$CACERT")
curl() { command curl "${CLIENT_TLS[@]}" "$@"; }

PORT=$((17000 + $$ % 1000))
URL=https://localhost:$PORT
CTL_STATE=$MIG_LOGS/controller
CTL_PID=
ctl_start() {
	"$CTL" --state-dir "$CTL_STATE" --listen "127.0.0.1:$PORT" --migrate-cmd "$TRIG" \
		--margin 10 --dwell-ms 1500 --action-timeout 120 --tls-cert "$PKI/localhost.crt" \
		--tls-key "$PKI/localhost.key" --tls-ca "$CACERT" >>"$MIG_LOGS/controller.log" 2>&1 &
	CTL_PID=$!
	wait_for 10 curl -sf "$URL/healthz" -o /dev/null || fail "controller did not start"
}
# Neither TLS files nor --insecure: refused, naming both choices.
"$CTL" --state-dir "$CTL_STATE" --listen "127.0.0.1:$PORT" 2>"$MIG_LOGS/ctl-notls.err" &&
	fail "controller started without --tls-* or --insecure"
grep -q -- '--tls-cert.*--insecure' "$MIG_LOGS/ctl-notls.err" ||
	fail "no TLS, no --insecure: $(cat "$MIG_LOGS/ctl-notls.err")"
ctl_start
# Unauthenticated clients are refused (and logged); the controller lives on.
command curl -sf --cacert "$CACERT" "$URL/healthz" -o /dev/null &&
	fail "a client without a certificate was served"
command curl -sf --cacert "$CACERT" -XPOST "$URL/edges" -o /dev/null \
	-d '{"name":"rogue","addr":"10.0.0.1:1","x":0,"y":0,"capacity":9}' &&
	fail "a POST without a client certificate was served"
command curl -sf --cacert "$CACERT" --cert "$MIG_LOGS/rogue/client.crt" \
	--key "$MIG_LOGS/rogue/client.key" "$URL/healthz" -o /dev/null &&
	fail "a client with another CA's certificate was served"
command curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null && fail "plain HTTP was served"
kill -0 "$CTL_PID" || fail "controller died refusing clients"
curl -sf "$URL/healthz" -o /dev/null || fail "controller stopped serving after the refusals"
[ "$(grep -c 'refused .*certificate' "$MIG_LOGS/controller.log")" -ge 3 ] ||
	fail "refusals not logged: $(cat "$MIG_LOGS/controller.log")"
curl -sf "$URL/edges" | grep -q rogue && fail "the refused POST registered an edge"
"$EM" platform edges --controller "$URL" --tls-cert "$MIG_LOGS/rogue/client.crt" \
	--tls-key "$MIG_LOGS/rogue/client.key" --tls-ca "$CACERT" >/dev/null 2>&1 &&
	fail "edgemig platform with another CA's certificate was served"
post() { curl -sf -XPOST "$URL$1" -d "$2" >/dev/null || fail "POST $1 $2"; }
for i in 1 2 3; do
	post /edges "{\"name\":\"h$i\",\"addr\":\"$(haddr "$i"):$MIG_PORT\",\"x\":$(((i - 1) * 100)),\"y\":0,\"capacity\":4}"
	post "/edges/h$i/heartbeat" '{"load":0,"containers":0,"bandwidth_mbps":1000}'
done
post /services "{\"name\":\"redis\",\"user\":\"alice\",\"edge\":\"h1\",\"ip\":\"$SIP\"}"

# Trace, 4 reports/s: approach the h1/h2 border, oscillate across it
# (x 38 <-> 62: closer to the other edge by 24 > margin, but never for the
# 1.5 s dwell), walk to h2 and stay (the controller restart happens here),
# walk to h3 and stay.
TRACE=$MIG_LOGS/trace.csv
python3 - "$TRACE" <<'PY'
import sys
rows, t = [], 0.0
def at(x):
    global t
    rows.append("%.2f,alice,%g,0" % (t, x)); t += 0.25
for x in range(0, 40, 5): at(x)
for i in range(16): at(38 if i % 2 else 62)
for x in range(40, 101, 5): at(x)
for _ in range(40): at(100)          # 10 s at h2
for x in range(105, 201, 5): at(x)
for _ in range(24): at(200)          # 6 s at h3
open(sys.argv[1], "w").write("time,user,x,y\n" + "\n".join(rows) + "\n")
PY

STOP=$MIG_LOGS/stop-probe
on_client "$PROBE" redis "$SIP:6379" --interval-ms 5 --until-file "$STOP" --json --out "$MIG_LOGS/probe.csv" \
	>"$MIG_LOGS/probe.json" 2>"$MIG_LOGS/probe.log" &
PROBE_PID=$!
wait_for 10 bash -c "[ \"\$(nsenter --net=/run/netns/$TESTBED_PREFIX-h1 $EM --root $EM_H1_ROOT exec redis redis-cli DBSIZE 2>/dev/null)\" -ge 100 ]" ||
	fail "probe not writing"

T0=$(date +%s.%N)
"$REPO/scripts/mobility-replay" "$TRACE" --controller "$URL" "${CLIENT_TLS[@]}" --json-out "$MIG_LOGS/replay.json" \
	>"$MIG_LOGS/replay.log" 2>&1 &
REPLAY=$!

# Mid-trace restart: once the service has settled on h2, kill -9 the
# controller and start it again; its state must be unchanged. The replay is
# paused around the snapshot so no report lands between it and the kill; its
# reports during the restart are retried.
on_h2() { curl -sf "$URL/services" | grep -q '"edge":"h2","ip":"[0-9.]*","busy":0'; }
wait_for 60 on_h2 || fail "service never reached h2: $(curl -s "$URL/migrations")"
kill -STOP "$REPLAY"
sleep 0.3 # a report already sent completes
for r in services edges migrations; do curl -sf "$URL/$r" >"$MIG_LOGS/before-$r.json"; done
kill -9 "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
ctl_start
for r in services edges migrations; do
	curl -sf "$URL/$r" >"$MIG_LOGS/after-$r.json"
	cmp -s "$MIG_LOGS/before-$r.json" "$MIG_LOGS/after-$r.json" ||
		fail "GET /$r changed across the restart: $(cat "$MIG_LOGS/before-$r.json") vs $(cat "$MIG_LOGS/after-$r.json")"
done
kill -CONT "$REPLAY"
echo "controller restarted mid-trace at $(python3 -c "print(round($(date +%s.%N) - $T0, 1))") s; state unchanged" >&2

RRC=0
wait "$REPLAY" || RRC=$?
[ "$RRC" = 0 ] || fail "replay failed ($RRC): $(tail -20 "$MIG_LOGS/replay.log")"
on_h3() { curl -sf "$URL/services" | grep -q '"edge":"h3","ip":"[0-9.]*","busy":0'; }
wait_for 60 on_h3 || fail "service never reached h3: $(curl -s "$URL/migrations")"
running_on 3 redis || fail "redis not running on h3"
running_on 1 redis && fail "redis still on h1"
running_on 2 redis && fail "redis still on h2"
N=$(h 3 exec redis redis-cli DBSIZE)
wait_for 10 bash -c "[ \"\$(nsenter --net=/run/netns/$TESTBED_PREFIX-h3 $EM --root $EM_H3_ROOT exec redis redis-cli DBSIZE 2>/dev/null)\" -ge $((N + 100)) ]" ||
	fail "probe does not advance on h3"

touch "$STOP"
PRC=0
wait "$PROBE_PID" || PRC=$?
[ "$PRC" = 0 ] || fail "probe exited $PRC: $(cat "$MIG_LOGS/probe.json" "$MIG_LOGS/probe.log")"

curl -sf "$URL/migrations" >"$MIG_LOGS/migrations.json"
"$EM" platform migrations --controller "$URL" --tls-cert "$PKI/client.crt" \
	--tls-key "$PKI/client.key" --tls-ca "$CACERT" >&2 || fail "edgemig platform migrations"
python3 - "$MIG_LOGS/migrations.json" <<'PY' || fail "migration history: $(cat "$MIG_LOGS/migrations.json")"
import json, sys
m = [x for x in json.load(open(sys.argv[1])) if x["kind"] == "migrate"]
hops = [(x["source"], x["target"], x["status"]) for x in m]
assert hops == [("h1", "h2", "done"), ("h2", "h3", "done")], "ping-pong or failure: %s" % hops
print("automatic handoffs: %s" % ", ".join("%s->%s %d ms" % (x["source"], x["target"], x["duration_ms"]) for x in m), file=sys.stderr)
PY
LAST=$(python3 - "$MIG_LOGS/probe.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for k in ("resets", "errors", "verify_failures", "timeouts"):
    assert p[k] == 0, "%s = %s: %s" % (k, p[k], p)
assert p["ok"] == p["requests"] and p["last_acked"] > 0, p
print("probe: %d requests, last_acked %d, max_gap_ms %s, p99 %s ms" %
      (p["requests"], p["last_acked"], p["max_gap_ms"], p["latency"]["p99_ms"]), file=sys.stderr)
print(p["last_acked"])
PY
) || fail "probe summary: $(cat "$MIG_LOGS/probe.json")"
on_client "$PROBE" redis-verify "$SIP:6379" --last "$LAST" >"$MIG_LOGS/verify.json" ||
	fail "acknowledged writes lost: $(cat "$MIG_LOGS/verify.json")"
# The replay's report: per-handoff table and the PNG plot over time.
"$REPO/scripts/mobility-replay" --report "$MIG_LOGS/replay.json" --controller "$URL" "${CLIENT_TLS[@]}" \
	--probe-csv "$MIG_LOGS/probe.csv" --probe-json "$MIG_LOGS/probe.json" \
	--table "$MIG_LOGS/handoffs.txt" --plot "$MIG_LOGS/replay.png" >&2 || fail "replay report"
cat "$MIG_LOGS/handoffs.txt" >&2
[ "$(head -c 8 "$MIG_LOGS/replay.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
	fail "replay.png is not a PNG"
[ "$(grep -c '^ *[0-9.]* h[0-9] ' "$MIG_LOGS/handoffs.txt")" -ge 2 ] ||
	fail "fewer than 2 handoffs in the table: $(cat "$MIG_LOGS/handoffs.txt")"
curl -sf "$URL/metrics" | grep -q 'edgemig_controller_actions{kind="migrate",status="done"} 2' ||
	fail "metrics do not show the two migrations"
kill "$CTL_PID" 2>/dev/null || true
wait "$CTL_PID" 2>/dev/null || true
echo "ok ($LAST acknowledged writes verified across 2 automatic handoffs)"
