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
# The state roots live below T: a container's root (an unprivileged host uid
# in its user namespace) must pass through it to reach its rootfs.
chmod 711 "$T"
DPID=""
FAKE=""
# Every step may fail (a helper already gone) without skipping the next.
cleanup() {
	[ -z "$FAKE" ] || kill "$FAKE" 2>/dev/null || true
	[ ! -d "$T/h/containers/src1" ] || "$EM" --root "$T/h" rm -f src1 >/dev/null 2>&1 || true
	if [ -n "$DPID" ]; then
		kill "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
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

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

daemon_start() { # extra edgemigd options...
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$EMD" --root "$D" --listen "127.0.0.1:$PORT" --tls-ca "$T/ca/ca.crt" \
		--tls-cert "$T/ca/edge.crt" --tls-key "$T/ca/edge.key" "$@" >>"$T/d.log" 2>&1 &
	DPID=$!
	wait_for 10 grep -q "ready.*$PORT" "$T/d.log" || fail "edgemigd did not start"
}
daemon_stop() {
	kill "$DPID" 2>/dev/null || true
	wait "$DPID" 2>/dev/null || true
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

# --- page cache probe (issue 15): another peer learns nothing --------------
# evil-a leaves 40 pages of its pattern in the cache for "victim" (a
# prepare); evil-b, naming the same container, must see no hash of them and
# must not rebuild an image file from one of them.
hp evil-a cache-fill --image busybox --container victim --arg seed=7 --arg pages=40
[ "$(outcome)" = completed ] && [ "$(field cache_pages)" = 40 ] || fail "cache-fill: $(cat "$T/out")"
hp evil-b cache-probe --image busybox --container victim --arg seed=7
[ "$(field hashes)" = 0 ] || fail "evil-b saw $(field hashes) hashes of evil-a's cache: $(cat "$T/out")"
[ "$(field ref_accepted)" = false ] || fail "evil-b rebuilt a page of evil-a's: $(cat "$T/out")"
field error | grep -q "which the target does not have" || fail "probe refused why? $(cat "$T/out")"
# The owner still finds its pages (the cache is per peer, not gone).
hp evil-a cache-probe --image busybox --container victim --arg seed=7
[ "$(field hashes)" = 40 ] && [ "$(field ref_accepted)" = true ] ||
	fail "evil-a lost its own cache: $(cat "$T/out")"

# --- tag overwrite (issue 15): a peer's image never repoints a local tag ---
RTAG=$REGISTRY/edgemig/redis:latest
digest_of() { "$EM" --root "$D" image ls --json | jq -r --arg n "$1" '.[] | select(.name == $n) | .manifest_digest'; }
want=$(digest_of "$RTAG")
[ -n "$want" ] || fail "no local $RTAG"
bb=$("$EM" --root "$H" image ls --json | jq -r '.[0].manifest_digest')
hp evil-b tag-overwrite --image busybox --container tagger --arg name="$RTAG"
[ "$(outcome)" = completed ] || fail "tag-overwrite did not get through: $(cat "$T/out")"
[ "$(digest_of "$RTAG")" = "$want" ] || fail "$RTAG now points at $(digest_of "$RTAG"), not $want"
[ "$(digest_of "$REGISTRY/edgemig/redis@$bb")" = "$bb" ] ||
	fail "the peer's image is not recorded by digest: $("$EM" --root "$D" image ls --json)"

# --- service IP outside the service CIDR (issue 15) --------------------------
# A service IP becomes a host route: a peer must not claim another host's
# address or an outside one. The default range is 10.66.0.0/16.
for ip in 8.8.8.8 10.77.2.2; do
	hp evil-a plan --image busybox --container cidr --ip "$ip"
	[ "$(outcome)" = refused ] || fail "service IP $ip accepted: $(cat "$T/out")"
	field error | grep -q "spec ip $ip is outside this host's service CIDRs (10.66.0.0/16)" ||
		fail "unclear refusal of $ip: $(cat "$T/out")"
done
hp evil-a plan --image busybox --container cidr --ip 10.66.7.7
[ "$(outcome)" = completed ] || fail "service IP inside the range refused: $(cat "$T/out")"

# --- upper diffs held to the layer rules (issue 15) -------------------------
# A block device of the host's disk, a char device, an overlay redirect:
# each refused before anything is created, with the reason.
node() { # TYPE RDEV [EXTRA]
	printf '{"version":1,"entries":[{"p":"x","t":"%s","m":438,"u":0,"g":0,"s":0,"mt":1,"mn":0,"r":%s%s}]}' "$@"
}
for m in "$(node c 2048)" "$(node c 259)" \
	'{"version":1,"entries":[{"p":"d","t":"d","m":493,"u":0,"g":0,"s":0,"mt":1,"mn":0,"x":{"trusted.overlay.redirect":"2f657463"}}]}'; do
	hp evil-b upper --image busybox --container upper1 --arg manifest="$m"
	[ "$(field applied)" = false ] || fail "manifest applied: $m"
	field error | grep -q "is not allowed" || fail "unclear refusal of $m: $(cat "$T/out")"
done
hp evil-b upper --image busybox --container upper1 --arg manifest="$(node c 0)"
[ "$(field applied)" = true ] || fail "a 0/0 whiteout was refused: $(cat "$T/out")"

# --- a hostile target asks for a blob outside the plan (issue 15) ----------
# The source holds another image (redis); a target that claims to lack its
# config blob while busybox migrates gets an error, not the blob.
ct_pull_into "$H" redis
secret=$("$EM" --root "$H" image ls --json | jq -r '.[] | select(.name | test("redis")) | .config_digest')
"$EM" --root "$H" run --name src1 --ip 10.66.0.77/32 busybox >/dev/null || fail "run src1"
TP=$(freeport)
"$HP" --listen "127.0.0.1:$TP" --root "$T/ht" --tls-ca "$T/ca/ca.crt" --tls-cert "$T/ca/evil-b.crt" \
	--tls-key "$T/ca/evil-b.key" --mode target-blob --arg blob="$secret" >"$T/tout" 2>&1 &
TGT=$!
wait_for 10 sh -c "ss -ltn | grep -q ':$TP '" || fail "hostile target did not listen"
if "$EM" --root "$H" migrate src1 --to "127.0.0.1:$TP" --tls-ca "$T/ca/ca.crt" \
	--tls-cert "$T/ca/edge.crt" --tls-key "$T/ca/edge.key" >/dev/null 2>"$T/merr"; then
	fail "migration to the hostile target succeeded"
fi
wait "$TGT" || true
[ "$(jq -r .blob_sent "$T/tout")" = null ] ||
	fail "the source sent blob $(jq -r .blob_sent "$T/tout") outside the plan"
grep -q "not in the plan" "$T/merr" || fail "unclear error: $(cat "$T/merr")"
"$EM" --root "$H" ps --json | jq -e '.[] | select(.name == "src1") | .state == "running"' \
	>/dev/null || fail "src1 not running after the refused migration"
"$EM" --root "$H" rm -f src1 >/dev/null || fail "rm src1"

# --- registry: only --registry HOST, only HTTP(S), by digest (issue 15) -----
read -r P1 P2 < <(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
python3 "$REPO/tests/helpers/fake-registry.py" "$T/fake.log" "$P1" "$P2" "gopher://127.0.0.1:$P2/x" &
FAKE=$!
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$P1/v2/" || fail "fake registry did not start"
rm -f "$T/fake.log"
# A token realm of another protocol is never fetched.
if "$EM" --root "$T/r" image pull --insecure "127.0.0.1:$P1/a/b:latest" 2>"$T/err"; then
	fail "pull from the fake registry succeeded"
fi
grep -q "registry GET" "$T/fake.log" || fail "the pull never reached the fake registry: $(cat "$T/err")"
! grep -q "listener" "$T/fake.log" || fail "the gopher:// token realm was fetched: $(cat "$T/err")"
# edgemigd --registry pulls from that registry only, whatever host the
# peer's image name names, and by the plan's manifest digest.
daemon_stop
D_KEEP=$D
D=$T/d2
daemon_start --registry "$REGISTRY" --registry-http
rm -f "$T/fake.log"
hp evil-a plan --image busybox --container reg --arg name="127.0.0.1:$P1/edgemig/busybox:latest"
[ "$(outcome)" = completed ] || fail "plan with a foreign registry name: $(cat "$T/out")"
[ ! -e "$T/fake.log" ] || fail "edgemigd contacted the peer's registry: $(cat "$T/fake.log")"
[ "$(jq '.missing | length' "$T/out")" = 0 ] ||
	fail "edgemigd did not pull from --registry $REGISTRY: $(cat "$T/out")"
"$EM" --root "$D" image ls --json | jq -e --arg n "$REGISTRY/edgemig/busybox@$bb" \
	'any(.[]; .name == $n)' >/dev/null || fail "not pulled by digest: $("$EM" --root "$D" image ls --json)"
kill "$FAKE"
wait "$FAKE" 2>/dev/null || true
FAKE=""
D=$D_KEEP

# --- plaintext lazy pages (issue 15, memory in clear) ------------------------
# A post-copy FINAL that names a page server in clear (what a source sent
# before pages went through the session): refused before CRIU starts, and
# nothing ever connects to that page server.
hp evil-a lazy-plain --image busybox --container lazy1
[ "$(outcome)" = refused ] || fail "lazy-plain: $(cat "$T/out")"
field error | grep -q "plaintext lazy pages refused" || fail "lazy-plain refused why? $(cat "$T/out")"
[ "$(field connected)" = false ] || fail "the daemon connected to a plain page server: $(cat "$T/out")"

# --- limits (issue 15 §3): a session quota and a session deadline ----------
daemon_stop
daemon_start --session-quota 1M --session-deadline 3
hp evil-a cache-fill --image busybox --container quota --arg seed=3 --arg pages=400
[ "$(outcome)" = refused ] || fail "1.6 MB staged under a 1 MiB quota: $(cat "$T/out")"
field error | grep -q "over this host's quota of 1048576 (edgemigd --session-quota)" ||
	fail "unclear quota refusal: $(cat "$T/out")"
# The session removes its staging after its ABORT went out, so after the
# peer has its answer.
wait_for 10 sh -c "[ -z \"\$(ls '$D/incoming' 2>/dev/null)\" ]" ||
	fail "the refused session left staging behind: $(ls "$D/incoming")"
hp evil-a stall --image busybox --container slow --arg seconds=6
[ "$(field alive)" = false ] || fail "a session outlived --session-deadline 3: $(cat "$T/out")"
grep -q "passed the session deadline of 3 s" "$T/d.log" || fail "deadline not logged"
wait_for 10 sh -c "[ -z \"\$(ls '$D/incoming' 2>/dev/null)\" ]" || fail "the killed session's staging stayed"
if "$EMD" --insecure --max-cpus -1 2>"$T/err"; then fail "--max-cpus -1 accepted"; fi
# Sessions per peer identity, whatever address they come from.
daemon_stop
daemon_start --max-sessions-per-peer 1
"$HP" --connect "127.0.0.1:$PORT" --root "$H" --tls-ca "$T/ca/ca.crt" --tls-cert "$T/ca/evil-a.crt" \
	--tls-key "$T/ca/evil-a.key" --mode stall --image busybox --container hold \
	--arg seconds=4 >"$T/hold.out" 2>&1 &
HOLD=$!
wait_for 10 grep -q "accepted hold" "$T/d.log" || fail "the holding session did not start"
hp evil-a plan --image busybox --container second
[ "$(outcome)" = refused ] || fail "a second session of evil-a got in: $(cat "$T/out")"
field error | grep -q "peer 'evil-a' already has 1 sessions here" || fail "refusal: $(cat "$T/out")"
hp evil-b plan --image busybox --container other
[ "$(outcome)" = completed ] || fail "evil-b was refused too: $(cat "$T/out")"
wait "$HOLD" || true
[ "$(jq -r .alive "$T/hold.out")" = true ] || fail "the holding session failed: $(cat "$T/hold.out")"
hp evil-a plan --image busybox --container third
[ "$(outcome)" = completed ] || fail "evil-a's slot was not released: $(cat "$T/out")"

# The operator's ranges replace the default.
daemon_stop
daemon_start --service-cidr 8.8.8.0/24
hp evil-a plan --image busybox --container cidr --ip 8.8.8.8
[ "$(outcome)" = completed ] || fail "--service-cidr 8.8.8.0/24 refused 8.8.8.8: $(cat "$T/out")"
hp evil-a plan --image busybox --container cidr --ip 10.66.7.7
[ "$(outcome)" = refused ] || fail "the default range stayed: $(cat "$T/out")"
if "$EMD" --insecure --service-cidr 10.66.0.1/16 2>"$T/err"; then fail "bad --service-cidr accepted"; fi
grep -q "host bits set" "$T/err" || fail "bad --service-cidr: $(cat "$T/err")"
echo "PASS: hostile peer cases"
