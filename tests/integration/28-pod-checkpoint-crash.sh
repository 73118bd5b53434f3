#!/bin/bash
# A `pod checkpoint` whose edgemig process dies midway (fault action
# crash: _exit, as kill -9 leaves it) at each class of point, then
# `edgemig recover`: the pod runs here again with its state. The pod is
# 27-pod-checkpoint's: redis and a sidecar that INCRs a counter in it over
# one localhost connection and serves it over HTTP.
#   pod.after-freeze   all frozen, traffic blocked, nothing dumped;
#   pod.after-dump-1   one member dumped (stopped), the other and the infra
#                      frozen;
#   pod.after-dump-2   both members dumped, the infra frozen;
#   pod.after-dump-3   everything dumped, pod.json not yet written.
# Then pod.after-dump-1 again, recovered by edgemigd's start instead, and
# a kill -9 while runc dumps redis, twice: edgemigd's start does not wait
# for runc (it is ready at once) and settles the pod once runc is done;
# recover waits for runc, then restores the dumped redis. After each: every container runs, the counter goes on from where it was
# (redis's memory came back), the sidecar's connection never broke, the
# service IP answers (the traffic block is gone), no journal and no
# partial checkpoint are left, and nothing leaks at the end.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
. "$(dirname "$0")/pod-lib.sh"
ct_require
ct_root
IP=10.66.28.17
EMD_PID=
cleanup() {
	[ -z "$EMD_PID" ] || kill "$EMD_PID" 2>/dev/null || true
	"$EM" --root "$ROOT" pod rm --force web >/dev/null 2>&1 || true
	ct_cleanup
}
trap cleanup EXIT
ct_pull busybox
ct_pull redis
census() { ct_census | sed 's/ cgroups=[0-9]*//; s/ veths=[0-9]*//'; }
before=$(census)

pod_web_up "$IP" em

get() { curl -sf -m 2 "http://$IP:8080/n" 2>/dev/null | tr -d '\r:'; }
answers() { [ -n "$(get)" ]; }
moves_on() { n=$(get) && [ -n "$n" ] && [ "$n" -gt "$n1" ]; }
states() { em ps --json | python3 -c 'import json,sys; print(" ".join(c["name"] + "=" + c["state"] for c in json.load(sys.stdin)))'; }
wait_for 10 answers || fail "no answer from the sidecar"
n1=$(get)
wait_for 5 moves_on || fail "the sidecar does not count"

# What each crash leaves, as `ps` shows it.
declare -A left=(
	[pod.after-freeze]="db=migrating side=migrating web=migrating"
	[pod.after-dump-1]="db=checkpointed side=migrating web=migrating"
	[pod.after-dump-2]="db=checkpointed side=checkpointed web=migrating"
	[pod.after-dump-3]="db=checkpointed side=checkpointed web=checkpointed"
)
for point in pod.after-freeze pod.after-dump-1 pod.after-dump-2 pod.after-dump-3; do
	n1=$(get)
	[ -n "$n1" ] || fail "no answer before $point"
	rc=0
	EDGEMIG_FAULT=$point=crash em pod checkpoint web --to "$ROOT/ck" >/dev/null 2>"$ROOT/err" || rc=$?
	[ "$rc" = 113 ] || fail "$point=crash: exit $rc, not the crash's 113: $(cat "$ROOT/err")"
	[ -e "$ROOT/pod-checkpoints/web.json" ] || fail "$point: no journal left by the crash"
	echo "$point: after the crash: $(states)"
	[ "$(states)" = "${left[$point]}" ] || fail "$point: after the crash: $(states), not ${left[$point]}"
	em recover >"$ROOT/out" 2>"$ROOT/err" || fail "recover after $point: $(cat "$ROOT/err")"
	grep -q 'recovered 1 pod checkpoint' "$ROOT/out" || fail "recover after $point: $(cat "$ROOT/out")"
	[ "$(states)" = "db=running side=running web=running" ] || fail "after $point and recover: $(states)"
	[ ! -e "$ROOT/pod-checkpoints/web.json" ] || fail "$point: the journal is left after recover"
	[ ! -e "$ROOT/ck/db" ] && [ ! -e "$ROOT/ck/side" ] && [ ! -e "$ROOT/ck/web" ] ||
		fail "$point: the partial checkpoint is left: $(ls "$ROOT/ck")"
	wait_for 10 answers || fail "$point: no answer after recover (traffic still blocked?)"
	n=$(get)
	[ "$n" -ge "$n1" ] || fail "$point: the counter went back: $n1 before, $n after recover"
	n1=$n
	wait_for 5 moves_on || fail "$point: the recovered pod does not count"
	em logs side | grep -q 'broke' && fail "$point: the sidecar's connection broke: $(em logs side | tail -3)"
	rm -rf "$ROOT/ck"
