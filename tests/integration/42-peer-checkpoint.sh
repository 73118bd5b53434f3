#!/bin/bash
# A compromised source with a valid certificate sends a checkpoint whose CRIU
# images claim what the target's profile does not give: CAP_SYS_ADMIN, a uid
# outside the container's range, and the host's mount namespace. The target refuses each before CRIU
# runs, with an error naming the image and the field; nothing runs there,
# the source rolls back and keeps the container running, and an honest
# migration afterwards goes through. The liar is tests/helpers/
# em-hostile-peer --mode checkpoint: edgemig's own source engine, which
# rewrites core-*.img after the dump (the digests it sends match the
# rewritten files).
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
HP=$BUILD/helpers/em-hostile-peer
[ -x "$HP" ] || skip "$HP not built"
mig_setup 2 busybox

SIP=10.66.0.42
CT=counter
testbed route "$SIP" 1
# A fresh container for each case: the source's roll-back restores its own
# (tampered) images, so a container that went through one case carries it.
fresh() {
	h 1 rm -f "$CT" >/dev/null 2>&1 || true
	h 1 run --name "$CT" --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
	wait_for 10 h 1 exec "$CT" test -s /data/counter.log || fail "$CT not counting"
}

# hostile KIND EXPECTED [ROLLBACK]: the target must refuse with EXPECTED in
# its error. ROLLBACK=no when the source's own roll-back cannot work (it
# restores the images it tampered with).
hostile() {
	local kind=$1 want=$2 rollback=${3:-yes} out rc=0 before
	out=$MIG_LOGS/tamper-${kind%%=*}.json
	fresh
	before=$(h 1 exec "$CT" tail -n 1 /data/counter.log)
	EDGEMIG_TESTBED_PREFIX=$TESTBED_PREFIX EDGEMIG_ROUTE_HOOK=$REPO/scripts/testbed-route-hook \
		nsenter --net="/run/netns/$EM_H1_NS" "$HP" --root "$EM_H1_ROOT" \
		--connect "$(haddr 2):$MIG_PORT" --tls-ca "$EM_H1_ROOT/pki/ca.crt" \
		--tls-cert "$EM_H1_ROOT/pki/h1.crt" --tls-key "$EM_H1_ROOT/pki/h1.key" \
		--mode checkpoint --container "$CT" --arg "tamper=$kind" \
		>"$out" 2>>"$MIG_LOGS/tamper.log" || rc=$?
	cat "$out"
	[ "$rc" = 3 ] || fail "$kind: the target accepted the tampered checkpoint (exit $rc)"
	python3 - "$out" <<'PY' || fail "$kind: helper output"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["outcome"] == "refused" and r["tampered"] >= 1, r
PY
	grep -qF "$want" "$MIG_LOGS/edgemigd-h2.log" ||
		fail "$kind: the target's log does not say: $want"
	# nothing runs on the target: no container, no runc state, no staging
	running_on 2 "$CT" && fail "$kind: $CT runs on host 2"
	runc --root "$EM_H2_ROOT/runc" list -q 2>/dev/null | grep -q -- "$CT\$" &&
		fail "$kind: runc state of $CT on host 2"
	wait_for 10 test -z "$(find "$EM_H2_ROOT/incoming" -mindepth 1 2>/dev/null)" ||
		fail "$kind: staging left on host 2"
	[ "$rollback" = yes ] || return 0
	# the source rolled back: the counter runs on host 1 and advances
	running_on 1 "$CT" || fail "$kind: $CT not running on host 1 after the refusal"
	wait_for 10 counter_past "$before" || fail "$kind: counter does not advance after roll-back"
}
counter_past() { [ "$(h 1 exec "$CT" tail -n 1 /data/counter.log)" -gt "$(($1 + 2))" ]; }

hostile cap-sys-admin "core-1.img: thread 1 cap_eff has CAP_SYS_ADMIN (bit 21), beyond the profile"
# A uid outside the range: the helper's roll-back restores its own tampered
# images, and inside a user namespace of 65536 ids nobody can restore uid
# 100000 (CRIU fails on setresuid, or hangs). So this case runs both hosts
# in the host's user namespace ({"userns": false}), where the target's
# range is 0-65535 of the host's ids.
for r in "$EM_H1_ROOT" "$EM_H2_ROOT"; do echo '{"userns": false}' >"$r/security.json"; done
hostile uid=100000 "core-1.img: thread 1 uid 100000 is outside the container's range 0-65535"
rm -f "$EM_H1_ROOT/security.json" "$EM_H2_ROOT/security.json"

# An honest source still gets through, after the refusals.
fresh
h 1 migrate counter --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/honest.json" ||
	fail "honest migration: $(cat "$MIG_LOGS/honest.json")"
running_on 2 counter || fail "not running on host 2 after the honest migration"

# Without the check, CRIU restored this task in the target's own mount
# namespace (it looked for the container's files from the host's root). The
# liar's own roll-back fails the same way, so it goes last, on another
# container.
CT=other SIP=10.66.0.43
hostile host-mntns "ids-1.img: task 1 mnt_ns_id is the host's, not the container's own" no
echo "ok"
