#!/bin/bash
# Each edgemigd session child runs in a cgroup of its own (issue 15 §3):
# a connection's child shows edgemig-session-<pid> under edgemigd's own
# pids and memory cgroups in /proc/PID/cgroup, with --session-pids and
# --session-memory as its limits, and the cgroup is gone once the child
# is. A container migrated in by a session does not stay in the
# session's cgroup (runc puts it in its own), and no session cgroup is
# left after the migration.
#
# Session cgroups go under edgemigd's own cgroup, which for every test bed
# on this machine would be the root one: so this test runs its daemons in
# a pids and a memory cgroup of its own (t47-<pid>, not named edgemig-*,
# which other tests' census counts), and counts only the session cgroups
# under them; another test bed's sessions cannot make it fail, and a
# session cgroup this one leaks still does.
#
# Both daemons share that cgroup with different state roots, as parallel
# test beds share the root cgroup: edgemigd's start sweeps only the stale
# session cgroups its own root owns (edgemig-session-<tag>-<pid>, tag from
# the root), never another root's.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
cg_opts() { printf '%s\n' --session-pids 200 --session-memory 512M; }
MIG_DAEMON_OPTS_FN=cg_opts
[ -d /sys/fs/cgroup/pids ] && [ -d /sys/fs/cgroup/memory ] ||
	skip "needs cgroup v1 pids and memory hierarchies at /sys/fs/cgroup"
BED_CG=t47-$$
bed_cg_in() {
	local c
	for c in pids memory; do
		mkdir -p "/sys/fs/cgroup/$c/$BED_CG" && echo $$ >"/sys/fs/cgroup/$c/$BED_CG/cgroup.procs" ||
			skip "cannot make a $c cgroup for this test bed"
	done
}
# After the daemons are gone: this shell back to the root, the bed's
# cgroups removed (a process left in them only delays that).
bed_cg_out() {
	local c i
	for c in pids memory; do
		echo $$ >"/sys/fs/cgroup/$c/cgroup.procs" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			rmdir "/sys/fs/cgroup/$c/$BED_CG"/edgemig-session-* 2>/dev/null || true
			rmdir "/sys/fs/cgroup/$c/$BED_CG" 2>/dev/null && break
			sleep 0.1
		done
	done
}
bed_cg_in
trap bed_cg_out EXIT
mig_setup 2 busybox
trap 'mig_cleanup; bed_cg_out' EXIT

DPID=${MIG_DAEMONS[2]}
own() { awk -F: -v c="$1" '$2 == c {print $3}' "/proc/$DPID/cgroup" | sed 's,^/$,,'; }
PIDS_BASE=/sys/fs/cgroup/pids$(own pids)
MEM_BASE=/sys/fs/cgroup/memory$(own memory)
[ "$(own pids)" = "/$BED_CG" ] && [ "$(own memory)" = "/$BED_CG" ] ||
	fail "edgemigd is not in the test bed's cgroups: $(cat "/proc/$DPID/cgroup")"
grep -q "each session in a cgroup of its own: at most 200 processes, 512 MiB" \
	"$MIG_LOGS/edgemigd-h2.log" || fail "edgemigd did not set up session cgroups"
sessions_left() { find "$PIDS_BASE" "$MEM_BASE" -maxdepth 1 -name 'edgemig-session-*' | grep -q .; }
# The tag of host I's state root in its session cgroups' names.
tag() { printf %s "$(realpath "$(eval echo "\$EM_H${1}_ROOT")")" | sha256sum | cut -c1-8; }
T2=$(tag 2)

# A connection that never says hello: its child waits in the handshake.
on_client bash -c "exec 3<>/dev/tcp/$(haddr 2)/$MIG_PORT; sleep 4" &
HOLD=$!
child() { pgrep -P "$DPID" | head -n 1; }
wait_for 5 child || fail "no session child for the connection"
C=$(child)
SCG=edgemig-session-$T2-$C
grep -qx "[0-9]*:pids:$(own pids)/$SCG" "/proc/$C/cgroup" ||
	fail "session $C not in its pids cgroup $SCG: $(cat "/proc/$C/cgroup")"
grep -qx "[0-9]*:memory:$(own memory)/$SCG" "/proc/$C/cgroup" ||
	fail "session $C not in its memory cgroup $SCG: $(cat "/proc/$C/cgroup")"
[ "$(cat "$PIDS_BASE/$SCG/pids.max")" = 200 ] || fail "pids.max"
[ "$(cat "$MEM_BASE/$SCG/memory.limit_in_bytes")" = $((512 << 20)) ] ||
	fail "memory.limit_in_bytes"
wait "$HOLD" || true
wait_for 20 sh -c "! kill -0 $C 2>/dev/null" || fail "session $C did not end"
wait_for 10 sh -c "[ ! -e '$PIDS_BASE/$SCG' ] && [ ! -e '$MEM_BASE/$SCG' ]" ||
	fail "session $C's cgroup was not removed"
echo "session $C ran in $SCG (pids.max 200, 512 MiB); removed after it ended"

# Stale session cgroups of both roots (pid 99999999 is above any pid_max):
# host 2's daemon, restarted, sweeps its own and leaves host 1's.
for c in "$PIDS_BASE" "$MEM_BASE"; do
	mkdir "$c/edgemig-session-$T2-99999999" "$c/edgemig-session-$(tag 1)-99999999"
done
mig_daemon_stop 2
mig_daemon 2
DPID=${MIG_DAEMONS[2]}
for c in "$PIDS_BASE" "$MEM_BASE"; do
	[ ! -e "$c/edgemig-session-$T2-99999999" ] || fail "host 2 left its stale $c/edgemig-session-$T2-99999999"
	[ -e "$c/edgemig-session-$(tag 1)-99999999" ] || fail "host 2 swept host 1's stale session cgroup in $c"
	rmdir "$c/edgemig-session-$(tag 1)-99999999"
done
echo "host 2's start swept its own stale session cgroups, not host 1's"

# A real migration: the restored container lives in its own cgroup.
SIP=10.66.0.47
h 1 run --name counter --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"
h 1 migrate counter --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig.json" ||
	fail "migration: $(cat "$MIG_LOGS/mig.json")"
running_on 2 counter || fail "counter not running on host 2"
CPID=$(runc --root "$EM_H2_ROOT/runc" state counter | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
grep -q "edgemig-session" "/proc/$CPID/cgroup" &&
	fail "the restored container is in a session cgroup: $(cat "/proc/$CPID/cgroup")"
grep -q ":pids:/edgemig-" "/proc/$CPID/cgroup" ||
	fail "the restored container is not in its own pids cgroup: $(cat "/proc/$CPID/cgroup")"
wait_for 20 sh -c "[ \$(pgrep -P $DPID | wc -l) -eq 0 ]" || fail "session children still alive"
wait_for 10 sh -c "! find '$PIDS_BASE' '$MEM_BASE' -maxdepth 1 -name 'edgemig-session-*' | grep -q ." ||
	fail "session cgroups left: $(find "$PIDS_BASE" "$MEM_BASE" -maxdepth 1 -name 'edgemig-session-*')"
grep -q "removing the session cgroup" "$MIG_LOGS/edgemigd-h2.log" &&
	fail "a session cgroup could not be removed: $(grep 'removing the session cgroup' "$MIG_LOGS/edgemigd-h2.log")"
sessions_left && fail "session cgroups left"
echo "PASS: session children in their own cgroups, removed; the container in its own"