done

# --- edgemigd recovers at start, as `edgemig recover` does -----------------------
n1=$(get)
rc=0
EDGEMIG_FAULT=pod.after-dump-1=crash em pod checkpoint web --to "$ROOT/ck" >/dev/null 2>&1 || rc=$?
[ "$rc" = 113 ] || fail "pod.after-dump-1=crash before edgemigd: exit $rc"
"$BUILD/edgemigd" --root "$ROOT" --insecure --listen "127.0.0.1:$((20000 + $$ % 20000))" \
	>"$ROOT/emd.log" 2>&1 &
EMD_PID=$!
all_running() { [ "$(states)" = "db=running side=running web=running" ]; }
wait_for 30 all_running || fail "edgemigd did not recover the pod: $(states); $(tail -5 "$ROOT/emd.log")"
kill "$EMD_PID"
wait "$EMD_PID" || true
grep -q "recovery: pod web's checkpoint" "$ROOT/emd.log" || fail "edgemigd's log: $(cat "$ROOT/emd.log")"
[ ! -e "$ROOT/pod-checkpoints/web.json" ] || fail "edgemigd left the journal"
wait_for 10 answers || fail "no answer after edgemigd's recovery"
n=$(get)
[ "$n" -ge "$n1" ] || fail "edgemigd: the counter went back: $n1 before, $n after"
n1=$n
wait_for 5 moves_on || fail "the pod edgemigd recovered does not count"
rm -rf "$ROOT/ck"

# --- kill -9 while runc dumps the first member ------------------------------------
# runc, in its own process group, goes on alone and finishes the dump;
# recover waits for it (runc is held stopped here: recover must still be
# waiting a second later, with the journal in place), then finds db dumped
# with its row still "migrating" and restores it.
runc_ckpt() { pgrep -f "^runc .* --log $ROOT/containers/db/runc.log checkpoint .* db\$"; }
# 300000 keys of 200 bytes, so that runc's dump of db takes long enough
# to be caught.
em exec db redis-cli EVAL "for i = 1, 300000 do redis.call('SET', 'k' .. i, string.rep('x', 200)) end" 0 >/dev/null ||
	fail "filling redis"
[ "$(em exec db redis-cli DBSIZE | tr -d '\r')" -gt 300000 ] || fail "redis was not filled"
# kill_mid_dump: `pod checkpoint` killed -9 while runc dumps db; that
# runc ($R) held stopped.
kill_mid_dump() {
	"$EM" --root "$ROOT" pod checkpoint web --to "$ROOT/ck" >/dev/null 2>"$ROOT/ck.err" &
	CK=$!
	for ((i = 0; i < 1000; i++)); do
		R=$(runc_ckpt || true)
		[ -n "$R" ] && break
	done
	[ -n "$R" ] || fail "never saw runc checkpoint db: $(cat "$ROOT/ck.err")"
	# The kill first: stopped before, runc would get SIGHUP as its process
	# group is orphaned.
	kill -9 "$CK"
	wait "$CK" 2>/dev/null || true
	kill -STOP $R
	kill -0 $R || fail "runc checkpoint db ended with the kill"
}

