#!/bin/bash
# The default security profile (docs/security.md) on a running container:
# its own user namespace with a non-identity mapping from this host's pool,
# seccomp filter mode, no_new_privs, no CAP_SYS_ADMIN, masked /proc and
# /sys paths, the pids limit and NOFILE; run options loosen it only where
# <root>/security.json allows, and a restore applies the same profile.
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
CK=$(mktemp -d /tmp/edgemig-ck.XXXXXX)
trap 'ct_cleanup; rm -rf "$CK"' EXIT
ct_pull busybox

pid_of() { em inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
has_cap() { (($(printf '%d' "0x$1") >> $2 & 1)); }
CAP_SYS_ADMIN=21 CAP_NET_ADMIN=12 CAP_CHOWN=0

# check_profile NAME: the default profile on NAME's init process.
check_profile() {
	local pid map
	pid=$(pid_of "$1")
	[ "$(field "$pid" Seccomp)" = 2 ] || fail "$1: Seccomp $(field "$pid" Seccomp), want 2 (filter)"
	[ "$(field "$pid" NoNewPrivs)" = 1 ] || fail "$1: NoNewPrivs $(field "$pid" NoNewPrivs)"
	for c in CapEff CapBnd CapPrm; do
		has_cap "$(field "$pid" $c)" $CAP_SYS_ADMIN && fail "$1: CAP_SYS_ADMIN in $c"
	done
	has_cap "$(field "$pid" CapEff)" $CAP_CHOWN || fail "$1: Docker's default CAP_CHOWN missing"
	[ "$(field "$pid" CapAmb)" = 0000000000000000 ] || fail "$1: ambient capabilities"
	map=$(tr -s ' ' <"/proc/$pid/uid_map" | xargs)
	[ "$map" != "0 0 4294967295" ] || fail "$1: identity uid_map"
	echo "$map" | awk '$1 == 0 && $2 >= 1073741824 && $3 == 65536 {ok = 1} END {exit !ok}' ||
		fail "$1: uid_map '$map' is not one range of the default pool"
	[ "$(tr -s ' ' <"/proc/$pid/gid_map" | xargs)" = "$map" ] || fail "$1: gid_map differs"
	# Root inside is that range's first id outside.
	[ "$(field "$pid" Uid)" = "$(echo "$map" | awk '{print $2}')" ] || fail "$1: host uid $(field "$pid" Uid)"
	em exec "$1" cat /proc/kcore 2>/dev/null | head -c1 | grep -q . && fail "$1: /proc/kcore readable"
	em exec "$1" sh -c 'echo 1 >/proc/sys/kernel/domainname' 2>/dev/null && fail "$1: /proc/sys writable"
	# The filter: namespaces and mounts are refused even to root inside.
	em exec "$1" unshare -n true 2>/dev/null && fail "$1: unshare allowed"
	em exec "$1" mount -t tmpfs none /mnt 2>/dev/null && fail "$1: mount allowed"
	echo "$1: Seccomp 2, NoNewPrivs 1, no CAP_SYS_ADMIN, uid_map $map"
}

em run --name sec busybox >/dev/null || fail "run"
check_profile sec
PID=$(pid_of sec)
[ "$(em exec sec id -u)" = 0 ] || fail "not root inside"
[ "$(cat /sys/fs/cgroup/pids/edgemig-*-sec/pids.max)" = 4096 ] || fail "default pids limit"
grep -q '^Max open files  *1024  *1024 ' "/proc/$PID/limits" || fail "default NOFILE"

# Tighter limits by option; loosening refused by the default policy.
em run --name lim --pids-limit 20 --ulimit nofile=512 busybox >/dev/null || fail "run with limits"
[ "$(cat /sys/fs/cgroup/pids/edgemig-*-lim/pids.max)" = 20 ] || fail "--pids-limit"
grep -q '^Max open files  *512  *512 ' "/proc/$(pid_of lim)/limits" || fail "--ulimit nofile"
em exec lim sh -c 'for i in $(seq 30); do sleep 5 & done; wait' 2>/dev/null &&
	fail "30 processes under --pids-limit 20"
OUT=$(em run --name bad --cap-add SYS_ADMIN busybox 2>&1) && fail "--cap-add SYS_ADMIN ran"
echo "$OUT" | grep -q 'allow_cap_add' || fail "refusal does not name the policy key: $OUT"
OUT=$(em run --name bad --security-opt seccomp=unconfined busybox 2>&1) && fail "seccomp=unconfined ran"
echo "$OUT" | grep -q 'allow_seccomp_unconfined' || fail "refusal does not name the policy key: $OUT"
em ps | grep -q '^bad ' && fail "a refused container left a record"
# The host policy allows them: then they apply.
echo '{"allow_cap_add": ["CAP_NET_ADMIN"], "allow_seccomp_unconfined": true}' >"$ROOT/security.json"
em run --name loose --cap-add NET_ADMIN --security-opt seccomp=unconfined busybox >/dev/null ||
	fail "run with an allowed loosening"
P=$(pid_of loose)
[ "$(field "$P" Seccomp)" = 0 ] || fail "seccomp=unconfined not applied"
has_cap "$(field "$P" CapEff)" $CAP_NET_ADMIN || fail "--cap-add NET_ADMIN not applied"
has_cap "$(field "$P" CapEff)" $CAP_SYS_ADMIN && fail "CAP_SYS_ADMIN with --cap-add NET_ADMIN"
rm "$ROOT/security.json"

# Two containers, two disjoint ranges.
B1=$(awk '{print $2}' "/proc/$(pid_of sec)/uid_map")
B2=$(awk '{print $2}' "/proc/$(pid_of lim)/uid_map")
[ "$B1" != "$B2" ] || fail "two containers share ID range $B1"

# A restore applies the same profile, in the same range.
em checkpoint sec --to "$CK/sec" >/dev/null || fail "checkpoint"
em restore "$CK/sec" >/dev/null || fail "restore"
check_profile sec
[ "$(awk '{print $2}' "/proc/$(pid_of sec)/uid_map")" = "$B1" ] || fail "restore changed the range"
for t in /proc/"$(pid_of sec)"/task/*; do
	[ "$(awk '$1 == "Seccomp:" {print $2}' "$t/status")" = 2 ] || fail "thread $t unfiltered after restore"
done
for n in sec lim loose; do em rm -f "$n" >/dev/null || fail "rm $n"; done
echo "ok"
