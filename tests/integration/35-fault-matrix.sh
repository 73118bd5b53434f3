#!/bin/bash
# Fault injection (EDGEMIG_FAULT, util/fault.h) at the phases of a migration,
# on the source (the edgemig process) and on the target (an edgemigd session):
# crashes, a dropped link, a corrupted frame, a full disk. After each case
# (and `edgemig recover` where a process died), the service runs on exactly
# one host, its state is intact (the busybox counter never restarts or
# skips), and nothing is left over: no staging dirs, no stray containers,
# netns files, mounts or runc state.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 busybox

names_on() { h "$1" ps --json | python3 -c 'import json,sys; print(" ".join(sorted(c["name"] for c in json.load(sys.stdin))))'; }

# leftovers I: everything host I holds must belong to a running container.
leftovers() {
	local i=$1 root=EM_H${1}_ROOT r running n ns
	r=${!root}
	running=$(h "$i" ps --json | python3 -c 'import json,sys; print(" ".join(sorted(c["name"] for c in json.load(sys.stdin) if c["state"] == "running")))')
	[ "$(names_on "$i")" = "$running" ] || fail "host $i has non-running containers: $(h "$i" ps)"
	[ -z "$(find "$r/incoming" "$r/outgoing" -mindepth 1 -maxdepth 1 2>/dev/null)" ] ||
		fail "host $i: staging left: $(ls "$r/incoming" "$r/outgoing" 2>/dev/null)"
	n=$(find "$r/netns" -mindepth 1 2>/dev/null | wc -l)
	[ "$n" -eq "$(echo "$running" | wc -w)" ] || fail "host $i: $n netns files for [$running]"
	n=$(runc --root "$r/runc" list -q 2>/dev/null | wc -l)
	[ "$n" -eq "$(echo "$running" | wc -w)" ] || fail "host $i: $n runc containers for [$running]"
	n=$(grep -c " $r/containers/[^/]*/rootfs " /proc/self/mountinfo || true)
	[ "$n" -eq "$(echo "$running" | wc -w)" ] || fail "host $i: $n rootfs mounts for [$running]"
	# What a target pre-warms (migrate/target/prewarm.h): the container's
	# directory (bundle), its host veth and service route.
	n=$(find "$r/containers" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	[ "$n" -eq "$(echo "$running" | wc -w)" ] || fail "host $i: $n container dirs for [$running]: $(ls "$r/containers")"
	ns=EM_H${i}_NS
	n=$(ip -n "${!ns}" -o link show | grep -c ': em[0-9a-f]\{10\}[@:]' || true)
	[ "$n" -eq "$(echo "$running" | wc -w)" ] || fail "host $i: $n container veths for [$running]"
}

# check NAME: runs on exactly one host, its counter intact; returns the host.
check() {
	local name=$1 on=() i
	for i in 1 2; do running_on "$i" "$name" && on+=("$i"); done
	[ ${#on[@]} -eq 1 ] || fail "$name runs on ${#on[@]} hosts (${on[*]:-none})"
	i=${on[0]}
	wait_for 10 h "$i" exec "$name" test -s /data/counter.log || fail "$name: no counter"
	h "$i" exec "$name" cat /data/counter.log | awk 'NR > 1 && $1 != prev + 1 { bad = 1 } { prev = $1 } END { exit bad }' ||
		fail "$name: counter restarted or skipped"
	leftovers 1
	leftovers 2
	echo "$i"
}

CASE=0
# run_case SIDE FAULTS EXPECT [HOST]: one migration 1 -> 2 with the faults
# (EDGEMIG_FAULT syntax). EXPECT: fail (migrate exits non-zero), ok, or any.
# HOST: where the service must end (default: either, but only one).
run_case() {
	local side=$1 faults=$2 expect=$3 want=${4:-} name out st where
	CASE=$((CASE + 1))
	name=c$CASE
	h 1 run --name "$name" --ip "10.66.1.$CASE/32" busybox >/dev/null || fail "run $name"
	wait_for 10 h 1 exec "$name" test -s /data/counter.log || fail "$name not counting"
	sleep 0.5
	if [ "$side" = target ]; then
		mig_daemon_stop 2
		EDGEMIG_FAULT="$faults" mig_daemon 2
		st=0
		out=$(h 1 migrate "$name" --to "$(haddr 2):$MIG_PORT" 2>&1) || st=$?
		sleep 0.5 # the daemon reaps the session and recovers
		mig_daemon_stop 2
		mig_daemon 2
	else
		st=0
		out=$(EDGEMIG_FAULT="$faults" h 1 migrate "$name" --to "$(haddr 2):$MIG_PORT" 2>&1) || st=$?
		wait_for 35 bash -c "[ -z \"\$(ls '$EM_H2_ROOT/incoming' 2>/dev/null)\" ]" ||
			fail "target session did not finish after the source's fault"
	fi
	case $expect in
	fail) [ "$st" -ne 0 ] || fail "$faults: migrate succeeded" ;;
	ok) [ "$st" -eq 0 ] || fail "$faults: migrate failed ($st): $out" ;;
	esac
	# Never on two hosts, not even before recovery.
	! { running_on 1 "$name" && running_on 2 "$name"; } || fail "$faults: $name runs on both hosts"
	h 1 recover >/dev/null || fail "recover on host 1: $(h 1 recover 2>&1)"
	where=$(check "$name")
	[ -z "$want" ] || [ "$where" = "$want" ] || fail "$faults: $name ended on host $where, not $want"
	printf '%-56s exit %-3s -> runs on host %s\n' "$faults" "$st" "$where"
	echo "$out" | tail -n 1 | sed 's/^/    /'
	h "$where" rm -f "$name" >/dev/null
}

run_case source source.after-handshake=drop fail 1
run_case source source.after-layers=corrupt any 1
run_case source source.after-precopy=error fail 1
run_case source source.after-checkpoint=crash fail 1
run_case source source.after-final=drop any
run_case source source.before-commit=crash fail 2
run_case target target.after-hello=crash fail 1
run_case target target.after-layers=enospc fail 1
# A corrupt echo of a small round: the source no longer waits for that
# echo before the freeze (docs/protocol.md), so it may read it only after
# FINAL; the commit rule then asks the target, which restored, and the
# service ends there. Either way on one host, nothing lost.
run_case target target.round-end=corrupt any
# After the target pre-warmed the container (migrate/target/prewarm.h):
# the session's failure, and its crash (the restarted daemon's recovery),
# leave none of it (leftovers: no container directory, netns file, veth,
# mount or runc state). In the host's user namespace ({"userns": false})
# the pre-warm makes the network namespace, veth and route too.
for r in "$EM_H1_ROOT" "$EM_H2_ROOT"; do echo '{"userns": false}' >"$r/security.json"; done
run_case target target.after-prewarm=error fail 1
run_case target target.after-prewarm=crash fail 1
rm -f "$EM_H1_ROOT/security.json" "$EM_H2_ROOT/security.json"
run_case target target.before-restore=enospc fail 1
run_case target target.after-restore=crash any 2
run_case target target.before-ack=crash ok 2
# The commit (docs/protocol.md, "Commit rule and failure handling"): the
# source journals "committing" before DONE and "committed" after the ack;
# the target keeps a restored copy until the outcome is known. Each of these lost the service on both
# hosts before: the source had journalled "committed" and dropped its
# checkpoint while the target removed its uncommitted copy.
# - the source crashes after deciding: `recover` commits with the target
run_case source source.after-committing=crash fail 2
# - DONE is lost in flight: the source settles the outcome at once
run_case source source.lose-done=drop ok 2
# - the target crashes after DONE arrived, before it journalled it
run_case target target.after-done=crash ok 2
# - a partition during the commit that outlasts the source's retries, cut
#   before DONE arrived, then after: the source stays stopped in doubt, the
#   target keeps running; `recover` settles it once the target answers
run_case source source.lose-done=drop,source.outcome=error fail 2
run_case source source.after-done=drop,source.outcome=error fail 2

# A host gone for good is the one case that needs an operator: `recover`
# lists the session in doubt with its fix, and the fix keeps one copy.
# doubt_field HOST FIELD: FIELD of the first session in doubt on HOST (whose
# `recover --json` must exit 1: something is left in doubt).
doubt_field() {
	local j
	j=$(h "$1" recover --json) && fail "host $1: recover reports nothing in doubt: $j"
	echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin)["in_doubt"]; print(d[0][sys.argv[1]] if d else "")' "$2"
}
start_case() { # NAME: a fresh counting container on host 1
	h 1 run --name "$1" --ip "10.66.1.$CASE/32" busybox >/dev/null || fail "run $1"
	wait_for 10 h 1 exec "$1" test -s /data/counter.log || fail "$1 not counting"
	sleep 0.5
}
target_done() {
	wait_for 35 bash -c "[ -z \"\$(ls '$EM_H2_ROOT/incoming' 2>/dev/null)\" ]" ||
		fail "target session did not finish"
}