# edgemigd's start does not wait for that runc (it could take a minute):
# it is ready with the journal left and db still "migrating", and settles
# the pod from its loop once runc is done.
n1=$(get)
kill_mid_dump
"$BUILD/edgemigd" --root "$ROOT" --insecure --listen "127.0.0.1:$((20000 + $$ % 20000))" \
	>"$ROOT/emd2.log" 2>&1 &
EMD_PID=$!
emd_ready() { grep -q ' ready (root ' "$ROOT/emd2.log"; }
wait_for 10 emd_ready || fail "edgemigd not ready while runc dumps: $(tail -3 "$ROOT/emd2.log")"
[ -e "$ROOT/pod-checkpoints/web.json" ] || fail "edgemigd settled the journal while runc dumped"
case " $(states) " in *" db=migrating "*) ;; *) fail "db while runc dumps: $(states)" ;; esac
kill -CONT $R
wait_for 30 all_running || fail "edgemigd did not settle the pod after runc: $(states); $(tail -5 "$ROOT/emd2.log")"
wait_for 5 sh -c "[ ! -e '$ROOT/pod-checkpoints/web.json' ]" || fail "edgemigd left the journal after runc"
kill "$EMD_PID"
wait "$EMD_PID" || true
EMD_PID=
wait_for 10 answers || fail "kill -9, edgemigd: no answer after its recovery"
n=$(get)
[ "$n" -ge "$n1" ] || fail "kill -9, edgemigd: the counter went back: $n1 before, $n after"
em logs side | grep -q 'broke' && fail "kill -9, edgemigd: the sidecar's connection broke"
rm -rf "$ROOT/ck"
echo "edgemigd was ready while runc dumped, and settled the pod after it"

# `edgemig recover` does wait for it.
n1=$(get)
kill_mid_dump
em recover >"$ROOT/out" 2>"$ROOT/err" &
REC=$!
sleep 1
kill -0 "$REC" 2>/dev/null || fail "recover did not wait for runc: $(cat "$ROOT/out" "$ROOT/err")"
[ -e "$ROOT/pod-checkpoints/web.json" ] || fail "the journal went while runc dumped"
kill -CONT $R
wait "$REC" || fail "recover after kill -9: $(grep -v " info: " "$ROOT/err")"
grep -q 'recovered 1 pod checkpoint' "$ROOT/out" || fail "recover after kill -9: $(cat "$ROOT/out")"
[ "$(states)" = "db=running side=running web=running" ] || fail "after kill -9 and recover: $(states)"
wait_for 10 answers || fail "kill -9: no answer after recover"
n=$(get)
[ "$n" -ge "$n1" ] || fail "kill -9: the counter went back: $n1 before, $n after recover"
n1=$n
wait_for 5 moves_on || fail "kill -9: the recovered pod does not count"
em logs side | grep -q 'broke' && fail "kill -9: the sidecar's connection broke"
keys=$(em exec db redis-cli DBSIZE | tr -d "\r")
[ "$keys" -gt 300000 ] || fail "kill -9: redis lost its keys: DBSIZE $keys"
rm -rf "$ROOT/ck"

# A second recover finds nothing; the pod still checkpoints whole.
em recover --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["pods"] == 0' ||
	fail "a second recover found pods"
em pod checkpoint web --to "$ROOT/ck" >/dev/null || fail "pod checkpoint after the recoveries"
em pod restore "$ROOT/ck" >/dev/null || fail "pod restore after the recoveries"
wait_for 10 answers || fail "no answer after the last restore"

em pod rm --force web >/dev/null || fail "pod rm"
same_census() { [ "$(census)" = "$before" ]; }
wait_for 5 same_census || fail "resources leaked: before [$before] after [$(census)]"
