#!/bin/bash
# Post-copy and hybrid migration with CRIU lazy pages (docs/postcopy.md).
#  1. busybox: postcopy A -> B, hybrid B -> A; the counter goes on, the
#     timeline has the lazy phase and degraded_ms.
#  2. redis with ~20 MB of data under a one-connection write load, links at
#     20 Mbit/s: postcopy A -> B, hybrid B -> A; zero resets and errors,
#     every acknowledged write present afterwards.
#     The source pushes the lazy pages (working set first) while faults take
#     the urgent path: most pages of the redis window come from the push,
#     faults are served during it, and redis's 40000 values hash the same
#     after the hop. One busybox hop runs with --lazy-pull (CRIU's daemon
#     pulls every page through the relay, as before the push).
#  3. The failure window: postcopy A -> B at 5 Mbit/s, the source's CRIU page
#     server is killed while pages still stream. The rule: the service is
#     lost on both hosts and nothing is left half-done (no container, no
#     CRIU process, no staging, fs.pipe-max-size back), and the daemons
#     keep serving.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
PROBE=$BUILD/edgemig-probe
[ -x "$PROBE" ] || skip "$PROBE not built"
# The value to come back to: the original one recorded by a post-copy that
# may already be running elsewhere on this machine (the sysctl is global and
# reference-counted in /run/edgemig/pipe-max-size: "ORIGINAL PID...").
PIPE_MAX0=$(sysctl -n fs.pipe-max-size)
if read -r ORIG USERS </run/edgemig/pipe-max-size 2>/dev/null && [ -n "${USERS:-}" ]; then
	PIPE_MAX0=$ORIG
elif [ "$PIPE_MAX0" -lt 4194304 ]; then
	# No post-copy runs here now: leave what a migration killed in its lazy
	# window leaves (the sysctl raised, a dead pid in the state file), so the
	# first post-copy below must still bring back the recorded original.
	mkdir -p /run/edgemig
	echo "$PIPE_MAX0 $(($(cat /proc/sys/kernel/pid_max) + 1))" >/run/edgemig/pipe-max-size
	sysctl -qw fs.pipe-max-size=4194304
fi
mig_setup 2 busybox redis

mig_watch_single counter redis

# migrate NAME MODE FROM TO [OPTION...]: must succeed with a lazy final step
# (unless LAZY=0: auto mode that chose pre-copy).
migrate() {
	local out=$MIG_LOGS/mig-$1-$2-$3-$4.json name=$1 mode=$2 from=$3 to=$4
	shift 4
	if ! h "$from" migrate "$name" --mode "$mode" --to "$(haddr "$to"):$MIG_PORT" --json "$@" >"$out"; then
		# CRIU 4.2.1's lazy-pages daemon strands a request whose range the
		# process frees while it is in flight, and then never finishes
		# (docs/postcopy.md, "Known problems"): redis under writes hits it
		# in about 1 window in 7. The window ends with one of these two
		# errors, and the service is lost: a known failure of CRIU, not of
		# what this test checks. Anything else fails.
		if grep -qE 'criu lazy-pages (stalled: it asked for nothing|asked for the same)' "$out"; then
			skip "$name ($mode) $from -> $to hit CRIU 4.2.1's lazy-pages bug: $(cat "$out")"
		fi
		fail "migrate $name ($mode) $from -> $to: $(cat "$out")"
	fi
	python3 - "$out" "$name" "$mode" "$from" "$to" "${LAZY:-1}" "${PULL:-0}" <<'PY' || fail "timeline of $name ($mode)"
import json, sys
r = json.load(open(sys.argv[1]))
mode = sys.argv[3]
assert r["ok"] and r["mode"] == mode, r
if sys.argv[6] == "0":
    assert "final_mode" not in r and "degraded_ms" not in r, r
    assert r["stop_reason"] == "fits-downtime-target", r
    print("%s auto chose pre-copy: downtime %d ms" % (sys.argv[2], r["downtime_ms"]))
    sys.exit(0)
assert r["final_mode"] == "lazy", r
assert 0 <= r["downtime_ms"] <= r["handoff_ms"], r
m = r["marks"]
assert m["source_stopped"] <= m["target_running"] <= m["lazy_done"] <= m["source_cleaned"], m
assert isinstance(r["degraded_ms"], int) and r["degraded_ms"] >= 0, r
assert [p["name"] for p in r["phases"] if p.get("side") != "target"][-2:] == ["final", "lazy"], r["phases"]
# The target's restore is in the timeline, before the lazy window.
assert [p["name"] for p in r["phases"]][-3:] == ["restore", "route", "lazy"], r["phases"]
assert (len(r["rounds"]) == 0) == (mode == "postcopy"), r["rounds"]
# Lazy pages the target holds (pre-copied, or zero) are never fetched again.
assert r["lazy_known_used"] == r["lazy_known_pages"], r
if mode == "hybrid" and sys.argv[2] == "redis":
    assert r["lazy_known_used"] >= 1000, r
if mode == "postcopy" and sys.argv[2] == "redis": # ~20 MB of values pulled lazily
    assert r["lazy_bytes"] >= 8 << 20, r
assert r["lazy_push"] == (sys.argv[7] == "0"), r
if r["lazy_push"]:
    sv = r["lazy_serve"]
    got = sv["pushed_pages"] + sv["urgent_pages"]
    # Every page arrived once (the daemon may not ask for all of them: a
    # task that unmapped memory no longer needs it).
    assert sv["dup_pages"] == 0 and r["lazy_pushed_pages"] == sv["pushed_pages"], r
    print("  push: %d pages pushed, %d urgent (%d asks, wait p50 %.1f ms, p99 %.1f ms), "
          "%d duplicates, %d daemon requests (%d waited)" % (sv["pushed_pages"],
          sv["urgent_pages"], sv["asks"], sv["wait_p50_ms"], sv["wait_p99_ms"], sv["dup_pages"],
          sv["requests"], sv["waited"]))
    if mode == "postcopy" and sys.argv[2] == "redis":
        # The window's pages come mostly from the push; a fault during it
        # went the urgent way.
        assert sv["pushed_pages"] >= 0.5 * got and sv["asks"] >= 1, sv
assert mode == "postcopy" or r["stop_reason"] != "fits-downtime-target" or mode == "hybrid", r
print("%s %s %s -> %s: handoff %d ms, downtime %d ms, degraded %d ms, %d bytes on the wire, "
      "%d lazy pages known" % (sys.argv[2], mode, sys.argv[4], sys.argv[5], r["handoff_ms"],
      r["downtime_ms"], r["degraded_ms"], r["bytes_wire"], r["lazy_known_used"]))
PY
}

