#!/bin/bash
# CRIU 4.2.1 does not restore memory protection keys (checkpoint/pkeys.h):
# a process that tagged memory with a key comes back without it, and
# Node.js (wasm code space on key 1) then aborts. So a local `checkpoint`
# and `pod checkpoint` of a container whose processes use a key are
# refused before anything is frozen or written, with an error naming the
# fix, and the service runs on; also when the process using the key is
# one `edgemig exec` started (in the container's cgroup, outside pid 1's
# process tree). The program (data/pkey-sleep.c, pkey_alloc
# + pkey_mprotect, bumping a counter in the tagged page) is built static
# here and run from a named volume in busybox. Skipped where the CPU or
# kernel has no protection keys.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
grep -qw pku /proc/cpuinfo && grep -qw ospke /proc/cpuinfo ||
	skip "the CPU has no memory protection keys (no pku/ospke in /proc/cpuinfo)"
ct_root
cleanup() {
	"$EM" --root "$ROOT" pod rm --force pkpod >/dev/null 2>&1 || true
	ct_cleanup
}
trap cleanup EXIT
BIN=$ROOT/pkey-sleep
"${CC:-cc}" -static -O2 -o "$BIN" "$(dirname "$0")/data/pkey-sleep.c" 2>/dev/null ||
	skip "cannot build a static program (libc6-dev's libc.a)"
ct_pull busybox

# start NAME [RUN OPTIONS]: the program as the container's pid 1.
start() {
	local name=$1
	shift
	em run "$@" --name "$name" -v "$name-bin:/bin-x" busybox sh -c \
		"while [ ! -x /bin-x/s ]; do sleep 0.1; done; exec /bin-x/s /bin-x" >/dev/null ||
		fail "run $name"
	install -m 755 "$BIN" "$ROOT/volumes/$name-bin/s"
	wait_for 20 test -e "$ROOT/volumes/$name-bin/n" -o -e "$ROOT/volumes/$name-bin/nopku" ||
		fail "$name did not start"
	[ ! -e "$ROOT/volumes/$name-bin/nopku" ] || skip "pkey_alloc fails in a container here"
}
count() { cat "$ROOT/volumes/$1-bin/n" 2>/dev/null; }
counts_on() { # NAME: its counter moves (it runs, not frozen)
	local a
	a=$(count "$1")
	wait_for 5 bash -c "[ \"\$(cat $ROOT/volumes/$1-bin/n)\" -gt $a ]"
}
states() { em ps --json | jq -r '[.[] | .name + "=" + .state] | join(" ")'; }
refused() { # ERRFILE: the error names the cause and the fix
	grep -q 'memory protection key' "$1" && grep -q -- '--no-wasm-memory-protection-keys' "$1" ||
		fail "the error names no cause or fix: $(cat "$1")"
}

# --- one container ---------------------------------------------------------------
start pk
em checkpoint pk --to "$ROOT/ck" >/dev/null 2>"$ROOT/err" &&
	fail "a container using a protection key was checkpointed"
refused "$ROOT/err"
grep -q 'keeps running' "$ROOT/err" || fail "the error does not say it runs on: $(cat "$ROOT/err")"
[ "$(states)" = "pk=running" ] || fail "after the refused checkpoint: $(states)"
counts_on pk || fail "pk does not run after the refused checkpoint"
[ -z "$(ls -A "$ROOT/ck" 2>/dev/null)" ] || fail "the refused checkpoint wrote $(ls "$ROOT/ck")"
em rm -f pk >/dev/null || fail "rm pk"

# --- the key in a process `edgemig exec` started ------------------------------------
# Not a descendant of the container's pid 1 (runc exec's child), but in its
# cgroup: a freeze stops it, so it is checked too (the dump would not take
# it: container/procs.h refuses it next, 39-migrate-exec.sh).
em run --name px -v "px-bin:/bin-x" busybox sleep 1000 >/dev/null || fail "run px"
install -m 755 "$BIN" "$ROOT/volumes/px-bin/s"
em exec px /bin-x/s /bin-x >/dev/null 2>&1 &
EXEC=$!
wait_for 20 test -e "$ROOT/volumes/px-bin/n" || fail "the exec'd program did not start"
em checkpoint px --to "$ROOT/xck" >/dev/null 2>"$ROOT/err" &&
	fail "a container whose exec'd process uses a protection key was checkpointed"
refused "$ROOT/err"
[ "$(states)" = "px=running" ] || fail "after the refused checkpoint: $(states)"
counts_on px || fail "the exec'd program does not run after the refused checkpoint"
[ -z "$(ls -A "$ROOT/xck" 2>/dev/null)" ] || fail "the refused checkpoint wrote $(ls "$ROOT/xck")"
em rm -f px >/dev/null || fail "rm px"
wait "$EXEC" 2>/dev/null || true

# --- a pod with such a member ------------------------------------------------------
em pod create --ip 10.66.29.9 pkpod >/dev/null || fail "pod create"
start pkm --pod pkpod
em pod checkpoint pkpod --to "$ROOT/pck" >/dev/null 2>"$ROOT/err" &&
	fail "a pod with a member using a protection key was checkpointed"
refused "$ROOT/err"
grep -q 'pod keeps running' "$ROOT/err" || fail "the error does not say the pod runs on: $(cat "$ROOT/err")"
[ "$(states)" = "pkm=running pkpod=running" ] || fail "after the refused pod checkpoint: $(states)"
counts_on pkm || fail "pkm does not run after the refused pod checkpoint"
[ -z "$(ls -A "$ROOT/pck" 2>/dev/null)" ] || fail "the refused pod checkpoint wrote $(ls "$ROOT/pck")"
[ -z "$(ls -A "$ROOT/pod-checkpoints" 2>/dev/null)" ] || fail "a journal is left"
echo "ok: checkpoint and pod checkpoint refuse a service using a protection key; it runs on"