# A real partition during the commit: the source has decided (journalled
# "committing") when the link to host 2 goes down, and it stays down past
# the source's retries. The source ends in doubt with the container stopped,
# host 2 keeps running it; once the link is back, `recover` commits.
CASE=$((CASE + 1))
start_case "c$CASE"
EDGEMIG_FAULT=source.after-committing=stall h 1 migrate "c$CASE" --to "$(haddr 2):$MIG_PORT" \
	--io-timeout 5 >"$MIG_LOGS/partition.out" 2>&1 &
MPID=$!
wait_for 60 grep -q "stall at source.after-committing" "$MIG_LOGS/partition.out" ||
	fail "partition: the migration never reached the commit: $(cat "$MIG_LOGS/partition.out")"
on_wan ip link set h2 down
st=0
wait "$MPID" || st=$?
[ "$st" -ne 0 ] && grep -q "migration in doubt" "$MIG_LOGS/partition.out" ||
	fail "partition: migrate exited $st: $(tail -n 3 "$MIG_LOGS/partition.out")"
running_on 2 "c$CASE" && ! running_on 1 "c$CASE" || fail "c$CASE in doubt: not on host 2 alone"
on_wan ip link set h2 up
target_done
h 1 recover >/dev/null || fail "recover on host 1 after the partition: $(h 1 recover 2>&1)"
[ "$(check "c$CASE")" = 2 ] || fail "c$CASE: the partition did not end on host 2"
printf '%-56s exit %-3s -> runs on host 2\n' "partition after committing (link down)" "$st"
tail -n 1 "$MIG_LOGS/partition.out" | sed 's/^/    /'
h 2 rm -f "c$CASE" >/dev/null

