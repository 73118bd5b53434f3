#!/usr/bin/env bash
# edgemig's Debian packages, installed as an operator would:
#  1. dpkg-buildpackage -b -us -uc builds edgemig and edgemig-controller from
#     this tree;
#  2. they install with dpkg into a Debian 12 minbase chroot that holds only
#     their runtime dependencies (cached once per machine); the units pass
#     systemd-analyze verify there;
#  3. on a test bed, host 1 runs this tree's build and host 2 boots the
#     chroot with systemd (systemd-nspawn --boot in host 2's network
#     namespace): edgemigd.service (Type=notify, with the daemon's status
#     text; StateDirectory; the packaged config file) receives a live
#     migration, and a restart of the unit leaves the restored container and
#     its log forwarder running (KillMode=process); the controller's unit
#     starts too; log lines reach the journal with their priority.
#  EDGEMIG_TEST_NSPAWN=0 stops after the units check, for a machine where
#  systemd-nspawn cannot boot (a plain chroot cannot stand in: CRIU cannot
#  restore a container's mount namespace under chroot(2)).
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/package-lib.sh"
ct_require
pkg_require
D=$(mktemp -d /tmp/em-pkg-XXXXXX)
NSPAWN_PID=

return_st() { return "$1"; }
pkg_cleanup() {
	local st=$?
	if [ -n "$NSPAWN_PID" ]; then
		[ -z "${BOOT_PID:-}" ] || in_boot edgemig rm -f counter >/dev/null 2>&1 || true
		kill "$NSPAWN_PID" 2>/dev/null
		wait "$NSPAWN_PID" 2>/dev/null
	fi
	[ "$st" -eq 0 ] || { tail -n 20 "$D"/*.log 2>/dev/null || true; }
	umount -R -l "$D/root" 2>/dev/null || true
	umount -R -l "$D/state" 2>/dev/null || true
	rm -rf "$D"
	if [ "$st" -eq 0 ]; then mig_cleanup; else return_st "$st" || mig_cleanup; fi
}
trap pkg_cleanup EXIT

# 1. Build.
t0=$SECONDS
pkg_build "$D"
DEBS=("$D"/edgemig_*.deb "$D"/edgemig-controller_*.deb)
for deb in "${DEBS[@]}"; do [ -f "$deb" ] || fail "no package built: $deb"; done
want=$("$EM" --version | cut -d' ' -f2)
[ "$(dpkg-deb -f "${DEBS[0]}" Version)" = "$want" ] ||
	fail "package version $(dpkg-deb -f "${DEBS[0]}" Version) is not edgemig's $want"
echo "packages built in $((SECONDS - t0)) s: ${DEBS[*]##*/}"

# 2. Install into the chroot; check what landed and the units.
mapfile -t deps < <(pkg_runtime_deps "${DEBS[@]}")
t0=$SECONDS
lower=$(pkg_chroot_cache "${deps[@]}")
echo "chroot with ${deps[*]}: $lower ($((SECONDS - t0)) s)"
mkdir -p "$D"/{root,upper,ovwork}
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$D/upper,workdir=$D/ovwork" "$D/root"
mkdir -p "$D/root/root/debs"
cp "${DEBS[@]}" "$D/root/root/debs/"
chroot "$D/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i \
	"${DEBS[@]/#*\//\/root\/debs\/}" >"$D/dpkg.log" 2>&1 || fail "dpkg -i: $(tail -5 "$D/dpkg.log")"
for f in /usr/bin/edgemig /usr/sbin/edgemigd /usr/sbin/edgemig-controller /usr/bin/edgemig-probe \
	/etc/edgemig/edgemigd.conf /etc/edgemig/controller.conf /lib/systemd/system/edgemigd.service \
	/lib/systemd/system/edgemig-controller.service /usr/share/man/man8/edgemigd.8.gz \
	/usr/share/bash-completion/completions/edgemig /usr/share/edgemig/setup-criu \
	/usr/lib/edgemig/route-hook /etc/edgemig/route-hook.conf; do
	[ -e "$D/root$f" ] || fail "the packages did not install $f"
done
chroot "$D/root" dpkg-query -W -f '${Conffiles}\n' edgemig | grep -q /etc/edgemig/edgemigd.conf ||
	fail "edgemigd.conf is not a conffile"
[ "$(chroot "$D/root" /usr/sbin/edgemigd --version)" = "edgemigd $want" ] ||
	fail "the installed edgemigd does not run in the chroot"
chroot "$D/root" systemd-analyze verify --man=no /lib/systemd/system/edgemigd.service \
	/lib/systemd/system/edgemig-controller.service >"$D/verify.log" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$D/verify.log")"
[ ! -s "$D/verify.log" ] || fail "systemd-analyze verify warns: $(cat "$D/verify.log")"

if [ "${EDGEMIG_TEST_NSPAWN:-1}" = 0 ]; then
	echo "NOTE: EDGEMIG_TEST_NSPAWN=0: the units ran only through systemd-analyze verify"
	echo "PASS: package (without the systemd boot)"
	exit 0
fi

# 3. The test bed: host 1 runs this tree's build, host 2 the packages.
testbed_up 2 || fail "test bed"
mkdir -p "$EM_H1_ROOT" "$D/state"
# Both hosts run containers in the host's user namespace here (the host
# policy knob): inside systemd-nspawn, CRIU 4.2.1 cannot restore a
# user-namespaced container ("mnt-v2: Can't bind remount 0x200000 ...:
# Operation not permitted", nspawn's mounts are locked in the namespace).
# User namespaces across a migration are 46-migrate-nonroot's job; this test
# is about the packages and the units. docs/deploy.md says so.
for r in "$EM_H1_ROOT" "$D/state"; do echo '{"userns": false}' >"$r/security.json"; done
mig_pull 1 busybox
mig_pki 1
mig_daemon 1
mig_pki 2 # the CA and h2's certificate, copied to where an operator puts them
mkdir -p "$D/root/etc/edgemig/pki"
cp "$EM_H2_ROOT/pki/ca.crt" "$EM_H2_ROOT/pki/h2.crt" "$EM_H2_ROOT/pki/h2.key" "$D/root/etc/edgemig/pki/"
cat >"$D/root/etc/edgemig/edgemigd.conf" <<CONF
listen = $(haddr 2):$MIG_PORT
tls-cert = /etc/edgemig/pki/h2.crt
tls-key = /etc/edgemig/pki/h2.key
tls-ca = /etc/edgemig/pki/ca.crt
allow-peer = h1
CONF
cat >"$D/root/etc/edgemig/controller.conf" <<CONF
state-dir = /var/lib/edgemig-controller
insecure = true
listen = 127.0.0.1:7880
CONF
SIP=10.66.0.10
h 1 run --name counter --ip "$SIP/32" busybox >/dev/null || fail "run on host 1"
wait_for 10 h 1 exec counter test -s /data/counter.log || fail "counter not counting"
migrate_to_2() {
	h 1 migrate counter --to "$(haddr 2):$MIG_PORT" --json >"$D/mig.json" ||
		fail "migrate into the packaged edgemigd: $(cat "$D/mig.json"; tail -5 "$D"/edgemigd*.log 2>/dev/null)"
	python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); assert r["ok"], r
print("migrated into the packaged edgemigd: handoff %d ms, downtime %d ms" % (r["handoff_ms"], r["downtime_ms"]))' "$D/mig.json"
	h 1 ps | grep -q '^counter ' && fail "counter still on host 1"
	return 0
}
counter_running() {
	in_boot edgemig ps --json | python3 -c '
import json, sys
sys.exit(0 if any(c["name"] == "counter" and c["state"] == "running" for c in json.load(sys.stdin)) else 1)'
}
counter_now() { in_boot edgemig exec counter tail -n 1 /data/counter.log; }
counter_past() { [ "$(counter_now)" -gt "$1" ]; }

# 4. Host 2 boots the chroot with systemd (in its network namespace) and
# runs the units.
in_boot() { nsenter -t "$BOOT_PID" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
boot_pid() { BOOT_PID=$(pgrep -P "$NSPAWN_PID" -x systemd) && [ -n "$BOOT_PID" ]; }
booted() { boot_pid && in_boot systemctl is-system-running | grep -qE '^(running|degraded)$'; }
unit_show() { in_boot systemctl show -p "$2" --value "$1"; }
unit_log() { in_boot journalctl -u "$1" --no-pager | tail -5; }
t0=$(date +%s%N)
SYSTEMD_SECCOMP=0 SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 systemd-nspawn -q -D "$D/root" --boot \
	--register=no --keep-unit --console=pipe --capability=all \
	--bind-ro=/opt/edgemig/criu --bind="$D/state:/var/lib/edgemig" \
	--network-namespace-path="/run/netns/$EM_H2_NS" -M "em$$" </dev/null >"$D/boot.log" 2>&1 &
NSPAWN_PID=$!
if wait_for 60 booted; then
	echo "systemd-nspawn --boot: system running after $((($(date +%s%N) - t0) / 1000000)) ms"
	# What a real host has and systemd-nspawn takes away: writable cgroup v1
	# controllers (runc creates the container's cgroups). Its seccomp filter
	# (CRIU cannot suspend seccomp under one) is off (SYSTEMD_SECCOMP=0), and
	# /proc/sys is writable (CRIU restores the container's UTS sysctls).
	in_boot sh -c 'for m in /sys/fs/cgroup/*; do [ -L "$m" ] || mount -o remount,bind,rw "$m"; done'
	in_boot systemctl start edgemigd.service ||
		fail "systemctl start edgemigd: $(unit_log edgemigd; in_boot edgemig check 2>&1 | grep -v ' ok ')"
	[ "$(unit_show edgemigd StatusText)" = "listening on $(haddr 2):$MIG_PORT" ] ||
		fail "edgemigd's sd_notify status: '$(unit_show edgemigd StatusText)'"
	[ "$(in_boot stat -c %a /var/lib/edgemig)" = 700 ] || fail "StateDirectory mode"
	# Log lines reach the journal with their priority and without our time stamp.
	# Read whole first: grep -q leaving early would fail journalctl with
	# SIGPIPE, and the pipeline with it (pipefail).
	j=$(in_boot journalctl -u edgemigd -p info..info -o cat)
	grep -q "^edgemigd $want ready (root" <<<"$j" ||
		fail "no 'ready' line at priority info: $(in_boot journalctl -u edgemigd -o cat | tail -3)"
	migrate_to_2
	counter_running || fail "counter is not running under the packaged edgemigd"
	ctr=$(in_boot edgemig inspect counter | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	logger=$(in_boot sh -c 'grep -lx edgemig-logger /proc/[0-9]*/comm' | head -1 | cut -d/ -f3)
	[ -n "$logger" ] || fail "no log forwarder for the restored container"
	echo "name=systemd cgroups: container $(in_boot grep name=systemd "/proc/$ctr/cgroup" | cut -d: -f3)," \
		"log forwarder $(in_boot grep name=systemd "/proc/$logger/cgroup" | cut -d: -f3)"
	# A restart (an upgrade does one) must leave the container alone.
	pid1=$(unit_show edgemigd MainPID)
	c1=$(counter_now)
	in_boot systemctl restart edgemigd.service || fail "systemctl restart edgemigd: $(unit_log edgemigd)"
	pid2=$(unit_show edgemigd MainPID)
	[ "$pid2" != "$pid1" ] && [ "$(unit_show edgemigd SubState)" = running ] ||
		fail "edgemigd did not come back after a restart"
	in_boot test -d "/proc/$ctr" || fail "restarting edgemigd killed the container (KillMode)"
	counter_running || fail "counter not running after restarting edgemigd"
	wait_for 10 counter_past $((c1 + 2)) || fail "the counter stopped when edgemigd restarted"
	in_boot grep -qx edgemig-logger "/proc/$logger/comm" ||
		fail "restarting edgemigd killed the log forwarder (KillMode)"
	echo "restart: edgemigd $pid1 -> $pid2; container $ctr and its log forwarder kept running"
	in_boot systemctl start edgemig-controller.service ||
		fail "systemctl start edgemig-controller: $(unit_log edgemig-controller)"
	[ "$(unit_show edgemig-controller StatusText)" = "serving the API" ] ||
		fail "the controller's sd_notify status: '$(unit_show edgemig-controller StatusText)'"
	in_boot test -f /var/lib/edgemig-controller/controller.db || fail "controller.db not in its StateDirectory"
	in_boot edgemig rm -f counter >/dev/null || fail "edgemig rm under systemd"
	in_boot systemctl stop edgemigd.service edgemig-controller.service
else
	# A plain chroot is no substitute: CRIU's restore of the container's
	# mount namespace fails under chroot(2) ("Unable to mount tmpfs in
	# /tmp/.criu.mntns.*"), so edgemigd needs a root of its own.
	fail "systemd-nspawn --boot did not come up: $(tail -n 3 "$D/boot.log" | tr '\n' ' ')" \
		"(EDGEMIG_TEST_NSPAWN=0 checks the packages without it)"
fi
echo "PASS: package"
