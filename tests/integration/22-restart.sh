#!/bin/bash
# The lifecycle across a "reboot": containers are stopped, started, restarted
# and killed on their writable layer; then edgemigd and every container
# process are killed with SIGKILL, and what a reboot also takes goes too
# (the containers' root file system mounts and network namespaces, so their
# veths and routes), and a new edgemigd brings back the containers whose
# restart policy asks for it (always, on-failure), with their writable
# layer, their named volumes (the same data, still written through to
# <root>/volumes/NAME) and their log; a container without a policy stays
# stopped. While edgemigd runs, a container that dies comes back, and one
# stopped with `edgemig stop` stays stopped.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
DPID=
trap '[ -z "$DPID" ] || kill -9 "$DPID" 2>/dev/null || true; ct_cleanup' EXIT
PORT=$((20000 + $$ % 20000))

ct_pull busybox
state() { em inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
pid_of() { em inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
running() { [ "$(state "$1")" = running ]; }
daemon() {
	"$BUILD/edgemigd" --root "$ROOT" --insecure --listen "127.0.0.1:$PORT" >>"$ROOT/edgemigd.log" 2>&1 &
	DPID=$!
}
TICK='echo "boot $(date +%s%N)"; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'

# --- this host's service range (network.json) ---------------------------------
echo '{"service_range": "10.66.5.0/24"}' >"$ROOT/network.json"
em run --name web --restart always -v webvol:/vol busybox sh -c "$TICK" >/dev/null ||
	fail "run web"
[ "$(em inspect web | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')" = 10.66.5.2 ] ||
	fail "web did not get the first address of the host's range"
echo '{"service_range": "10.66.5.0"}' >"$ROOT/network.json"
em run --name bad busybox >/dev/null 2>"$ROOT/bad.err" && fail "a broken network.json was ignored"
grep -q "network.json: service_range" "$ROOT/bad.err" || fail "network.json error: $(cat "$ROOT/bad.err")"
rm "$ROOT/network.json"

# --- start / stop / restart / kill on the writable layer ---------------------
em run --name job --restart on-failure -v jobvol:/vol busybox sh -c "$TICK" >/dev/null ||
	fail "run job"
em run --name plain busybox sh -c "$TICK" >/dev/null || fail "run plain"
em run --name parked --restart always busybox sh -c "$TICK" >/dev/null || fail "run parked"
em run --name bad --restart sometimes busybox >/dev/null 2>&1 && fail "--restart sometimes accepted"
em inspect web | python3 -c 'import json,sys; assert json.load(sys.stdin)["spec"]["restart"] == "always"' ||
	fail "policy not recorded in the spec"
for c in web job plain; do
	em exec "$c" sh -c "echo $c-data >/data/keep.txt" || fail "writing to $c"
done
for c in web job; do
	em exec "$c" sh -c "mkdir /vol/d && echo $c-vol >/vol/d/v.txt" || fail "writing $c's volume"
done
em start web >/dev/null 2>&1 && fail "start of a running container succeeded"
em stop -t 2 parked >/dev/null || fail "stop parked"
em start parked >/dev/null || fail "start parked"
running parked || fail "parked not running after start"
em stop -t 2 parked >/dev/null || fail "stop parked again"
em restart -t 2 web >/dev/null || fail "restart web"
running web || fail "web not running after restart"
[ "$(em exec web cat /data/keep.txt)" = web-data ] || fail "restart lost the writable layer"
em kill --signal BOGUS web >/dev/null 2>&1 && fail "kill --signal BOGUS accepted"
# The new boot line is in the log once the new log forwarder got to it.
wait_for 10 bash -c '[ "$(em logs web | grep -c "^boot ")" = 2 ]' ||
	fail "the log after restart: $(em logs web | grep boot)"
# `logs` prints from the last N lines to the end of the log as it finds it:
# web ticks on, so its output may hold a line more; only the stopped parked's
# log holds still for an exact count. And `logs | grep -q` would fail under
# pipefail whenever grep is gone before a tick written meanwhile (EPIPE).
[ "$(em logs --tail 1 parked | wc -l)" = 1 ] || fail "logs --tail 1: $(em logs --tail 1 parked)"
LAST3=$(em logs --tail 3 web) || fail "logs --tail 3 web"
grep -q '^tick ' <<<"$LAST3" || fail "logs --tail 3 web: $LAST3"

# --- the reboot: SIGKILL edgemigd and every container process ---------------
daemon
sleep 1
kill -0 "$DPID" || fail "edgemigd did not start: $(tail -5 "$ROOT/edgemigd.log")"
PIDS=
for c in web job plain; do PIDS="$PIDS $(pid_of "$c")"; done
kill -9 "$DPID" $PIDS
wait "$DPID" 2>/dev/null || true
DPID=
for p in $(pgrep -x edgemig-logger || true); do
	ls -l "/proc/$p/fd" 2>/dev/null | grep -q " $ROOT/" && kill -9 "$p"
done
for p in $PIDS; do wait_for 5 bash -c "! kill -0 $p" || fail "pid $p survived SIGKILL"; done
# What a reboot takes besides the processes: every mount under the root (the
# containers' root file systems, their network namespaces' bind mounts;
# with the last reference the namespaces, their veths and routes go too).
# The writable layers and volumes are plain directories and stay.
MOUNTS=$({ grep " $ROOT/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r)
for c in web job plain; do
	grep -qx "$ROOT/containers/$c/rootfs" <<<"$MOUNTS" && grep -qx "$ROOT/netns/$c" <<<"$MOUNTS" ||
		fail "$c: no rootfs or netns mount to take away: $MOUNTS"
done
for m in $MOUNTS; do umount "$m" || fail "umount $m"; done
[ -z "$(grep " $ROOT/" /proc/self/mountinfo)" ] || fail "mounts left after the reboot"
daemon
wait_for 30 running web || fail "web (always) did not come back: $(tail -5 "$ROOT/edgemigd.log")"
wait_for 30 running job || fail "job (on-failure) did not come back"
wait_for 30 running parked || fail "parked (always, stopped by the user) did not come back at start"
sleep 3
[ "$(state plain)" = stopped ] || fail "plain (no policy) is $(state plain), want stopped"
for c in web job; do
	[ "$(em exec "$c" cat /data/keep.txt)" = "$c-data" ] || fail "$c lost its writable layer"
	em exec "$c" ip -o addr show dev eth0 | grep -q "inet $(em inspect "$c" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')/32" ||
		fail "$c lacks its service IP"
done
for c in web job; do
	[ "$(em exec "$c" cat /vol/d/v.txt)" = "$c-vol" ] || fail "$c's volume lost its data"
	em exec "$c" sh -c "echo $c-after >/vol/d/after.txt" || fail "$c cannot write its volume after the reboot"
	[ "$(cat "$ROOT/volumes/${c}vol/d/after.txt")" = "$c-after" ] ||
		fail "$c's /vol is not <root>/volumes/${c}vol after the reboot"
done
[ "$(em logs web | grep -c '^boot ')" = 3 ] || fail "web's log was not continued: $(em logs web | grep boot)"
grep -q 'restarting web (restart policy, died)' "$ROOT/edgemigd.log" || fail "no restart logged"

# --- while edgemigd runs ------------------------------------------------------
boots() { em logs "$1" | grep -c '^boot ' || true; }
B=$(boots job)
em kill job >/dev/null || fail "kill job"
wait_for 20 bash -c "[ \$(em logs job | grep -c '^boot ') -gt $B ]" || fail "job was not restarted after it died"
wait_for 10 running job || fail "job not running after its restart"
em stop -t 1 job >/dev/null || fail "stop job"
sleep 5
[ "$(state job)" = stopped ] || fail "job came back after edgemig stop"
[ "$(state plain)" = stopped ] || fail "plain came back"
kill "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=
echo "ok: restart policies across a kill -9 of edgemigd and the containers"
