#!/bin/bash
# Both edgemigd daemons run under valgrind memcheck while busybox migrates
# A -> B -> A -> B over mutual TLS. Fails on any memcheck error (invalid
# read/write/free, use of uninitialised values, bad syscall parameters) or
# any definite leak, in the daemon parents or in the forked session children:
# valgrind always follows fork(), and each process writes its own log
# (vg.<pid>.log); --trace-children stays off so that the runc/CRIU the
# sessions exec run natively (CRIU cannot run under valgrind). Every session
# child must have left a complete report. Open descriptors at exit
# (--track-fds) are printed for the record. Each edgemigd also registers with
# an edgemig-controller and heartbeats every second (--controller), so its
# edge agent process (libcurl over mutual TLS, metrics collection) runs under
# memcheck too.
# The hosts run containers without user namespaces (the host policy knob
# {"userns": false}): valgrind (3.24) does not implement open_tree, which
# the idmapped layer mounts need (ENOSYS under memcheck).
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
[ -x "$EMD" ] || skip "$EMD not built"
# edgemigd needs openat2 and pidfd_open, which valgrind wraps from 3.22 on;
# bookworm has 3.19, so take EDGEMIG_VALGRIND, else trixie's valgrind unpacked
# into /opt/edgemig/valgrind (its tools are static), else the system's.
VG_PREFIX=/opt/edgemig/valgrind
if [ -n "${EDGEMIG_VALGRIND:-}" ]; then
	VG=$EDGEMIG_VALGRIND
elif [ -x "$VG_PREFIX/usr/bin/valgrind.bin" ]; then
	VG=$VG_PREFIX/usr/bin/valgrind.bin
	export VALGRIND_LIB=$VG_PREFIX/usr/libexec/valgrind
else
	VG=$(command -v valgrind) || skip "valgrind is not installed (>= 3.22 needed: trixie's valgrind .deb in $VG_PREFIX)"
fi
VG_VERSION=$("$VG" --version 2>/dev/null | sed -n 's/^valgrind-//p')
[ "$(printf '%s\n3.22\n' "$VG_VERSION" | sort -V | head -n 1)" = 3.22 ] ||
	skip "valgrind ${VG_VERSION:-?} ($VG) cannot run edgemigd: it lacks openat2 and pidfd_open (need >= 3.22, e.g. trixie's valgrind .deb unpacked into $VG_PREFIX)"

VG_LOGS=$MIG_LOGS/vg
# Under valgrind edgemigd takes seconds to reach "ready", more on a loaded
# machine (seen: 14 s at load 14 with two cores).
MIG_DAEMON_WAIT=60
mkdir -p "$VG_LOGS"
fail() { # VG_KEEP=DIR keeps the valgrind and daemon logs
	[ -z "${VG_KEEP:-}" ] || cp -r "$MIG_LOGS" "$VG_KEEP"
	echo "FAIL: $*" >&2
	exit 1
}
# Suppressed: descriptors still open when a process exits (valgrind >= 3.23
# counts them as errors; a session child ends with _exit and fd growth of the
# daemon is the soak test's job, 36-soak; they are still listed), and
# mount(2)'s NULL type for MS_BIND (src/lib/container/netns.c: the kernel
# ignores it for a bind mount; valgrind wants a string).
cat >"$MIG_LOGS/edgemigd.supp" <<'SUPP'
{
   open-at-exit
   CoreError:FdNotClosed
   obj:*
   ...
}
{
   bind-mount-null-type
   Memcheck:Param
   mount(type)
   ...
   fun:em_netns_create
}
SUPP
# The wrapper first fills the root's host-feature cache natively: the daemon's
# own probe forks a child and has CRIU dump and restore it, and a child of a
# process under valgrind runs under valgrind too, which CRIU cannot restore.
cat >"$MIG_LOGS/vg-edgemigd" <<EOF
#!/bin/bash
root=
prev=
for a in "\$@"; do [ "\$prev" != --root ] || root=\$a; prev=\$a; done
"$EM" --root "\$root" check >/dev/null 2>&1 || true
${VALGRIND_LIB:+export VALGRIND_LIB=$VALGRIND_LIB}
# Descriptors the test shell leaked into the daemon would count as errors.
exec python3 -c 'import os, sys; os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])' "$VG" --tool=memcheck --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --track-fds=yes --trace-children=no \
	--child-silent-after-fork=no --num-callers=30 --suppressions="$MIG_LOGS/edgemigd.supp" \
	--log-file="$VG_LOGS/vg.%p.log" "$EMD" "\$@"
EOF
chmod +x "$MIG_LOGS/vg-edgemigd"
EMD=$MIG_LOGS/vg-edgemigd
# The edges' agents register with a controller in the router's namespace
# (started after them: they retry until it is up) and heartbeat throughout.
CTL=$BUILD/edgemig-controller
[ -x "$CTL" ] || skip "$CTL not built"
command -v curl >/dev/null || skip "curl not installed"
CTL_IP=10.77.100.1
CTL_URL=https://$CTL_IP:$((17000 + $$ % 1000))
edge_opts() {
	printf '%s\n' --controller "$CTL_URL" --location "$((($1 - 1) * 100)),0" --capacity 4 \
		--heartbeat-interval 1
}
MIG_DAEMON_OPTS_FN=edge_opts
mig_setup 2 busybox
for r in "$EM_H1_ROOT" "$EM_H2_ROOT"; do echo '{"userns": false}' >"$r/security.json"; done
PKI=$MIG_LOGS/ctl-pki
"$EM" ca issue controller --ip "$CTL_IP" --dir "$MIG_LOGS/ca" --out "$PKI" >/dev/null ||
	fail "ca issue controller"
