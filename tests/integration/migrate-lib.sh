# Helpers for the migration tests: a test bed of edge hosts (network
# namespaces), each with its own edgemig root seeded with the test images
# over unshaped loopback, and an edgemigd per host.
# shellcheck shell=bash

. "$(dirname "${BASH_SOURCE[0]}")/containers-lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/testbed.sh"

EMD=$BUILD/edgemigd
MIG_PORT=7878
MIG_LOGS=$(mktemp -d /tmp/edgemig-mig.XXXXXX)
MIG_DAEMONS=()

# h I ARGS...: edgemig on host I (inside its network namespace).
h() {
	local i=$1 ns root
	shift
	ns=EM_H${i}_NS root=EM_H${i}_ROOT
	EDGEMIG_TESTBED_PREFIX=$TESTBED_PREFIX EDGEMIG_ROUTE_HOOK=$REPO/scripts/testbed-route-hook \
		nsenter --net="/run/netns/${!ns}" "$EM" --root "${!root}" "$@"
}

haddr() {
	local a=EM_H${1}_ADDR
	echo "${!a}"
}

# mig_pull I NAME: seed host I's store from the loopback registry (root netns).
mig_pull() {
	local root=EM_H${1}_ROOT
	ct_pull_into "${!root}" "$2"
}

# mig_pki I: host I gets a certificate "h<I>" of the test bed's CA in
# <root>/pki/, named after this machine's host name too, which is where
# `edgemig migrate` looks by default; peers authenticate with mutual TLS.
mig_pki() {
	local i=$1 root pki
	root=EM_H${i}_ROOT
	pki=${!root}/pki
	[ -f "$MIG_LOGS/ca/ca.crt" ] || "$EM" ca init --dir "$MIG_LOGS/ca" >/dev/null || fail "ca init"
	mkdir -p "$pki"
	"$EM" ca issue "h$i" --dir "$MIG_LOGS/ca" --out "$pki" >/dev/null || fail "ca issue h$i"
	cp "$MIG_LOGS/ca/ca.crt" "$pki/ca.crt"
	ln -sf "h$i.crt" "$pki/$(hostname -s).crt"
	ln -sf "h$i.key" "$pki/$(hostname -s).key"
}

# A MIG_DAEMON_OPTS_FN for edges that register with the controller(s) at
# $MIG_CTL_URLS (comma-separated): host I at x = (I-1)*100, capacity 4, a
# heartbeat each second, control requests from the certificate named
# "controller" only.
mig_ctl_edge_opts() {
	printf '%s\n' --controller "$MIG_CTL_URLS" --location "$((($1 - 1) * 100)),0" \
		--capacity 4 --heartbeat-interval 1 --allow-controller controller
}

# mig_daemon I: starts edgemigd on host I (mutual TLS, peers h1..hN allowed)
# and waits until it listens. A test may set MIG_DAEMON_OPTS_FN to a function
# that prints extra edgemigd options for host I, one per line (the platform
# test: --controller, --location, --allow-controller).
mig_daemon() {
	local i=$1 ns root allow=() j extra=() ready
	ns=EM_H${i}_NS root=EM_H${i}_ROOT
	for ((j = 1; j <= EM_HOSTS; j++)); do allow+=(--allow-peer "h$j"); done
	[ -z "${MIG_IO_TIMEOUT:-}" ] || allow+=(--io-timeout "$MIG_IO_TIMEOUT")
	if [ -n "${MIG_DAEMON_OPTS_FN:-}" ]; then
		mapfile -t extra < <("$MIG_DAEMON_OPTS_FN" "$i")
		allow+=("${extra[@]}")
	fi
	ready=$(grep -c ' ready (root ' "$MIG_LOGS/edgemigd-h$i.log" 2>/dev/null) || true
	EDGEMIG_TESTBED_PREFIX=$TESTBED_PREFIX nsenter --net="/run/netns/${!ns}" "$EMD" \
		--root "${!root}" --listen "$(haddr "$i"):$MIG_PORT" --tls-ca "${!root}/pki/ca.crt" \
		--tls-cert "${!root}/pki/h$i.crt" --tls-key "${!root}/pki/h$i.key" "${allow[@]}" \
		--route-hook "$REPO/scripts/testbed-route-hook" >>"$MIG_LOGS/edgemigd-h$i.log" 2>&1 &
	MIG_DAEMONS[$i]=$!
	# This daemon's "ready", not an earlier one's in the same log. A test
	# that runs edgemigd under valgrind sets MIG_DAEMON_WAIT higher.
	wait_for "${MIG_DAEMON_WAIT:-10}" bash -c "[ \$(grep -c ' ready (root ' '$MIG_LOGS/edgemigd-h$i.log') -gt ${ready:-0} ]" ||
		fail "edgemigd on host $i did not start"
}

