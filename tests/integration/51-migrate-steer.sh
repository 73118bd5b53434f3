#!/bin/bash
# Migrations an operator steers (issue 17): --max-rate caps what the session
# sends, --progress prints JSON lines while it runs, `migrate --cancel ID`
# ends it before its final step (the service stays, the target keeps
# nothing), and --auto-converge throttles the container's CPU and lifts the
# throttle at the end, all shown in the timeline.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
# Host 1's edgemigd takes control requests from h1 (its own certificate,
# which `edgemig control` on host 1 uses), for the controller's cancel op.
ctl_opts() { [ "$1" != 1 ] || printf '%s\n' --allow-controller h1; }
MIG_DAEMON_OPTS_FN=ctl_opts
mig_setup 2 memwriter

MWC=$REPO/scripts/memwriter-client.py
SIP=10.66.0.48
MB=6
h 1 run --name st --ip "$SIP/32" -e MEMWRITER_MB=$MB -e MEMWRITER_RATE=0.2 memwriter >/dev/null ||
	fail "run memwriter on host 1"
testbed route "$SIP" 1
wait_for 10 on_client python3 "$MWC" "$SIP" 7000 >/dev/null || fail "memwriter does not answer"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# 1. --max-rate 8M (1 MB/s) with --progress, over an unshaped link.
h 1 migrate st --to "$(haddr 2):$MIG_PORT" --max-rate 8M --json --progress \
	>"$MIG_LOGS/rate.json" 2>"$MIG_LOGS/rate.progress" || fail "migrate: $(cat "$MIG_LOGS/rate.progress")"
python3 - "$MIG_LOGS/rate.json" "$MIG_LOGS/rate.progress" "$MB" <<'PY' || fail "max-rate/progress"
import json, sys
r = json.load(open(sys.argv[1])); mem = int(sys.argv[3]) * 1e6
lines = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
assert r["ok"] and r["max_rate_bps"] == 8000000, r.get("max_rate_bps")
pre = next(p for p in r["phases"] if p["name"] == "precopy")
rate = pre["bytes_wire"] / (pre["duration_ms"] / 1000.0)
print("pre-copy: %.2f MB in %d ms = %.2f MB/s under an 8 Mbit/s cap" %
      (pre["bytes_wire"] / 1e6, pre["duration_ms"], rate / 1e6))
assert pre["bytes_wire"] > 0.8 * mem and rate <= 1.1e6, rate
ps = [l for l in lines if l.get("event") == "progress"]
phases = [l["phase"] for l in ps]
print("progress: %d lines, phases %s" % (len(ps), " ".join(dict.fromkeys(phases))))
assert all(l["session"] == r["id"] for l in ps)
assert "precopy" in phases and phases[-1] == "done", phases
sent = [l["bytes_sent"] for l in ps]
assert sent == sorted(sent) and sent[-1] >= pre["bytes_wire"], sent
mid = [l for l in ps if l["phase"] == "precopy" and l["bytes_left"] is not None]
assert mid, "no estimate of what is left during pre-copy"
# The target's steps are in the timeline, after the source's.
names = [p["name"] for p in r["phases"]]
assert names[-3:] == ["verify", "restore", "route"], names
assert all(p["side"] == "target" for p in r["phases"][-3:])
PY
running_on 2 st || fail "not running on host 2"

# 2. The phase table, printed by the CLI itself (no --json).
h 2 migrate st --to "$(haddr 1):$MIG_PORT" >"$MIG_LOGS/table.txt" || fail "migrate back"
grep -q '^  restore    target ' "$MIG_LOGS/table.txt" || fail "no restore phase: $(cat "$MIG_LOGS/table.txt")"
grep -q '^  handoff time .* ms, downtime .* ms' "$MIG_LOGS/table.txt" || fail "no summary line"
cat "$MIG_LOGS/table.txt"

# 3. Cancel: a slow migration (1 Mbit/s cap) is cancelled by its session id.
h 1 migrate st --to "$(haddr 2):$MIG_PORT" --max-rate 1M --progress --json \
	>"$MIG_LOGS/cancel.json" 2>"$MIG_LOGS/cancel.progress" &
MIG=$!
wait_for 20 grep -q '"phase":"precopy"' "$MIG_LOGS/cancel.progress" || fail "no progress"
SESSION=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session"])' \
	"$MIG_LOGS/cancel.progress")
