#!/bin/bash
# MariaDB with its data directory on a named volume migrates A -> B -> A ->
# B over 20 Mbit/s links while a client in the client namespace commits a
# row every 10 ms over ONE connection (scripts/mariadb-client.py): the
# connection survives every hop (same connection id at the end, no error),
# every acknowledged commit is on the final host, `mariadb-check
# --all-databases` passes there, and the service never runs on two hosts.
# The volume's large files (ibdata1, the redo log, undo and .ibd files)
# travel as changed 64 KiB blocks (delta/blocks.h). Lean: the image is
# seeded over unshaped loopback, only the hosts' links are shaped, the
# server is configured small (images/mariadb/edgemig.cnf).
# The container needs its own user namespace (the default): mariadbd runs
# as mysql, and with the host's (security.json {"userns": false}) CRIU
# cannot dump it on these hosts ("Can't get rlimit 0": prlimit on another
# uid's process needs CAP_SYS_RESOURCE, which root lacks here; in the
# container's namespace the host root owns it and has that). And mariadbd
# must stay dumpable after it drops to mysql (`core-file`), or the second
# hop fails: CRIU cannot open a restored non-dumpable process's ns files.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
# Debian's python3 with Debian's python3-pymysql (another python3 on PATH
# may not see it).
DPY=/usr/bin/python3
"$DPY" -c 'import pymysql' 2>/dev/null || skip "python3-pymysql not installed (scripts/setup)"
CLIENT=$REPO/scripts/mariadb-client.py
mig_setup 2 mariadb

SIP=10.66.0.16
h 1 run --name db --ip "$SIP/32" -v dbdata:/var/lib/mysql mariadb >/dev/null ||
	fail "run db on host 1"
testbed route "$SIP" 1
reachable() {
	on_client "$DPY" -c 'import pymysql, sys
pymysql.connect(host=sys.argv[1], user="edge", password="edge", database="edge", connect_timeout=3)' "$SIP" 2>/dev/null
}
wait_for 90 reachable || fail "MariaDB not reachable from the client"
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null

mig_watch_single db
STOP=$MIG_LOGS/stop-client
on_client "$DPY" "$CLIENT" commit "$SIP" --interval-ms 10 --until-file "$STOP" \
	>"$MIG_LOGS/client.json" 2>"$MIG_LOGS/client.log" &
CLIENT_PID=$!
rows() { # HOST: rows committed so far, asked inside the container
	h "$1" exec db mariadb -N -B -e 'SELECT COUNT(*) FROM edge.t' 2>/dev/null || echo 0
}
rows_past() { [ "$(rows "$1")" -gt "$2" ]; }
wait_for 20 rows_past 1 100 || fail "the client does not commit: $(cat "$MIG_LOGS/client.log")"

migrate() { # FROM TO
	local out=$MIG_LOGS/mig-$1-$2.json n
	h "$1" migrate db --to "$(haddr "$2"):$MIG_PORT" --json >"$out" ||
		fail "migrate $1 -> $2: $(cat "$out")"
	python3 - "$out" "$1" "$2" <<'PY' || fail "timeline $1 -> $2"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"], r
assert 0 <= r["downtime_ms"] <= r["handoff_ms"], r
print("mariadb %s -> %s: handoff %d ms, downtime %d ms, %d bytes sent, %d received, %d rounds" %
      (sys.argv[2], sys.argv[3], r["handoff_ms"], r["downtime_ms"], r["bytes_wire"],
       r.get("bytes_wire_in", 0), len(r["rounds"])))
PY
	running_on "$2" db || fail "db not running on host $2"
	running_on "$1" db && fail "db still running on host $1"
	n=$(rows "$2")
	wait_for 20 rows_past "$2" $((n + 100)) || fail "the client does not commit on host $2"
}
migrate 1 2
migrate 2 1
migrate 1 2

touch "$STOP"
CRC=0
wait "$CLIENT_PID" || CRC=$?
mig_assert_single
LAST=$(python3 - "$MIG_LOGS/client.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["errors"] == 0, c
assert c["connection_id_first"] == c["connection_id_last"], c
assert c["last_acked"] > 300, c
print("client: %d commits over one connection, longest gap %d ms" % (c["commits"], c["max_gap_ms"]),
      file=sys.stderr)
print(c["last_acked"])
PY
) || fail "client: $(cat "$MIG_LOGS/client.json" "$MIG_LOGS/client.log")"
[ "$CRC" = 0 ] || fail "client exited $CRC"

# Every acknowledged commit is on host 2, read over a new connection.
on_client "$DPY" "$CLIENT" verify "$SIP" --last "$LAST" >"$MIG_LOGS/verify.json" ||
	fail "acknowledged commits lost: $(cat "$MIG_LOGS/verify.json")"
h 2 exec db mariadb-check --all-databases >"$MIG_LOGS/check.out" 2>&1 ||
	fail "mariadb-check: $(cat "$MIG_LOGS/check.out")"
grep -q '^edge\.t  *OK$' "$MIG_LOGS/check.out" || fail "mariadb-check did not check edge.t: $(cat "$MIG_LOGS/check.out")"
grep -qiE 'error|corrupt|warning' "$MIG_LOGS/check.out" && fail "mariadb-check: $(cat "$MIG_LOGS/check.out")"
[ ! -e "$EM_H1_ROOT/volumes/dbdata" ] || fail "host 1 kept the volume that moved"
echo "ok ($LAST acknowledged commits verified, mariadb-check passed)"
