#!/bin/bash
# Pods on one host: `pod create` runs the infra container with the pod's
# service IP; `run --pod` members share its network (localhost, the IP),
# IPC and UTS namespaces and its ID range; a sidecar reads redis over
# localhost and serves what it read over HTTP on the service IP; a member
# restarts without the others losing their network; the infra cannot stop
# or go while members run; one container of a pod is not checkpointed or
# migrated alone; `pod stop` and `pod start` take the members and the infra
# down and up in order; a member that fails to start leaves nothing and the pod
# serves on; when the infra dies the members keep serving and the infra
# does not start apart from them; `pod rm --force` leaves nothing behind.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
cleanup() {
	"$EM" --root "$ROOT" pod rm --force web >/dev/null 2>&1 || true
	ct_cleanup
}
trap cleanup EXIT
ct_pull busybox
ct_pull redis
# The census without the machine-wide cgroup count (other tests' come and
# go); this pod's own cgroups are checked by name below.
census() { ct_census | sed 's/ cgroups=[0-9]*//'; }
before=$(census)

# The sidecar: every 10 ms, INCR a counter in redis over localhost and keep
# the reply where its HTTP server on :8080 serves it.
SIDECAR='mkdir -p /www; httpd -p 8080 -h /www
while :; do printf "INCR reads\r\n" | nc 127.0.0.1 6379 >/www/n.tmp && mv /www/n.tmp /www/n; sleep 0.01; done'

em pod create --ip 10.66.7.7 web >/dev/null || fail "pod create"
em run --pod web --name db redis >/dev/null || fail "run db in the pod"
em run --pod web --name side busybox sh -c "$SIDECAR" >/dev/null || fail "run side in the pod"

