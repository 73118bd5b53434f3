#!/usr/bin/env bash
# edgemig check: the host probe reports what this machine really has (each
# "missing" is cross-checked independently), caches, and re-probes on demand.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM="$BUILD/edgemig"
[ -x "$EM" ] || { echo "SKIP: $EM not built"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }

ROOT=$(mktemp -d /tmp/em-check-XXXXXX)
cleanup() { rm -rf "$ROOT"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
probe() { jq -r --arg n "$2" '.probes[] | select(.name == $n) | .'"$3" "$1"; }

ms() { date +%s%3N; }
t0=$(ms)
"$EM" --root "$ROOT" check --json >"$ROOT/first.json" || fail "check exited $?: $(cat "$ROOT/first.json")"
t1=$(ms)
J="$ROOT/first.json"
jq -e . "$J" >/dev/null || fail "not JSON"
jq -e '.can_migrate == true and .cached == false' "$J" >/dev/null || fail "can_migrate/cached: $(jq -c '{can_migrate,cached}' "$J")"

criu_v=$(probe "$J" criu value)
[ "$(probe "$J" criu status)" = ok ] || fail "criu not ok"
printf '%s\n4.2\n' "$criu_v" | sort -V -C -r || fail "criu $criu_v < 4.2"
# The version must be the binary's own answer.
real_v=$("${EDGEMIG_CRIU:-/opt/edgemig/criu/bin/criu}" --version | sed -n 's/^Version: *//p')
[ "$criu_v" = "$real_v" ] || fail "criu version $criu_v, binary says $real_v"
[ "$(probe "$J" dump_restore status)" = ok ] || fail "dump_restore: $(probe "$J" dump_restore detail)"
[ "$(probe "$J" userfaultfd status)" = ok ] || fail "userfaultfd not ok"
for p in kernel overlayfs namespaces runc; do
	[ "$(probe "$J" $p status)" = ok ] || fail "$p not ok"
done

# soft-dirty, checked independently: pagemap bit 55 after clear_refs 4 + write.
sd=$(python3 - <<'PY'
import mmap, os, struct
m = mmap.mmap(-1, 4096); m[0] = 1
with open("/proc/self/clear_refs", "w") as f: f.write("4")
m[0] = 2
import ctypes
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
with open("/proc/self/pagemap", "rb") as f:
    f.seek(addr // 4096 * 8); e = struct.unpack("<Q", f.read(8))[0]
print("yes" if e >> 55 & 1 else "no")
PY
)
want=$([ "$sd" = yes ] && echo ok || echo missing)
[ "$(probe "$J" soft_dirty status)" = "$want" ] || fail "soft_dirty: kernel says $sd, probe says $(probe "$J" soft_dirty status)"
if [ "$sd" = no ]; then
	probe "$J" soft_dirty hint | grep -q 'page-content delta' || fail "soft_dirty hint"
fi

# Hardware breakpoints, checked independently: CRIU's own kerndat test, run
# fresh (its cache in /run hidden by a private tmpfs).
unshare -m sh -c "mount -t tmpfs none /run && ${EDGEMIG_CRIU:-/opt/edgemig/criu/bin/criu} check -v4 -o $ROOT/kdat.log" >/dev/null 2>&1 || true
if grep -qE "Hardware breakpoints (don't seem to work|appear to be disabled)" "$ROOT/kdat.log"; then
	hw=missing
else
	hw=ok
fi
[ "$(probe "$J" hw_breakpoints status)" = "$hw" ] || fail "hw_breakpoints: CRIU says $hw, probe says $(probe "$J" hw_breakpoints status)"
if [ "$hw" = missing ]; then
	probe "$J" hw_breakpoints hint | grep -q 'CRIU_FAULT=130' || fail "hw_breakpoints hint"
fi

# pipe-max-size is reported as it is.
[ "$(probe "$J" pipe_max_size value)" = "$(cat /proc/sys/fs/pipe-max-size)" ] || fail "pipe_max_size"

# Second run: cached, faster, same answers.
t2=$(ms)
"$EM" --root "$ROOT" check --json >"$ROOT/second.json" || fail "cached check failed"
t3=$(ms)
jq -e '.cached == true' "$ROOT/second.json" >/dev/null || fail "second run not cached"
[ "$(jq -c '.probes | map({name,status})' "$J")" = "$(jq -c '.probes | map({name,status})' "$ROOT/second.json")" ] || fail "cache differs"
echo "first run $((t1 - t0)) ms, cached run $((t3 - t2)) ms"
[ $((t3 - t2)) -lt $((t1 - t0)) ] || fail "cached run not faster"

# --no-cache re-probes; a changed key (edited cache key) re-probes too.
"$EM" --root "$ROOT" check --json --no-cache >"$ROOT/third.json" || fail "--no-cache failed"
jq -e '.cached == false' "$ROOT/third.json" >/dev/null || fail "--no-cache used the cache"
jq '.key.kernel_release = "0.0-other"' "$ROOT/check-cache.json" >"$ROOT/c.json" && mv "$ROOT/c.json" "$ROOT/check-cache.json"
"$EM" --root "$ROOT" check --json | jq -e '.cached == false' >/dev/null || fail "stale key used"

# Text mode and exit status; a missing CRIU makes the host unable to migrate.
"$EM" --root "$ROOT" check | grep -q '^host can migrate containers: yes$' || fail "text output"
rc=0
EDGEMIG_CRIU=/nonexistent/criu "$EM" --root "$ROOT" check >"$ROOT/nocriu.out" 2>"$ROOT/nocriu.err" || rc=$?
[ "$rc" -eq 1 ] || fail "no criu: exit $rc"
grep -q 'host can migrate containers: no' "$ROOT/nocriu.out" || fail "no criu: text"
grep -q 'criu: .*scripts/setup' "$ROOT/nocriu.err" || fail "no criu: stderr $(cat "$ROOT/nocriu.err")"
"$EM" check --help | grep -q 'Exit status' || fail "help"
[ -z "$(ls -A "$ROOT/tmp")" ] || fail "scratch dirs left: $(ls "$ROOT/tmp")"
echo "PASS"
