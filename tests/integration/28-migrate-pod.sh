#!/bin/bash
# A pod migrates between hosts as one unit (docs/pods.md): redis plus a
# sidecar that INCRs a counter in it over one localhost connection every
# 10 ms and serves the reply over HTTP on the pod's service IP. A redis
# client (edgemig-probe, one connection, a write and a read every 10 ms)
# and an HTTP client of the sidecar run throughout. First a prepare to a
# host 2 that lacks redis's image: the image and the pod's memory (its
# page caches and the copies of the writable layers, where the sidecar
# wrote 4 MiB) land there, nothing else stays, the pod runs on, and the
# next migration's first round sends little. Then a target that
# fails after the first member came back (fault pod.after-member-restore-1
# in host 2's edgemigd), and a link cut after the freeze, before FINAL: the
# pod runs on host 1 only, intact, and host 2 keeps no container, network
# namespace, mount or staging of it. Then the
# pod moves host 1 -> 2 -> 1 with pre-copy rounds (after the freeze the
# images' pages go mostly as references, and of the writable layers
# only what changed since the last round): neither client sees an
# error, the sidecar's 4 MiB file is intact, a key written
# before each hop is there after it, the counter never goes back, the
# sidecar's connection to redis survives, its log goes with it, and the
# pod never runs on two hosts at once. Last, with a member that rewrites
# random memory (memwriter) over a capped link: a `migrate --progress`
# prints progress lines during the pod's pre-copy and `migrate --cancel`
# (or the edge's control op, the controller's cancel) in its first round
# leaves the pod serving on host 1 and nothing on host 2; then `--auto-converge` throttles the pod (the timeline says so)
# and lifts the throttle, and the pod moves to host 2.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/pod-lib.sh"
# Host 1's edgemigd takes control requests from h1 (its own certificate,
# which `edgemig control` on host 1 uses), for the controller's cancel op.
ctl_opts() { [ "$1" != 1 ] || printf '%s\n' --allow-controller h1; }
MIG_DAEMON_OPTS_FN=ctl_opts
mig_setup 2 busybox redis memwriter

IP=10.66.28.7
POD_SIDECAR_PRE="echo sidecar-started-on-1; " pod_web_up "$IP" h 1
mig_announce "$IP" 1

get() { on_client curl -sf -m 2 "http://$IP:8080/n" 2>/dev/null | tr -d '\r:'; }
answers() { [ -n "$(get)" ]; }
wait_for 20 answers || fail "no answer from the sidecar"
states() { h "$1" ps --json | python3 -c 'import json,sys; print(" ".join(sorted(c["name"] + "=" + c["state"] for c in json.load(sys.stdin))))'; }
redis() { # CMD...: one command over a new connection from the client, its reply
	on_client timeout 5 bash -c 'exec 3<>/dev/tcp/$0/6379; printf "%s\r\n" "$*" >&3; IFS= read -r l <&3; echo "${l%$'"'\r'"'}"' "$IP" "$@"
}

# The clients: redis over one connection, HTTP with a request every 50 ms
# (each a new connection; a downtime is a wait, not an error).
on_client "$BUILD/edgemig-probe" redis "$IP:6379" --interval-ms 10 --until-file "$MIG_LOGS/stop" \
	--json >"$MIG_LOGS/probe.json" 2>"$MIG_LOGS/probe.err" &
PROBE=$!
(
	last=0
	while [ ! -e "$MIG_LOGS/stop" ]; do
		# A connection still in httpd's accept queue at the freeze is
		# not checkpointed (CRIU's skip-in-flight, docs/pods.md): that
		# request never gets an answer and is retried once, as a
		# client with a timeout would; a second failure is an error.
		if n=$(on_client curl -sSf -m 5 "http://$IP:8080/n" 2>&1 | tr -d '\r:') && [ -n "$n" ] ||
			{ echo "retried at $(date +%T.%N): $n" &&
				n=$(on_client curl -sSf -m 20 "http://$IP:8080/n" 2>&1 | tr -d '\r:') && [ -n "$n" ]; }; then
			[ "$n" -ge "$last" ] || echo "error: the counter went back from $last to $n"
			last=$n
			echo "ok $n"
		else
			echo "error at $(date +%T.%N): ${n:-no answer}"
		fi
		sleep 0.05
	done
) >"$MIG_LOGS/http.log" &
HTTP=$!
sleep 1