WAN=/run/netns/$TESTBED_PREFIX-wan
nsenter --net="$WAN" "$CTL" --state-dir "$MIG_LOGS/controller" --listen "${CTL_URL#https://}" \
	--tls-cert "$PKI/controller.crt" --tls-key "$PKI/controller.key" --tls-ca "$MIG_LOGS/ca/ca.crt" \
	--admin controller >>"$MIG_LOGS/controller.log" 2>&1 &
CTL_PID=$!
heartbeats() {
	nsenter --net="$WAN" curl -sf --cacert "$MIG_LOGS/ca/ca.crt" --cert "$PKI/controller.crt" \
		--key "$PKI/controller.key" "$CTL_URL/edges" | python3 -c '
import json, sys
e = json.load(sys.stdin)
assert sorted(x["name"] for x in e) == ["h1", "h2"] and all(x["heartbeat_ms"] > 0 for x in e), e'
}
wait_for 60 heartbeats || fail "the edges (under valgrind) did not register and heartbeat: $(cat "$MIG_LOGS/controller.log")"

SIP=10.66.0.10
# A 2 s counter interval: the counter forks a short-lived `sleep` each round,
# and a pre-copy round fails if that child exits between the source listing
# the container's pids and reading its memory (a race in the source, not in
# what this test checks; the loaded sessions under valgrind widen it).
h 1 run --name counter --ip "$SIP/32" -e COUNTER_INTERVAL=2 busybox >/dev/null || fail "run on host 1"
testbed route "$SIP" 1
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"

migrate() { # FROM TO
	local out=$MIG_LOGS/mig-$1-$2.json
	h "$1" migrate counter --to "$(haddr "$2"):$MIG_PORT" --json >"$out" ||
		fail "migrate $1 -> $2 (under valgrind): $(cat "$out")"
	# The session child (slow under valgrind) may still be committing.
	wait_for 20 running_on "$2" counter ||
		fail "not running on host $2 after migrating: $(h "$2" ps --json 2>&1)"
	[ -e "$MIG_LOGS/ps-err" ] || h "$2" ps --json >/dev/null 2>"$MIG_LOGS/ps-err" || true
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%s: handoff %d ms, downtime %d ms" %
		(sys.argv[2], r["handoff_ms"], r["downtime_ms"]))' "$out" "$1 -> $2"
}
migrate 1 2
migrate 2 1
migrate 1 2
[ ! -s "$MIG_LOGS/ps-err" ] || echo "note: edgemig ps right after a migration: $(cat "$MIG_LOGS/ps-err")"

# Every process under valgrind must exit for its report: the container's log
# forwarder (forked by a session child), the session children, the daemons.
h 2 rm -f counter >/dev/null || fail "rm counter on host 2"
mig_daemon_stop 1
mig_daemon_stop 2
kill "$CTL_PID" 2>/dev/null || true
wait "$CTL_PID" 2>/dev/null || true
vg_alive() {
	local f
	for f in "$VG_LOGS"/vg.*.log; do
		f=${f##*/vg.}
		[ -d "/proc/${f%.log}" ] && return 0
	done
	return 1
}
wait_for 60 eval '! vg_alive' || fail "processes under valgrind still running: $(ls "$VG_LOGS")"
[ -z "${VG_KEEP:-}" ] || cp -r "$MIG_LOGS" "$VG_KEEP"

SESSIONS=$(cat "$MIG_LOGS"/edgemigd-h*.log | sed -n 's/.* session \([0-9]\+\) \(finished\|failed\).*/\1/p')
# shellcheck disable=SC2086 # one argument per session pid
python3 - "$VG_LOGS" $SESSIONS <<'PY' || fail "memcheck found errors or leaks (logs above)"
import glob, os, re, sys
d, sessions = sys.argv[1], set(sys.argv[2:])
bad, reports, fds = [], 0, []
err_re = re.compile(r"== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|"
                    r"Syscall param|Source and destination overlap|Argument .* of function)")
for path in sorted(glob.glob(os.path.join(d, "vg.*.log"))):
    pid = path.rsplit(".", 2)[1]
    text = open(path, errors="replace").read()
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    if m:
        reports += 1
        sessions.discard(pid)
        o = re.search(r"FILE DESCRIPTORS: (\d+) open", text)
        if o:
            fds.append("%s:%s" % (pid, o.group(1)))
    if (m and int(m.group(1))) or err_re.search(text) or "definitely lost in" in text:
        bad.append(pid)
        print("---- %s" % path)
        print(text[-8000:])
if sessions:
    bad.append("no memcheck report for session children %s" % sorted(sessions))
print("memcheck: %d complete reports (daemons, edge agents, session children, forwarders), open fds at exit %s"
      % (reports, " ".join(fds)))
if reports < 7:
    bad.append("only %d complete reports (expected 2 daemons + 2 agents + 3 sessions at least)" % reports)
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "ok (3 migrations and the edge agents' heartbeats under valgrind, no memcheck error, no definite leak)"
