#!/usr/bin/env bash
# docs/deploy.md's quick start, followed by a new user on the test bed's
# namespaces, from the packages only: both edge hosts (edge-a, edge-b) boot
# a Debian 12 minbase tree with systemd (systemd-nspawn --boot in the host's
# network namespace) into which `apt-get install ./edgemig_*.deb` installed
# the package; every edgemig command below is the installed binary, run as
# the document's sections say (each step names its section). Keep the two in
# step: a change to a documented command changes it here.
# What the document leaves to the host and the test bed stands in for: CRIU
# is the machine's /opt/edgemig/criu (what section 1's setup-criu installs),
# the hosts run containers with {"userns": false} and writable cgroup
# controllers (section "Running edgemig under systemd-nspawn"), and the image
# is imported from the test images instead of pulled.
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/package-lib.sh"
ct_require
pkg_require
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn missing (scripts/setup installs it)"
IMG=/var/cache/edgemig/images/redis
[ -f "$IMG/index.json" ] || skip "test image redis not built (scripts/build-test-images)"
D=$(mktemp -d /tmp/em-deploy-XXXXXX)
declare -A NSPAWN=() BOOT=()
SIP=10.66.0.10

return_st() { return "$1"; }
deploy_cleanup() {
	local st=$? x
	for x in a b; do
		[ -z "${BOOT[$x]:-}" ] || in_edge "$x" edgemig rm -f redis >/dev/null 2>&1 || true
		[ -z "${NSPAWN[$x]:-}" ] || { kill "${NSPAWN[$x]}" 2>/dev/null; wait "${NSPAWN[$x]}" 2>/dev/null; }
		umount -R -l "$D/$x/root" 2>/dev/null || true
		umount -R -l "$D/$x/state" 2>/dev/null || true
	done
	[ "$st" -eq 0 ] || { tail -n 20 "$D"/*.log "$D"/*/*.log 2>/dev/null || true; }
	rm -rf "$D"
	if [ "$st" -eq 0 ]; then mig_cleanup; else return_st "$st" || mig_cleanup; fi
}
trap deploy_cleanup EXIT

in_edge() {
	local x=$1
	shift
	nsenter -t "${BOOT[$x]}" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}
booted() {
	BOOT[$1]=$(pgrep -P "${NSPAWN[$1]}" -x systemd) && [ -n "${BOOT[$1]}" ] &&
		in_edge "$1" systemctl is-system-running | grep -qE '^(running|degraded)$'
}

# --- section 1, Packages: build them, install edgemig on both edges ---------
pkg_build "$D"
DEB=$(cd "$D" && ls edgemig_*_amd64.deb)
mapfile -t deps < <(pkg_runtime_deps "$D/$DEB")
lower=$(pkg_chroot_cache "${deps[@]}")
testbed_up 2 || fail "test bed"
i=0
for x in a b; do
	i=$((i + 1))
	mkdir -p "$D/$x"/{root,upper,ovwork,state}
	mount -t overlay overlay -o "lowerdir=$lower,upperdir=$D/$x/upper,workdir=$D/$x/ovwork" "$D/$x/root"
	cp "$D/$DEB" "$D/$x/root/root/"
	chroot "$D/$x/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh -c \
		"cd /root && apt-get install -y ./$DEB" >"$D/$x/apt.log" 2>&1 ||
		fail "apt-get install ./$DEB on edge-$x: $(tail -5 "$D/$x/apt.log")"
	echo '{"userns": false}' >"$D/$x/state/security.json"
	echo "edge-$x" >"$D/$x/root/etc/hostname" # section 2 names the files after it
	ns=EM_H${i}_NS
	SYSTEMD_SECCOMP=0 SYSTEMD_NSPAWN_API_VFS_WRITABLE=1 systemd-nspawn -q -D "$D/$x/root" --boot \
		--register=no --keep-unit --console=pipe --capability=all -M "em$x$$" \
		--bind-ro=/opt/edgemig/criu --bind="$D/$x/state:/var/lib/edgemig" --bind-ro="$IMG:/root/redis" \
		--network-namespace-path="/run/netns/${!ns}" </dev/null >"$D/$x/boot.log" 2>&1 &
	NSPAWN[$x]=$!