mig_daemon_stop() {
	local i=$1
	[ -n "${MIG_DAEMONS[$i]:-}" ] || return 0
	kill "${MIG_DAEMONS[$i]}" 2>/dev/null || true
	wait "${MIG_DAEMONS[$i]}" 2>/dev/null || true
	MIG_DAEMONS[$i]=
}

# mig_setup N IMAGE...: test bed with N hosts, images seeded, daemons up.
mig_setup() {
	local n=$1 i img
	shift
	ct_require
	[ -x "$EMD" ] || skip "$EMD not built"
	trap mig_cleanup EXIT
	testbed_up "$n" || fail "test bed"
	for ((i = 1; i <= n; i++)); do
		mkdir -p "$(eval echo "\$EM_H${i}_ROOT")"
		for img in "$@"; do mig_pull "$i" "$img"; done
		mig_pki "$i"
		mig_daemon "$i"
	done
}

# running_on I NAME: true if NAME is running on host I.
running_on() {
	h "$1" ps --json 2>/dev/null | python3 -c '
import json, sys
sys.exit(0 if any(c["name"] == sys.argv[1] and c["state"] == "running" for c in json.load(sys.stdin)) else 1)' "$2"
}

mig_cleanup() {
	local st=$? i n root
	# shellcheck disable=SC2046
	kill $(jobs -p) 2>/dev/null || true
	for ((i = 1; i <= ${EM_HOSTS:-0}; i++)); do mig_daemon_stop "$i"; done
	for ((i = 1; i <= ${EM_HOSTS:-0}; i++)); do
		root=EM_H${i}_ROOT
		[ -d "${!root:-}" ] || continue
		for n in $("$EM" --root "${!root}" ps --json 2>/dev/null | python3 -c \
			'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)]' 2>/dev/null); do
			h "$i" rm -f "$n" >/dev/null 2>&1 || true
		done
	done
	if [ "$st" -ne 0 ]; then
		for f in "$MIG_LOGS"/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f"
			tail -n 30 "$f"
		done
	fi
	testbed_down
	rm -rf "$MIG_LOGS"
}

# mig_watch_single NAME...: in the background, every 50 ms, notes any NAME
# running on more than one host at once (the rule: exactly one host).
# mig_assert_single stops the watcher and fails if it saw that.
mig_watch_single() {
	(
		while :; do
			for n in "$@"; do
				c=0
				for ((i = 1; i <= EM_HOSTS; i++)); do running_on "$i" "$n" && c=$((c + 1)); done
				[ "$c" -le 1 ] || echo "$n on $c hosts" >>"$MIG_LOGS/both"
			done
			sleep 0.05
		done
	) &
	MIG_WATCH=$!
}
mig_assert_single() {
	kill "$MIG_WATCH" 2>/dev/null || true
	wait "$MIG_WATCH" 2>/dev/null || true
	[ ! -e "$MIG_LOGS/both" ] || fail "ran on more than one host at once: $(sort -u "$MIG_LOGS/both")"
}

# fd_ask SIP IMAGE EXPECTED_FACES: one facedetect request from a new client
# connection (the test image under tests/integration/data) must find
# EXPECTED_FACES faces.
fd_ask() {
	local n
	n=$(on_client python3 "$REPO/scripts/facedetect-client.py" --timeout 20 "$1" 8080 "$HERE/data/$2" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["n"])') || return 1
	[ "$n" = "$3" ] || {
		echo "$2: $n faces, expected $3" >&2
		return 1
	}
}

# mig_probe_check JSON MIN [acked]: an edgemig-probe summary with no reset,
# error, verify failure or timeout and every one of more than MIN requests
# answered ("acked": and a last acknowledged write). Prints the summary to
# stderr and last_acked (redis probes) on stdout.
mig_probe_check() {
	python3 - "$@" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for k in ("resets", "errors", "verify_failures", "timeouts"):
    assert p[k] == 0, "%s = %s: %s" % (k, p[k], p)
assert p["ok"] == p["requests"] > int(sys.argv[2]), p
if sys.argv[3:] == ["acked"]:
    assert p["last_acked"] > 0, p
print("probe: %d requests over one connection, last_acked %s, max_gap_ms %s, p99 %s ms" %
      (p["requests"], p.get("last_acked"), p["max_gap_ms"], p["latency"]["p99_ms"]), file=sys.stderr)
print(p.get("last_acked") or 0)
PY
}