# keep_local_case GONE: the target vanishes during the commit; in doubt, the
# service runs only on host 2. With GONE=yes host 2 is then lost with its
# copy; with GONE=no the operator's word is wrong and host 2 comes back with
# its copy running. Either way `--keep-local` restores it on host 1, and the
# tombstone it leaves makes the next `recover` abort the session on host 2.
keep_local_case() {
	local name S
	CASE=$((CASE + 1))
	name=c$CASE
	start_case "$name"
	EDGEMIG_FAULT=source.lose-done=drop,source.outcome=error h 1 migrate "$name" \
		--to "$(haddr 2):$MIG_PORT" >/dev/null 2>&1 && fail "$name: migrate succeeded"
	target_done
	running_on 2 "$name" && ! running_on 1 "$name" || fail "$name in doubt: not on host 2 alone"
	mig_daemon_stop 2
	S=$(doubt_field 1 session)
	doubt_field 1 fix | grep -q -- "--keep-local $S" || fail "no --keep-local fix: $(h 1 recover 2>&1)"
	[ "$1" = no ] || h 2 rm -f "$name" >/dev/null # host 2 is gone for good
	h 1 recover --keep-local "$S" >/dev/null || fail "--keep-local: $(h 1 recover --keep-local "$S" 2>&1)"
	mig_daemon 2
	# The tombstone goes once host 2 answers (its daemon may still be starting).
	for _ in $(seq 20); do
		h 1 recover >/dev/null 2>&1 || fail "recover on host 1 after --keep-local"
		[ -n "$(ls "$EM_H1_ROOT/outgoing" 2>/dev/null)" ] || break
		sleep 0.5
	done
	[ "$(check "$name")" = 1 ] || fail "$name: --keep-local did not keep it on host 1"
	printf '%-56s -> runs on host 1\n' "target gone ($1), --keep-local"
	h 1 rm -f "$name" >/dev/null
}
keep_local_case yes
keep_local_case no

# The source dies after it decided to commit and never comes back: host 2
# lists its copy in doubt; --keep-here commits it; when the source host
# returns after all, its recovery learns "committed" and drops its copy.
CASE=$((CASE + 1))
start_case "c$CASE"
EDGEMIG_FAULT=source.after-committing=crash h 1 migrate "c$CASE" \
	--to "$(haddr 2):$MIG_PORT" >/dev/null 2>&1 && fail "c$CASE: migrate succeeded"
target_done
S=$(doubt_field 2 session)
[ "$(doubt_field 2 side)" = target ] || fail "host 2 does not list c$CASE as its own in doubt"
doubt_field 2 fix | grep -q -- "--keep-here $S" || fail "no --keep-here fix: $(h 2 recover 2>&1)"
h 2 recover --keep-here "$S" >/dev/null || fail "--keep-here: $(h 2 recover --keep-here "$S" 2>&1)"
h 2 recover >/dev/null || fail "host 2 still in doubt after --keep-here"
h 1 recover >/dev/null || fail "recover on host 1"
[ "$(check "c$CASE")" = 2 ] || fail "c$CASE: --keep-here did not keep it on host 2"
echo "source gone, --keep-here                                -> runs on host 2"
h 2 rm -f "c$CASE" >/dev/null
echo "ok: $CASE fault cases"
