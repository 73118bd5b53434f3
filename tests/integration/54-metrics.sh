#!/usr/bin/env bash
# Prometheus metrics on every host: edgemigd's /metrics on --metrics-listen
# (a failed migration counted) behind its mutual TLS (a scraper's client certificate from the platform
# CA, named by --allow-scraper; no certificate, another CA's or a name not
# allowed is refused), and the controller's /metrics. Both texts must pass a
# strict parser of the exposition format (tests/integration/data/
# check-prom.py) and `promtool check metrics` (Debian's, unpacked by
# scripts/setup --test; the test says so if it is missing).
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM=$BUILD/edgemig EMD=$BUILD/edgemigd CTL=$BUILD/edgemig-controller
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$EMD" ] && [ -x "$CTL" ] || { echo "SKIP: binaries not built"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in curl jq python3 openssl; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
BASE=$((20000 + ($$ % 5000) * 4))
P=$BASE M=$((BASE + 1)) C=$((BASE + 2))

T=$(mktemp -d /tmp/em-metrics-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for l in "$T"/*.log; do echo "--- $l" >&2; tail -5 "$l" >&2; done; exit 1; }
wait_for() { local i; for ((i = 0; i < 100; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }

"$EM" ca init --dir "$T/ca" >/dev/null
"$EM" ca issue edge1 --ip 127.0.0.1 --dir "$T/ca" --out "$T/pki" >/dev/null
for n in peer2 prom stranger; do "$EM" ca issue "$n" --dir "$T/ca" --out "$T/pki" >/dev/null; done
"$EM" ca init --dir "$T/rogue-ca" >/dev/null
"$EM" ca issue prom --dir "$T/rogue-ca" --out "$T/rogue" >/dev/null

"$EMD" --config none --root "$T/root" --listen "127.0.0.1:$P" --metrics-listen "127.0.0.1:$M" \
	--tls-cert "$T/pki/edge1.crt" --tls-key "$T/pki/edge1.key" --tls-ca "$T/ca/ca.crt" \
	--allow-peer peer2 --allow-scraper prom >"$T/edgemigd.log" 2>&1 &
PIDS+=($!)
U=https://127.0.0.1:$M/metrics
scrape() { # scrape DIR NAME [CURL-ARGS]: with DIR/NAME's certificate
	local d=$1 n=$2
	shift 2
	curl -sf --max-time 10 --cacert "$T/ca/ca.crt" --cert "$d/$n.crt" --key "$d/$n.key" "$@" "$U"
}
wait_for scrape "$T/pki" prom -o /dev/null || fail "edgemigd's /metrics did not answer"
# A migration that fails on this host (no such container) leaves its report:
# counted at the next scrape.
"$EM" --root "$T/root" migrate nosuch --to 127.0.0.1:1 --insecure 2>/dev/null &&
	fail "migrated a container that does not exist"
scrape "$T/pki" prom >"$T/edgemigd.prom" || fail "scrape with the scraper's certificate"
for m in 'edgemig_migrations_total{result="failure"} 1' 'edgemig_migrations_total{result="success"} 0' 'edgemig_sessions_in_flight 0' \
	'edgemig_migration_handoff_seconds_bucket{le="+Inf"} ' 'edgemig_migration_downtime_seconds_count ' \
	'edgemig_migration_bytes_total{encoding="wire"} ' 'edgemig_build_info{version="'; do
	grep -qF "$m" "$T/edgemigd.prom" || fail "edgemigd metrics lack '$m'"
done
scrape "$T/pki" peer2 -o /dev/null || fail "an allowed peer may scrape too"
scrape "$T/pki" stranger -o /dev/null && fail "a certificate not allowed was served"
scrape "$T/rogue" prom -o /dev/null && fail "another CA's certificate was served"
curl -sf --max-time 10 --cacert "$T/ca/ca.crt" "$U" -o /dev/null && fail "a scrape without a certificate was served"
curl -sf --max-time 10 "http://127.0.0.1:$M/metrics" -o /dev/null && fail "plain HTTP was served"
[ "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' --cacert "$T/ca/ca.crt" --cert "$T/pki/prom.crt" \
	--key "$T/pki/prom.key" "https://127.0.0.1:$M/other")" = 404 ] || fail "another path is not 404"
scrape "$T/pki" prom -o /dev/null || fail "edgemigd stopped answering after the refusals"
echo "edgemigd /metrics over mutual TLS: scraper and peer served; stranger, rogue CA, no cert, plain HTTP refused"

"$CTL" --state-dir "$T/ctl" --listen "127.0.0.1:$C" --insecure >"$T/controller.log" 2>&1 &
PIDS+=($!)
CU=http://127.0.0.1:$C
wait_for curl -sf "$CU/healthz" -o /dev/null || fail "controller did not start"
curl -sf -XPOST "$CU/edges" -d '{"name":"e1","addr":"127.0.0.1:1","x":0,"y":0,"capacity":2}' -o /dev/null ||
	fail "register e1"
curl -sf -XPOST "$CU/edges/e1/heartbeat" -d '{"load":0,"containers":0,"bandwidth_mbps":8}' -o /dev/null ||
	fail "heartbeat e1"
curl -sf "$CU/metrics" >"$T/controller.prom" || fail "controller /metrics"
grep -qx 'edgemig_edge_bandwidth_bytes_per_second{edge="e1"} 1e+06' "$T/controller.prom" ||
	fail "8 Mbit/s is not 1e+06 bytes/s: $(grep bandwidth "$T/controller.prom")"
echo "controller /metrics: bandwidth in bytes per second"

python3 "$HERE/data/check-prom.py" "$T/edgemigd.prom" "$T/controller.prom" ||
	fail "the exposition format is not valid"
# scripts/setup unpacks Debian's promtool into /opt/edgemig/promtool.
PROMTOOL=${EDGEMIG_PROMTOOL:-/opt/edgemig/promtool/bin/promtool}
[ -x "$PROMTOOL" ] || PROMTOOL=$(command -v promtool || true)
if [ -n "$PROMTOOL" ]; then
	for f in "$T/edgemigd.prom" "$T/controller.prom"; do
		"$PROMTOOL" check metrics <"$f" || fail "promtool check metrics $f"
	done
	echo "promtool check metrics: ok ($PROMTOOL)"
else
	echo "promtool not installed (scripts/setup --test unpacks it): checked by check-prom.py only"
fi
echo PASS