# mig_redis_verify SIP LAST: every write up to LAST is on the service now
# (read over a new connection from the client).
mig_redis_verify() {
	on_client "$BUILD/edgemig-probe" redis-verify "$1:6379" --last "$2" >"$MIG_LOGS/verify.json" ||
		fail "acknowledged writes lost: $(cat "$MIG_LOGS/verify.json")"
}

# mig_announce SIP I: route SIP to host I as a migration would: on a BGP
# test bed, host I's route hook announces it; else a router /32 route.
mig_announce() {
	if [ -n "${EM_BGP_DIR:-}" ]; then
		on_host "$2" env EDGEMIG_TESTBED_PREFIX="$TESTBED_PREFIX" \
			"$REPO/scripts/testbed-route-hook" announce "$1" || fail "announce $1 on host $2"
	else
		testbed route "$1" "$2"
	fi
}

# mig_route_watch: records the router's route changes (ip -ts monitor) for
# mig_route_report.
mig_route_watch() {
	on_wan ip -ts -4 monitor route >"$MIG_LOGS/routes.log" 2>&1 &
	MIG_ROUTE_WATCH=$!
}

# mig_route_report SIP I REPORT: after a migration to host I (REPORT: its
# --json timeline), waits until the router's FIB routes SIP via host I and
# prints when, in the migration's timeline, host I's hook announced it, the
# source withdrew it and the FIB changed, and the convergence time (FIB
# change - announce).
mig_route_report() {
	local sip=$1 to=$2 rep=$3 tries
	for ((tries = 0; tries < 100; tries++)); do
		grep -q "\] $sip via 10.77.$to.2 " "$MIG_LOGS/routes.log" && break
		sleep 0.05
	done
	python3 - "$sip" "$to" "$rep" "$MIG_LOGS/routes.log" "/run/edgemig-testbed/$TESTBED_PREFIX.hook.log" <<'PY'
import datetime, json, sys
sip, to, rep, routes, hooks = sys.argv[1:]
r = json.load(open(rep))
t0 = r["requested_at_ms"]
ann = [int(l.split()[0]) for l in open(hooks)
       if l.split()[1:] == ["announce", sip, to] and int(l.split()[0]) >= t0]
assert ann, "host %s's hook never announced %s" % (to, sip)
fib = None
for l in open(routes):
    if l.startswith("[") and ("] %s via 10.77.%s.2 " % (sip, to)) in l:
        ts = datetime.datetime.strptime(l[1:l.index("]")], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        if ts * 1000 >= ann[0]:
            fib = ts * 1000
            break
assert fib is not None, "the router's FIB never routed %s via host %s" % (sip, to)
m = r.get("marks", {})
print("route %s -> host %s: announced +%d ms, target_running +%s ms, source withdrew +%s ms, "
      "router FIB +%d ms: convergence %d ms after the announce (handoff %d ms)" %
      (sip, to, ann[0] - t0, m.get("target_running"), m.get("route_withdrawn"), fib - t0,
       fib - ann[0], r["handoff_ms"]))
PY
}

# mig_route_single SIP I: the router knows exactly one BGP path for SIP,
# via host I (every other host withdrew it).
mig_route_single() {
	local out
	out=$(birdc -s "$EM_BGP_DIR/wan.ctl" show route "$1/32" all 2>&1) || true
	[ "$(grep -c "via 10.77" <<<"$out")" = 1 ] && grep -q "via 10.77.$2.2 " <<<"$out" ||
		fail "router's BGP paths for $1 are not exactly one via host $2: $out"
}

# mig_run_redis SIP: redis on host 1 with service IP SIP, routed there, and
# answering PING from the client namespace (one connection over bash's
# /dev/tcp).
mig_run_redis() {
	h 1 run --name redis --ip "$1/32" redis >/dev/null || fail "run redis on host 1"
	mig_announce "$1" 1
	wait_for 20 on_client timeout 3 bash -c "exec 3<>/dev/tcp/$1/6379 && printf 'PING\r\n' >&3 &&
		IFS= read -r l <&3 && [[ \$l == +PONG* ]]" || fail "redis not reachable from the client"
}
