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
# - the target of a pod migration, its session process killed there
#   (SIGKILL in a stall at the same point) while edgemigd runs on: that
#   edgemigd settles the pod's restore journal and the session, and once
#   the source runs `recover` the pod (with a named volume) runs on the
#   source only, its counter going on, and the target keeps no container,
#   process, volume or staging of it; a second migration of the pod to
#   the same edgemigd then succeeds, its counter going on there;
# - the source's own roll-back restore (its migration failed after the
#   checkpoint) crashes once every container is back: `recover` finishes
#   it, does not restore the pod again, and lets its service IP through.
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
		# Only a root that exists: runc list would make it, and the
		# directory would take the name from a later migration.
		[ ! -d "${!root}/containers/$c/runc" ] ||
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

# --- the source's own roll-back restore dies, every container back ------------
# (the migration fails after its checkpoint, source.after-checkpoint, and
# its roll-back restore crashes after the last member came back: recovery
# finishes that restore as a local one; the session's recovery then must
# not restore the pod again, and must let its service IP through: the
# session held it in a blackhole rule, which stayed before.)
# (The rules read whole first: grep -q would end the pipe early, and
# under pipefail ip's SIGPIPE would fail the check.)
held1() { [[ "$(nsenter --net="/run/netns/$EM_H1_NS" ip rule)" == *"to $IP blackhole"* ]]; }
rc=0
EDGEMIG_FAULT=source.after-checkpoint=fail,pod.after-member-restore-2=crash \
	h 1 migrate web --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/mig.err" || rc=$?
[ "$rc" = 113 ] || fail "roll-back restore with a crash: exit $rc: $(cat "$MIG_LOGS/mig.err")"
held1 || fail "the session did not hold the pod's IP (the case is not reached): $(cat "$MIG_LOGS/mig.err")"
h 1 recover >"$MIG_LOGS/rec.out" 2>"$MIG_LOGS/rec.err" ||
	fail "recover after the roll-back's crash: $(cat "$MIG_LOGS/rec.out" "$MIG_LOGS/rec.err")"
[ "$(states 1)" = "r=running w=running web=running" ] || fail "after recover: $(states 1)"
held1 && fail "the pod's IP is still held after recover"
[ -z "$(ls -A "$EM_H1_ROOT/outgoing" 2>/dev/null)" ] || fail "a session is left: $(ls "$EM_H1_ROOT/outgoing")"
[ -z "$(ls -A "$EM_H1_ROOT/pod-checkpoints" 2>/dev/null)" ] || fail "a journal is left"
nothing2() { [ -z "$(states 2)" ]; }
wait_for 20 nothing2 || fail "host 2 after the source's roll-back: $(states 2)"
n=$(lines "$EM_H1_ROOT")
wait_for 10 goes_on "$EM_H1_ROOT" $((n + 5)) || fail "the counter does not go on after recover"

# --- the target's session dies in its restore, its edgemigd runs on ------------
# (SIGKILL in the stall at the fault point, as kill_overdue or the session
# cgroup's memory limit kills a session: edgemigd itself settles the pod's
# restore journal, else every later restore of the pod there is refused.)
mig_daemon_stop 2
EDGEMIG_FAULT=pod.after-member-restore-1=stall mig_daemon 2
h 1 migrate web --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/mig.err" &
mig=$!
stalled() { grep -q 'stall at pod.after-member-restore-1' "$MIG_LOGS/edgemigd-h2.log"; }
wait_for 60 stalled || fail "the target's restore did not reach the fault point"
# shellcheck disable=SC2046 # one pid per session child
kill -KILL $(pgrep -P "${MIG_DAEMONS[2]}") || fail "no session child on host 2 to kill"
wait "$mig" && fail "migration whose target session was killed succeeded"
settled2() { [ ! -e "$EM_H2_ROOT/pod-checkpoints/web.json" ] && [ -z "$(ls -A "$EM_H2_ROOT/incoming")" ]; }
wait_for 10 settled2 || fail "host 2 kept the pod's restore journal or staging: $(ls "$EM_H2_ROOT/pod-checkpoints" "$EM_H2_ROOT/incoming")"
h 1 recover >"$MIG_LOGS/rec.out" 2>"$MIG_LOGS/rec.err" ||
	fail "recover on host 1: $(cat "$MIG_LOGS/rec.out" "$MIG_LOGS/rec.err")"
running1() { [ "$(states 1)" = "r=running w=running web=running" ]; }
wait_for 20 running1 || fail "host 1 after the target's session died: $(states 1)"
[ -z "$(states 2)" ] || fail "host 2 keeps containers of the pod: $(states 2)"
[ -z "$(procs 2)" ] || fail "host 2 still runs containers of the pod: $(procs 2)"
[ ! -e "$EM_H2_ROOT/volumes/pvdata" ] || fail "host 2 kept the volume installed"
n=$(lines "$EM_H1_ROOT")
wait_for 10 goes_on "$EM_H1_ROOT" $((n + 5)) || fail "the counter does not go on on host 1"
# The same edgemigd takes the pod now (past the 3 s stall).
h 1 migrate web --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/mig.err" ||
	fail "second migration to host 2: $(cat "$MIG_LOGS/mig.err")"
[ "$(states 2)" = "r=running w=running web=running" ] || fail "host 2 after the migration: $(states 2)"
[ -z "$(states 1)" ] || fail "host 1 keeps containers of the pod after the migration: $(states 1)"
n=$(lines "$EM_H2_ROOT")
wait_for 10 goes_on "$EM_H2_ROOT" $((n + 5)) || fail "the counter does not go on on host 2"
h 2 pod rm --force web >/dev/null || fail "pod rm"
echo "ok: pod restores that crashed half-way are settled by recovery"
