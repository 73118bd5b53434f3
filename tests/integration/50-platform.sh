#!/bin/bash
# The edge platform end to end: edgemig-controller (in the test bed's router
# namespace, https://10.77.100.1:PORT) with three edges (h1 x=0, h2 x=100,
# h3 x=200) whose edgemigd registers and heartbeats itself (--controller),
# one redis service and one user whose replayed trace walks h1 -> border
# h1/h2 (oscillating) -> h2 -> h3. The scheduler alone triggers prepares and
# migrations, as authenticated control requests to the source edge's
# edgemigd (no command, no manual migrate): one client connection
# (edgemig-probe) survives them with no reset, no lost acknowledged write; the
# border oscillation causes no ping-pong (exactly two migrations, h1->h2 and
# h2->h3); a migration after a prepare reuses the prepared pages; killing
# (-9) and restarting the controller while the user sits at h2 loses no
# state. The controller serves HTTPS with mutual TLS: its clients present
# certificates of the test bed's CA, and clients without one or with one of
# another CA are refused; a peer edge's certificate cannot command a
# migration. Authorization: an edge's certificate registers and heartbeats
# only its own edge and cannot register services or report positions; the
# operator's ("client", --admin client) can.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
CTL=$BUILD/edgemig-controller
[ -x "$PROBE" ] || skip "$PROBE not built"
[ -x "$CTL" ] || skip "$CTL not built"
command -v curl >/dev/null || skip "curl not installed"
command -v gnuplot >/dev/null || skip "gnuplot not installed (apt-get install gnuplot-nox)"
# The controller's address: the router's side of the client link, which
# every edge reaches through its default route.
CTL_IP=10.77.100.1
PORT=$((17000 + $$ % 1000))
URL=https://$CTL_IP:$PORT
# Each edgemigd registers itself at its position and accepts control
# requests from the certificate named "controller" only.
MIG_CTL_URLS=$URL
MIG_DAEMON_OPTS_FN=mig_ctl_edge_opts
mig_setup 3 redis
REPLAY=
# A paused replay (below) must be resumed for the cleanup's kill to take.
# set +e: under -e, the `(exit $st)` that hands mig_cleanup the status
# would end a failing test's trap before the clean-up.
trap 'st=$?; set +e; { [ -z "$REPLAY" ] || kill -CONT "$REPLAY" 2>/dev/null || true; }; (exit $st); mig_cleanup' EXIT

SIP=10.66.0.21
mig_run_redis "$SIP"

# Certificates from the test bed's CA (mig_pki made it): the controller's
# names the address its clients dial (SAN IP) and "controller" (what the
# edges' --allow-controller expects); the client's is used by curl,
# `edgemig platform` and mobility-replay; "rogue" is a client of another CA.
# Every client runs in the router's namespace, where the controller is.
PKI=$MIG_LOGS/ctl-pki
"$EM" ca issue controller --ip "$CTL_IP" --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null ||
	fail "ca issue controller"
"$EM" ca issue client --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null || fail "ca issue client"
"$EM" ca init --dir "$MIG_LOGS/rogue-ca" >/dev/null || fail "ca init (rogue)"
"$EM" ca issue client --dir "$MIG_LOGS/rogue-ca" --out "$MIG_LOGS/rogue" >/dev/null ||
	fail "ca issue client (rogue)"
CACERT=$MIG_LOGS/ca/ca.crt
CLIENT_TLS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$CACERT")
WAN=/run/netns/$TESTBED_PREFIX-wan
curl() { nsenter --net="$WAN" curl "${CLIENT_TLS[@]}" "$@"; }
rawcurl() { nsenter --net="$WAN" curl "$@"; }

CTL_STATE=$MIG_LOGS/controller
CTL_PID=
ctl_start() {
	nsenter --net="$WAN" "$CTL" --state-dir "$CTL_STATE" --listen "$CTL_IP:$PORT" \
		--margin 10 --dwell-ms 1500 --action-timeout 120 --tls-cert "$PKI/controller.crt" \
		--tls-key "$PKI/controller.key" --tls-ca "$CACERT" --admin client \
		>>"$MIG_LOGS/controller.log" 2>&1 &
	CTL_PID=$!
	wait_for 10 curl -sf "$URL/healthz" -o /dev/null || fail "controller did not start"
}
# Neither TLS files nor --insecure: refused, naming both choices.
nsenter --net="$WAN" "$CTL" --state-dir "$CTL_STATE" --listen "$CTL_IP:$PORT" 2>"$MIG_LOGS/ctl-notls.err" &&
	fail "controller started without --tls-* or --insecure"
