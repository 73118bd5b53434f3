#!/bin/bash
# A service that drops privileges with setuid() and no exec (as mariadbd)
# is non-dumpable. CRIU checkpoints it once, but after CRIU restored it
# its memory map belongs to the host's initial user namespace and CRIU
# cannot dump it again (docs/security.md, "Services that drop privileges
# themselves checkpoint once"). edgemig refuses that second checkpoint
# before CRIU runs, with an error naming the fix, and the container keeps
# running; the same program that sets itself dumpable again after the
# drop checkpoints and restores twice. The program (data/setuid-sleep.c)
# is built static here and run from a named volume in busybox.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
trap ct_cleanup EXIT
BIN=$ROOT/setuid-sleep
"${CC:-cc}" -static -O2 -o "$BIN" "$(dirname "$0")/data/setuid-sleep.c" 2>/dev/null ||
	skip "cannot build a static program (libc6-dev's libc.a)"
ct_pull busybox

# start NAME [ARG]: the program as the container's pid 1, dropped to 1000.
start() {
	em run --name "$1" -v "$1-bin:/bin-x" busybox sh -c \
		"while [ ! -x /bin-x/s ]; do sleep 0.1; done; exec /bin-x/s ${2:-}" >/dev/null ||
		fail "run $1"
	install -m 755 "$BIN" "$ROOT/volumes/$1-bin/s"
	wait_for 20 bash -c "em exec $1 cat /proc/1/status | grep -q '^Uid:.1000'" ||
		fail "$1 did not drop to uid 1000"
}
state() { em ps --json | jq -r --arg n "$1" '.[] | select(.name == $n) | .state'; }
hop() { # NAME N: checkpoint and restore
	em checkpoint "$1" --to "$ROOT/ck-$1-$2" >/dev/null || fail "checkpoint $2 of $1"
	em restore "$ROOT/ck-$1-$2" >/dev/null || fail "restore $2 of $1"
}

start nd
hop nd 1
em checkpoint nd --to "$ROOT/ck-nd-2" >/dev/null 2>"$ROOT/nd.err" &&
	fail "a restored non-dumpable process was checkpointed again"
grep -q "dropped privileges without an exec" "$ROOT/nd.err" ||
	fail "second checkpoint's error: $(cat "$ROOT/nd.err")"
grep -q "PR_SET_DUMPABLE" "$ROOT/nd.err" || fail "the error names no fix: $(cat "$ROOT/nd.err")"
[ "$(state nd)" = running ] || fail "nd is $(state nd) after the refused checkpoint"

start dump dumpable
hop dump 1
hop dump 2
[ "$(state dump)" = running ] || fail "dump is $(state dump) after two hops"
echo "ok: a restored non-dumpable service is refused with the fix named; a dumpable one hops twice"