# A member's name taken on the target: the dry run says so and moves nothing
# (before the watcher of where the pod runs starts).
h 2 run --name side busybox sleep 600 >/dev/null || fail "run side on host 2"
h 1 migrate web --to "$(haddr 2):$MIG_PORT" --dry-run >"$MIG_LOGS/dry.txt" 2>"$MIG_LOGS/err" &&
	fail "dry run with a member's name taken succeeded"
grep -q 'a container named side already exists on the target' "$MIG_LOGS/dry.txt" ||
	fail "dry run: $(cat "$MIG_LOGS/dry.txt" "$MIG_LOGS/err")"
h 2 rm -f side >/dev/null || fail "rm side on host 2"

mig_watch_single web db side
migrate() { # FROM TO: its report in mig-FROM-TO.json, what it printed in .txt
	local root=EM_H${1}_ROOT
	echo "migrate $1 -> $2 at $(date +%T.%N)" >&2
	h "$1" migrate web --to "$(haddr "$2"):$MIG_PORT" ${MIG_EXTRA:-} >"$MIG_LOGS/mig-$1-$2.txt" \
		2>"$MIG_LOGS/mig-$1-$2.err" ||
		return 1
	cat "$MIG_LOGS/mig-$1-$2.txt" >&2
	cp "$(ls -t "${!root}"/migrations/*.json | head -1)" "$MIG_LOGS/mig-$1-$2.json"
}
leftovers() { # I: what host I holds of the pod besides nothing
	local root=EM_H${1}_ROOT
	h "$1" ps --json | python3 -c 'import json,sys; [print("container", c["name"]) for c in json.load(sys.stdin)]'
	ls "${!root}/netns" 2>/dev/null | sed 's/^/netns /'
	grep -F "${!root}/" /proc/mounts | sed 's/^/mount /' || true
	find "${!root}/incoming" "${!root}/containers" -mindepth 1 -maxdepth 1 2>/dev/null | sed 's/^/staging /'
}

# --- prepare: the image host 2 lacks and the memory go ahead; the pod runs on -------
# The sidecar's writable layer gets 4 MiB that do not compress: the
# prepare's rounds send them ahead, and after it only what changed
# crosses, none of it after the freeze (docs/pods.md).
h 1 exec side sh -c 'head -c 4194304 /dev/urandom >/blob' || fail "writing the sidecar's layer"
BLOB=$(h 1 exec side md5sum /blob | cut -d' ' -f1) || fail "md5sum in the sidecar"
h 2 image rm "$REGISTRY/edgemig/redis:latest" >/dev/null && h 2 image prune >/dev/null ||
	fail "removing redis from host 2"
h 1 prepare web --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/prep.txt" 2>"$MIG_LOGS/err" ||
	fail "prepare of the pod: $(cat "$MIG_LOGS/err")"
grep -q "^prepared web on" "$MIG_LOGS/prep.txt" || fail "prepare said: $(cat "$MIG_LOGS/prep.txt")"
cp "$(ls -t "$EM_H1_ROOT"/migrations/*.json | head -1)" "$MIG_LOGS/prep.json"
python3 - "$MIG_LOGS/prep.json" <<'PY' || fail "prepare report: $(cat "$MIG_LOGS/prep.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] and r["pod"] and r["mode"] == "prepare" and r["layers_sent"] >= 1 and r["rounds"], r
assert sum(r["upper_bytes"]["rounds"]) >= 4 << 20, r["upper_bytes"]
print("pod prepare: %d blob(s), %d bytes on the wire, %d in %d round(s), writable layers %s" %
      (r["layers_sent"], r["bytes_wire"], sum(x["bytes_wire"] for x in r["rounds"]), len(r["rounds"]),
       r["upper_bytes"]["rounds"]), file=sys.stderr)