grep -q -- '--tls-cert.*--insecure' "$MIG_LOGS/ctl-notls.err" ||
	fail "no TLS, no --insecure: $(cat "$MIG_LOGS/ctl-notls.err")"
# TLS but no operator named: refused, naming --admin.
nsenter --net="$WAN" "$CTL" --state-dir "$CTL_STATE" --listen "$CTL_IP:$PORT" --tls-cert "$PKI/controller.crt" \
	--tls-key "$PKI/controller.key" --tls-ca "$CACERT" 2>"$MIG_LOGS/ctl-noadmin.err" &&
	fail "controller started without --admin"
grep -q -- '--admin NAME' "$MIG_LOGS/ctl-noadmin.err" ||
	fail "no --admin: $(cat "$MIG_LOGS/ctl-noadmin.err")"
ctl_start
# Unauthenticated clients are refused (and logged); the controller lives on.
rawcurl -sf --cacert "$CACERT" "$URL/healthz" -o /dev/null &&
	fail "a client without a certificate was served"
rawcurl -sf --cacert "$CACERT" -XPOST "$URL/edges" -o /dev/null \
	-d '{"name":"rogue","addr":"10.0.0.1:1","x":0,"y":0,"capacity":9}' &&
	fail "a POST without a client certificate was served"
rawcurl -sf --cacert "$CACERT" --cert "$MIG_LOGS/rogue/client.crt" \
	--key "$MIG_LOGS/rogue/client.key" "$URL/healthz" -o /dev/null &&
	fail "a client with another CA's certificate was served"
rawcurl -sf "http://$CTL_IP:$PORT/healthz" -o /dev/null && fail "plain HTTP was served"
kill -0 "$CTL_PID" || fail "controller died refusing clients"
curl -sf "$URL/healthz" -o /dev/null || fail "controller stopped serving after the refusals"
[ "$(grep -c 'refused .*certificate' "$MIG_LOGS/controller.log")" -ge 3 ] ||
	fail "refusals not logged: $(cat "$MIG_LOGS/controller.log")"
curl -sf "$URL/edges" | grep -q rogue && fail "the refused POST registered an edge"
nsenter --net="$WAN" "$EM" platform edges --controller "$URL" --tls-cert "$MIG_LOGS/rogue/client.crt" \
	--tls-key "$MIG_LOGS/rogue/client.key" --tls-ca "$CACERT" >/dev/null 2>&1 &&
	fail "edgemig platform with another CA's certificate was served"
post() { curl -sf -XPOST "$URL$1" -d "$2" >/dev/null || fail "POST $1 $2"; }

# The edges registered and heartbeat themselves (started before the
# controller, they retried with backoff): real metrics and container lists.
edges_live() {
	curl -sf "$URL/edges" | python3 -c '
import json, sys
e = {x["name"]: x for x in json.load(sys.stdin)}
assert sorted(e) == ["h1", "h2", "h3"], sorted(e)
for n, x in e.items():
    i = int(n[1:])
    assert x["addr"] == "10.77.%d.2:7878" % i and x["x"] == (i - 1) * 100 and x["capacity"] == 4, x
    assert x["heartbeat_ms"] > 0 and x["mem_available_bytes"] > 0 and x["mem_bytes"] > 0, x
    assert x["load1"] >= 0 and isinstance(x["container_names"], list), x
assert e["h1"]["container_names"] == ["redis"] and e["h1"]["load"] == 1, e["h1"]
assert e["h2"]["container_names"] == [] and e["h3"]["container_names"] == [], e
'
}
wait_for 30 edges_live || fail "edges did not register/heartbeat: $(curl -s "$URL/edges"; edges_live 2>&1)"
curl -sf "$URL/edges" >"$MIG_LOGS/edges-registered.json"