h 1 migrate --cancel "$SESSION" >"$MIG_LOGS/cancel.out" || fail "cancel: $(cat "$MIG_LOGS/cancel.out")"
if wait "$MIG"; then fail "the cancelled migration succeeded"; fi
grep -q "cancelled" "$MIG_LOGS/cancel.out" || fail "cancel said: $(cat "$MIG_LOGS/cancel.out")"
[ "$(field "$MIG_LOGS/cancel.json" cancelled)" = True ] || fail "timeline: not cancelled"
running_on 1 st || fail "not running on host 1 after the cancel"
h 2 ps --json | python3 -c 'import json,sys; sys.exit(1 if json.load(sys.stdin) else 0)' ||
	fail "host 2 kept a container"
wait_for 10 bash -c "[ -z \"\$(ls -A '$EM_H2_ROOT/incoming' 2>/dev/null)\" ]" ||
	fail "host 2 kept staging: $(ls "$EM_H2_ROOT/incoming")"
V=$(on_client python3 "$MWC" "$SIP" 7000 verify) || fail "verify after the cancel: $V"
# A cancel after the end is refused and says why.
if h 1 migrate --cancel "$SESSION" 2>"$MIG_LOGS/again.err"; then fail "cancelled twice"; fi
grep -q "already ended" "$MIG_LOGS/again.err" || fail "second cancel: $(cat "$MIG_LOGS/again.err")"

# 3b. The same through the edge's control op (what the controller's
# POST /migrations/ID/cancel sends): `edgemig control ... cancel SESSION`.
h 1 migrate st --to "$(haddr 2):$MIG_PORT" --max-rate 1M --progress --json \
	>"$MIG_LOGS/cancel2.json" 2>"$MIG_LOGS/cancel2.progress" &
MIG=$!
wait_for 20 grep -q '"phase":"precopy"' "$MIG_LOGS/cancel2.progress" || fail "no progress"
SESSION=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session"])' \
	"$MIG_LOGS/cancel2.progress")
h 1 control "$(haddr 1):$MIG_PORT" cancel "$SESSION" --edge h1 >"$MIG_LOGS/cancel2.out" 2>&1 ||
	fail "control cancel: $(cat "$MIG_LOGS/cancel2.out")"
if wait "$MIG"; then fail "the migration cancelled by control succeeded"; fi
[ "$(field "$MIG_LOGS/cancel2.json" cancelled)" = True ] || fail "timeline: not cancelled (control)"
running_on 1 st || fail "not running on host 1 after the control cancel"

# 4. --auto-converge: rewriting random pages faster than a 2 Mbit/s cap
# drains them, pre-copy throttles the container instead of handing off in
# hybrid mode, and the throttle is lifted at the end.
h 1 rm -f st >/dev/null
SIP=10.66.0.49 # st's address stays reserved on host 2, which it left
h 1 run --name ac --ip "$SIP/32" -e MEMWRITER_MB=1 -e MEMWRITER_RATE=1 -e MEMWRITER_PATTERN=random \
	memwriter >/dev/null || fail "run memwriter (random)"
testbed route "$SIP" 1
wait_for 10 on_client python3 "$MWC" "$SIP" 7000 >/dev/null || fail "memwriter (random) does not answer"
h 1 migrate ac --to "$(haddr 2):$MIG_PORT" --max-rate 2M --auto-converge --max-rounds 3 --json \
	>"$MIG_LOGS/ac.json" || fail "migrate --auto-converge: $(cat "$MIG_LOGS/ac.json")"
python3 - "$MIG_LOGS/ac.json" <<'PY' || fail "auto-converge: $(cat "$MIG_LOGS/ac.json")"
import json, sys
r = json.load(open(sys.argv[1]))
caps = [rd.get("throttle_pct") for rd in r["rounds"]]
print("rounds %d, stop %s, throttle per round %s, final mode %s" %
      (len(r["rounds"]), r["stop_reason"], caps, r.get("final_mode", "plain")))
assert r["ok"] and caps[0] == 50, caps
assert "throttle_start" in r["marks"] and "throttle_lifted" in r["marks"], r["marks"]
assert r.get("final_mode") != "lazy", "handed off in hybrid mode despite --auto-converge"
PY
running_on 2 ac || fail "not running on host 2"
on_client python3 "$MWC" "$SIP" 7000 verify >/dev/null || fail "verify after auto-converge"
h 2 rm -f ac >/dev/null
echo "ok: max-rate, progress, the CLI's timeline, cancel and auto-converge"
