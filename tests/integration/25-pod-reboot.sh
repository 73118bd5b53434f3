#!/bin/bash
# A pod across a "reboot": edgemigd and every process of a pod (infra,
# redis, sidecar; all --restart always) are killed with SIGKILL; a new
# edgemigd starts the infra container first and the members into its new
# namespaces, and the sidecar serves redis's counter on the pod's IP again.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
DPID=
trap '[ -z "$DPID" ] || kill -9 "$DPID" 2>/dev/null || true
"$EM" --root "$ROOT" pod rm --force web >/dev/null 2>&1 || true; ct_cleanup' EXIT
PORT=$((20000 + $$ % 20000))
ct_pull busybox
ct_pull redis
daemon() {
	"$BUILD/edgemigd" --root "$ROOT" --insecure --listen "127.0.0.1:$PORT" >>"$ROOT/edgemigd.log" 2>&1 &
	DPID=$!
}
pid_of() { em inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
get() { curl -sf -m 2 "http://10.66.7.9:8080/n" 2>/dev/null | tr -d '\r:'; }
answers() { [ -n "$(get)" ]; }
SIDECAR='mkdir -p /www; httpd -p 8080 -h /www
while :; do printf "INCR reads\r\n" | nc 127.0.0.1 6379 >/www/n.tmp && mv /www/n.tmp /www/n; sleep 0.01; done'

em pod create --ip 10.66.7.9 --restart always web >/dev/null || fail "pod create"
# Named so that a plain name order would start a member before the infra.
em run --pod web --restart always --name a-db redis >/dev/null || fail "run a-db"
em run --pod web --restart always --name a-side busybox sh -c "$SIDECAR" >/dev/null ||
	fail "run a-side"
wait_for 10 answers || fail "no answer from the sidecar"
em pod create --restart sometimes x >/dev/null 2>&1 && fail "pod create --restart sometimes"

# --- the reboot -------------------------------------------------------------------
daemon
sleep 1
kill -0 "$DPID" || fail "edgemigd did not start: $(tail -5 "$ROOT/edgemigd.log")"
PIDS=
for c in web a-db a-side; do PIDS="$PIDS $(pid_of "$c")"; done
kill -9 "$DPID" $PIDS
wait "$DPID" 2>/dev/null || true
DPID=
for p in $PIDS; do wait_for 5 bash -c "! kill -0 $p" || fail "pid $p survived SIGKILL"; done
! answers || fail "the pod still answers after the kill"
daemon
wait_for 40 answers || fail "the pod did not come back: $(tail -5 "$ROOT/edgemigd.log")"
for ns in net ipc uts; do
	[ "$(readlink "/proc/$(pid_of a-db)/ns/$ns")" = "$(readlink "/proc/$(pid_of web)/ns/$ns")" ] ||
		fail "a-db is not in the restarted infra's $ns namespace"
done
grep -q 'restarting web (restart policy, died)' "$ROOT/edgemigd.log" || fail "no restart of web logged"
# The infra first: no member was tried before its pod ran (and backed off).
! grep 'restarting a-.*next attempt' "$ROOT/edgemigd.log" ||
	fail "a member was started before the pod's infra container"
echo "ok"
