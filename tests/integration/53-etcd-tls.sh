#!/bin/bash
# The controller reaches etcd over mutual TLS (--etcd https://...,
# --etcd-ca, --etcd-cert, --etcd-key; Debian's GnuTLS libcurl): a
# single-member etcd with client-cert-auth and certificates of a test CA
# (`edgemig ca`), in a network namespace of its own. With the client
# certificate the controller leads and records an edge; without one, or
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
	--etcd-key "$D/pki/controller.key"
for _ in $(seq 50); do [ "$(role 7001)" = leader ] && break; sleep 0.1; done
[ "$(role 7001)" = leader ] || fail "the controller with its certificate never led: $(cat "$D/good.log")"
curl -sf -XPOST 127.0.0.1:7001/edges -o /dev/null \
	-d '{"name":"e1","addr":"10.0.0.1:7878","x":0,"y":0,"capacity":2}' || fail "POST /edges over mTLS"
curl -sf 127.0.0.1:7001/edges | grep -q '"name":"e1".*"alive":true' || fail "edge not in etcd"

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
echo "ok (mutual TLS to etcd; no certificate and another CA's refused)"
INNER
unshare --net bash "$D/inner.sh" "$D" "$CTL"
