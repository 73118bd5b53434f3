#!/bin/bash
# Gratuitous ARP for edges on one layer-2 segment (`scripts/testbed up
# --l2`): hosts 1 and 2 and the client share a bridge; the client reaches the
# service IP on-link and each host answers ARP for the service IPs it routes
# to its containers (proxy ARP). busybox with a service IP migrates 1 -> 2;
# host 2's route hook (dist/route-hook, arp-interfaces = eth1) sends
# unsolicited ARP. Right after the migration, with no packet from the client
# in between and long before its entry could expire (REACHABLE for 15-45 s,
# then STALE until used), the client's neighbour entry for the service IP
# holds host 2's MAC, and the service answers there.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
command -v arping >/dev/null || skip "arping is not installed (scripts/setup installs iputils-arping)"
export TESTBED_UP_OPTS=--l2
mig_setup 2 busybox

SIP=10.66.0.13
mac() { on_host "$1" ip -o link show dev eth1 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }
neigh_mac() { on_client ip neigh show "$SIP" dev eth1 | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }'; }
MAC1=$(mac 1) MAC2=$(mac 2)
# Host I's arpings for the service IP still running (the hosts share the
# PID namespace; each has a network namespace of its own).
arpings_on() {
	local ns pid
	ns=$(on_host "$1" readlink /proc/self/ns/net)
	for pid in $(pgrep -x arping || true); do
		[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$ns" ] &&
			tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q " $SIP $" && echo "$pid"
	done
	return 0
}
# Host 1 announces for 10 s, so its ARPs are still going when the service
# leaves: a late one would turn the client back to host 1 after host 2's
# first (as happened when a migration ended within 2 s of `run`).
echo "arp-count = 10" >>"/run/edgemig-testbed/$TESTBED_PREFIX.hook-h1.conf"

h 1 run --name web --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
wait_for 10 on_client busybox ping -c 1 -W 1 "$SIP" >/dev/null || fail "service not reachable on host 1"
[ "$(neigh_mac)" = "$MAC1" ] || fail "client's entry for $SIP is '$(neigh_mac)', not host 1's $MAC1"

[ -n "$(arpings_on 1)" ] || fail "host 1's route hook sends no gratuitous ARP for $SIP"
h 1 migrate web --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig.json" ||
	fail "migrate 1 -> 2: $(cat "$MIG_LOGS/mig.json")"
T=$(date +%s%3N)
# The source's withdraw stopped them before `migrate` returned.
[ -z "$(arpings_on 1)" ] || fail "host 1 still sends gratuitous ARP for $SIP after" \
	"withdrawing it: $(ps -o pid=,args= -p "$(arpings_on 1 | paste -sd,)")"
# The hook returned before RESTORE_OK; its first ARP left at once.
on_mac2() { [ "$(neigh_mac)" = "$MAC2" ]; }
wait_for 1 on_mac2 || fail "client's entry for $SIP is still" \
	"'$(on_client ip neigh show "$SIP" dev eth1)' after the migration, not host 2's $MAC2"
echo "client's neighbour entry moved to host 2 ($MAC2) within $(($(date +%s%3N) - T)) ms of the migration's end"
# ... and stays there past the second after (host 1's next ARP was due).
for _ in $(seq 15); do
	on_mac2 || fail "client's entry for $SIP went back to" \
		"'$(on_client ip neigh show "$SIP" dev eth1)' after moving to host 2's $MAC2"
	sleep 0.1
done
on_client busybox ping -c 1 -W 2 "$SIP" >/dev/null || fail "service not reachable on host 2"
running_on 2 web || fail "not running on host 2"
echo ok