PY
h 2 image ls --json | grep -q 'edgemig/redis' || fail "host 2 lacks redis after the prepare: $(h 2 image ls)"
# The target's session removes its staging after its last reply, so after
# the source's command returns: wait for that, here and below.
gone() { [ -z "$(leftovers 2)" ]; }
wait_for 10 gone || fail "host 2 kept parts of the pod after the prepare: $(leftovers 2)"
[ "$(states 1)" = "db=running side=running web=running" ] || fail "host 1 after the prepare: $(states 1)"
h 1 exec side sh -c 'echo after-prepare >/after' || fail "writing the sidecar's layer after the prepare"
# The pre-check of the whole pod: it can go, with an estimate for the link,
# here shaped to 20 Mbit/s so that the memory's time on it shows.
testbed shape 1 20 >/dev/null
for mode in precopy stop-and-copy; do
	h 1 check web --to "$(haddr 2):$MIG_PORT" --mode "$mode" --json >"$MIG_LOGS/check.json" 2>"$MIG_LOGS/err" ||
		fail "check --to of the pod ($mode): $(cat "$MIG_LOGS/err" "$MIG_LOGS/check.json")"
	python3 - "$MIG_LOGS/check.json" "$mode" <<'PY' || fail "pod check report: $(cat "$MIG_LOGS/check.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] and r["pod"] and r["containers"] == ["db", "side", "web"], r
e, bw, rtt = r["estimate"], r["link"]["bandwidth_bps"], r["link"]["rtt_ms"]
assert e["memory_bytes"] > 0 and e["transfer_bytes"] >= e["memory_bytes"] * e["memory_ratio"], e
mem_ms = e["memory_bytes"] * e["memory_ratio"] * 8000 / bw
between = e["handoff_ms"] - e["downtime_ms"]  # what crosses before the freeze, and a round trip
if sys.argv[2] == "precopy":  # the memory and the writable layers cross while the pod runs
    assert mem_ms > 20 and between >= rtt + mem_ms - 2, (mem_ms, r)
    assert e["downtime_ms"] < 2 * rtt + e["upper_bytes"] * 8000 / bw, r
else:  # stop-and-copy: while it is frozen
    assert between <= rtt + e["layers_bytes"] * 8000 / bw + 2, (mem_ms, r)
PY
done
testbed unshape 1 >/dev/null
h 1 migrate db --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/err" && fail "a member migrated alone"
grep -q 'belongs to pod web' "$MIG_LOGS/err" || fail "member migrate error: $(cat "$MIG_LOGS/err")"
h 1 migrate web --mode postcopy --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/err" &&
	fail "post-copy of a pod succeeded"
grep -q 'pre-copy or stop-and-copy only' "$MIG_LOGS/err" || fail "post-copy error: $(cat "$MIG_LOGS/err")"
[ "$(states 1)" = "db=running side=running web=running" ] || fail "host 1 after the refusals: $(states 1)"

# --- the target fails after the first member came back: the pod stays here --------
mig_daemon_stop 2
EDGEMIG_FAULT=pod.after-member-restore-1=error mig_daemon 2
redis SET before-fault yes | grep -q OK || fail "SET before the faulty hop"
migrate 1 2 && fail "migration with a failing target succeeded"
# The first migration after the prepare: its first round sent only what
# changed since, the page caches the prepare filled being known.
# shellcheck disable=SC2012 # session ids: plain names
python3 - "$MIG_LOGS/prep.json" "$(ls -t "$EM_H1_ROOT"/migrations/*.json | head -1)" <<'PY' ||
import json, sys
prep, hop = (json.load(open(f)) for f in sys.argv[1:])
sent = sum(x["bytes_wire"] for x in prep["rounds"])
assert hop["rounds"] and hop["rounds"][0]["bytes_wire"] * 4 < sent, (sent, hop["rounds"])
# The writable layers: only what changed since the prepare.
assert sum(hop["upper_bytes"]["rounds"]) < 1 << 20, hop["upper_bytes"]
print("pod hop after the prepare: round 1 %d bytes on the wire (the prepare's rounds: %d), "
      "writable layers %s" % (hop["rounds"][0]["bytes_wire"], sent, hop["upper_bytes"]["rounds"]),
      file=sys.stderr)
