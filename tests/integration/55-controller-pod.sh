#!/bin/bash
# The controller moves a pod as one unit (docs/pods.md, docs/platform.md):
# edgemig-controller with two edges (h1 x=0, h2 x=100) whose edgemigd
# registers and heartbeats itself; a pod "web" on h1 (the infra, a sidecar
# serving a counter over HTTP on the pod's IP, and a second member) is
# registered as a user's service, and the user's reported position moves
# to h2. The scheduler alone sends the control request: the whole pod
# then runs on h2 (every member, nothing left on h1), the controller
# records one migration h1 -> h2, done, and an HTTP client of the sidecar
# sees no error throughout.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
CTL=$BUILD/edgemig-controller
[ -x "$CTL" ] || skip "$CTL not built"
CURL=$(type -P curl) || skip "curl not installed"
CTL_IP=10.77.100.1
PORT=$((18000 + $$ % 1000))
URL=https://$CTL_IP:$PORT
MIG_CTL_URLS=$URL
MIG_DAEMON_OPTS_FN=mig_ctl_edge_opts
mig_setup 2 busybox

SIP=10.66.0.55
h 1 pod create --ip "$SIP" web >/dev/null || fail "pod create"
h 1 run --pod web --name side busybox sh -c 'mkdir -p /www; httpd -p 8080 -h /www; i=0
	while :; do i=$((i + 1)); echo $i >/www/n.tmp && mv /www/n.tmp /www/n; sleep 0.05; done' \
	>/dev/null || fail "run side"
h 1 run --pod web --name aux busybox sleep 1d >/dev/null || fail "run aux"
mig_announce "$SIP" 1
get() { on_client "$CURL" -sf -m 2 "http://$SIP:8080/n" 2>/dev/null; }
answers() { [ -n "$(get)" ]; }
wait_for 20 answers || fail "no answer from the sidecar"
states() { h "$1" ps --json | python3 -c 'import json,sys; print(" ".join(sorted(c["name"] + "=" + c["state"] for c in json.load(sys.stdin))))'; }

PKI=$MIG_LOGS/ctl-pki
"$EM" ca issue controller --ip "$CTL_IP" --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null ||
	fail "ca issue controller"
"$EM" ca issue client --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null || fail "ca issue client"
CACERT=$MIG_LOGS/ca/ca.crt
WAN=/run/netns/$TESTBED_PREFIX-wan
curl() { nsenter --net="$WAN" "$CURL" --cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$CACERT" "$@"; }
nsenter --net="$WAN" "$CTL" --state-dir "$MIG_LOGS/controller" --listen "$CTL_IP:$PORT" \
	--margin 10 --dwell-ms 1000 --action-timeout 120 --tls-cert "$PKI/controller.crt" \
	--tls-key "$PKI/controller.key" --tls-ca "$CACERT" --admin client \
	>>"$MIG_LOGS/controller.log" 2>&1 &
wait_for 10 curl -sf "$URL/healthz" -o /dev/null || fail "controller did not start"
edges_up() { [ "$(curl -sf "$URL/edges" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ]; }
wait_for 30 edges_up || fail "edges did not register: $(curl -s "$URL/edges")"
curl -sf -XPOST "$URL/services" -o /dev/null \
	-d "{\"name\":\"web\",\"user\":\"u1\",\"edge\":\"h1\",\"ip\":\"$SIP\"}" || fail "POST /services"

# The client: a request every 50 ms, each on a new connection; one that
# got no answer is retried once (CRIU's skip-in-flight, docs/pods.md), a
# second failure is an error.
STOP=$MIG_LOGS/stop
(
	while [ ! -e "$STOP" ]; do
		if n=$(on_client "$CURL" -sSf -m 5 "http://$SIP:8080/n" 2>&1) && [ -n "$n" ] ||
			n=$(on_client "$CURL" -sSf -m 20 "http://$SIP:8080/n" 2>&1) && [ -n "$n" ]; then
			echo "ok $n"
		else
			echo "error at $(date +%T.%N): ${n:-no answer}"
		fi
		sleep 0.05
	done
) >"$MIG_LOGS/http.log" &
HTTP=$!
sleep 1

# The user walks to h2 and stays: the scheduler moves the pod.
on_h2() { [ "$(states 2)" = "aux=running side=running web=running" ] && [ -z "$(states 1)" ]; }
for _ in $(seq 240); do
	curl -sf -XPOST "$URL/users/u1/position" -d '{"x":100,"y":0}' -o /dev/null || true
	on_h2 && break
	sleep 0.25
done
on_h2 || fail "the pod did not move to h2: h1: $(states 1); h2: $(states 2); $(curl -s "$URL/migrations")"
served() { curl -sf "$URL/services" | grep -q '"edge":"h2"'; }
wait_for 20 served || fail "the controller does not record the pod on h2: $(curl -s "$URL/services")"
sleep 1
touch "$STOP"
wait "$HTTP" || true
curl -sf "$URL/migrations" >"$MIG_LOGS/migrations.json"
python3 - "$MIG_LOGS/migrations.json" <<'PY' || fail "migrations: $(cat "$MIG_LOGS/migrations.json")"
import json, sys
m = [x for x in json.load(open(sys.argv[1])) if x["kind"] == "migrate"]
assert [(x["source"], x["target"], x["status"]) for x in m] == [("h1", "h2", "done")], m
r = json.loads(m[0]["detail"])
assert r["ok"] and r.get("pod"), r
print("controller's pod hop: %d ms" % m[0]["duration_ms"], file=sys.stderr)
PY
grep -q '^error' "$MIG_LOGS/http.log" && fail "HTTP client: $(grep '^error' "$MIG_LOGS/http.log" | head -3)"
[ "$(grep -c '^ok' "$MIG_LOGS/http.log")" -gt 10 ] || fail "HTTP client: too few answers"
echo "ok: the controller moved pod web to h2 as one unit; $(grep -c '^ok' "$MIG_LOGS/http.log") answers, no error"
