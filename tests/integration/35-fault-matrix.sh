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
	local i=$1 root=EM_H${1}_ROOT r running n
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
# run_case SIDE POINT ACTION EXPECT_OK: one migration 1 -> 2 with the fault.
run_case() {
	local side=$1 point=$2 action=$3 name out st where
	CASE=$((CASE + 1))
	name=c$CASE
	h 1 run --name "$name" --ip "10.88.1.$CASE/32" busybox >/dev/null || fail "run $name"
	wait_for 10 h 1 exec "$name" test -s /data/counter.log || fail "$name not counting"
	sleep 0.5
	if [ "$side" = target ]; then
		mig_daemon_stop 2
		EDGEMIG_FAULT="$point=$action" mig_daemon 2
		st=0
		out=$(h 1 migrate "$name" --to "$(haddr 2):$MIG_PORT" 2>&1) || st=$?
		sleep 0.5 # the daemon reaps the session and recovers
		mig_daemon_stop 2
		mig_daemon 2
	else
		st=0
		out=$(EDGEMIG_FAULT="$point=$action" h 1 migrate "$name" --to "$(haddr 2):$MIG_PORT" 2>&1) || st=$?
		wait_for 35 bash -c "[ -z \"\$(ls '$EM_H2_ROOT/incoming' 2>/dev/null)\" ]" ||
			fail "target session did not finish after the source's fault"
	fi
	[ "$st" -ne 0 ] || [ "$action" = corrupt ] || fail "$point=$action: migrate succeeded"
	h 1 recover >/dev/null || fail "recover on host 1"
	where=$(check "$name")
	printf '%-28s %-8s exit %-3s -> runs on host %s\n' "$point" "$action" "$st" "$where"
	echo "$out" | tail -n 1 | sed 's/^/    /'
	h "$where" rm -f "$name" >/dev/null
}

run_case source source.after-handshake drop
run_case source source.after-layers corrupt
run_case source source.after-precopy error
run_case source source.after-checkpoint crash
run_case source source.after-final drop
run_case source source.before-commit crash
run_case target target.after-hello crash
run_case target target.after-layers enospc
run_case target target.round-end corrupt
run_case target target.before-restore enospc
run_case target target.after-restore crash
run_case target target.before-ack crash
echo "ok: $CASE fault cases"
