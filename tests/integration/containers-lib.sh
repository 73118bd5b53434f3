# Helpers shared by the container integration tests (20-*, 21-*): a temp
# state root, images pulled from the loopback registry, and a census of
# everything a container may leak (mounts, netns, veths, cgroups, runc state,
# log forwarders).
# shellcheck shell=bash

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${EDGEMIG_BUILD:-$REPO/build}
EM=$BUILD/edgemig
REGISTRY=${EDGEMIG_REGISTRY:-127.0.0.1:5000}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
skip() {
	echo "skip: $*"
	exit 77
}

ct_require() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	[ -x "$EM" ] || skip "$EM not built"
	command -v runc >/dev/null || skip "runc not installed"
	[ -x "${EDGEMIG_CRIU:-/opt/edgemig/criu/bin/criu}" ] || skip "CRIU >= 4.2 not installed (scripts/setup)"
	command -v python3 >/dev/null || skip "python3 not installed"
}

# ct_root: a fresh state root in $ROOT, removed by ct_cleanup.
ct_root() {
	ROOT=$(mktemp -d /tmp/edgemig-ct.XXXXXX)
	export ROOT EDGEMIG_ROOT=$ROOT
}

em() { "$EM" --root "$ROOT" "$@"; }
export -f em
export EM

# ct_pull_into ROOT NAME: pulls edgemig/NAME from the loopback registry into
# the state root ROOT (starting the registry and pushing the cached test
# image if the registry lacks it or holds an older build of it).
ct_pull_into() {
	local root=$1 name=$2 cached served
	if ! "$REPO/scripts/registry" status >/dev/null 2>&1; then
		[ -d "/var/cache/edgemig/images/$name" ] || skip "test image $name not built (scripts/build-test-images)"
		"$REPO/scripts/registry" start >/dev/null 2>&1 || skip "cannot start the loopback registry"
	fi
	cached=$(jq -r '.manifests[0].digest' "/var/cache/edgemig/images/$name/index.json" 2>/dev/null) ||
		skip "test image $name not built"
	served=$(curl -sfI "http://$REGISTRY/v2/edgemig/$name/manifests/latest" \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' |
		tr -d '\r' | sed -n 's/^docker-content-digest: //Ip') || served= # not pushed yet (404)
	if [ "$served" != "$cached" ]; then
		"$REPO/scripts/push-test-images" "$name" >/dev/null 2>&1 || skip "cannot push $name"
	fi
	"$EM" --root "$root" image pull --insecure "$REGISTRY/edgemig/$name:latest" >/dev/null ||
		fail "pull $name into $root"
}

# ct_pull NAME: the same into this test's $ROOT.
ct_pull() {
	ct_pull_into "$ROOT" "$1"
}

# ct_census: one line counting every kind of resource a container holds.
ct_census() {
	local mounts netns veths cgroups runc loggers p
	mounts=$(grep -c " $ROOT/" /proc/self/mountinfo || true)
	netns=$(find "$ROOT/netns" -mindepth 1 2>/dev/null | wc -l)
	veths=$(ip -o link show type veth | grep -c ': em[0-9a-f]\{10\}[@:]' || true)
	cgroups=$(find /sys/fs/cgroup/ -mindepth 2 -maxdepth 2 -name 'edgemig-*' 2>/dev/null | wc -l)
	runc=$(runc --root "$ROOT/runc" list -q 2>/dev/null | wc -l)
	# log forwarders of this root only (they hold <root>/containers/*/log open)
	loggers=0
	for p in $(pgrep -x edgemig-logger || true); do
		ls -l "/proc/$p/fd" 2>/dev/null | grep -q " $ROOT/" && loggers=$((loggers + 1))
	done
	echo "mounts=$mounts netns=$netns veths=$veths cgroups=$cgroups runc=$runc loggers=$loggers"
}

# ct_wait_census EXPECTED: loggers exit asynchronously at EOF; allow 5 s.
ct_wait_census() {
	local i now
	for ((i = 0; i < 50; i++)); do
		now=$(ct_census)
		[ "$now" = "$1" ] && return 0
		sleep 0.1
	done
	fail "resources leaked: before [$1] after [$now]"
}

ct_cleanup() {
	if [ -n "${ROOT:-}" ] && [ -d "$ROOT" ]; then
		local n
		for n in $("$EM" --root "$ROOT" ps --json 2>/dev/null | python3 -c \
			'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)]' 2>/dev/null); do
			"$EM" --root "$ROOT" rm -f "$n" >/dev/null 2>&1 || true
		done
		{ grep " $ROOT/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf "$ROOT"
	fi
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
