#!/usr/bin/env bash
# Every binary parses options through util/opts: a bad number, size or
# duration is a usage error (exit 2) that names the option and the value,
# never a silent 0; and each answers --version. No root needed: every case
# fails before anything is touched.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
for b in edgemig edgemigd edgemig-controller edgemig-probe; do
	[ -x "$BUILD/$b" ] || { echo "SKIP: $BUILD/$b not built"; exit 77; }
done
ROOT=$(mktemp -d /tmp/em-options-XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_usage "message part" binary args...: exit 2 and the message on stderr.
expect_usage() {
	local want=$1 rc=0
	shift
	"$BUILD/$@" >"$ROOT/out" 2>"$ROOT/err" || rc=$?
	[ "$rc" -eq 2 ] || fail "$* exited $rc, not 2: $(cat "$ROOT/err")"
	grep -qF -- "$want" "$ROOT/err" || fail "$*: stderr lacks '$want': $(cat "$ROOT/err")"
}

# The issue's two examples: both used to become 0.
expect_usage "--capacity: 'x' is not an integer" edgemigd --insecure --capacity x
expect_usage "--downtime-target: 'abc' is not a duration" \
	edgemig --root "$ROOT" migrate web --to 127.0.0.1:1 --downtime-target abc
expect_usage "--io-timeout: '12abc' is not a duration" edgemigd --insecure --io-timeout 12abc
expect_usage "--heartbeat-interval: '0' is out of range" edgemigd --insecure --heartbeat-interval 0
expect_usage "--max-rounds: 'many' is not an integer" \
	edgemig --root "$ROOT" migrate web --to 127.0.0.1:1 --max-rounds many
expect_usage "--io-timeout: '-3' is not a duration" \
	edgemig --root "$ROOT" migrate web --to 127.0.0.1:1 --io-timeout -3
expect_usage "--memory: '12Q' is not a size" edgemig --root "$ROOT" run --name a --memory 12Q img
expect_usage "--cpus: 'lots' is not a number" edgemig --root "$ROOT" run --name a --cpus lots img
expect_usage "--time: 'soon' is not a duration" edgemig --root "$ROOT" stop -t soon web
expect_usage "--timeout: 'x' is not a duration" \
	edgemig --root "$ROOT" control 127.0.0.1:1 migrate web --to 127.0.0.1:2 --timeout x
expect_usage "--days: '0' is out of range" edgemig --root "$ROOT" ca issue --days 0 h1
expect_usage "unknown option '--bogus'" edgemig --root "$ROOT" ps --bogus
expect_usage "unknown option '--bogus'" edgemig --bogus
expect_usage "option --root needs a value" edgemig --root
expect_usage "--action-timeout: 'x' is not a duration" \
	edgemig-controller --insecure --state-dir "$ROOT/ctl" --action-timeout x
expect_usage "--margin: 'wide' is not a number" \
	edgemig-controller --insecure --state-dir "$ROOT/ctl" --margin wide
expect_usage "--value-size: '1x' is not an integer" edgemig-probe --value-size 1x redis 127.0.0.1:1
[ ! -e "$ROOT/ctl" ] || fail "the controller created its state dir despite a usage error"

# The lifecycle's options (docs/lifecycle.md).
expect_usage "--tail: 'x' is not an integer" edgemig --root "$ROOT" logs --tail x web
expect_usage "--signal: unknown signal 'BOGUS'" edgemig --root "$ROOT" kill --signal BOGUS web
expect_usage "--time: 'x' is not a duration" edgemig --root "$ROOT" restart -t x web
expect_usage "expected ls or release" edgemig --root "$ROOT" ip bogus
expect_usage "the pre-check of web needs --to ADDR:PORT" edgemig --root "$ROOT" check web
expect_usage "--mode: " edgemig --root "$ROOT" check web --to 127.0.0.1:1 --mode warp

for b in edgemig edgemigd edgemig-controller edgemig-probe edgemig-netns-hook; do
	v=$("$BUILD/$b" --version) || fail "$b --version exited $?"
	[[ "$v" == "$b "[0-9]* ]] || fail "$b --version printed '$v'"
	"$BUILD/$b" --help | grep '^Usage:' >/dev/null || fail "$b --help has no Usage line"
done

# Configuration files (util/conffile.h) go through the same table: errors
# name the file, the line and the key; the command line wins over the file.
printf '# test\ninsecure = yes\ncapacity = x\n' >"$ROOT/d.conf"
expect_usage "$ROOT/d.conf:3: capacity: 'x' is not an integer" edgemigd --config "$ROOT/d.conf"
printf 'insecure = yes\nio-timeout = 0\n' >"$ROOT/d.conf"
expect_usage "d.conf:2: io-timeout: '0' is out of range" edgemigd --config "$ROOT/d.conf"
expect_usage "d.conf:2: unknown key 'io-timeout'" edgemig-controller --config "$ROOT/d.conf"
printf 'state-dir = %s/ctl\nmargin = wide\n' "$ROOT" >"$ROOT/c.conf"
expect_usage "c.conf:2: margin: 'wide' is not a number" edgemig-controller --config "$ROOT/c.conf"
expect_usage "--margin: 'x' is not a number" \
	edgemig-controller --config "$ROOT/c.conf" --insecure --margin x
expect_usage "$ROOT/none.conf: No such file" edgemigd --config "$ROOT/none.conf"
[ ! -e "$ROOT/ctl" ] || fail "the controller created its state dir despite a bad config"

v=$("$BUILD/edgemig" migrate --version) || fail "edgemig migrate --version exited $?"
[[ "$v" == "edgemig "[0-9]* ]] || fail "edgemig migrate --version printed '$v'"
echo "PASS: options"
