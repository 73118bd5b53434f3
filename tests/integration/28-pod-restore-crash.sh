#!/bin/bash
# A pod restore whose process dies half-way (fault action crash at
# pod.after-member-restore-1: the infra and the first member back, held
# stopped, the second member not yet) is settled by recovery, so that the
# pod is on exactly one host and nothing of it is half-done
# (docs/pods.md, "A restore that dies half-way"):
# - `pod restore DIR` on one host: `edgemig recover` rolls it back, every
#   container of the pod checkpointed and none running, DIR kept; `pod
#   restore DIR` then brings it back, the counter going on from the
#   checkpoint;
# - the target of a pod migration, its edgemigd crashing there: when it
#   starts again and the source runs `recover`, the pod (with a named
#   volume) runs on the source only, its counter going on, and the target
#   keeps no container, process, volume or staging of it.
# The pod: w appends a counter kept in its shell to a named volume every
# 50 ms, r mounts the same volume read-only.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 busybox

IP=10.66.28.37
h 1 pod create --ip "$IP" web >/dev/null || fail "pod create"
h 1 run --pod web --name w -v pvdata:/data busybox sh -c '
	i=0; while :; do i=$((i + 1)); echo $i >>/data/log; sleep 0.05; done' >/dev/null || fail "run w"
h 1 run --pod web --name r -v pvdata:/data:ro busybox sleep 1d >/dev/null || fail "run r"
states() { h "$1" ps --json | python3 -c 'import json,sys; print(" ".join(sorted(c["name"] + "=" + c["state"] for c in json.load(sys.stdin))))'; }
lines() { wc -l <"$1/volumes/pvdata/log" 2>/dev/null || echo 0; }
goes_on() { # ROOT N: the counter passes N, with no gap and no restart
	[ "$(lines "$1")" -gt "$2" ] &&
		python3 -c 'import sys; v = [int(l) for l in open(sys.argv[1])]; sys.exit(v != list(range(1, len(v) + 1)))' \
			"$1/volumes/pvdata/log"
}
procs() { # I: processes of the pod's containers on host I (runc's view)
	local root=EM_H${1}_ROOT c
	for c in w r; do
		runc --root "${!root}/containers/$c/runc" list -q 2>/dev/null || true
	done
	runc --root "${!root}/runc" list -q 2>/dev/null || true
}
wait_for 10 goes_on "$EM_H1_ROOT" 5 || fail "w does not write to its volume"

# --- pod restore on one host ----------------------------------------------------
CK=$EM_H1_ROOT/ck
h 1 pod checkpoint web --to "$CK" >/dev/null || fail "pod checkpoint"
rc=0
EDGEMIG_FAULT=pod.after-member-restore-1=crash h 1 pod restore "$CK" >/dev/null 2>"$MIG_LOGS/err" || rc=$?
[ "$rc" = 113 ] || fail "restore with a crash: exit $rc: $(cat "$MIG_LOGS/err")"
h 1 recover >"$MIG_LOGS/rec.out" 2>"$MIG_LOGS/rec.err" ||
	fail "recover: $(cat "$MIG_LOGS/rec.out" "$MIG_LOGS/rec.err")"
[ "$(states 1)" = "r=checkpointed w=checkpointed web=checkpointed" ] ||
	fail "after recover of a crashed restore: $(states 1)"
[ -z "$(procs 1)" ] || fail "containers of the pod still run after recover: $(procs 1)"
[ -e "$CK/pod.json" ] || fail "recover removed the checkpoint"
n=$(lines "$EM_H1_ROOT")
h 1 pod restore "$CK" >/dev/null 2>"$MIG_LOGS/err" || fail "restore after recover: $(cat "$MIG_LOGS/err")"
[ "$(states 1)" = "r=running w=running web=running" ] || fail "after the restore: $(states 1)"
wait_for 10 goes_on "$EM_H1_ROOT" $((n + 5)) || fail "the counter does not go on after the restore"

# --- the target of a pod migration crashes in its restore ------------------------
mig_daemon_stop 2
EDGEMIG_FAULT=pod.after-member-restore-1=crash mig_daemon 2
h 1 migrate web --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/mig.err" &&
	fail "migration to a crashing target succeeded"
mig_daemon_stop 2
mig_daemon 2 # its start settles what the crash left
h 1 recover >"$MIG_LOGS/rec.out" 2>"$MIG_LOGS/rec.err" ||
	fail "recover on host 1: $(cat "$MIG_LOGS/rec.out" "$MIG_LOGS/rec.err")"
running1() { [ "$(states 1)" = "r=running w=running web=running" ]; }
wait_for 20 running1 || fail "host 1 after the target's crash: $(states 1)"
[ -z "$(states 2)" ] || fail "host 2 keeps containers of the pod: $(states 2)"
[ -z "$(procs 2)" ] || fail "host 2 still runs containers of the pod: $(procs 2)"
[ ! -e "$EM_H2_ROOT/volumes/pvdata" ] || fail "host 2 kept the volume installed"
[ -z "$(ls -A "$EM_H2_ROOT/incoming" 2>/dev/null)" ] || fail "host 2 kept staging: $(ls "$EM_H2_ROOT/incoming")"
n=$(lines "$EM_H1_ROOT")
wait_for 10 goes_on "$EM_H1_ROOT" $((n + 5)) || fail "the counter does not go on on host 1"
h 1 pod rm --force web >/dev/null || fail "pod rm"
echo "ok: pod restores that crashed half-way are settled by recovery"