PY
	fail "the first round after the prepare"
grep -q 'pod.after-member-restore-1' "$MIG_LOGS/mig-1-2.err" ||
	fail "the error does not name the target's failure: $(cat "$MIG_LOGS/mig-1-2.err")"
[ "$(states 1)" = "db=running side=running web=running" ] || fail "host 1 after the failed hop: $(states 1)"
wait_for 10 gone || fail "host 2 kept parts of the pod: $(leftovers 2)"
[ "$(redis GET before-fault)" = '$3' ] || fail "redis lost its data in the failed hop"
wait_for 10 answers || fail "the sidecar does not answer after the failed hop"
mig_daemon_stop 2
mig_daemon 2

# --- the link cut after the freeze, before FINAL: the pod comes back here ------------
EDGEMIG_FAULT=source.after-checkpoint=drop migrate 1 2 && fail "migration over a cut link succeeded"
[ "$(states 1)" = "db=running side=running web=running" ] || fail "host 1 after the cut: $(states 1)"
wait_for 10 gone || fail "host 2 kept parts of the pod after the cut: $(leftovers 2)"
[ "$(redis GET before-fault)" = '$3' ] || fail "redis lost its data in the cut hop"

# --- 1 -> 2 -> 1 -------------------------------------------------------------------
for hop in "1 2" "2 1"; do
	set -- $hop
	redis SET "before-$1-$2" "v$1$2" | grep -q OK || fail "SET before $1 -> $2"
	migrate "$1" "$2" || fail "migrate $1 -> $2: $(cat "$MIG_LOGS/mig-$1-$2.err")"
	python3 - "$MIG_LOGS/mig-$1-$2.json" <<'PY' || fail "report $1 -> $2"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] and r["pod"] and r["mode"] == "precopy", r
# Pre-copy: the memory crossed while the pod ran (or before, to the page
# caches of a prepare or an earlier attempt); after the freeze the CRIU
# images' pages went mostly as references to it.
final = [p for p in r["phases"] if p["name"] == "final"][0]
pre = sum(x["bytes_wire"] for x in r["rounds"])
assert r["rounds"] and r["final_pages_known"] > 2 * r["final_pages_sent"], r
# The writable layers crossed in the rounds too: after the freeze only
# what changed since the last (not the sidecar's 4 MiB).
ub = r["upper_bytes"]
assert final["bytes_wire"] < 1 << 20 and ub["final"] < 256 << 10, (final, ub)
print("pod hop: handoff %d ms, downtime %d ms, %d bytes on the wire, %d in %d round(s), %d final; "
      "writable layers %s in the rounds, %d final" %
      (r["handoff_ms"], r["downtime_ms"], r["bytes_wire"], pre, len(r["rounds"]), final["bytes_wire"],
       ub["rounds"], ub["final"]), file=sys.stderr)
PY
	[ "$(states "$2")" = "db=running side=running web=running" ] || fail "host $2 after $1 -> $2: $(states "$2")"
	[ -z "$(leftovers "$1")" ] || fail "host $1 kept parts of the pod: $(leftovers "$1")"
	[ "$(redis GET "before-$1-$2")" = '$3' ] || fail "the key written before $1 -> $2 is gone"
	[ "$(h "$2" exec side md5sum /blob | cut -d' ' -f1)" = "$BLOB" ] ||
		fail "the sidecar's /blob differs on host $2"
	[ "$(h "$2" exec side cat /after)" = after-prepare ] || fail "the sidecar's /after on host $2"
	wait_for 10 answers || fail "the sidecar does not answer after $1 -> $2"
	h "$2" logs side | grep -q sidecar-started-on-1 ||
		fail "the sidecar's log did not move to host $2: $(h "$2" logs side | tail -3)"