# Authorization: edge h2's own certificate, from h2, cannot speak for h1 nor
# act as an operator (403, the reason in JSON, logged with its name and
# address, counted); it may still read. The operator's certificate may.
H2_TLS=(--cacert "$CACERT" --cert "$EM_H2_ROOT/pki/h2.crt" --key "$EM_H2_ROOT/pki/h2.key")
as_h2() { # PATH BODY: prints the HTTP status, the body in $MIG_LOGS/as-h2.json
	nsenter --net="/run/netns/$TESTBED_PREFIX-h2" curl -s "${H2_TLS[@]}" -o "$MIG_LOGS/as-h2.json" \
		-w '%{http_code}' -XPOST "$URL$1" -d "$2"
}
refused_total() { curl -sf "$URL/metrics" | sed -n 's/^edgemig_controller_refused_total //p'; }
R0=$(refused_total)
expect_403() { # PATH BODY WORDS: refused, the error says WORDS
	local st
	st=$(as_h2 "$1" "$2")
	[ "$st" = 403 ] || fail "h2's certificate: POST $1 answered $st, not 403: $(cat "$MIG_LOGS/as-h2.json")"
	python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))["error"]; assert sys.argv[2] in e, e' \
		"$MIG_LOGS/as-h2.json" "$3" || fail "POST $1 as h2: $(cat "$MIG_LOGS/as-h2.json")"
	grep -q "refused POST $1 from 10.77.2.2 (h2): " "$MIG_LOGS/controller.log" ||
		fail "refusal of POST $1 as h2 not logged with name and address"
}
expect_403 /edges/h1/heartbeat '{"load":3,"containers":["evil"]}' "may not heartbeat edge 'h1'"
expect_403 /edges '{"name":"h1","addr":"10.77.2.2:7878","x":500,"y":0,"capacity":9}' \
	"may not register edge 'h1'"
expect_403 /services "{\"name\":\"redis\",\"user\":\"mallory\",\"edge\":\"h2\",\"ip\":\"$SIP\"}" \
	"operator action"
expect_403 /users/alice/position '{"x":100,"y":0}' "--admin"
[ "$(refused_total)" -ge $((R0 + 4)) ] || fail "refusals not counted: $R0 -> $(refused_total)"
curl -sf "$URL/edges" | python3 -c '
import json, sys
e = {x["name"]: x for x in json.load(sys.stdin)}
assert e["h1"]["addr"] == "10.77.1.2:7878" and e["h1"]["x"] == 0 and e["h1"]["capacity"] == 4, e["h1"]
assert "evil" not in (e["h1"]["container_names"] or []), e["h1"]' ||
	fail "a refused request changed h1: $(curl -s "$URL/edges")"
curl -sf "$URL/services" | grep -q mallory && fail "a refused request registered a service"
curl -sf "$URL/users" | grep -q alice && fail "a refused position report was recorded"
nsenter --net="/run/netns/$TESTBED_PREFIX-h2" curl -sf "${H2_TLS[@]}" "$URL/edges" -o /dev/null ||
	fail "an edge's certificate may not read /edges"
# The operator ("client") registers the service.
post /services "{\"name\":\"redis\",\"user\":\"alice\",\"edge\":\"h1\",\"ip\":\"$SIP\"}"

# A peer edge's certificate cannot command migrations: h2 asks h1, as a
# controller would, to move redis to h3. Refused, answered, logged.
h 2 control "$(haddr 1):$MIG_PORT" migrate redis --to "$(haddr 3):$MIG_PORT" --edge h1 \
	>"$MIG_LOGS/peer-control.out" 2>&1 && fail "a peer edge commanded a migration"
grep -q "'h2' is not a controller of this edge" "$MIG_LOGS/peer-control.out" ||
	fail "peer's control request: no clear refusal: $(cat "$MIG_LOGS/peer-control.out")"
grep -q "refused control request .*(h2)" "$MIG_LOGS/edgemigd-h1.log" ||
	fail "refused control request not logged on h1"
running_on 1 redis || fail "redis no longer on h1 after the refused request"

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
nsenter --net="$WAN" "$REPO/scripts/mobility-replay" "$TRACE" --controller "$URL" "${CLIENT_TLS[@]}" \
	--json-out "$MIG_LOGS/replay.json" >"$MIG_LOGS/replay.log" 2>&1 &
REPLAY=$!

