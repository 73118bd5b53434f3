#!/usr/bin/env bash
# Races a peer with a valid certificate can drive at a target's session set-up
# (issue 15): a second connection reusing a live session's id, and a second
# session for a container name another session holds. Both are refused at
# HELLO, before anything is staged, and neither disturbs the first session;
# what the first reserved is released when it ends (docs/protocol.md,
# "Exclusive sessions"). Uses tests/helpers/em-hostile-peer.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
EMD=$BUILD/edgemigd
HP=$BUILD/helpers/em-hostile-peer
ct_require
[ -x "$EMD" ] && [ -x "$HP" ] || skip "$EMD or $HP not built"
command -v jq >/dev/null || skip "jq not installed"

T=$(mktemp -d /tmp/em-races-XXXXXX)
DPID="" HOLD=""
cleanup() {
	[ -n "$HOLD" ] && kill "$HOLD" 2>/dev/null && wait "$HOLD" 2>/dev/null
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/d.log" ] && tail -n 30 "$T/d.log" | sed 's/^/  daemon: /' >&2
	exit 1
}

"$EM" ca init --dir "$T/ca" >/dev/null || fail "ca init"
for n in edge evil-a evil-b; do "$EM" ca issue "$n" --dir "$T/ca" >/dev/null || fail "issue $n"; done
D=$T/d # the daemon's state root
H=$T/h # the hostile peer's
ct_pull_into "$D" busybox
ct_pull_into "$H" busybox
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$EMD" --root "$D" --listen "127.0.0.1:$PORT" --tls-ca "$T/ca/ca.crt" \
	--tls-cert "$T/ca/edge.crt" --tls-key "$T/ca/edge.key" >>"$T/d.log" 2>&1 &
DPID=$!
wait_for 10 grep -q "ready" "$T/d.log" || fail "edgemigd did not start"

# hp ID OUT MODE [ARGS...]: the hostile peer as identity ID, its JSON in OUT.
hp() {
	local id=$1 out=$2 mode=$3
	shift 3
	"$HP" --connect "127.0.0.1:$PORT" --root "$H" --tls-ca "$T/ca/ca.crt" \
		--tls-cert "$T/ca/$id.crt" --tls-key "$T/ca/$id.key" --mode "$mode" \
		--image busybox "$@" >"$out" 2>>"$T/hp.err" || true
	[ -s "$out" ] || fail "em-hostile-peer $mode: no output: $(cat "$T/hp.err")"
}

S=00112233445566778899aabbccddeeff
# evil-a opens session S for "racer" and holds it.
hp evil-a "$T/hold.json" hold --container racer --session "$S" --arg hold_ms=6000 &
HOLD=$!
wait_for 10 grep -q "session $S: accepted racer" "$T/d.log" || fail "the first session never started"

# 1. Same session id, second connection (same identity, another name).
hp evil-a "$T/same-session.json" plan --container other --session "$S"
[ "$(jq -r .outcome "$T/same-session.json")" = refused ] ||
	fail "a second connection joined session $S: $(cat "$T/same-session.json")"
jq -r .error "$T/same-session.json" | grep -q "session id is already in use" ||
	fail "refused why? $(cat "$T/same-session.json")"
[ ! -e "$D/containers/other" ] || fail "the refused session left containers/other"

# 2. Same container name, another session (another identity).
hp evil-b "$T/same-name.json" plan --container racer
[ "$(jq -r .outcome "$T/same-name.json")" = refused ] ||
	fail "a second session for racer was accepted: $(cat "$T/same-name.json")"
jq -r .error "$T/same-name.json" | grep -q "already exists.*another migration session holds" ||
	fail "refused why? $(cat "$T/same-name.json")"

# The first session was not disturbed: it still holds its staging and name.
[ -d "$D/incoming/$S" ] && [ -d "$D/containers/racer" ] || fail "the first session lost its claim"
wait "$HOLD" || true
HOLD=""
[ "$(jq -r .outcome "$T/hold.json")" = completed ] || fail "the held session: $(cat "$T/hold.json")"

# It ended with an abort: its staging and its reservation are gone, its
# record says aborted, and the name is free again.
wait_for 10 test ! -e "$D/incoming/$S" || fail "staging of $S left behind"
wait_for 10 test ! -e "$D/containers/racer" || fail "the reserved name racer was not released"
[ "$(jq -r .state "$D/outcomes/$S.json")" = aborted ] || fail "record: $(cat "$D/outcomes/$S.json")"
hp evil-b "$T/again.json" plan --container racer
[ "$(jq -r .outcome "$T/again.json")" = completed ] || fail "racer not free: $(cat "$T/again.json")"
# A used session id stays used.
hp evil-a "$T/reuse.json" plan --container other --session "$S"
[ "$(jq -r .outcome "$T/reuse.json")" = refused ] || fail "session $S reused: $(cat "$T/reuse.json")"
echo "PASS: session races refused"