done

# --- progress, cancel and auto-converge, with a member that rewrites 2 MB
# of random memory a second (incompressible: more than the capped link
# drains) ---------------------------------------------------------------
h 1 run --pod web --name mw -e MEMWRITER_MB=1 -e MEMWRITER_RATE=2 -e MEMWRITER_PATTERN=random \
	memwriter >/dev/null || fail "run mw in the pod"
ALL="db=running mw=running side=running web=running"
MWC=$REPO/scripts/memwriter-client.py
wait_for 10 on_client python3 "$MWC" "$IP" 7000 >/dev/null || fail "mw does not answer"
# A cancel in the first round (1 Mbit/s: it sends megabytes), by `migrate
# --cancel` (cli) or by the edge's control op (control: what the
# controller's POST /migrations/ID/cancel sends): the pod serves on here,
# host 2 keeps nothing of it.
cancel_hop() { # cli|control
	local out=$MIG_LOGS/cancel-$1
	h 1 migrate web --to "$(haddr 2):$MIG_PORT" --max-rate 1M --json --progress >"$out.json" \
		2>"$out.progress" &
	MIG=$!
	wait_for 30 grep -q '"phase":"precopy".*"bytes_left":[0-9]' "$out.progress" ||
		fail "no pre-copy progress: $(cat "$out.progress")"
	SESSION=$(grep -m1 '^{' "$out.progress" | python3 -c 'import json,sys; print(json.load(sys.stdin)["session"])')
	if [ "$1" = cli ]; then
		h 1 migrate --cancel "$SESSION" >"$out.out" 2>&1 || fail "cancel: $(cat "$out.out")"
	else
		h 1 control "$(haddr 1):$MIG_PORT" cancel "$SESSION" --edge h1 >"$out.out" 2>&1 ||
			fail "control cancel: $(cat "$out.out")"
	fi
	if wait "$MIG"; then fail "the pod migration cancelled by $1 succeeded"; fi
	python3 - "$out.json" "$out.progress" "$1" <<'PY' || fail "cancel by $1: $(cat "$out.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["pod"] and not r["ok"] and r["cancelled"], r
ps = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
ps = [l for l in ps if l.get("event") == "progress"]
assert all(l["session"] == r["id"] and l["container"] == "web" for l in ps), ps
phases = [l["phase"] for l in ps]
assert "precopy" in phases and "final" not in phases and phases[-1] == "cancelled", phases
print("pod cancel by %s: %d progress lines, phases %s" %
      (sys.argv[3], len(ps), " ".join(dict.fromkeys(phases))), file=sys.stderr)
PY
	[ "$(states 1)" = "$ALL" ] || fail "host 1 after the cancel by $1: $(states 1)"
	wait_for 10 gone || fail "host 2 kept parts of the pod after the cancel by $1: $(leftovers 2)"
	wait_for 10 answers || fail "the sidecar does not answer after the cancel by $1"
}
cancel_hop cli
cancel_hop control
# --auto-converge at 8 Mbit/s: the second round (mw's pages, about all of
# them rewritten meanwhile) fails to halve what was left, and every
# container of the pod is capped instead of handing off.
quota_files() { # I: the CPU quota file of each container on host I (its cgroup's)
	h "$1" ps --json | python3 -c '
import json, os, sys
for c in json.load(sys.stdin):
    for l in open("/proc/%d/cgroup" % c["pid"]):
        _, ctl, path = l.rstrip("\n").split(":", 2)
        if "cpu" in ctl.split(","):
            print(c["name"], "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us" % path)
        elif ctl == "" and not os.path.exists("/sys/fs/cgroup/cpu"):
            print(c["name"], "/sys/fs/cgroup%s/cpu.max" % path)
'
}
quotas() { # I: "NAME QUOTA" of each container on host I (none: -1 or max)
	local name f q
	quota_files "$1" | while read -r name f; do read -r q _ <"$f" && echo "$name $q"; done
}
# The caps hold only from the throttled rounds to the end of the dump
# (2-3 s): a sampler reads the quota files every 50 ms, cheap enough not
# to miss that window on a loaded machine.
all_capped() { # FILE...: every one holds a quota (not -1 or max)
	local f q
	for f; do
		read -r q _ <"$f" 2>/dev/null || return 1
		case $q in -1 | max) return 1 ;; esac
	done
}
FILES=$(quota_files 1 | cut -d' ' -f2)
[ "$(wc -w <<<"$FILES")" = 4 ] || fail "the pod's quota files on host 1: $FILES"
all_capped $FILES && fail "the pod is capped before the migration: $(quotas 1)"
rm -f "$MIG_LOGS/all-capped"
MIG_EXTRA="--max-rate 8M --auto-converge --max-rounds 4" migrate 1 2 &
MIG=$!
# shellcheck disable=SC2086 # one word per file
(while kill -0 "$MIG" 2>/dev/null; do
	all_capped $FILES && exec touch "$MIG_LOGS/all-capped"
	sleep 0.05
done) &
SAMPLER=$!
wait "$MIG" || fail "migrate --auto-converge: $(cat "$MIG_LOGS/mig-1-2.err")"
wait "$SAMPLER"
[ -e "$MIG_LOGS/all-capped" ] || fail "the pod's 4 containers were never all capped at once"
python3 - "$MIG_LOGS/mig-1-2.json" <<'PY' || fail "auto-converge: $(cat "$MIG_LOGS/mig-1-2.json")"
import json, sys
r = json.load(open(sys.argv[1]))
caps = [rd.get("throttle_pct") for rd in r["rounds"]]
print("pod auto-converge: rounds %d, stop %s, throttle per round %s, downtime %d ms" %
      (len(r["rounds"]), r["stop_reason"], caps, r["downtime_ms"]), file=sys.stderr)
