#!/bin/bash
# The route follows the commit's outcome on the BGP test bed (`scripts/testbed
# up --bgp`): a target that crashes after its restore and announce (before
# RESTORE_OK), and one that crashes after DONE arrived. Both commit: the
# source settles with the restarted edgemigd. Then the service runs on
# host 2 alone, the router has exactly one BGP path for its IP, via host 2,
# and its FIB routes the IP there: the source withdrew at the commit (its
# RESTORE_OK was lost) or at RESTORE_OK, and nobody else announces.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
for t in bird birdc; do command -v "$t" >/dev/null || skip "$t is not installed (scripts/setup)"; done
export TESTBED_UP_OPTS=--bgp
mig_setup 2 busybox

# one_path SIP I: the router's only BGP path for SIP is via host I, and its
# FIB routes SIP there.
one_path() {
	local out
	out=$(birdc -s "$EM_BGP_DIR/wan.ctl" show route "$1/32" all 2>&1) || true
	[ "$(grep -c "via 10.77" <<<"$out")" = 1 ] && grep -q "via 10.77.$2.2 " <<<"$out" &&
		on_wan ip -4 route show "$1/32" | grep -q "via 10.77.$2.2 "
}

CASE=0
# run_case FAULT HOST: migrate 1 -> 2 with FAULT in host 2's edgemigd; the
# service must end on HOST.
run_case() {
	local name sip st=0 where=() i
	CASE=$((CASE + 1))
	name=c$CASE sip=10.66.1.$CASE
	h 1 run --name "$name" --ip "$sip/32" busybox >/dev/null || fail "run $name"
	mig_announce "$sip" 1
	wait_for 10 one_path "$sip" 1 || fail "$sip not routed to host 1"
	mig_daemon_stop 2
	EDGEMIG_FAULT="$1" mig_daemon 2
	h 1 migrate "$name" --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/$name.out" 2>&1 || st=$?
	sleep 0.5 # the daemon reaps the session
	mig_daemon_stop 2
	mig_daemon 2 # recovers what the crashed session left
	h 1 recover >/dev/null || fail "recover on host 1: $(h 1 recover 2>&1)"
	for i in 1 2; do running_on "$i" "$name" && where+=("$i"); done
	[ "${where[*]:-}" = "$2" ] || fail "$1: $name runs on [${where[*]:-}], not on host $2 alone"
	wait_for 5 one_path "$sip" "$2" || fail "$1: $sip is not routed to host $2 alone:" \
		"$(birdc -s "$EM_BGP_DIR/wan.ctl" show route "$sip/32" all 2>&1 | tail -n +2)"
	printf '%-28s exit %s -> runs on host %s, one BGP path, via host %s\n' "$1" "$st" "$2" "$2"
	h "$2" rm -f "$name" >/dev/null
	# `edgemig rm` leaves routing to the operator: withdraw by hand.
	on_host "$2" env EDGEMIG_TESTBED_PREFIX="$TESTBED_PREFIX" \
		"$REPO/scripts/testbed-route-hook" withdraw "$sip" || fail "withdraw $sip"
}

# Restored and announced, then gone before RESTORE_OK: the source settles
# the commit and withdraws then.
run_case target.after-restore=crash 2
# DONE arrived, the target died before journalling it: the source settles
# the commit with the restarted daemon; its own path went at RESTORE_OK.
run_case target.after-done=crash 2
echo ok