# Mid-trace restart: once the service has settled on h2, kill -9 the
# controller and start it again; its state must be unchanged. The replay is
# paused around the snapshot so no report lands between it and the kill; its
# reports during the restart are retried.
on_h2() { curl -sf "$URL/services" | grep -q '"edge":"h2","ip":"[0-9.]*","busy":0'; }
wait_for 60 on_h2 || fail "service never reached h2: $(curl -s "$URL/migrations")"
kill -STOP "$REPLAY"
sleep 0.3 # a report already sent completes
# Edges keep heartbeating throughout: of /edges, what is not a metric.
stable_edges() {
	curl -sf "$URL/edges" | python3 -c '
import json, sys
keep = ("name", "addr", "x", "y", "capacity", "registered_ms")
print(json.dumps([{k: e[k] for k in keep} for e in json.load(sys.stdin)]))'
}
for r in services migrations; do curl -sf "$URL/$r" >"$MIG_LOGS/before-$r.json"; done
stable_edges >"$MIG_LOGS/before-edges.json"
kill -9 "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
ctl_start
for r in services migrations; do curl -sf "$URL/$r" >"$MIG_LOGS/after-$r.json"; done
stable_edges >"$MIG_LOGS/after-edges.json"
for r in services edges migrations; do
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
nsenter --net="$WAN" "$EM" platform migrations --controller "$URL" --tls-cert "$PKI/client.crt" \
	--tls-key "$PKI/client.key" --tls-ca "$CACERT" >&2 || fail "edgemig platform migrations"
python3 - "$MIG_LOGS/migrations.json" <<'PY' || fail "migration history: $(cat "$MIG_LOGS/migrations.json")"
import json, sys
hist = json.load(open(sys.argv[1]))
m = [x for x in hist if x["kind"] == "migrate"]
hops = [(x["source"], x["target"], x["status"]) for x in m]
assert hops == [("h1", "h2", "done"), ("h2", "h3", "done")], "ping-pong or failure: %s" % hops
print("automatic handoffs: %s" % ", ".join("%s->%s %d ms" % (x["source"], x["target"], x["duration_ms"]) for x in m), file=sys.stderr)
# Every action went as a control request and came back with its report.
for x in hist:
    assert x["status"] != "skipped (no command)", x
    if x["status"] == "done":
        r = json.loads(x["detail"])
        assert r["ok"] and r["mode"] == ("prepare" if x["kind"] == "prepare" else "precopy"), r
# prepare -> migrate: a prepare to the migration's target ran (done) before
# it, and the migration reused its pages: its first pre-copy round sent far
# fewer pages than the prepare's (which sent the whole memory).
reused = []
for x in m:
    prev = [p for p in hist if p["kind"] == "prepare" and p["status"] == "done" and p["id"] < x["id"]
            and (p["source"], p["target"]) == (x["source"], x["target"])]
    if not prev:
        continue
    pr, mr = json.loads(prev[-1]["detail"]), json.loads(x["detail"])
    p_pages, m_pages = pr["rounds"][0]["pages_sent"], mr["rounds"][0]["pages_sent"]
    print("prepare %s->%s sent %d pages; the migration's first round %d, final_pages_known %d"
          % (x["source"], x["target"], p_pages, m_pages, mr.get("final_pages_known", 0)), file=sys.stderr)
    assert p_pages > 0 and m_pages * 2 < p_pages and mr.get("final_pages_known", 0) > 0, (pr, mr)
    reused.append(x["target"])
assert reused, "no migration followed a prepare to its target: %s" % [(x["kind"], x["source"], x["target"], x["status"]) for x in hist]
PY
# The sources measured their transfers and heartbeat the bandwidth per peer.
bw_known() {
	curl -sf "$URL/edges" | python3 -c '
import json, sys
e = {x["name"]: x for x in json.load(sys.stdin)}
for src, dst in (("h1", "10.77.2.2:7878"), ("h2", "10.77.3.2:7878")):
    assert e[src]["bandwidth_mbps"] > 0 and e[src]["peers"][dst]["mbps"] > 0, e[src]
assert e["h3"]["container_names"] == ["redis"] and e["h1"]["container_names"] == [], e
'
}
wait_for 10 bw_known || fail "bandwidth/containers not in the heartbeats: $(curl -s "$URL/edges"; bw_known 2>&1)"
LAST=$(mig_probe_check "$MIG_LOGS/probe.json" 0 acked) || fail "probe summary: $(cat "$MIG_LOGS/probe.json")"
mig_redis_verify "$SIP" "$LAST"
# The replay's report: per-handoff table and the PNG plot over time.
nsenter --net="$WAN" "$REPO/scripts/mobility-replay" --report "$MIG_LOGS/replay.json" --controller "$URL" "${CLIENT_TLS[@]}" \
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
echo "ok ($LAST acknowledged writes verified across 2 automatic handoffs, prepare reused)"