done
for x in a b; do
	wait_for 60 booted "$x" || fail "edge-$x did not boot: $(tail -n 3 "$D/$x/boot.log" | tr '\n' ' ')"
	# what nspawn takes away and a real host has: writable cgroup controllers
	in_edge "$x" sh -c 'for m in /sys/fs/cgroup/*; do [ -L "$m" ] || mount -o remount,bind,rw "$m"; done'
	in_edge "$x" edgemig check >"$D/$x/check.log" 2>&1 || fail "edgemig check on edge-$x: $(grep -v ' ok ' "$D/$x/check.log")"
done

# --- section 2, Certificates (the CA on edge-a's tree, in /root) ------------
in_edge a edgemig ca init --dir /root/edgemig-ca >/dev/null || fail "edgemig ca init"
for x in a b; do
	in_edge a edgemig ca issue "edge-$x" --dir /root/edgemig-ca --out /root/out/ >/dev/null ||
		fail "edgemig ca issue edge-$x"
done
for x in a b; do
	mkdir -p "$D/$x/state/pki"
	cp "$D/a/root/root/edgemig-ca/ca.crt" "$D/a/root/root/out/edge-$x.crt" "$D/a/root/root/out/edge-$x.key" \
		"$D/$x/state/pki/"
	chmod 600 "$D/$x/state/pki/edge-$x.key"
done

# --- section 3, Configuration; systemctl enable --now edgemigd --------------
i=0
for x in a b; do
	i=$((i + 1))
	peer=$([ "$x" = a ] && echo b || echo a)
	cat >"$D/$x/root/etc/edgemig/edgemigd.conf" <<CONF
listen = $(haddr "$i"):7878
tls-cert = /var/lib/edgemig/pki/edge-$x.crt
tls-key = /var/lib/edgemig/pki/edge-$x.key
tls-ca = /var/lib/edgemig/pki/ca.crt
allow-peer = edge-$peer
# service IPs this host accepts (default 10.66.0.0/16)
service-cidr = 10.66.0.0/16
CONF
	in_edge "$x" systemctl enable --now edgemigd >/dev/null 2>&1 ||
		fail "systemctl enable --now edgemigd on edge-$x: $(in_edge "$x" journalctl -u edgemigd -o cat | tail -5)"
	[ "$(in_edge "$x" systemctl show -p StatusText --value edgemigd)" = "listening on $(haddr "$i"):7878" ] ||
		fail "edge-$x: edgemigd's status: $(in_edge "$x" systemctl show -p StatusText --value edgemigd)"
done

# --- section 5, A first migration (image imported, not pulled) --------------
in_edge a edgemig image import --name redis:7 /root/redis >/dev/null || fail "edgemig image import"
in_edge a edgemig run --name redis --ip "$SIP/32" redis:7 >/dev/null || fail "edgemig run on edge-a"
wait_for 20 in_edge a edgemig exec redis redis-cli ping >/dev/null || fail "redis did not come up on edge-a"
in_edge a edgemig exec redis redis-cli set greeting "from edge-a" >/dev/null || fail "redis-cli set"
in_edge a edgemig migrate redis --to "$(haddr 2):7878" >"$D/migrate.log" 2>"$D/migrate.err" ||
	fail "edgemig migrate redis --to $(haddr 2):7878: $(tail -5 "$D/migrate.err")"
head -n 1 "$D/migrate.log"
in_edge a edgemig ps | grep -q '^redis ' && fail "redis still on edge-a after the migration"
[ "$(in_edge b edgemig exec redis redis-cli get greeting)" = "from edge-a" ] ||
	fail "redis on edge-b does not have the key written on edge-a"
echo "PASS: docs/deploy.md quick start: redis migrated from edge-a to edge-b, packages only ($SECONDS s)"
