#!/bin/bash
# A flood of 2,000 connections at edgemig-controller (issue 15 §3): all
# opened at once from one address (127.0.0.2) and held for a while, half
# of them silent, half sending junk instead of a TLS hello. Meanwhile an
# operator's authenticated requests from another address (127.0.0.1)
# register an edge and read it back. The controller runs with its default
# limits (--max-connections 256, --max-connections-per-peer 16, --threads
# 2): its open descriptors, threads and memory stay bounded, the real
# requests are served, and it serves normally afterwards.
# EDGEMIG_CONTROLLER overrides the binary (to show an older one failing).
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM=$BUILD/edgemig
CTL=${EDGEMIG_CONTROLLER:-$BUILD/edgemig-controller}
[ -x "$EM" ] && [ -x "$CTL" ] || { echo "skip: $EM or $CTL not built"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl not installed"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 77; }

T=$(mktemp -d /tmp/em-ctlflood-XXXXXX)
CPID="" FLOOD="" WATCH=""
cleanup() {
	local p
	for p in $WATCH $FLOOD $CPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$T/ctl.log" ] && tail -n 20 "$T/ctl.log" | sed 's/^/  controller: /' >&2
	exit 1
}
wait_for() { # SECONDS CMD...
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		"${@:2}" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

"$EM" ca init --dir "$T/ca" >/dev/null || fail "ca init"
"$EM" ca issue controller --ip 127.0.0.1 --dir "$T/ca" --out "$T/pki" >/dev/null ||
	fail "ca issue controller"
"$EM" ca issue admin --dir "$T/ca" --out "$T/pki" >/dev/null || fail "ca issue admin"
PORT=$((18000 + $$ % 1000))
URL=https://127.0.0.1:$PORT
api() { curl -sf -m 20 --cert "$T/pki/admin.crt" --key "$T/pki/admin.key" --cacert "$T/ca/ca.crt" "$@"; }

"$CTL" --config none --state-dir "$T/state" --listen "127.0.0.1:$PORT" \
	--tls-cert "$T/pki/controller.crt" --tls-key "$T/pki/controller.key" \
	--tls-ca "$T/ca/ca.crt" --admin admin >"$T/ctl.log" 2>&1 &
CPID=$!
wait_for 10 api "$URL/healthz" -o /dev/null || fail "controller did not start"

st() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$CPID/status"; }
fds() { find "/proc/$CPID/fd" -mindepth 1 2>/dev/null | wc -l; }
RSS0=$(st VmRSS) THR0=$(st Threads) FD0=$(fds)

# The flood: every connection opened at once, held HOLD seconds; counts
# those still open when the hold ends (the rest the controller closed).
cat >"$T/flood.py" <<'PY'
import socket, sys, time
host, port, total, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks, failed = [], 0
for i in range(total):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    try:
        s.connect((host, port))
        if i % 2:
            s.sendall(b"\x16\x03\x01 not a TLS hello" * 10)
        socks.append(s)
    except OSError:
        failed += 1
        s.close()
time.sleep(hold)
still = 0
for s in socks:
    s.setblocking(False)
    try:
        still += 0 if s.recv(1) == b"" else 1
    except BlockingIOError:
        still += 1
    except OSError:
        pass
    s.close()
print(len(socks), failed, still)
PY
python3 "$T/flood.py" 127.0.0.1 "$PORT" 2000 12 >"$T/flood.out" &
FLOOD=$!
(
	rss=0 thr=0 fd=0
	while kill -0 "$FLOOD" 2>/dev/null; do
		r=$(st VmRSS) t=$(st Threads) f=$(fds)
		[ "${r:-0}" -le "$rss" ] || rss=$r
		[ "${t:-0}" -le "$thr" ] || thr=$t
		[ "$f" -le "$fd" ] || fd=$f
		echo "$rss $thr $fd" >"$T/peak"
		sleep 0.2
	done
) &
WATCH=$!

sleep 4 # every flood connection is made by now
served=yes
api -XPOST "$URL/edges" -d '{"name":"e1","addr":"10.0.0.1:7878","x":0,"y":0,"capacity":2}' \
	-o /dev/null || served="no: POST /edges failed"
[ "$served" != yes ] || api "$URL/edges" | grep -q '"e1"' || served="no: GET /edges lacks e1"
kill -0 "$FLOOD" 2>/dev/null || fail "the flood ended before the real requests were made"
wait "$FLOOD" || fail "flood client failed"
FLOOD=""
wait "$WATCH" || true
WATCH=""
read -r made failed still <"$T/flood.out"
read -r rss thr fd <"$T/peak"
echo "flood: $made connections made, $failed failed, $still still open after 12 s;" \
	"controller peak RSS $RSS0 -> $rss kB, threads $THR0 -> $thr, fds $FD0 -> $fd"
[ $((made + failed)) -eq 2000 ] || fail "flood: $made + $failed connections"
[ "$served" = yes ] || fail "an operator's requests during the flood were not served ($served)"
kill -0 "$CPID" || fail "the controller died in the flood"
# 16 from the flood's address, the operator's and slack for closing ones.
[ "$fd" -le $((FD0 + 24)) ] || fail "the controller held $fd descriptors (was $FD0)"
[ "$thr" -le $((THR0 + 4)) ] || fail "the controller grew from $THR0 to $thr threads"
[ "$rss" -le $((RSS0 + 16384)) ] || fail "the controller grew from $RSS0 to $rss kB"
[ "$still" -le 16 ] || fail "$still flood connections held open from one address"
api "$URL/healthz" -o /dev/null || fail "the controller stopped serving after the flood"
# The refusals at accept are logged as counts, not line by line.
n=$(grep -c "refused [0-9]* connections over the limit" "$T/ctl.log" || true)
[ "$n" -ge 1 ] || fail "no refusal count logged"
[ "$n" -le 30 ] || fail "$n refusal lines: the log is flooded too"
echo "PASS: 2000-connection flood at the controller bounded, real requests served"
