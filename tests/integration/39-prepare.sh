#!/bin/bash
# prepare, then migrate (the controller's way to a short handoff): redis with
# ~8 MB of data on host A. `edgemig prepare` fills B's page cache while redis
# keeps running and serving on A; the source keeps a record of what B now
# holds, so the migration that follows skips B's hash list (cache_record) and
# sends only the pages written since (final_pages_known > 0). The record goes
# with the container. Back to A with a prepare whose cache is then wiped on
# A: the stale record is noticed, the full hash list travels instead, and
# the migration still succeeds. Every key survives both handoffs.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
mig_setup 2 redis

SIP=10.66.0.13
h 1 run --name redis --ip "$SIP/32" redis >/dev/null || fail "run redis on host 1"
testbed route "$SIP" 1
wait_for 20 h 1 exec redis redis-cli ping || fail "redis not answering"
fill() { # I FROM TO: SET k<n> v<n> for n in FROM..TO through redis-cli --pipe
	python3 -c '
import sys
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    k = b"k%d" % i; v = (b"v%d" % i).ljust(100, b"x")
    sys.stdout.buffer.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' "$2" "$3" | h "$1" exec redis redis-cli --pipe >/dev/null || fail "filling redis on host $1"
}
dbsize() { h "$1" exec redis redis-cli DBSIZE | tr -d '\r'; }
known_records() { # I: page cache records kept by host I for redis
	local root=EM_H${1}_ROOT
	find "${!root}/known/redis" -name '*.bin' 2>/dev/null | wc -l
}
fill 1 0 60000
[ "$(dbsize 1)" = 60000 ] || fail "expected 60000 keys, got $(dbsize 1)"
testbed shape 1 20 >/dev/null
testbed shape 2 20 >/dev/null

report() { # FILE KEY...: prints r[KEY] for each key
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(" ".join(str(r.get(k)) for k in sys.argv[2:]))' "$@"
}

# 1. prepare A -> B: the container keeps running on A only.
h 1 prepare redis --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/prep-12.json" ||
	fail "prepare 1 -> 2: $(cat "$MIG_LOGS/prep-12.json")"
running_on 1 redis || fail "prepare stopped redis on host 1"
running_on 2 redis && fail "prepare started redis on host 2"
[ "$(known_records 1)" = 1 ] || fail "no page cache record after prepare"
fill 1 60000 61000

# 2. migrate A -> B uses the record and B's cache.
h 1 migrate redis --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig-12.json" ||
	fail "migrate 1 -> 2: $(cat "$MIG_LOGS/mig-12.json")"
read -r rec known sent <<<"$(report "$MIG_LOGS/mig-12.json" cache_record final_pages_known final_pages_sent)"
[ "$rec" = True ] || fail "migration after prepare did not use the record: $(cat "$MIG_LOGS/mig-12.json")"
[ "$known" -gt 1000 ] || fail "final dump referenced only $known cached pages"
echo "after prepare: cache record used, final dump $known pages known, $sent sent"
# The 1000 keys added since the prepare changed pages the target already
# held: those travel as XORs with the prepared content (delta/shadow.h).
xor=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print(sum(x.get("pages_xor", 0) for x in r["rounds"]) + r.get("final_pages_xor", 0))' "$MIG_LOGS/mig-12.json")
[ "$xor" -gt 0 ] || fail "no changed page travelled as an XOR: $(cat "$MIG_LOGS/mig-12.json")"
echo "after prepare: $xor changed pages as XORs with what the target held"
running_on 2 redis || fail "not running on host 2"
running_on 1 redis && fail "still running on host 1"
[ "$(dbsize 2)" = 61000 ] || fail "host 2 has $(dbsize 2) keys, expected 61000"
[ "$(known_records 1)" = 0 ] || fail "the record stayed behind on host 1"

# 3. a stale record: prepare B -> A, then A's page cache is wiped.
h 2 prepare redis --to "$(haddr 1):$MIG_PORT" --json >"$MIG_LOGS/prep-21.json" ||
	fail "prepare 2 -> 1: $(cat "$MIG_LOGS/prep-21.json")"
[ "$(known_records 2)" = 1 ] || fail "no page cache record after prepare 2 -> 1"
rm -rf "$EM_H1_ROOT/pagecache/redis"
fill 2 61000 61500
h 2 migrate redis --to "$(haddr 1):$MIG_PORT" --json >"$MIG_LOGS/mig-21.json" ||
	fail "migrate 2 -> 1 with a stale record: $(cat "$MIG_LOGS/mig-21.json")"
read -r rec known sent <<<"$(report "$MIG_LOGS/mig-21.json" cache_record final_pages_known final_pages_sent)"
[ "$rec" = False ] || fail "a stale record was trusted: $(cat "$MIG_LOGS/mig-21.json")"
echo "stale record: ignored, final dump $known pages known, $sent sent"
running_on 1 redis || fail "not running on host 1"
running_on 2 redis && fail "still running on host 2"
[ "$(dbsize 1)" = 61500 ] || fail "host 1 has $(dbsize 1) keys, expected 61500"
echo ok
