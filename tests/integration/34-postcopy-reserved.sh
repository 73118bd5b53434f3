#!/bin/bash
# CRIU 4.2.1's lazy dump allocates 16 bytes per page of a process's private
# mappings, reserved or not (checkpoint/lazy_fit.h); MariaDB reserves about
# 8 TiB and its lazy dump failed in CRIU ("page-pipe: create_page_pipe:
# Can't allocate 34364784192 bytes") at the final step. A process that
# reserves more address space than that allocation can take on this host
# (data/reserve-sleep.c, run from a named volume in busybox):
# `migrate --mode postcopy --dry-run` names it as a problem (the default's
# dry run as a note), `migrate --mode postcopy` is refused before anything
# moves, naming
# --mode precopy, and the container runs on here; the default (pre-copy)
# then moves it. (The default's own hybrid hand-off falling back to a
# plain final dump is tests/unit/test_lazy_fit.c's.) Skipped where the kernel grants any allocation
# (vm.overcommit_memory=1).
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
[ "$(cat /proc/sys/vm/overcommit_memory)" != 1 ] ||
	skip "vm.overcommit_memory=1: CRIU's lazy dump allocates whatever it asks for"
# A quarter more than what the kernel's heuristic grants one allocation
# (RAM + swap), at 16 bytes per 4 KiB page: 320 GiB reserved per GiB.
KB=$(awk '/^(MemTotal|SwapTotal):/ {s += $2} END {print s}' /proc/meminfo)
GIB=$((KB * 320 / 1048576 + 1))
[ "$GIB" -lt 100000 ] || skip "$GIB GiB of address space needed, more than a process has"
mig_setup 2 busybox
BIN=$MIG_LOGS/reserve-sleep
"${CC:-cc}" -static -O2 -o "$BIN" "$(dirname "$0")/data/reserve-sleep.c" 2>/dev/null ||
	skip "cannot build a static program (libc6-dev's libc.a)"

h 1 run --name resv -v resv-bin:/bin-x busybox sh -c \
	"while [ ! -x /bin-x/r ]; do sleep 0.1; done; exec /bin-x/r /bin-x $GIB" >/dev/null ||
	fail "run resv"
install -m 755 "$BIN" "$EM_H1_ROOT/volumes/resv-bin/r"
wait_for 20 test -e "$EM_H1_ROOT/volumes/resv-bin/up" || fail "resv did not reserve $GIB GiB"

# The pre-check says so first: a problem for post-copy, a note for the
# default.
h 1 migrate resv --mode postcopy --dry-run --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/dry" 2>&1 &&
	fail "the dry run found no problem: $(cat "$MIG_LOGS/dry")"
grep -q -- "lazy dump.*--mode precopy" "$MIG_LOGS/dry" || fail "dry run: $(cat "$MIG_LOGS/dry")"
h 1 migrate resv --dry-run --to "$(haddr 2):$MIG_PORT" >"$MIG_LOGS/dry2" 2>&1 ||
	fail "the default's dry run: $(cat "$MIG_LOGS/dry2")"
grep -q "a hybrid hand-off would be a plain final dump" "$MIG_LOGS/dry2" ||
	fail "the default's dry run has no note: $(cat "$MIG_LOGS/dry2")"

h 1 migrate resv --mode postcopy --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/err" &&
	fail "a lazy dump CRIU cannot start was attempted, and it succeeded?"
grep -q "lazy dump" "$MIG_LOGS/err" && grep -q -- "--mode precopy" "$MIG_LOGS/err" ||
	fail "the refusal names no cause or fix: $(cat "$MIG_LOGS/err")"
grep -q "page-pipe" "$MIG_LOGS/err" && fail "CRIU ran its lazy dump: $(cat "$MIG_LOGS/err")"
running_on 1 resv || fail "resv does not run on host 1 after the refusal"
echo "refused: $(tail -c 300 "$MIG_LOGS/err")"

h 1 migrate resv --to "$(haddr 2):$MIG_PORT" >/dev/null 2>"$MIG_LOGS/err2" ||
	fail "pre-copy of resv: $(cat "$MIG_LOGS/err2")"
running_on 2 resv || fail "resv does not run on host 2 after pre-copy"

echo "PASS: post-copy of $GIB GiB reserved refused naming pre-copy; pre-copy moved it"
