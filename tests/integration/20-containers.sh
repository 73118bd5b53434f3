#!/bin/bash
# Containers on layered storage with the busybox test image: run, ps, inspect,
# exec, logs, networking; local checkpoint + restore keeps the counter going
# and the files (including whiteouts and opaque dirs) intact, and output keeps
# reaching the log after the restore; stop and rm leave nothing behind.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
CK=$(mktemp -d /tmp/edgemig-ck.XXXXXX)
trap 'ct_cleanup; rm -rf "$CK"' EXIT

ct_pull busybox
BEFORE=$(ct_census)
echo "before: $BEFORE"

# --- run, ps, inspect, exec -------------------------------------------------
em run --name counter busybox >/dev/null || fail "run"
em ps | grep -q '^counter .*running' || fail "ps does not show counter running"
IP=$(em inspect counter | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')
[ "$IP" = 10.66.0.2 ] || fail "first allocated IP is $IP, want 10.66.0.2"
em run --name counter busybox >/dev/null 2>&1 && fail "a second container with the same name ran"
wait_for 10 em exec counter test -s /data/counter.log || fail "counter.log not written"
[ "$(em exec counter hostname)" = counter ] || fail "hostname"
em exec counter ip -o addr show dev eth0 | grep -q "inet $IP/32" || fail "eth0 lacks $IP/32"
em exec counter ip route | grep -q 'default via 169.254.1.1' || fail "no default route"
busybox ping -c 1 -W 2 "$IP" >/dev/null || fail "host cannot reach $IP"
em exec counter ping -c 1 -W 2 169.254.1.1 >/dev/null || fail "container cannot reach its gateway"

# Files: a new one, a whiteout over a lower file, an opaque directory.
em exec counter sh -c 'echo hello >/data/file.txt && rm /etc/hostname &&
	rm -rf /usr/sbin && mkdir /usr/sbin && echo mine >/usr/sbin/mine' || fail "writing files"

# A second container writing to stdout: its log must survive a restore.
em run --name ticker busybox sh -c 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done' >/dev/null
[ "$(em inspect ticker | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')" = 10.66.0.3 ] ||
	fail "second container did not get the next free address"
wait_for 10 bash -c "em logs ticker | grep -q 'tick 5'" || fail "ticker output not in the log"
# A reader that has gone (`| head`, `| grep -q`) ends `logs` quietly and
# successfully: its stdout here is a pipe whose read end is already closed.
out=$(python3 -c 'import os, subprocess, sys
r, w = os.pipe()
os.close(r)
sys.exit(subprocess.call(sys.argv[1:], stdout=w))' "$EM" --root "$ROOT" logs ticker 2>&1) ||
	fail "logs into a closed pipe exited $?: $out"
[ -z "$out" ] || fail "logs into a closed pipe said: $out"

# The census must see what two running containers hold, or it proves nothing.
DURING=$(ct_census)
echo "during: $DURING"
for k in mounts netns veths cgroups runc loggers; do
	v=$(echo "$DURING" | tr ' ' '\n' | sed -n "s/^$k=//p")
	b=$(echo "$BEFORE" | tr ' ' '\n' | sed -n "s/^$k=//p")
	[ "$v" -ge $((b + 2)) ] || fail "census does not count $k of running containers ($DURING)"
done

# --- checkpoint + restore: busybox counter ---------------------------------
sleep 0.5
em checkpoint counter --to "$CK/counter" >/dev/null || fail "checkpoint"
em ps | grep -q '^counter .*checkpointed' || fail "not checkpointed"
[ -z "$(ls "$ROOT/netns")" ] || [ "$(ls "$ROOT/netns")" = ticker ] || fail "netns kept after checkpoint"
grep -q " $ROOT/containers/counter/rootfs " /proc/self/mountinfo && fail "rootfs still mounted after checkpoint"
[ -f "$CK/counter/container.json" ] && [ -d "$CK/counter/criu" ] || fail "checkpoint layout"
# edgemig froze the cgroup before CRIU looked (container/freezer.h), so CRIU
# found it FROZEN and skipped its 100 ms polling step.
grep -A1 'freezing cgroup' "$CK/counter/criu/dump.log" | grep -q 'freezer.state=FROZEN' ||
	fail "CRIU did not find the cgroup frozen: $(grep -m3 'freezer.state' "$CK/counter/criu/dump.log")"
[ "$(stat -c '%F %t:%T' "$CK/counter/upper/etc/hostname")" = "character special file 0:0" ] ||
	fail "whiteout not kept in the checkpoint"
python3 -c 'import os,sys; sys.exit(os.getxattr(sys.argv[1], "trusted.overlay.opaque") != b"y")' \
	"$CK/counter/upper/usr/sbin" ||
	fail "opaque xattr not kept in the checkpoint"
# The masked directories are CRIU external mounts (container/masks.h): no
# tar of their tmpfs in the dump; the restore binds the host's empty
# read-only tmpfs there.
for m in /proc/acpi /sys/firmware; do
	[ -d "$m" ] || continue
	grep -q "Found edgemig-mask$m mapping for .$m mountpoint" "$CK/counter/criu/dump.log" ||
		fail "CRIU dumped the mask $m instead of taking it as external"
done
LAST=$(tail -n 1 "$CK/counter/upper/data/counter.log")
echo "counter at $LAST when checkpointed"

em restore "$CK/counter" >/dev/null || fail "restore"
em ps | grep -q '^counter .*running' || fail "not running after restore"
wait_for 10 bash -c "[ \$(em exec counter tail -n 1 /data/counter.log) -gt $((LAST + 5)) ]" ||
	fail "counter does not advance after restore"
em exec counter cat /data/counter.log | awk 'NR > 1 && $1 != prev + 1 { print "gap at " NR ": " prev " -> " $1; bad = 1 }
	{ prev = $1 } END { exit bad }' || fail "counter restarted or skipped"
[ "$(em exec counter cat /data/file.txt)" = hello ] || fail "file lost"
# ... and the masks still mask: empty, and nothing can be written there.
for m in /proc/acpi /sys/firmware; do
	[ -d "$m" ] || continue
	[ -z "$(em exec counter ls -A "$m")" ] || fail "the restored mask $m is not empty"
	em exec counter touch "$m/x" 2>/dev/null && fail "the restored mask $m is writable"
	em exec counter sh -c "mount -o remount,bind,rw $m && touch $m/x" 2>/dev/null &&
		fail "the restored mask $m can be made writable"
done
em exec counter test -e /etc/hostname && fail "deleted file came back"
[ "$(em exec counter ls /usr/sbin)" = mine ] || fail "opaque dir content wrong"
em exec counter ip -o addr show dev eth0 | grep -q "inet $IP/32" || fail "service IP lost"
busybox ping -c 1 -W 2 "$IP" >/dev/null || fail "host cannot reach $IP after restore"

# --- the log across checkpoint --leave-running and a restore ----------------
em checkpoint ticker --to "$CK/ticker" --leave-running >/dev/null || fail "checkpoint --leave-running"
em ps | grep -q '^ticker .*running' || fail "ticker stopped by --leave-running"
# ... and thawed: it goes on writing its log.
N0=$(em logs ticker | tail -n 1 | awk '{print $2}')
wait_for 10 bash -c "[ \$(em logs ticker | tail -n 1 | awk '{print \$2}') -gt $((N0 + 2)) ]" ||
	fail "ticker left frozen by checkpoint --leave-running"
# A dump that fails after edgemig froze the cgroup (here CRIU cannot even
# start) leaves the container running, not frozen.
printf '#!/bin/sh\necho "criu: injected failure" >&2\nexit 1\n' >"$ROOT/criu-fails"
chmod +x "$ROOT/criu-fails"
EDGEMIG_CRIU=$ROOT/criu-fails em checkpoint ticker --to "$CK/broken" >/dev/null 2>&1 &&
	fail "checkpoint with a failing CRIU succeeded"
em ps | grep -q '^ticker .*running' || fail "ticker not running after a failed checkpoint"
N0=$(em logs ticker | tail -n 1 | awk '{print $2}')
wait_for 10 bash -c "[ \$(em logs ticker | tail -n 1 | awk '{print \$2}') -gt $((N0 + 2)) ]" ||
	fail "ticker left frozen by a failed checkpoint"
em rm -f ticker >/dev/null || fail "rm -f running"
em restore "$CK/ticker" >/dev/null || fail "restore ticker"
N0=$(em logs ticker | tail -n 1 | awk '{print $2}')
wait_for 10 bash -c "[ \$(em logs ticker | tail -n 1 | awk '{print \$2}') -gt $((N0 + 5)) ]" ||
	fail "no output reaches the log after restore"

# --- stop, rm: no leaks -----------------------------------------------------
em stop -t 1 counter >/dev/null || fail "stop"
em ps | grep -q '^counter .*stopped' || fail "not stopped"
em rm counter >/dev/null || fail "rm"
em rm ticker >/dev/null 2>&1 && fail "rm of a running container without -f succeeded"
em rm -f ticker >/dev/null || fail "rm -f"
[ -z "$(em ps --json | python3 -c 'import json,sys; print(json.load(sys.stdin) or "")')" ] || fail "ps not empty"
[ -z "$(ls "$ROOT/containers")" ] || fail "container files left: $(ls "$ROOT/containers")"
ct_wait_census "$BEFORE"
echo "after:  $(ct_census)"
echo "PASS"
