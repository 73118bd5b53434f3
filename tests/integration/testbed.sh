# Test-bed helpers for integration tests (source this file; see scripts/testbed).
#
#   testbed_up [N]          build a test bed with N hosts (default 2) under a
#                           per-test prefix, export its EM_* variables and make
#                           sure testbed_down runs on exit (existing EXIT traps kept);
#                           $TESTBED_UP_OPTS adds options of `scripts/testbed up`
#                           (--bgp, --l2)
#   testbed_down            tear it down; idempotent, safe from traps
#   on_host I CMD...        run CMD in host I's network namespace (nsenter --net)
#   on_client CMD...        run CMD in the client's namespace
#   on_wan CMD...           run CMD in the router's namespace
#   testbed CMD...          scripts/testbed with this test's prefix (route, shape, ...)
#
# The prefix is "t" + the test's PID (mod 10^6), so tests never collide with a
# developer's demo (prefix "em") or with each other.

TESTBED_SCRIPT=${TESTBED_SCRIPT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/testbed}
TESTBED_PREFIX=${TESTBED_PREFIX:-t$(($$ % 1000000))}
TESTBED_ACTIVE=

testbed() {
	"$TESTBED_SCRIPT" --prefix "$TESTBED_PREFIX" "$@"
}

# Skips (exit 77) when the test bed cannot be built here.
testbed_require() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "skip: the test bed needs root"
		exit 77
	fi
	local t
	for t in ip tc nsenter sysctl; do
		command -v "$t" >/dev/null || {
			echo "skip: $t is not installed"
			exit 77
		}
	done
}

testbed_up() {
	testbed_require
	TESTBED_ACTIVE=1
	_testbed_add_exit_trap
	# shellcheck disable=SC2086 # options, split on purpose
	"$TESTBED_SCRIPT" up --hosts "${1:-2}" --prefix "$TESTBED_PREFIX" ${TESTBED_UP_OPTS:-} \
		>/dev/null || return 1
	local line
	while IFS= read -r line; do
		export "${line?}"
	done < <("$TESTBED_SCRIPT" env --prefix "$TESTBED_PREFIX")
}

testbed_down() {
	[ -n "$TESTBED_ACTIVE" ] || return 0
	TESTBED_ACTIVE=
	"$TESTBED_SCRIPT" down --prefix "$TESTBED_PREFIX" >/dev/null 2>&1 || true
}

# Appends testbed_down to whatever EXIT trap the test already has.
_testbed_add_exit_trap() {
	local cur
	cur=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
	case $cur in *testbed_down*) return 0 ;; esac
	# shellcheck disable=SC2064
	trap "${cur:+$cur; }testbed_down" EXIT
}

_testbed_ns() { # I|client|wan
	case $1 in
	client) echo "$TESTBED_PREFIX-client" ;;
	wan) echo "$TESTBED_PREFIX-wan" ;;
	*) echo "$TESTBED_PREFIX-h$1" ;;
	esac
}

on_host() {
	local ns
	ns=$(_testbed_ns "$1")
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

on_client() { on_host client "$@"; }
on_wan() { on_host wan "$@"; }
