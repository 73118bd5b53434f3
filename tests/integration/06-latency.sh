#!/bin/bash
# Link latency on the test bed (`scripts/testbed delay`, em-delayline on TUN
# devices in the router): `delay 1 20` adds 20 ms each way on host 1's link,
# so client <-> host 1 RTT grows by 40 ms (it can never be less: each packet
# is held 20 ms both ways), host 2 is unaffected, a service IP routed to host 1
# is delayed and stops being when `route` moves it to host 2, delays add up
# across links, a TCP bulk transfer arrives intact, `undelay` restores the
# link and `down` leaves no delay line running.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/testbed.sh"

BUILD=${EDGEMIG_BUILD:-$HERE/../../build}
DL=$BUILD/helpers/em-delayline
SVC=10.99.6.10
WORK=$(mktemp -d /tmp/edgemig-06.XXXXXX)
PIDS=()

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	testbed_down
	rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$DL" ] || { echo "skip: $DL not built"; exit 77; }
[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
command -v busybox >/dev/null || { echo "skip: busybox not installed"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 77; }
testbed_up 2

# rtt FROM ADDR: "min avg" of 5 busybox pings, in ms.
rtt() {
	on_host "$1" busybox ping -c 5 -i 0.1 -q "$2" | sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/.*|\1 \2|p'
}
# expect_rtt FROM ADDR LO HI WHAT: min >= LO and avg <= HI. Every packet
# is held at least the delay, so min < LO fails at once. The delay line
# is a process: on a loaded machine it wakes late and a ping or two of
# five take tens of ms more, so avg > HI is measured again, up to 3 times
# (a delay line that holds packets too long does it every time).
expect_rtt() {
	local r mn avg try
	for try in 1 2 3; do
		r=$(rtt "$1" "$2")
		read -r mn avg <<<"$r"
		[ -n "$avg" ] || fail "$5: no ping reply from $2"
		echo "$5: rtt min/avg $mn/$avg ms (want min >= $3, avg <= $4)"
		python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' \
			"$mn" "$3" || fail "$5: rtt min $mn ms below $3"
		python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' \
			"$avg" "$4" && return 0
	done
	fail "$5: rtt avg $avg ms above $4 in 3 measurements"
}
pids_of_lines() { cat "/run/edgemig-testbed/$TESTBED_PREFIX".delay-*.pid 2>/dev/null || true; }

expect_rtt client "$EM_H1_ADDR" 0 10 "baseline client->h1"
expect_rtt client "$EM_H2_ADDR" 0 10 "baseline client->h2"

# --- one delayed link -------------------------------------------------------
testbed delay 1 20
LINES=$(pids_of_lines)
[ "$(echo "$LINES" | wc -w)" = 2 ] || fail "expected 2 delay lines, pid files say: $LINES"
expect_rtt client "$EM_H1_ADDR" 40 55 "delay 1 20: client->h1"
expect_rtt client "$EM_H2_ADDR" 0 10 "delay 1 20: client->h2"
expect_rtt 2 "$EM_H1_ADDR" 40 55 "delay 1 20: h2->h1"

# A service IP follows its route: delayed on host 1, not on host 2.
on_host 1 ip addr add "$SVC/32" dev lo
on_host 2 ip addr add "$SVC/32" dev lo
testbed route "$SVC" 1 2>/dev/null
expect_rtt client "$SVC" 40 55 "service IP on h1"
testbed route "$SVC" 2 2>/dev/null
expect_rtt client "$SVC" 0 10 "service IP moved to h2"
testbed route "$SVC" 1 2>/dev/null
expect_rtt client "$SVC" 40 55 "service IP back on h1"

# Delays of two links add up.
testbed delay client 5 2>/dev/null
expect_rtt client "$EM_H1_ADDR" 50 65 "delay 1 20 + client 5: client->h1"
expect_rtt client "$EM_H2_ADDR" 10 20 "delay 1 20 + client 5: client->h2"
testbed undelay client 2>/dev/null

# --- TCP bulk transfer through the delay line (20 MB, checked) -------------
cat >"$WORK/bulk.py" <<'PY'
import hashlib, socket, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "serve":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1)
    open(sys.argv[4], "w").close()
    c, _ = s.accept()
    h, blk = hashlib.sha256(), bytes(range(256)) * 256
    for i in range(320):
        b = blk[i % 256:] + blk[:i % 256]
        h.update(b)
        c.sendall(b)
    c.close()
    print(h.hexdigest())
else:
    c = socket.create_connection((host, port), timeout=20)
    h, n, t = hashlib.sha256(), 0, time.time()
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    print(h.hexdigest(), n, "%.1f" % (n * 8 / (time.time() - t) / 1e6), file=sys.stderr)
    print(h.hexdigest())
PY
on_host 1 python3 "$WORK/bulk.py" serve "$EM_H1_ADDR" 5006 "$WORK/listening" >"$WORK/sent" &
PIDS+=($!)
for _ in $(seq 50); do [ -e "$WORK/listening" ] && break; sleep 0.1; done
got=$(on_client python3 "$WORK/bulk.py" get "$EM_H1_ADDR" 5006 2>"$WORK/bulk.err") || fail "bulk transfer: $(cat "$WORK/bulk.err")"
wait "${PIDS[-1]}" || fail "bulk sender failed"
[ "$got" = "$(cat "$WORK/sent")" ] || fail "bulk transfer: data differs"
echo "bulk through the delayed link: $(cut -d' ' -f2 "$WORK/bulk.err") bytes at $(cut -d' ' -f3 "$WORK/bulk.err") Mbit/s, intact"

# --- undelay restores the link --------------------------------------------
testbed undelay 1 2>"$WORK/undelay.err"
grep -q 'delay line: dev=dlup-h1 rx=[1-9]' "$WORK/undelay.err" || fail "no delay line stats: $(cat "$WORK/undelay.err")"
grep 'delay line:' "$WORK/undelay.err"
for p in $LINES; do ! kill -0 "$p" 2>/dev/null || fail "delay line $p still runs after undelay"; done
! on_wan ip rule | grep -qE 'lookup 1[12]01' || fail "delay rules left after undelay: $(on_wan ip rule)"
! on_wan ip link show dlup-h1 >/dev/null 2>&1 || fail "TUN device left after undelay"
expect_rtt client "$EM_H1_ADDR" 0 10 "undelay 1: client->h1"
expect_rtt client "$SVC" 0 10 "undelay 1: service IP on h1"

# --- down stops running delay lines ---------------------------------------
testbed delay 2 5 2>/dev/null
LINES=$(pids_of_lines)
[ -n "$LINES" ] || fail "no delay line pid files"
testbed_down
for p in $LINES; do ! kill -0 "$p" 2>/dev/null || fail "delay line $p still runs after down"; done
[ -z "$(pids_of_lines)" ] || fail "pid files left after down"
echo "PASS"
