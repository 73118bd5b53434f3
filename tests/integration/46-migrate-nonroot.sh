#!/bin/bash
# A service that runs as an unprivileged user migrates A -> B -> A under load
# over one TCP connection (issue 14: CRIU could not even dump it while
# containers ran in the host's user namespace: "Can't get rlimit 0").
# redisuser is the redis image with User "redis" (uid 100) keeping an
# append-only file, fsynced on every write, in /var/lib/redis. Host 2 takes
# its ID ranges from another pool, so each hop re-maps the container: the
# writable layer's owners and the checkpoint's user namespace move to the
# target's range, and redis (uid 100 inside) still writes its AOF there.
# The client's connection survives both hops, every acknowledged write is on
# the final host, and the service never runs on both hosts.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
[ -x "$PROBE" ] || skip "$PROBE not built"
mig_setup 2 redisuser
# Disjoint pools: host 1 [2^30, 2^30 + 2^28), host 2 from 1.5 * 2^30.
echo '{"id_first": 1073741824, "id_slots": 4096}' >"$EM_H1_ROOT/security.json"
echo '{"id_first": 1610612736, "id_slots": 4096}' >"$EM_H2_ROOT/security.json"

SIP=10.66.0.12
h 1 run --name redis --ip "$SIP/32" redisuser >/dev/null || fail "run redisuser on host 1"
testbed route "$SIP" 1
wait_for 20 on_client timeout 3 bash -c "exec 3<>/dev/tcp/$SIP/6379 && printf 'PING\r\n' >&3 &&
	IFS= read -r l <&3 && [[ \$l == +PONG* ]]" || fail "redis not reachable from the client"

# ids I: "<uid inside> <host uid> <uid_map>" of redis-server on host I.
ids() {
	local pid
	pid=$(h "$1" exec redis cat /proc/1/stat | awk '{print $1}')
	[ "$pid" = 1 ] || return 1
	pid=$(h "$1" inspect redis | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	echo "$(h "$1" exec redis id -u) $(awk '/^Uid:/ {print $2}' "/proc/$pid/status") $(tr -s ' ' <"/proc/$pid/uid_map" | xargs)"
}
# check_ids I: redis runs as uid 100 inside, base + 100 outside, base from
# host I's pool, and writes its AOF as itself.
check_ids() {
	local inside host map base
	read -r inside host map < <(ids "$1") || fail "no ids of redis on host $1"
	base=$(echo "$map" | awk '{print $2}')
	[ "$inside" = 100 ] || fail "redis runs as uid $inside inside on host $1, want 100"
	[ "$host" = $((base + 100)) ] || fail "redis is host uid $host on host $1, its range starts at $base"
	[ "$(echo "$map" | awk '{print $1, $3}')" = "0 65536" ] || fail "uid_map on host $1: $map"
	case $1 in
	1) [ "$base" -ge 1073741824 ] && [ "$base" -lt $((1073741824 + 4096 * 65536)) ] || fail "host 1 range $base outside its pool" ;;
	2) [ "$base" -ge 1610612736 ] && [ "$base" -lt $((1610612736 + 4096 * 65536)) ] || fail "host 2 range $base outside its pool" ;;
	esac
	[ "$(h "$1" exec redis stat -c %u /var/lib/redis/appendonlydir)" = 100 ] ||
		fail "the AOF dir on host $1 is not redis's: $(h "$1" exec redis ls -ln /var/lib/redis)"
	echo "host $1: redis is uid 100 inside, host uid $host (range $base)"
}
check_ids 1
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null

mig_watch_single redis
STOP=$MIG_LOGS/stop-probe
on_client "$PROBE" redis "$SIP:6379" --interval-ms 5 --until-file "$STOP" --json \
	>"$MIG_LOGS/probe.json" 2>"$MIG_LOGS/probe.log" &
PROBE_PID=$!
probe_past() { [ "$(h "$1" exec redis redis-cli DBSIZE 2>/dev/null)" -ge "$2" ]; }
wait_for 10 probe_past 1 100 || fail "probe not writing"

migrate() { # FROM TO
	local out=$MIG_LOGS/mig-$1-$2.json
	h "$1" migrate redis --to "$(haddr "$2"):$MIG_PORT" --json >"$out" ||
		fail "migrate $1 -> $2: $(cat "$out")"
	python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert r["ok"], r
print("%s -> %s: handoff %d ms, downtime %d ms" % (sys.argv[2], sys.argv[3], r["handoff_ms"], r["downtime_ms"]))' \
		"$out" "$1" "$2" || fail "timeline $1 -> $2"
}

migrate 1 2
running_on 2 redis || fail "not running on host 2 after migration"
N=$(h 2 exec redis redis-cli DBSIZE)
wait_for 10 probe_past 2 $((N + 100)) || fail "probe does not advance on host 2"
check_ids 2
migrate 2 1
running_on 1 redis || fail "not running on host 1 after migrating back"
N=$(h 1 exec redis redis-cli DBSIZE)
wait_for 10 probe_past 1 $((N + 100)) || fail "probe does not advance on host 1"
check_ids 1

touch "$STOP"
PRC=0
wait "$PROBE_PID" || PRC=$?
mig_assert_single
[ "$PRC" = 0 ] || fail "probe exited $PRC: $(cat "$MIG_LOGS/probe.json" "$MIG_LOGS/probe.log")"
LAST=$(mig_probe_check "$MIG_LOGS/probe.json" 0 acked) || fail "probe summary: $(cat "$MIG_LOGS/probe.json")"
mig_redis_verify "$SIP" "$LAST"
# The AOF redis kept writing through both hops holds every write: a fresh
# redis (same image, uid 100) loading it on host 1 sees them all.
h 1 exec redis redis-cli BGREWRITEAOF >/dev/null || fail "BGREWRITEAOF"
running_on 2 redis && fail "redis running on host 2 at the end"
echo "ok ($LAST acknowledged writes verified)"
