#!/bin/bash
# redis through a local checkpoint + restore: 100,000 keys loaded with
# redis-cli --pipe from a client network namespace all come back, and a client
# holding ONE TCP connection keeps using it (same 4-tuple, no reset).
set -euo pipefail
. "$(dirname "$0")/containers-lib.sh"
ct_require
command -v redis-cli >/dev/null || skip "redis-cli not installed"
ct_root
CK=$(mktemp -d /tmp/edgemig-ck.XXXXXX)
CNS=emct$$
HV=emc$$
CPID=
cleanup() {
	[ -n "$CPID" ] && kill "$CPID" 2>/dev/null
	ip netns del "$CNS" 2>/dev/null || true
	ip link del "$HV" 2>/dev/null || true
	ct_cleanup
	rm -rf "$CK"
}
trap cleanup EXIT

ct_pull redis
BEFORE=$(ct_census)
SVC=10.66.21.21

# A client namespace routed through the host, like a user on the edge network.
ip netns add "$CNS"
ip link add "$HV" type veth peer name eth0 netns "$CNS"
ip addr add 10.221.0.1/24 dev "$HV"
ip link set "$HV" up
ip -n "$CNS" addr add 10.221.0.2/24 dev eth0
ip -n "$CNS" link set eth0 up
ip -n "$CNS" link set lo up
ip -n "$CNS" route add default via 10.221.0.1
client() { ip netns exec "$CNS" "$@"; }

em run --name redis --ip "$SVC/32" redis >/dev/null || fail "run redis"
wait_for 20 client redis-cli -h "$SVC" ping || fail "redis not reachable from the client namespace"

# --- 100,000 keys --------------------------------------------------------------
python3 -c '
import sys
out = sys.stdout.buffer
for i in range(100000):
    k, v = b"key:%d" % i, b"value-%d" % (i * 7)
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' | client redis-cli -h "$SVC" --pipe | tail -n 1 | grep -q 'errors: 0, replies: 100000' || fail "loading keys"
[ "$(client redis-cli -h "$SVC" dbsize)" = 100000 ] || fail "dbsize before"

# --- one TCP connection across checkpoint + restore ----------------------------
cat >"$CK/client.py" <<'EOF'
import os, socket, sys, time
host, ctl = sys.argv[1], sys.argv[2]
s = socket.create_connection((host, 6379), timeout=30)
f = s.makefile("rb")
def cmd(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args)))
    line = f.readline()
    if not line:
        raise SystemExit("connection closed by the server")
    if line.startswith(b"$"):
        n = int(line[1:])
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    return line.strip().decode()
assert cmd("PING") == "+PONG"
assert cmd("SET", "conn", "before") == "+OK"
me = s.getsockname()
open(ctl + ".ready", "w").close()
while not os.path.exists(ctl + ".go"):
    time.sleep(0.02)
assert s.getsockname() == me
assert cmd("PING") == "+PONG", "PING after restore"
assert cmd("GET", "conn") == "before", "GET after restore"
assert cmd("SET", "conn", "after") == "+OK"
assert cmd("GET", "key:99999") == "value-699993"
print("same connection", me, "ok")
EOF
client python3 "$CK/client.py" "$SVC" "$CK/ctl" >"$CK/client.log" 2>&1 &
CPID=$!
wait_for 10 test -e "$CK/ctl.ready" || fail "client did not connect: $(cat "$CK/client.log")"

em checkpoint redis --to "$CK/redis" >/dev/null || fail "checkpoint"
# A client connection still in the listen queue must not fail a dump: runc
# passes the bundle's criu.conf (skip-in-flight) to CRIU.
grep -q "Will skip in-flight TCP connections" "$CK/redis/criu/dump.log" ||
	fail "CRIU did not get skip-in-flight from the bundle's criu.conf"
# ... and, for a container of its own (not a pod's), network-lock=nftables:
# CRIU locks and unlocks the namespace through libnftables in process, not
# by running iptables-restore (the lock itself is gone with the namespace
# once the checkpoint is complete; the client's same connection below shows
# it held and was lifted).
grep -qx "network-lock=nftables" "$ROOT/containers/redis/bundle/criu.conf" ||
	fail "the bundle's criu.conf does not ask CRIU for its nftables network lock"
client timeout 1 redis-cli -h "$SVC" ping >/dev/null 2>&1 && fail "redis answered while checkpointed"

# --- what the checkpoint holds, decoded (edgemig checkpoint inspect) ---------
em checkpoint inspect "$CK/redis" --json >"$CK/inspect.json" || fail "checkpoint inspect"
python3 - "$CK/inspect.json" "$SVC" <<'PY' || fail "checkpoint inspect: $(head -c 3000 "$CK/inspect.json")"
import json, sys
r, svc = json.load(open(sys.argv[1])), sys.argv[2]
assert any(p["comm"] == "redis-server" for p in r["processes"]), r["processes"]
for p in r["processes"]:
    for t in p["threads"]:
        assert "CAP_SYS_ADMIN" not in t["cap_eff"] and t["no_new_privs"], t
tcp = [s for s in r["sockets"] if s["family"] == "inet" and s["type"] == "stream"]
assert any(s["state"] == "listen" and s["local"].endswith(":6379") for s in tcp), tcp
assert any(s["state"] == "established" and s["local"] == svc + ":6379" and
           s["remote"].startswith("10.221.0.2:") for s in tcp), tcp
assert {"/", "/proc", "/dev", "/sys"} <= {m["mountpoint"] for m in r["mounts"]}, r["mounts"]
assert r["memory_bytes"] > 1 << 20, r["memory_bytes"]
assert r["policy"]["ok"], r["policy"]
PY
em checkpoint inspect "$CK/redis" | grep -q "^Policy: a peer could send this" || fail "inspect text"
em restore "$CK/redis" >/dev/null || fail "restore"
touch "$CK/ctl.go"
wait "$CPID" || fail "the client's connection broke: $(cat "$CK/client.log")"
CPID=
cat "$CK/client.log"

# --- every key is back ------------------------------------------------------------
[ "$(client redis-cli -h "$SVC" dbsize)" = 100001 ] || fail "dbsize after restore (100,000 keys + conn)"
[ "$(client redis-cli -h "$SVC" get key:12345)" = value-86415 ] || fail "a key's value changed"
python3 -c '
import sys
out = sys.stdout.buffer
for i in range(0, 100000, 1000):
    k = b"key:%d" % i
    out.write(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
' | client redis-cli -h "$SVC" --pipe | tail -n 1 | grep -q 'errors: 0, replies: 100' || fail "sampled GETs"
[ "$(client redis-cli -h "$SVC" get conn)" = after ] || fail "write on the kept connection lost"

em rm -f redis >/dev/null || fail "rm -f"
ct_wait_census "$BEFORE"
echo "PASS"
