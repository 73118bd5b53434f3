#!/usr/bin/env bash
# Peer authentication: `edgemig ca init/issue` make a platform CA and
# certificates; edgemigd with --tls-* refuses, at the TLS level, a client
# without a certificate, with one from another CA, with an unlisted name, and
# one that speaks plain bytes; it logs each attempt with the peer address and
# the reason, keeps running, and accepts the allowed peer.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM="$BUILD/edgemig"
EMD="$BUILD/edgemigd"
[ -x "$EM" ] && [ -x "$EMD" ] || { echo "SKIP: $EM or $EMD not built"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl CLI not installed"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }

T=$(mktemp -d /tmp/em-tls-XXXXXX)
DPID=""
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/d.log" ] && sed 's/^/  daemon: /' "$T/d.log" >&2
	exit 1
}
PKI="$T/ca"

# --- the CA helper -----------------------------------------------------------
# The CA key never lives in a state root (issue 15): `ca init` refuses it
# there, through a symlink too, and its default (/etc/edgemig/ca, or
# $EDGEMIG_CA_DIR) is checked the same way.
mkdir -p "$T/root"
ln -s "$T/root" "$T/rootlink"
for d in "$T/root/pki" "$T/rootlink/ca" "$T/other/../root/x"; do
	if "$EM" --root "$T/root" ca init --dir "$d" 2>"$T/err"; then fail "CA created in $d"; fi
	grep -q "inside the state root" "$T/err" || fail "refusal of $d: $(cat "$T/err")"
done
[ ! -e "$T/root/pki" ] && [ ! -e "$T/root/x" ] || fail "a refused init left files"
if EDGEMIG_CA_DIR="$T/root/env" "$EM" --root "$T/root" ca init 2>"$T/err"; then
	fail "CA created in \$EDGEMIG_CA_DIR inside the root"
fi
if env -u EDGEMIG_CA_DIR "$EM" --root /etc/edgemig ca init 2>"$T/err"; then
	fail "the default CA directory is not /etc/edgemig/ca"
fi
grep -q "refusing to create the CA in /etc/edgemig/ca" "$T/err" || fail "default: $(cat "$T/err")"
export EDGEMIG_CA_DIR=$PKI
"$EM" --root "$T/root" ca init --days 30 >/dev/null || fail "ca init"
[ "$(stat -c %a "$PKI/ca.key")" = 600 ] || fail "ca.key mode $(stat -c %a "$PKI/ca.key")"
if "$EM" --root "$T/root" ca init 2>"$T/err"; then fail "ca init overwrote the CA"; fi
grep -q "refusing to overwrite" "$T/err" || fail "no refusal message: $(cat "$T/err")"
for n in edge1 edge2 edge3; do
	"$EM" --root "$T/root" ca issue "$n" --json >"$T/$n.json" || fail "ca issue $n"
	[ "$(jq -r .cert "$T/$n.json")" = "$PKI/$n.crt" ] || fail "issue json: $(cat "$T/$n.json")"
	[ "$(stat -c %a "$PKI/$n.key")" = 600 ] || fail "$n.key not 0600"
done
if "$EM" --root "$T/root" ca issue ../x 2>/dev/null; then fail "accepted name ../x"; fi
"$EM" --root "$T/root" ca show --json >"$T/show.json" || fail "ca show"
jq -e '.ca.is_ca and ([.certificates[] | select(.signed_by_ca)] | length) == 3' "$T/show.json" \
	>/dev/null || fail "ca show: $(cat "$T/show.json")"
# The independent judge: OpenSSL's own verifier and its view of the extensions.
openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$PKI/edge2.crt" >/dev/null ||
	fail "openssl verify (client) rejects edge2.crt"
openssl verify -CAfile "$PKI/ca.crt" -purpose sslserver "$PKI/edge1.crt" >/dev/null ||
	fail "openssl verify (server) rejects edge1.crt"