# --- 1. busybox ---
h 1 run --name counter --ip 10.66.0.30/32 busybox >/dev/null || fail "run counter"
testbed route 10.66.0.30 1
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"
counter_past() { [ "$(h "$1" exec counter tail -n 1 /data/counter.log)" -gt "$2" ]; }
h 1 exec counter sh -c 'echo log-on-1 >/proc/1/fd/1'
# The migration sends the source's log file as its log forwarder has written
# it so far (migrate/common/logsync.h); the forwarder is slower on a loaded
# machine, so wait until the line is in that file, not for a fixed time.
logs_have() { h "$1" logs counter | grep -q "^$2\$"; }
wait_for 10 logs_have 1 log-on-1 || fail "stdout not in the log on host 1"
migrate counter postcopy 1 2
h 2 logs counter | grep -q '^log-on-1$' || fail "the log did not move with post-copy: $(h 2 logs counter | tail -3)"
C=$(h 2 exec counter tail -n 1 /data/counter.log)
wait_for 10 counter_past 2 $((C + 3)) || fail "counter does not advance on host 2"
PULL=1 migrate counter hybrid 2 1 --lazy-pull
C=$(h 1 exec counter tail -n 1 /data/counter.log)
wait_for 10 counter_past 1 $((C + 3)) || fail "counter does not advance on host 1"
# auto: busybox's final delta fits the default downtime target -> pre-copy;
# with a zero target and one round it does not -> hybrid.
LAZY=0 migrate counter auto 1 2
migrate counter auto 2 1 --downtime-target 0 --max-rounds 1
C=$(h 1 exec counter tail -n 1 /data/counter.log)
wait_for 10 counter_past 1 $((C + 3)) || fail "counter does not advance after auto"
h 1 rm -f counter >/dev/null

# --- 2. redis under load ---
SIP=10.66.0.31
h 1 run --name redis --ip "$SIP/32" redis >/dev/null || fail "run redis"
testbed route "$SIP" 1
wait_for 20 h 1 exec redis redis-cli PING >/dev/null || fail "redis does not start"
h 1 exec redis redis-cli EVAL "math.randomseed(7) for i = 1, 40000 do local s = {}
	for j = 1, 16 do s[j] = string.format('%08x', math.random(0, 2147483647)) end
	redis.call('SET', 'r' .. i, table.concat(s)) end return 1" 0 >/dev/null || fail "filling redis"
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null
STOP=$MIG_LOGS/stop-probe
on_client "$PROBE" redis "$SIP:6379" --interval-ms 5 --until-file "$STOP" --json \
	>"$MIG_LOGS/probe.json" 2>"$MIG_LOGS/probe.log" &
