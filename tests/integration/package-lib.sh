# Helpers for the package tests: build edgemig's Debian packages from this
# tree, and a Debian 12 chroot with their runtime dependencies, cached once
# per machine under /var/cache/edgemig/chroot like the test images.
# shellcheck shell=bash

PKG_CACHE=${EDGEMIG_CACHE:-/var/cache/edgemig}
PKG_MIRROR=${EDGEMIG_DEBIAN_MIRROR:-http://deb.debian.org/debian}

pkg_require() {
	local t
	for t in dpkg-buildpackage dh debootstrap unshare chroot; do
		command -v "$t" >/dev/null || skip "$t missing (scripts/setup installs it)"
	done
}

# pkg_build DIR: copies this tree (without build outputs) to DIR/src and
# builds the binary packages into DIR with dpkg-buildpackage -b -us -uc.
pkg_build() {
	local d=$1
	mkdir -p "$d/src"
	tar -C "$REPO" --exclude=./build --exclude=./build-san --exclude=./build-fuzz \
		--exclude=./.git --exclude=./bench/results -cf - . | tar -C "$d/src" -xf -
	(cd "$d/src" && DEB_BUILD_OPTIONS="noddebs nocheck parallel=2" \
		dpkg-buildpackage -b -us -uc >"$d/build.log" 2>&1) ||
		fail "dpkg-buildpackage: $(grep -E 'error|Error' "$d/build.log" | head -5)"
}

# pkg_runtime_deps DEB...: the package names the debs depend on, sorted.
pkg_runtime_deps() {
	local deb
	for deb in "$@"; do dpkg-deb -f "$deb" Depends; done | tr ',' '\n' |
		sed -E 's/\(.*\)//; s/\|.*//; s/:any//; s/^ +//; s/ +$//' | grep -vE '^$|^edgemig' | sort -u
}

# pkg_chroot_cache DEPS...: prints the path of a cached bookworm minbase tree
# with DEPS and systemd installed (for the units check and a boot attempt),
# built once per set of dependencies from the test images' debootstrap tar
# (or by debootstrap when that is missing).
pkg_chroot_cache() {
	local key dir tmp base=$PKG_CACHE/rootfs/bookworm-minbase.tar
	key=$(printf '%s\n' "$@" systemd | sort -u | sha256sum | cut -c1-16)
	dir=$PKG_CACHE/chroot/bookworm-$key
	mkdir -p "$PKG_CACHE/chroot"
	exec 8>"$PKG_CACHE/chroot/.lock"
	flock 8
	if [ ! -d "$dir" ]; then
		tmp=$(mktemp -d "$PKG_CACHE/chroot/tmp.XXXXXX")
		if [ -f "$base" ]; then
			tar -xpf "$base" --numeric-owner -C "$tmp"
		else
			debootstrap --variant=minbase bookworm "$tmp" "$PKG_MIRROR" >"$tmp.log" 2>&1 ||
				{ exec 8>&-; rm -rf "$tmp"; fail "debootstrap: $(tail -3 "$tmp.log")"; }
		fi
		cp /etc/resolv.conf "$tmp/etc/resolv.conf"
		# shellcheck disable=SC2016 # expanded by the inner shell
		unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
			r=$1; shift
			mount -t proc proc "$r/proc"
			mount --bind /dev "$r/dev"
			chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
				DEBIAN_FRONTEND=noninteractive apt-get -q update
			chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
				DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends install "$@"
			chroot "$r" apt-get clean' _ "$tmp" "$@" systemd >"$tmp.log" 2>&1 ||
			{ exec 8>&-; rm -rf "$tmp"; fail "chroot apt-get: $(tail -5 "$tmp.log")"; }
		rm -f "$tmp.log"
		mv -T "$tmp" "$dir"
	fi
	exec 8>&-
	echo "$dir"
}
