#!/bin/bash
# The controller reaches etcd over mutual TLS (--etcd https://...,
# --etcd-ca, --etcd-cert, --etcd-key; Debian's GnuTLS libcurl): a
# single-member etcd with client-cert-auth and certificates of a test CA
# (`edgemig ca`), in a network namespace of its own. With the client
# certificate the controller leads and records edges; an edge whose lease
# expired (no heartbeat for --edge-ttl) is not chosen as a target, and is
# again after a heartbeat. Without a certificate, or
# with another CA's, etcd refuses it and the controller says so (500
# naming etcd, never leader); https without --etcd-ca is refused at start.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
CTL=$BUILD/edgemig-controller
EM=$BUILD/edgemig
[ -x "$CTL" ] || skip "$CTL not built"
command -v etcd >/dev/null || skip "etcd not installed (scripts/setup installs etcd-server)"
command -v curl >/dev/null || skip "curl not installed"
[ "$(id -u)" = 0 ] || skip "needs root (a network namespace of its own)"

D=$(mktemp -d /tmp/edgemig-etcd-tls.XXXXXX)
trap 'rm -rf "$D"' EXIT
"$EM" ca init --dir "$D/ca" >/dev/null || fail "ca init"
"$EM" ca issue etcd --ip 127.0.0.1 --dir "$D/ca" --out "$D/pki" >/dev/null || fail "ca issue etcd"
"$EM" ca issue controller --dir "$D/ca" --out "$D/pki" >/dev/null || fail "ca issue controller"
"$EM" ca init --dir "$D/rogue-ca" >/dev/null || fail "ca init (rogue)"
"$EM" ca issue controller --dir "$D/rogue-ca" --out "$D/rogue" >/dev/null || fail "ca issue (rogue)"

# Everything below runs in a fresh network namespace (its own loopback):
# no port is shared with anything else on the machine.
cat >"$D/inner.sh" <<'INNER'
set -euo pipefail
D=$1 CTL=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
ip link set lo up
E=https://127.0.0.1:2379
etcd --name t --data-dir "$D/etcd" --listen-client-urls $E --advertise-client-urls $E \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster t=http://127.0.0.1:2380 --cert-file "$D/pki/etcd.crt" \
	--key-file "$D/pki/etcd.key" --client-cert-auth --trusted-ca-file "$D/ca/ca.crt" \
	>"$D/etcd.log" 2>&1 &
ETCD=$!
trap 'kill $ETCD $(jobs -p) 2>/dev/null || true; wait' EXIT
for _ in $(seq 100); do
	curl -s --cacert "$D/ca/ca.crt" --cert "$D/pki/controller.crt" --key "$D/pki/controller.key" \
		"$E/health" | grep -q true && break
	sleep 0.1
done
start() { # PORT LOG ARGS...: a controller; waits for its API
	local port=$1 log=$2
	shift 2
	"$CTL" --etcd "$E" --listen "127.0.0.1:$port" --insecure "$@" >"$log" 2>&1 &
	CPID=$!
	for _ in $(seq 50); do curl -sf "127.0.0.1:$port/healthz" -o /dev/null && return 0; sleep 0.1; done
	fail "controller on $port did not start: $(cat "$log")"
}
role() { curl -sf "127.0.0.1:$1/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])'; }

start 7001 "$D/good.log" --etcd-ca "$D/ca/ca.crt" --etcd-cert "$D/pki/controller.crt" \
	--etcd-key "$D/pki/controller.key" --edge-ttl 2 --migrate-cmd /bin/true --dwell-ms 0 \
	--dwell-per-handoff 0 --approach-reports 0
for _ in $(seq 50); do [ "$(role 7001)" = leader ] && break; sleep 0.1; done
[ "$(role 7001)" = leader ] || fail "the controller with its certificate never led: $(cat "$D/good.log")"
curl -sf -XPOST 127.0.0.1:7001/edges -o /dev/null \
	-d '{"name":"e1","addr":"10.0.0.1:7878","x":0,"y":0,"capacity":2}' || fail "POST /edges over mTLS"
curl -sf 127.0.0.1:7001/edges | grep -q '"name":"e1".*"alive":true' || fail "edge not in etcd"

# Edge leases: e2 registers, then its heartbeats stop; once its lease ran
# out it is not a target, however near; a heartbeat brings it back.
post() { curl -sf -XPOST "127.0.0.1:7001$1" -d "$2" >"$D/post.json" || fail "POST $1 $2"; }
post /edges '{"name":"e2","addr":"10.0.0.2:7878","x":100,"y":0,"capacity":2}'
post /services '{"name":"svc","user":"u","edge":"e1"}'
beat() { # EDGE CONTAINERS: heartbeats every 0.3 s until killed
	while :; do
		curl -s -XPOST "127.0.0.1:7001/edges/$1/heartbeat" -d "{\"containers\":$2}" -o /dev/null
		sleep 0.3
	done
}
beat e1 '["svc"]' &
BEAT1=$!
expired() { curl -sf 127.0.0.1:7001/edges | grep -q '"name":"e2"[^}]*"alive":false'; }
for _ in $(seq 50); do expired && break; sleep 0.2; done
expired || fail "e2's lease did not expire: $(curl -s 127.0.0.1:7001/edges)"
post /users/u/position '{"x":100,"y":0}'
grep -q '"action":"stay".*"serving edge is nearest"' "$D/post.json" ||
	fail "an edge without a lease was chosen: $(cat "$D/post.json")"
post /edges/e2/heartbeat '{"containers":[]}'
post /users/u/position '{"x":100,"y":0}'
grep -q '"action":"migrate","target":"e2"' "$D/post.json" ||
	fail "e2 alive again, not chosen: $(cat "$D/post.json")"
kill "$BEAT1"
wait "$BEAT1" 2>/dev/null || true

for who in nocert rogue; do
	args=(--etcd-ca "$D/ca/ca.crt")
	[ $who = rogue ] && args+=(--etcd-cert "$D/rogue/controller.crt" --etcd-key "$D/rogue/controller.key")
	start 7002 "$D/$who.log" "${args[@]}"
	st=$(curl -s -o "$D/$who.json" -w '%{http_code}' 127.0.0.1:7002/edges)
	[ "$st" = 500 ] && grep -q etcd "$D/$who.json" || fail "$who: GET /edges answered $st: $(cat "$D/$who.json")"
	[ "$(role 7002)" = follower ] || fail "$who: a controller etcd refused leads"
	kill "$CPID" 2>/dev/null || true
	wait "$CPID" 2>/dev/null || true
done
rc=0
"$CTL" --etcd "$E" --listen 127.0.0.1:7003 --insecure >"$D/noca.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q -- '--etcd-ca' "$D/noca.log" || fail "https without --etcd-ca: $(cat "$D/noca.log")"
echo "ok (mutual TLS to etcd; no certificate and another CA's refused; edge leases)"
INNER
unshare --net bash "$D/inner.sh" "$D" "$CTL"