assert r["ok"] and r["pod"] and 50 in caps, caps
assert "throttle_start" in r["marks"] and "throttle_lifted" in r["marks"], r["marks"]
assert "auto_converge" not in r, r["auto_converge"]
PY
grep -q 'throttled to 50 % CPU' "$MIG_LOGS/mig-1-2.txt" || fail "the timeline shows no throttle"
[ "$(states 2)" = "$ALL" ] || fail "host 2 after the auto-converged hop: $(states 2)"
# The caps stayed behind: the pod runs uncapped on host 2.
[ "$(quotas 2 | grep -cE ' (-1|max)$')" = 4 ] || fail "capped on host 2: $(quotas 2)"
[ -z "$(leftovers 1)" ] || fail "host 1 kept parts of the pod: $(leftovers 1)"
on_client python3 "$MWC" "$IP" 7000 verify >/dev/null || fail "mw's memory after the hop"
mig_assert_single

touch "$MIG_LOGS/stop"
wait "$HTTP" || true
wait "$PROBE" || fail "redis client: $(cat "$MIG_LOGS/probe.err")"
last=$(mig_probe_check "$MIG_LOGS/probe.json" 100 acked) || fail "redis client: $(cat "$MIG_LOGS/probe.json")"
mig_redis_verify "$IP" "$last"
grep -q '^error' "$MIG_LOGS/http.log" && fail "HTTP client: $(grep '^error' "$MIG_LOGS/http.log" | head -3)"
[ "$(grep -c '^ok' "$MIG_LOGS/http.log")" -gt 20 ] || fail "HTTP client: too few answers"
echo "HTTP client: $(grep -c '^ok' "$MIG_LOGS/http.log") answers, $(grep -c '^retried' "$MIG_LOGS/http.log") retried" >&2
h 2 logs side | grep -q 'broke' && fail "the sidecar's connection to redis broke"
h 2 pod rm --force web >/dev/null || fail "pod rm"
