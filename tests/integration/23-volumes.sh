#!/bin/bash
# Volumes on one host: a named volume is created on first use, survives its
# container and is shared by the next; :ro is read-only; a bind mount is
# refused until "bind_prefixes" of <root>/volumes.json lists it; --tmpfs is
# an empty tmpfs; `volume rm` refuses a volume in use and `prune` removes
# only unused ones; the mounts are recorded in the container's spec.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
HOSTDIR=$(mktemp -d /tmp/edgemig-bind.XXXXXX)
# The container's root is an unprivileged host uid (its user namespace's
# range): it reads the bind-mounted host directory as "others" do.
chmod 755 "$HOSTDIR"
trap 'ct_cleanup; rm -rf "$HOSTDIR"' EXIT
ct_pull busybox
SLEEP='while :; do sleep 1; done'

# --- a named volume ------------------------------------------------------------
em run --name a -v data:/data busybox sh -c "echo hello >/data/f; $SLEEP" >/dev/null || fail "run a"
wait_for 5 test -s "$ROOT/volumes/data/f" || fail "a's write did not reach <root>/volumes/data"
[ "$(cat "$ROOT/volumes/data/f")" = hello ] || fail "volume content: $(cat "$ROOT/volumes/data/f")"
em inspect a | python3 -c '
import json, sys
m = json.load(sys.stdin)["spec"]["mounts"]
assert m == [{"type": "volume", "name": "data", "destination": "/data", "ro": False}], m' ||
	fail "the mount is not recorded in the spec"
em volume ls --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert [x["name"] for x in v] == ["data"] and v[0]["used_by"] == ["a"], v' || fail "volume ls --json"
em volume ls | grep -q '^data ' || fail "volume ls: $(em volume ls)"
em volume rm data >/dev/null 2>"$ROOT/rm.err" && fail "rm of a volume in use succeeded"
grep -q 'used by container(s) \["a"\]' "$ROOT/rm.err" || fail "rm error: $(cat "$ROOT/rm.err")"

# --- read-only, shared by a second container -----------------------------------
em run --name b -v data:/in:ro busybox sh -c "$SLEEP" >/dev/null || fail "run b"
[ "$(em exec b cat /in/f)" = hello ] || fail "b does not see a's file"
em exec b sh -c 'echo x >/in/g' 2>/dev/null && fail "a :ro volume was writable"

# --- bind mounts: refused, then allowed by the host's knob ----------------------
echo outside >"$HOSTDIR/file"
em run --name c -v "$HOSTDIR:/h" busybox sh -c "$SLEEP" >/dev/null 2>"$ROOT/bind.err" &&
	fail "a bind mount outside the allow-list was accepted"
grep -q '"bind_prefixes" of <root>/volumes.json' "$ROOT/bind.err" ||
	fail "the refusal does not name the knob: $(cat "$ROOT/bind.err")"
printf '{"bind_prefixes": ["%s"]}\n' "$HOSTDIR" >"$ROOT/volumes.json"
em run --name c -v "$HOSTDIR:/h" --tmpfs /scratch:size=1M busybox sh -c "$SLEEP" >/dev/null ||
	fail "run c with an allowed bind mount"
[ "$(em exec c cat /h/file)" = outside ] || fail "the bind mount does not show the host file"
em exec c sh -c 'grep " /scratch " /proc/mounts' | grep -q 'tmpfs.*size=1024k' ||
	fail "no 1 MiB tmpfs at /scratch: $(em exec c cat /proc/mounts)"
ln -s / "$HOSTDIR/escape"
em run --name d -v "$HOSTDIR/escape/etc:/e" busybox true >/dev/null 2>&1 &&
	fail "a symlink out of an allowed prefix was accepted"

# --- bad arguments are usage errors ------------------------------------------
for bad in "data" "data:rel" "data:/x:rx" "bad/name:/x" "data:/proc/x" "/tmp/../etc:/x"; do
	em run --name e -v "$bad" busybox true >/dev/null 2>&1 && fail "-v $bad accepted"
done
em run --name e --tmpfs /t:mode=1 busybox true >/dev/null 2>&1 && fail "--tmpfs /t:mode=1 accepted"

# --- rm and prune ---------------------------------------------------------------
em run --name f -v other:/o busybox true >/dev/null || fail "run f"
em rm -f a >/dev/null && em rm -f b >/dev/null || fail "rm a b"
[ -s "$ROOT/volumes/data/f" ] || fail "rm of the containers removed the volume"
em rm -f f >/dev/null || fail "rm f"
em run --name g -v kept:/k busybox true >/dev/null || fail "run g"
pruned=$(em volume prune --json | python3 -c 'import json,sys; print(sorted(json.load(sys.stdin)))')
[ "$pruned" = "['data', 'other']" ] || fail "volume prune removed $pruned"
[ -d "$ROOT/volumes/kept" ] || fail "prune removed a volume in use"
[ ! -e "$ROOT/volumes/data" ] && [ ! -e "$ROOT/volumes/other" ] || fail "prune left volumes"
em volume inspect data >/dev/null 2>&1 && fail "inspect of a removed volume succeeded"
echo "ok"
