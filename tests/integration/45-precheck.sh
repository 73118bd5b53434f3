#!/bin/bash
# The migratability pre-check: `edgemig check NAME --to` and `migrate
# --dry-run` move nothing, say yes for a container that can migrate (with
# an estimate over the measured link), and name the problem when it cannot:
# a name or a service IP the target already uses, a unix socket connected
# outside the container, a container that is not running.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 busybox

SIP=10.66.0.45
h 1 run --name web --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
testbed route "$SIP" 1
PID=$(h 1 inspect web | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
T="$(haddr 2):$MIG_PORT"
pid_now() { h 1 inspect web | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }

# --- it can migrate: an estimate, and nothing moved ------------------------------
h 1 check web --to "$T" --json >"$MIG_LOGS/ok.json" || fail "check: $(cat "$MIG_LOGS/ok.json")"
python3 - "$MIG_LOGS/ok.json" <<'PY' || fail "check report: $(cat "$MIG_LOGS/ok.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["problems"] == [], r
assert r["local"]["processes"] >= 1 and r["local"]["memory_bytes"] > 0, r["local"]
assert r["target_host"]["disk_free_bytes"] > 0 and r["target_host"]["mem_available_bytes"] > 0
assert r["link"]["bandwidth_bps"] > 0 and r["link"]["rtt_ms"] >= 0, r["link"]
e = r["estimate"]
assert e["layers_bytes"] == 0, e  # host 2 has the image
assert 0 < e["memory_ratio"] <= 1, e
# What CRIU dumps, not the resident size: most of busybox's RSS is its
# mapped binary, which stays in the layers (a migration sends ~40 kB).
assert 0 < e["memory_bytes"] < r["local"]["memory_bytes"] / 2, (e, r["local"])
want = e["layers_bytes"] + e["upper_bytes"] + e["memory_bytes"] * e["memory_ratio"]
assert abs(e["transfer_bytes"] - want) <= 1, e
assert e["handoff_ms"] > e["downtime_ms"] > 0, e
print("check: %d bytes, handoff ~%d ms over %.1f Mbit/s" %
      (e["transfer_bytes"], e["handoff_ms"], r["link"]["bandwidth_bps"] / 1e6))
PY
h 1 migrate web --to "$T" --dry-run >"$MIG_LOGS/dry.txt" || fail "dry run: $(cat "$MIG_LOGS/dry.txt")"
grep -q "^pre-check of web -> $T (mode precopy): can migrate" "$MIG_LOGS/dry.txt" ||
	fail "dry-run text: $(cat "$MIG_LOGS/dry.txt")"
grep -q "^estimate: .* handoff ~" "$MIG_LOGS/dry.txt" || fail "no estimate: $(cat "$MIG_LOGS/dry.txt")"
[ "$(pid_now)" = "$PID" ] || fail "the pre-check disturbed web"
running_on 1 web || fail "web not running on host 1"
h 2 ps | grep -q '^web ' && fail "web appeared on host 2"
[ -z "$(find "$EM_H2_ROOT/incoming" "$EM_H2_ROOT/containers" -mindepth 1 2>/dev/null)" ] ||
	fail "the pre-check staged something on host 2"

# --- the target uses the name, then the service IP --------------------------------
h 2 run --name web --ip 10.66.0.46/32 busybox >/dev/null || fail "run the namesake on host 2"
RC=0
h 1 check web --to "$T" >"$MIG_LOGS/name.txt" 2>&1 || RC=$?
[ "$RC" = 1 ] || fail "check against a namesake exited $RC"
grep -q "problem: a container of that name exists on the target" "$MIG_LOGS/name.txt" ||
	fail "namesake not named: $(cat "$MIG_LOGS/name.txt")"
h 2 rm -f web >/dev/null
h 2 run --name squat --ip "$SIP/32" busybox >/dev/null || fail "run squat on host 2"
RC=0
h 1 migrate web --to "$T" --dry-run --json >"$MIG_LOGS/ip.json" 2>/dev/null || RC=$?
[ "$RC" = 1 ] || fail "dry run against a used service IP exited $RC"
python3 - "$MIG_LOGS/ip.json" <<'PY' || fail "ip report: $(cat "$MIG_LOGS/ip.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is False, r
assert any("service IP 10.66.0.45 of web is used on this host by squat" in p for p in r["problems"]), r
PY
h 2 rm -f squat >/dev/null

# --- a unix socket connected outside the container -------------------------------
# One end of a socketpair of the root namespace, handed to a process in the
# container (runc exec --preserve-fds), the other end kept outside.
python3 - "$EM_H1_ROOT" <<'PY' &
import os, socket, subprocess, sys, time
root = sys.argv[1]
a, b = socket.socketpair()
os.dup2(b.fileno(), 3)
p = subprocess.Popen(["runc", "--root", root + "/runc", "exec", "--preserve-fds", "1", "web",
                      "sleep", "60"], pass_fds=(3,))
time.sleep(60)
p.kill()
PY
HOLDER=$!
# The check must run once `sleep 60` holds the socket in the container: runc
# exec takes from a tenth of a second to seconds on a loaded machine, so wait
# for that process, not for a fixed time.
holding() {
	local p
	for p in $(runc --root "$EM_H1_ROOT/runc" ps --format json web | tr -d '[]' | tr ',' ' '); do
		[ "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" = "sleep 60 " ] &&
			[[ $(readlink "/proc/$p/fd/3" 2>/dev/null) == socket:* ]] && return 0
	done
	return 1
}
wait_for 20 holding || fail "the socket's holder did not start in web (runc exec)"
RC=0
h 1 check web --to "$T" >"$MIG_LOGS/sock.txt" 2>&1 || RC=$?
kill "$HOLDER" 2>/dev/null || true
[ "$RC" = 1 ] || fail "check with an external socket exited $RC: $(cat "$MIG_LOGS/sock.txt")"
grep -q "problem: unix socket .* outside the container" "$MIG_LOGS/sock.txt" ||
	fail "external socket not named: $(cat "$MIG_LOGS/sock.txt")"
h 1 exec web pkill sleep 2>/dev/null || true

# --- not running ------------------------------------------------------------------
h 1 stop -t 1 web >/dev/null || fail "stop web"
RC=0
h 1 check web --to "$T" >"$MIG_LOGS/stopped.txt" 2>&1 || RC=$?
[ "$RC" = 1 ] || fail "check of a stopped container exited $RC"
grep -q "problem: web is not running here" "$MIG_LOGS/stopped.txt" ||
	fail "stopped not named: $(cat "$MIG_LOGS/stopped.txt")"
echo "ok"