PROBE_PID=$!
probe_past() { [ "$(h "$1" exec redis redis-cli DBSIZE 2>/dev/null)" -ge "$2" ]; }
wait_for 10 probe_past 1 40100 || fail "probe not writing"
values_sha() {
	h "$1" exec redis redis-cli EVAL "local t = {} for i = 1, 40000 do
		t[i] = redis.call('GET', 'r' .. i) end return redis.sha1hex(table.concat(t))" 0
}
SHA1=$(values_sha 1)
migrate redis postcopy 1 2
[ "$(values_sha 2)" = "$SHA1" ] || fail "redis's values changed in the post-copy hop"
N=$(h 2 exec redis redis-cli DBSIZE)
wait_for 10 probe_past 2 $((N + 100)) || fail "probe does not advance on host 2"
migrate redis hybrid 2 1
N=$(h 1 exec redis redis-cli DBSIZE)
wait_for 10 probe_past 1 $((N + 100)) || fail "probe does not advance on host 1"
touch "$STOP"
PRC=0
wait "$PROBE_PID" || PRC=$?
[ "$PRC" = 0 ] || fail "probe exited $PRC: $(cat "$MIG_LOGS/probe.json" "$MIG_LOGS/probe.log")"
LAST=$(mig_probe_check "$MIG_LOGS/probe.json" 0 acked) || fail "probe summary: $(cat "$MIG_LOGS/probe.json")"
mig_redis_verify "$SIP" "$LAST"

# --- 3. the failure window ---
testbed shape 1 5 >/dev/null
testbed shape 2 5 >/dev/null
OUT=$MIG_LOGS/mig-lost.json
RC=0
h 1 migrate redis --mode postcopy --to "$(haddr 2):$MIG_PORT" --json --progress >"$OUT" \
	2>"$MIG_LOGS/lost.err" &
MPID=$!
wait_for 30 running_on 2 redis || fail "redis never ran on host 2 (lazy)"
# Kill once the source has the target's RESTORE_OK (mark target_running,
# then the "lazy" phase's progress line), as the report check below needs.
# Host 2's state says "running" before that (it announces the route, then
# sends RESTORE_OK): killed then, the source fails waiting for RESTORE_OK.
source_in_window() { grep -q '"phase": *"lazy"' "$MIG_LOGS/lost.err"; }
wait_for 30 source_in_window || fail "the source never saw redis running on host 2: \
$(tail -3 "$MIG_LOGS/lost.err")"
# The page server: CRIU under host 1's `runc checkpoint` (runc --root <root>/runc ...).
RUNC=$(pgrep -f -- "--root $EM_H1_ROOT/runc .*checkpoint" | head -n 1)
[ -n "$RUNC" ] || fail "no runc checkpoint on host 1 during the window"
CRIU=$(pgrep -P "$RUNC" | head -n 1)
[ -n "$CRIU" ] || fail "no CRIU page server under runc $RUNC"
kill -9 "$CRIU"
wait "$MPID" || RC=$?
[ "$RC" != 0 ] || fail "migration succeeded although its page server was killed"
python3 - "$OUT" <<'PY' || fail "failure report: $(cat "$OUT")"
import json, sys
r = json.load(open(sys.argv[1]))
assert not r["ok"] and r.get("lost") is True, r
assert "post-copy window" in r["error"], r["error"]
assert "target_running" in r["marks"] and "lazy_done" not in r["marks"], r["marks"]
print("failure window: %s" % r["error"][:200])
PY
gone() { ! running_on 1 redis && ! running_on 2 redis && ! h 1 ps | grep -q '^redis ' && ! h 2 ps | grep -q '^redis '; }
wait_for 15 gone || fail "redis left behind: $(h 1 ps; h 2 ps)"
mig_assert_single
leftover() { # criu/runc processes whose argv, cwd or open files point into a host's root
	python3 - "$EM_H1_ROOT" "$EM_H2_ROOT" <<'PY'
import os, sys
roots = sys.argv[1:]
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm = open("/proc/%s/comm" % pid).read().strip()
        if comm not in ("criu", "runc"):
            continue
        refs = [open("/proc/%s/cmdline" % pid).read(), os.readlink("/proc/%s/cwd" % pid)]
        refs += [os.readlink("/proc/%s/fd/%s" % (pid, f)) for f in os.listdir("/proc/%s/fd" % pid)]
    except OSError:
        continue
    if any(r in x for r in roots for x in refs):
        print(pid, comm, refs[0].replace("\0", " ")[:200])
PY
}
wait_for 10 test -z "$(leftover)" || fail "processes left: $(leftover)"
wait_for 10 test -z "$(find "$EM_H1_ROOT/incoming" "$EM_H2_ROOT/incoming" "$EM_H1_ROOT/outgoing" \
	-mindepth 1 2>/dev/null)" || fail "staging left behind"
kill -0 "${MIG_DAEMONS[1]}" && kill -0 "${MIG_DAEMONS[2]}" || fail "an edgemigd died"
read -r _ USERS </run/edgemig/pipe-max-size || USERS=0
if [ "${USERS:-0}" = 0 ]; then
	[ "$(sysctl -n fs.pipe-max-size)" = "$PIPE_MAX0" ] || fail "fs.pipe-max-size not restored"
fi

echo "ok"
