#!/bin/bash
# A pod whose containers have a named volume (shared by two members), a
# tmpfs and a bind mount migrates as one unit (docs/pods.md): member w
# appends a counter kept in its shell to the volume every 50 ms, member r
# mounts the same volume read-only. The pre-check names the bind mount
# while the target does not allow its path, then passes once it does;
# `prepare` sends the volume ahead into the target's cache. A target that
# fails after the first member came back leaves the pod and the volume on
# the source only; the next hop sends only what changed in the volume
# since (the target kept its copy). After the hop: every line written
# before the freeze is on the target's volume, the counter goes on from where it was with no gap and no
# restart (w's memory moved), the tmpfs keeps what w wrote there, the
# bind mount is there, and the source keeps neither the pod nor the
# volume.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/pod-lib.sh"
mig_setup 2 busybox

IP=10.66.28.17
BIND=$(mktemp -d /tmp/edgemig-podvol.XXXXXX)
echo hostdata >"$BIND/f"
chmod -R a+rX "$BIND"
echo "{\"bind_prefixes\": [\"$BIND\"]}" >"$EM_H1_ROOT/volumes.json"
trap 'rm -rf "$BIND"; mig_cleanup' EXIT

h 1 pod create --ip "$IP" web >/dev/null || fail "pod create"
h 1 run --pod web --name w -v pvdata:/data --tmpfs /scratch -v "$BIND:/in:ro" busybox sh -c '
	head -c 1048576 /dev/urandom >/data/big; echo "tmpfs-$$" >/scratch/t; i=0
	while :; do i=$((i + 1)); echo $i >>/data/log; sleep 0.05; done' >/dev/null || fail "run w"
h 1 run --pod web --name r -v pvdata:/data:ro busybox sleep 1d >/dev/null || fail "run r"
lines() { wc -l <"$1/volumes/pvdata/log" 2>/dev/null || echo 0; }
grows() { [ "$(lines "$EM_H1_ROOT")" -gt 5 ]; }
wait_for 10 grows || fail "w does not write to its volume"
tmpfs=$(h 1 exec w cat /scratch/t) || fail "exec w"

# The bind mount pins the pod to hosts that allow its path.
h 1 check web --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/check.txt" 2>&1 &&
	fail "check passed with the bind path not allowed on the target"
grep -q "bind mount of $BIND is not allowed" "$MIG_LOGS/check.txt" ||
	fail "check: $(cat "$MIG_LOGS/check.txt")"
cp "$EM_H1_ROOT/volumes.json" "$EM_H2_ROOT/volumes.json"
h 1 check web --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/check.txt" 2>&1 ||
	fail "check: $(cat "$MIG_LOGS/check.txt")"
grep -q 'w has 1 bind mount' "$MIG_LOGS/check.txt" || fail "check notes: $(cat "$MIG_LOGS/check.txt")"

# `prepare` sends the volume ahead into the target's cache (the pod runs on).
h 1 prepare web --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/prep.json" 2>"$MIG_LOGS/prep.err" ||
	fail "prepare: $(cat "$MIG_LOGS/prep.err")"
python3 - "$MIG_LOGS/prep.json" <<'PY' || fail "prepare report: $(cat "$MIG_LOGS/prep.json")"
import json, sys
r = json.load(open(sys.argv[1]))
ph = {p["name"]: p for p in r["phases"]}
assert r["ok"] and ph["volumes"]["bytes_wire"] > 1000000, ph
print("pod prepare with a volume: %d bytes of volume" % ph["volumes"]["bytes_wire"], file=sys.stderr)
PY
[ ! -e "$EM_H2_ROOT/volumes/pvdata" ] || fail "prepare installed the volume on host 2"

# A target that fails after the first member came back: the pod and its
# volume stay on host 1 only; host 2 keeps its copy in the page cache.
mig_daemon_stop 2
EDGEMIG_FAULT=pod.after-member-restore-1=error mig_daemon 2
h 1 migrate web --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/mig.err" &&
	fail "migration with a failing target succeeded"
grep -q 'pod.after-member-restore-1' "$MIG_LOGS/mig.err" || fail "failed hop: $(cat "$MIG_LOGS/mig.err")"
[ -e "$EM_H1_ROOT/volumes/pvdata/big" ] || fail "host 1 lost the volume in the failed hop"
[ ! -e "$EM_H2_ROOT/volumes/pvdata" ] || fail "host 2 installed the volume of a failed hop"
[ -z "$(h 2 ps --json | python3 -c 'import json,sys; print(*[c["name"] for c in json.load(sys.stdin)])')" ] ||
	fail "host 2 kept containers of the failed hop"
n0=$(lines "$EM_H1_ROOT")
goes_on() { [ "$(lines "$EM_H1_ROOT")" -gt $((n0 + 5)) ]; }
wait_for 10 goes_on || fail "w does not write after the failed hop"
mig_daemon_stop 2
mig_daemon 2

h 1 migrate web --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig.json" 2>"$MIG_LOGS/mig.err" ||
	fail "migrate: $(cat "$MIG_LOGS/mig.err")"
python3 - "$MIG_LOGS/mig.json" <<'PY' || fail "report: $(cat "$MIG_LOGS/mig.json")"
import json, sys
r = json.load(open(sys.argv[1]))
ph = {p["name"]: p for p in r["phases"]}
# The 1 MiB of random data crossed in the prepare, kept by the target:
# this one sends only what changed since (the log's new lines).
assert r["ok"] and r["pod"] and 0 < ph["volumes"]["bytes_wire"] < 100000, ph
print("pod hop with a volume: downtime %d ms, volumes %d bytes before the freeze (after prepare and a failed hop)" %
      (r["downtime_ms"], ph["volumes"]["bytes_wire"]), file=sys.stderr)
PY
n1=$(lines "$EM_H2_ROOT")
more() { [ "$(lines "$EM_H2_ROOT")" -gt $((n1 + 5)) ]; }
wait_for 10 more || fail "w does not write to its volume on host 2"
python3 - "$EM_H2_ROOT/volumes/pvdata/log" <<'PY' || fail "the volume's log on host 2"
import sys
v = [int(l) for l in open(sys.argv[1])]
assert v == list(range(1, len(v) + 1)), "a gap or a restart: %s" % [x for i, x in enumerate(v) if x != i + 1][:5]
PY
[ "$(h 2 exec w cat /scratch/t)" = "$tmpfs" ] || fail "the tmpfs lost its content"
[ "$(h 2 exec w cat /in/f)" = hostdata ] || fail "the bind mount is not there on host 2"
[ "$(h 2 exec r cat /data/big | wc -c)" = 1048576 ] ||
	fail "r does not see the volume on host 2"
[ ! -e "$EM_H1_ROOT/volumes/pvdata" ] || fail "host 1 kept the volume"
[ -z "$(h 1 ps --json | python3 -c 'import json,sys; print(*[c["name"] for c in json.load(sys.stdin)])')" ] ||
	fail "host 1 kept containers of the pod"
h 2 pod rm --force web >/dev/null || fail "pod rm"
echo "ok: a pod with a named volume, a tmpfs and a bind mount migrated"
