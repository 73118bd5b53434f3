#!/usr/bin/env bash
# A compromised peer edge: tests/helpers/em-hostile-peer holds a valid
# certificate of the platform CA and sends crafted sessions to an edgemigd on
# loopback (docs/security.md lists which row each case covers).
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
EMD=$BUILD/edgemigd
HP=$BUILD/helpers/em-hostile-peer
ct_require
[ -x "$EMD" ] && [ -x "$HP" ] || skip "$EMD or $HP not built"
command -v jq >/dev/null || skip "jq not installed"

T=$(mktemp -d /tmp/em-hostile-XXXXXX)
DPID=""
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/d.log" ] && tail -n 40 "$T/d.log" | sed 's/^/  daemon: /' >&2
	exit 1
}

# The platform CA, the daemon's certificate and two hostile identities.
"$EM" ca init --dir "$T/ca" >/dev/null || fail "ca init"
for n in edge evil-a evil-b; do "$EM" ca issue "$n" --dir "$T/ca" >/dev/null || fail "issue $n"; done
D=$T/d   # the daemon's state root
H=$T/h   # the hostile peer's
ct_pull_into "$D" busybox
ct_pull_into "$D" redis
ct_pull_into "$H" busybox

daemon_start() { # extra edgemigd options...
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$EMD" --root "$D" --listen "127.0.0.1:$PORT" --tls-ca "$T/ca/ca.crt" \
		--tls-cert "$T/ca/edge.crt" --tls-key "$T/ca/edge.key" "$@" >>"$T/d.log" 2>&1 &
	DPID=$!
	wait_for 10 grep -q "ready.*$PORT" "$T/d.log" || fail "edgemigd did not start"
}
daemon_stop() {
	kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	DPID=""
}

# hp ID MODE [ARGS...]: the hostile peer as identity ID; its JSON in $T/out.
hp() {
	local id=$1 mode=$2
	shift 2
	"$HP" --connect "127.0.0.1:$PORT" --root "$H" --tls-ca "$T/ca/ca.crt" \
		--tls-cert "$T/ca/$id.crt" --tls-key "$T/ca/$id.key" --mode "$mode" "$@" \
		>"$T/out" 2>"$T/hp.err" || true
	[ -s "$T/out" ] || fail "em-hostile-peer $mode: no output: $(cat "$T/hp.err")"
}
outcome() { jq -r .outcome "$T/out"; }
field() { jq -r ".$1" "$T/out"; }

daemon_start

# --- the client speaks the protocol: a plain plan is answered ----------------
hp evil-a plan --image busybox --container probe1
[ "$(outcome)" = completed ] || fail "plan: $(cat "$T/out")"
[ "$(jq '.missing | length' "$T/out")" = 0 ] || fail "plan: blobs missing: $(cat "$T/out")"

echo "PASS: hostile peer cases"