# --- shared namespaces ----------------------------------------------------------
pid_of() { em inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
for ns in net ipc uts user; do
	a=$(readlink "/proc/$(pid_of web)/ns/$ns") b=$(readlink "/proc/$(pid_of db)/ns/$ns")
	c=$(readlink "/proc/$(pid_of side)/ns/$ns")
	[ "$a" = "$b" ] && [ "$a" = "$c" ] || fail "$ns namespace not shared: $a $b $c"
done
[ "$(readlink "/proc/$(pid_of db)/ns/pid")" != "$(readlink "/proc/$(pid_of side)/ns/pid")" ] ||
	fail "members share a pid namespace"
[ "$(em exec side hostname)" = web ] || fail "hostname in the pod: $(em exec side hostname)"
em exec side ip -4 addr show eth0 | grep -q 'inet 10.66.7.7/32' || fail "the pod's IP is not on eth0"

# --- the sidecar reads redis over localhost and serves it on the service IP -----
get() { curl -sf -m 2 "http://10.66.7.7:8080/n" 2>/dev/null | tr -d '\r:'; }
answers() { [ -n "$(get)" ]; }
wait_for 10 answers || fail "no answer from the sidecar on 10.66.7.7:8080"
n1=$(get)
# The counter moves on as the sidecar gets CPU: waited for (5 s), not 0.5 s.
moves_on() { n=$(get) && [ -n "$n" ] && [ "$n" -gt "$n1" ]; }
wait_for 5 moves_on || fail "the sidecar does not read redis: $n1 then $(get)"

# --- listings ---------------------------------------------------------------------
em pod ls | grep -q '^web  *10.66.7.7  *running  *db (running), side (running)$' ||
	fail "pod ls: $(em pod ls)"
em pod ls --json | python3 -c '
import json, sys
p = json.load(sys.stdin)
assert [x["name"] for x in p] == ["web"], p
assert p[0]["ip"] == "10.66.7.7" and p[0]["infra_pid"] > 0, p
assert [m["name"] for m in p[0]["members"]] == ["db", "side"], p' || fail "pod ls --json"
em pod inspect web | python3 -c 'import json,sys; assert json.load(sys.stdin)["state"] == "running"' ||
	fail "pod inspect"
em inspect db | python3 -c 'import json,sys; c = json.load(sys.stdin); assert c["spec"]["pod"] == "web", c' ||
	fail "the member's spec does not name its pod"

# --- what a pod refuses -------------------------------------------------------------
em stop web >/dev/null 2>"$ROOT/err" && fail "the infra stopped under running members"
grep -q 'pod web still runs db, side in its namespaces' "$ROOT/err" || fail "stop error: $(cat "$ROOT/err")"
em rm -f web >/dev/null 2>"$ROOT/err" && fail "rm -f of a pod with members succeeded"
em pod rm web >/dev/null 2>"$ROOT/err" && fail "pod rm without --force removed members"
grep -q 'has members (db, side)' "$ROOT/err" || fail "pod rm error: $(cat "$ROOT/err")"
em run --pod web --ip 10.66.7.8 --name x busybox true >/dev/null 2>&1 && fail "--ip with --pod"
em run --pod nope --name x busybox true >/dev/null 2>"$ROOT/err" && fail "run in a missing pod"
grep -q "no pod 'nope'" "$ROOT/err" || fail "missing pod error: $(cat "$ROOT/err")"
em run --pod db --name x busybox true >/dev/null 2>&1 && fail "run in a container as a pod"
em checkpoint db --to "$ROOT/ck" >/dev/null 2>"$ROOT/err" && fail "one member checkpointed alone"
grep -q 'belongs to pod web' "$ROOT/err" || fail "checkpoint error: $(cat "$ROOT/err")"
em migrate db --insecure --to 127.0.0.1:1 >/dev/null 2>"$ROOT/err" && fail "one member migrated alone"
grep -q 'belongs to pod web' "$ROOT/err" || fail "migrate error: $(cat "$ROOT/err")"

# --- a member that fails to start leaves nothing, and the pod serves on -----------
em run --pod web --name bad busybox /no/such/binary >/dev/null 2>&1 && fail "a broken member ran"
em inspect bad >/dev/null 2>&1 && fail "the failed member left its record"
[ ! -e "$ROOT/containers/bad" ] || fail "the failed member left its directory"
n1=$(get)
wait_for 5 moves_on || fail "the pod stopped serving after a member failed to start"

# --- a member restarts into the pod; the others keep their network ---------------
n1=$(get)
em restart -t 1 db >/dev/null || fail "restart db"
[ "$(readlink "/proc/$(pid_of db)/ns/net")" = "$(readlink "/proc/$(pid_of web)/ns/net")" ] ||
	fail "the restarted member left the pod's network"
# The restarted redis counts from 1 again.
counts_again() { n=$(get) && [ -n "$n" ] && [ "$n" -lt "$n1" ]; }
wait_for 10 counts_again || fail "the sidecar does not reach the restarted redis"

# --- pod stop and pod start: members, then infra; infra, then members -----------
em pod stop -t 1 web >/dev/null || fail "pod stop"
em pod ls --json | python3 -c '
import json, sys
p = json.load(sys.stdin)[0]
assert p["state"] == "stopped" and {m["state"] for m in p["members"]} == {"stopped"}, p' ||
	fail "pod stop left something running: $(em pod ls)"
! answers || fail "a stopped pod answers"
em pod start web >/dev/null || fail "pod start"
wait_for 10 answers || fail "no answer after pod start"
[ "$(readlink "/proc/$(pid_of side)/ns/net")" = "$(readlink "/proc/$(pid_of web)/ns/net")" ] ||
	fail "after pod start the sidecar is not in the infra's network namespace"
em pod start web >/dev/null || fail "pod start of a running pod"

# --- the infra dies: members keep the namespaces, and it does not start apart ---
em kill -s KILL web >/dev/null || fail "kill web"
infra_stopped() { em inspect web | python3 -c 'import json,sys; assert json.load(sys.stdin)["state"] == "stopped"'; }
wait_for 10 infra_stopped || fail "the killed infra is not stopped"
n1=$(get)
wait_for 5 moves_on || fail "the members lost their network when the infra died"
em start web >/dev/null 2>"$ROOT/err" && fail "the infra started apart from its running members"
grep -q 'pod web still runs db, side in its namespaces' "$ROOT/err" ||
	fail "start error: $(cat "$ROOT/err")"

# --- removal ------------------------------------------------------------------------
cgroups=$(for c in web db side; do
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["linux"]["cgroupsPath"])' \
		"$ROOT/containers/$c/bundle/config.json"
done)
[ "$(echo "$cgroups" | wc -w)" = 3 ] || fail "cgroup paths: $cgroups"
em pod rm --force web >/dev/null || fail "pod rm --force"
[ "$(em ps --json)" = "[]" ] || fail "containers left: $(em ps)"
cgroups_gone() {
	local cg
	for cg in $cgroups; do
		[ -z "$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name "${cg#/}")" ] || return 1
	done
}
same_census() { [ "$(census)" = "$before" ]; }
wait_for 5 same_census || fail "resources leaked: before [$before] after [$(census)]"
wait_for 5 cgroups_gone || fail "the pod's cgroups are left: $cgroups"
echo "ok"