openssl x509 -in "$PKI/edge1.crt" -noout -ext subjectAltName | grep -q "DNS:edge1" || fail "no SAN"
openssl x509 -in "$PKI/ca.crt" -noout -ext basicConstraints | grep -q "CA:TRUE" || fail "CA:TRUE"
"$EM" ca init --dir "$T/other" >/dev/null || fail "second CA"
"$EM" ca issue edge2 --dir "$T/other" >/dev/null || fail "issue from second CA"

# --- the daemon ----------------------------------------------------------------
if "$EMD" --root "$T/d" --listen 127.0.0.1:1 2>"$T/err"; then fail "started without auth"; fi
grep -q -- "--tls-cert" "$T/err" && grep -q -- "--insecure" "$T/err" ||
	fail "refusal does not name both choices: $(cat "$T/err")"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$EMD" --root "$T/d" --listen "127.0.0.1:$PORT" --tls-cert "$PKI/edge1.crt" \
	--tls-key "$PKI/edge1.key" --tls-ca "$PKI/ca.crt" --allow-peer edge2 2>"$T/d.log" &
DPID=$!
for _ in $(seq 100); do grep -q "ready" "$T/d.log" 2>/dev/null && break; sleep 0.1; done
grep -q "ready" "$T/d.log" || fail "daemon not ready"
grep -q "allowing peer 'edge2'" "$T/d.log" || fail "allow-list not logged"

# s_client keeps reading for a second (TLS 1.3 servers refuse a client after
# its handshake is done), or exits at once on the server's alert.
sclient() { # extra s_client args...; output in $T/sc.out
	sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$PKI/ca.crt" \
		-verify_return_error "$@" >"$T/sc.out" 2>&1 || true
}
# Waits until the daemon logged a refusal matching $1.
expect_log() {
	for _ in $(seq 50); do grep -q -- "$1" "$T/d.log" && return 0; sleep 0.1; done
	fail "daemon did not log: $1"
}

sclient # no certificate at all
grep -qi "alert certificate required" "$T/sc.out" || fail "no-cert client: $(cat "$T/sc.out")"
expect_log "refused 127.0.0.1:[0-9]*: peer sent no certificate"

sclient -cert "$T/other/edge2.crt" -key "$T/other/edge2.key"
grep -qi "alert unknown ca" "$T/sc.out" || fail "other-CA client: $(cat "$T/sc.out")"
expect_log "refused 127.0.0.1:[0-9]*: peer certificate rejected: unable to get local issuer"

sclient -cert "$PKI/edge3.crt" -key "$PKI/edge3.key"
grep -qi "alert bad certificate" "$T/sc.out" || fail "unlisted client: $(cat "$T/sc.out")"
expect_log "refused 127.0.0.1:[0-9]*: peer certificate rejected: peer 'edge3' is not an allowed peer"

# Plain bytes (an HTTP request) get a prompt alert and a close, not a hang.
t0=$(date +%s)
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET / HTTP/1.0\r\n\r\n' >&3
rc=0
timeout 5 cat <&3 >"$T/plain.out" 2>/dev/null || rc=$? # EOF or a reset: either ends it
[ "$rc" -ne 124 ] || fail "plain client not disconnected within 5 s"
exec 3>&-
[ $(($(date +%s) - t0)) -le 3 ] || fail "plain client took too long"
expect_log "refused 127.0.0.1:[0-9]*: TLS handshake failed (does the peer speak TLS?)"

kill -0 "$DPID" 2>/dev/null || fail "daemon died"
# The allowed peer still gets in: the handshake completes and is logged.
sclient -cert "$PKI/edge2.crt" -key "$PKI/edge2.key" -verify_hostname edge1
grep -q "Verify return code: 0 (ok)" "$T/sc.out" || fail "allowed client: $(cat "$T/sc.out")"
grep -q "TLSv1.3" "$T/sc.out" || fail "not TLS 1.3"
expect_log "authenticated as 'edge2'"
refusals=$(grep -c "refused 127.0.0.1" "$T/d.log")
[ "$refusals" -eq 4 ] || fail "$refusals refusals logged, expected 4"

kill -TERM "$DPID"
wait "$DPID" || fail "daemon exited $? on SIGTERM"
DPID=""
echo "PASS: CA helper, 4 kinds of refused peers logged, allowed peer accepted"
