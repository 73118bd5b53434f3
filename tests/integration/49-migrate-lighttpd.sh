#!/bin/bash
# lighttpd (Debian's, running as www-data in its user namespace) serves a
# 50 MiB file (images/lighttpd) to a client that downloads it with curl over
# ONE connection through a shaped link; the container migrates host 1 ->
# host 2 in the middle of the download. The client gets a byte-identical
# file (sha256 of what the image holds), curl made one connection and
# lighttpd's access log (carried in the writable layer) holds one request,
# answered 200 with every byte: no reconnect, no resume.
#
# Size and rate: issue 16 asks for 50 MiB at 2 Mbit/s, about 210 s of
# download alone, too long for CI's budget. By default the same 50 MiB file
# goes over a 30 Mbit/s client link (about 14 s): the migration starts
# once an eighth has arrived and leaves about 12 s of transfer after it,
# room for a handoff slowed down by a loaded machine (the test fails if
# the download was not under way when the migration started or was
# already complete when it ended). EDGEMIG_TEST_FULL=1 runs issue 16's
# 2 Mbit/s; LIGHTTPD_RATE_MBIT overrides the rate. Only the client's
# downlink (router -> client) is shaped: it is the link being measured;
# the hosts' links, which the migration crosses, are not.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
RATE=${LIGHTTPD_RATE_MBIT:-30}
[ "${EDGEMIG_TEST_FULL:-0}" = 1 ] && RATE=${LIGHTTPD_RATE_MBIT:-2}
SIZE=$((50 * 1024 * 1024))
mig_setup 2 lighttpd

SIP=10.66.0.49
h 1 run --name web --ip "$SIP/32" lighttpd >/dev/null || fail "run lighttpd on host 1"
testbed route "$SIP" 1
wait_for 20 on_client curl -sf -o /dev/null -r 0-0 "http://$SIP/big.bin" ||
	fail "lighttpd not reachable from the client"
WANT=$(h 1 exec web sha256sum /srv/www/big.bin | cut -d' ' -f1)
[ "$(h 1 exec web stat -c %s /srv/www/big.bin)" = "$SIZE" ] || fail "the image's file is not 50 MiB"
h 1 exec web sh -c ': >/var/log/lighttpd/access.log' || fail "clearing the access log"
testbed shape client "$RATE" --ingress >/dev/null

OUT=$MIG_LOGS/big.bin
on_client curl -sS --max-time 900 -o "$OUT" -w '%{http_code} %{num_connects} %{size_download}\n' \
	"http://$SIP/big.bin" >"$MIG_LOGS/curl.out" 2>"$MIG_LOGS/curl.err" &
CURL=$!
got() { stat -c %s "$OUT" 2>/dev/null || echo 0; }
past() { [ "$(got)" -ge "$1" ]; }
# An eighth of the file: the connection is in full flow, with most to come.
wait_for 300 past $((SIZE / 8)) || fail "download not under way: $(got) bytes"
B0=$(got)
h 1 migrate web --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig.json" ||
	fail "migrate: $(cat "$MIG_LOGS/mig.json")"
B1=$(got)
[ "$B1" -lt "$SIZE" ] || fail "the download ended before the migration did ($B1 bytes): nothing crossed it"
running_on 2 web || fail "lighttpd not running on host 2"
running_on 1 web && fail "lighttpd still running on host 1"
python3 - "$MIG_LOGS/mig.json" "$B0" "$B1" "$RATE" <<'PY' || fail "timeline"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"], r
print("lighttpd 1 -> 2 at %.1f and %.1f MiB of 50 into a %s Mbit/s download: handoff %d ms, "
      "downtime %d ms, %d bytes on the wire" % (int(sys.argv[2]) / 2**20, int(sys.argv[3]) / 2**20,
                                                sys.argv[4], r["handoff_ms"], r["downtime_ms"], r["bytes_wire"]))
PY

CRC=0
wait "$CURL" || CRC=$?
[ "$CRC" = 0 ] || fail "curl exited $CRC after $(got) bytes: $(cat "$MIG_LOGS/curl.err")"
read -r CODE CONNECTS BYTES <"$MIG_LOGS/curl.out"
[ "$CODE" = 200 ] && [ "$CONNECTS" = 1 ] && [ "$BYTES" = "$SIZE" ] ||
	fail "curl: status $CODE, $CONNECTS connection(s), $BYTES bytes (want 200, 1, $SIZE)"
GOT=$(sha256sum "$OUT" | cut -d' ' -f1)
[ "$GOT" = "$WANT" ] || fail "sha256 of the download $GOT, of the file $WANT"
# lighttpd logs a request when it ends: on host 2, one request, all bytes.
LOG=$(h 2 exec web cat /var/log/lighttpd/access.log)
[ "$(grep -c 'GET /big.bin' <<<"$LOG")" = 1 ] && grep -q "\"GET /big.bin HTTP/1.1\" 200 $SIZE " <<<"$LOG" ||
	fail "access log on host 2: $LOG"
echo "ok: 50 MiB at $RATE Mbit/s over one connection across the migration, sha256 $GOT"
