#!/bin/bash
# A pod migration whose `edgemig migrate` dies inside the pod's final
# checkpoint (fault action crash at pod.after-dump-1: redis dumped, the
# sidecar and the infra frozen; and at pod.after-dump-3: all dumped, the
# checkpoint not complete), before FINAL could leave: `edgemig recover` on
# the source brings the pod back there (the pod checkpoint's journal, run
# before the session's own recovery, which removes the staging holding
# the partial checkpoint) and lets its service IP through again (the
# session held it in a blackhole rule). The pod then answers the client
# over the router with its data, and host 2 keeps nothing of it.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/pod-lib.sh"
mig_setup 2 busybox redis

IP=10.66.28.27
pod_web_up "$IP" h 1
mig_announce "$IP" 1

get() { on_client curl -sf -m 2 "http://$IP:8080/n" 2>/dev/null | tr -d '\r:'; }
answers() { [ -n "$(get)" ]; }
states() { h "$1" ps --json | python3 -c 'import json,sys; print(" ".join(sorted(c["name"] + "=" + c["state"] for c in json.load(sys.stdin))))'; }
redis() { # CMD...: one command over a new connection from the client, its reply
	on_client timeout 5 bash -c 'exec 3<>/dev/tcp/$0/6379; printf "%s\r\n" "$*" >&3; IFS= read -r l <&3; echo "${l%$'"'\r'"'}"' "$IP" "$@"
}
wait_for 20 answers || fail "no answer from the sidecar"
redis SET before-crash yes | grep -q OK || fail "SET before the crash"

for point in pod.after-dump-1 pod.after-dump-3; do
	n1=$(get)
	rc=0
	EDGEMIG_FAULT=$point=crash h 1 migrate web --to "$(haddr 2):$MIG_PORT" >/dev/null \
		2>"$MIG_LOGS/mig.err" || rc=$?
	[ "$rc" = 113 ] || fail "$point=crash: exit $rc: $(cat "$MIG_LOGS/mig.err")"
	h 1 recover >"$MIG_LOGS/rec.out" 2>"$MIG_LOGS/rec.err" ||
		fail "recover after $point: $(cat "$MIG_LOGS/rec.out" "$MIG_LOGS/rec.err")"
	[ "$(states 1)" = "db=running side=running web=running" ] || fail "host 1 after $point: $(states 1)"
	nothing_on_2() { [ -z "$(states 2)" ]; }
	wait_for 20 nothing_on_2 || fail "host 2 after $point: $(states 2)"
	wait_for 10 answers || fail "$point: the pod does not answer the client after recover"
	n=$(get)
	[ "$n" -ge "$n1" ] || fail "$point: the counter went back: $n1 before, $n after"
	[ "$(redis GET before-crash)" = '$3' ] || fail "$point: redis lost its data"
	[ -z "$(ls -A "$EM_H1_ROOT/pod-checkpoints" 2>/dev/null)" ] || fail "$point: a journal is left"
	[ -z "$(ls -A "$EM_H1_ROOT/outgoing" 2>/dev/null)" ] || fail "$point: a session is left"
done
h 1 logs side | grep -q 'broke' && fail "the sidecar's connection broke"
echo "ok: a pod migration crashed in its checkpoint is recovered on its source"
