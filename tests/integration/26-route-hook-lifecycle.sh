#!/bin/bash
# The route hook outside migrations (docs/deploy.md, section 5a): with
# EDGEMIG_ROUTE_HOOK set, `edgemig run`, `start`, `restart`, `pod create` and
# `pod start` announce the service IP and `stop`, `rm`, `pod stop` and
# `pod rm` withdraw it; a hook that fails
# is an error that says the container's state; edgemigd started with
# --route-hook announces the IP of a container its restart policy brings
# back at start, and withdraws that of a container without a restart policy
# whose processes ended on their own. The hook here records its arguments
# (the BGP one is tested
# in 31-migrate-redis-bgp and 48-route-bgp-faults).
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
ct_root
DPID=
trap '[ -z "$DPID" ] || kill -9 "$DPID" 2>/dev/null || true; ct_cleanup' EXIT
PORT=$((20000 + $$ % 20000))
ct_pull busybox

HOOK=$ROOT/hook
LOG=$ROOT/hook.log
cat >"$HOOK" <<HOOKEOF
#!/bin/sh
echo "\$1 \$2" >>$LOG
[ ! -e $ROOT/hook-fails ]
HOOKEOF
chmod 755 "$HOOK"
: >"$LOG"
# expect LINE...: the hook ran exactly with these lines since the last call
expect() {
	local want
	want=$(printf '%s\n' "$@")
	[ "$(cat "$LOG")" = "$want" ] || fail "hook calls: '$(cat "$LOG")', expected '$want'"
	: >"$LOG"
}
IP=10.66.7.10
SLEEP='while :; do sleep 1; done'

# --- no hook set: nothing runs ------------------------------------------------
em run --name quiet --ip "$IP/32" busybox sh -c "$SLEEP" >/dev/null || fail "run quiet"
em rm -f quiet >/dev/null || fail "rm quiet"
expect

export EDGEMIG_ROUTE_HOOK=$HOOK
em run --name svc --ip "$IP/32" --restart always busybox sh -c "$SLEEP" >/dev/null || fail "run svc"
expect "announce $IP"
em stop -t 0 svc >/dev/null || fail "stop svc"
expect "withdraw $IP"
em start svc >/dev/null || fail "start svc"
expect "announce $IP"
em restart -t 0 svc >/dev/null || fail "restart svc"
expect "announce $IP"

# --- a pod: its infra container holds the service IP -------------------------
PIP=10.66.7.11
em pod create --ip "$PIP/32" web >/dev/null || fail "pod create"
expect "announce $PIP"
em run --pod web --name web-app busybox sh -c "$SLEEP" >/dev/null || fail "run in the pod"
expect # a member has no address of its own
em pod stop -t 0 web >/dev/null || fail "pod stop"
expect "withdraw $PIP"
em pod start web >/dev/null || fail "pod start"
expect "announce $PIP"
em pod rm --force web >/dev/null || fail "pod rm"
expect "withdraw $PIP"

# --- a failing hook: the command fails and says what state it left ----------
touch "$ROOT/hook-fails"
em stop -t 0 svc >/dev/null 2>"$ROOT/stop.err" && fail "stop succeeded although the hook failed"
grep -q "svc is stopped, but its service IP was not withdrawn" "$ROOT/stop.err" ||
	fail "stop's error: $(cat "$ROOT/stop.err")"
rm "$ROOT/hook-fails"
expect "withdraw $IP"

# --- edgemigd brings svc back (policy always) and announces it --------------
unset EDGEMIG_ROUTE_HOOK
"$BUILD/edgemigd" --root "$ROOT" --insecure --listen "127.0.0.1:$PORT" --route-hook "$HOOK" \
	>>"$ROOT/edgemigd.log" 2>&1 &
DPID=$!
wait_for 20 grep -q "announce $IP" "$LOG" ||
	fail "edgemigd did not announce the restarted svc: $(cat "$LOG"); $(tail -5 "$ROOT/edgemigd.log")"
expect "announce $IP"
# --- a container without a restart policy that ends on its own: edgemigd
# withdraws its IP (nothing serves it here any more), once ----------------
BIP=10.66.7.12
EDGEMIG_ROUTE_HOOK=$HOOK em run --name brief --ip "$BIP/32" busybox sh -c 'sleep 2' >/dev/null ||
	fail "run brief"
wait_for 30 grep -q "withdraw $BIP" "$LOG" ||
	fail "edgemigd did not withdraw the IP of brief, which ended: $(cat "$LOG")"
sleep 5 # several passes of the monitor: still one withdrawal
expect "announce $BIP" "withdraw $BIP"
kill "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=

export EDGEMIG_ROUTE_HOOK=$HOOK
em rm -f svc >/dev/null || fail "rm svc"
expect "withdraw $IP"
em rm -f brief >/dev/null || fail "rm brief"
: >"$LOG"
echo "ok: run/start/restart announce, stop/rm withdraw, edgemigd's restarts announce and" \
	"a container that ended is withdrawn"
