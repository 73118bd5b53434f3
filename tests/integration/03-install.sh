#!/usr/bin/env bash
# `make install` with PREFIX and DESTDIR: the binaries, man pages that render
# without groff warnings, the systemd units (checked by systemd-analyze
# against the installed binaries), bash completion that completes from the
# binaries' --help, and sample configuration files that name every long
# option and parse. No root needed; nothing outside a temporary directory.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
REPO=$(pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in help2man groff man; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing (scripts/setup installs it)"; exit 77; }
done
D=$(mktemp -d /tmp/em-install-XXXXXX)
trap 'rm -rf "$D"' EXIT
SAN=0
[ "$BUILD" = build-san ] && SAN=1

# PREFIX inside $D (so that the units' ExecStart paths exist), DESTDIR for
# /etc (SYSCONFDIR stays /etc: it is compiled in).
make --no-print-directory -s SAN=$SAN install PREFIX="$D/usr" DESTDIR="$D/root" \
	>"$D/make.log" 2>&1 || fail "make install: $(tail -5 "$D/make.log")"
P=$D/root$D/usr
for f in bin/edgemig bin/edgemig-probe bin/edgemig-netns-hook sbin/edgemigd sbin/edgemig-controller \
	share/man/man1/edgemig.1 share/man/man1/edgemig-probe.1 share/man/man8/edgemigd.8 \
	share/man/man8/edgemig-controller.8 lib/systemd/system/edgemigd.service \
	lib/systemd/system/edgemig-controller.service share/bash-completion/completions/edgemig \
	share/bash-completion/completions/edgemigd lib/edgemig/route-hook; do
	[ -e "$P/$f" ] || fail "make install did not install $f"
done
for c in edgemigd.conf controller.conf route-hook.conf; do
	[ -f "$D/root/etc/edgemig/$c" ] || fail "make install did not install /etc/edgemig/$c"
done
# A second install keeps an operator's configuration.
echo "# mine" >>"$D/root/etc/edgemig/edgemigd.conf"
make --no-print-directory -s SAN=$SAN install PREFIX="$D/usr" DESTDIR="$D/root" >/dev/null 2>&1
grep -q '^# mine' "$D/root/etc/edgemig/edgemigd.conf" || fail "make install overwrote edgemigd.conf"

# Man pages: no groff warnings, and man renders the sections we wrote.
for m in "$P"/share/man/man*/*; do
	w=$(groff -ww -mandoc -z "$m" 2>&1) || fail "groff $m: $w"
	[ -z "$w" ] || fail "groff warns on $m: $w"
	MANWIDTH=80 man -l "$m" 2>/dev/null >"$D/man.txt" || fail "man -l $m failed"
	grep -q '^NAME' "$D/man.txt" && grep -q 'SEE ALSO' "$D/man.txt" || fail "$m lacks NAME/SEE ALSO"
	grep -q -- '--version' "$D/man.txt" || fail "$m lacks the options"
done
MANWIDTH=80 man -l "$P/share/man/man8/edgemigd.8" 2>/dev/null | grep -q 'KillMode=process' ||
	fail "edgemigd(8) does not explain the unit"

# Units: systemd's own check, against the installed binaries (at the
# ExecStart path once DESTDIR is taken off).
ln -s "$P" "$D/usr"
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify --man=no "$P"/lib/systemd/system/*.service 2>"$D/verify" ||
		fail "systemd-analyze verify: $(cat "$D/verify")"
	[ ! -s "$D/verify" ] || fail "systemd-analyze verify warns: $(cat "$D/verify")"
fi
grep -q "^ExecStart=$D/usr/sbin/edgemigd --config /etc/edgemig/edgemigd.conf$" \
	"$P/lib/systemd/system/edgemigd.service" || fail "edgemigd.service has the wrong ExecStart"

# Completion from the installed binaries' --help.
complete_words() {
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _edgemig
		echo "${COMPREPLY[*]}"' _ "$P/share/bash-completion/completions/edgemig" "$@"
}
[ "$(complete_words "$P/bin/edgemig" mig)" = migrate ] || fail "completion: edgemig mig"
[ "$(complete_words "$P/bin/edgemig" --root /x migrate --downt)" = --downtime-target ] ||
	fail "completion: edgemig migrate --downt"
[ "$(complete_words "$P/sbin/edgemigd" --allow-c)" = --allow-controller ] ||
	fail "completion: edgemigd --allow-c"
[ "$(complete_words "$P/sbin/edgemig-controller" --log-level d)" = debug ] ||
	fail "completion: --log-level d"

# The sample files name every long option (commented out or set)...
for pair in edgemigd:edgemigd.conf edgemig-controller:controller.conf; do
	b=${pair%%:*} c=$D/root/etc/edgemig/${pair#*:}
	for o in $("$P/sbin/$b" --help | grep -oE '^ +--[a-z][a-z0-9-]*' | sed 's/^ *--//' | sort -u); do
		case $o in config | help | version) continue ;; esac
		grep -qE "^#?$o = " "$c" || fail "${c##*/} does not mention '$o'"
	done
done
# ... and every value in them parses: uncommented, the daemons get past the
# option layer and stop at the missing certificate files.
sed -E 's/^#([a-z-]+ = )/\1/; /^insecure = /d; /^controller = /d' \
	"$D/root/etc/edgemig/edgemigd.conf" >"$D/all.conf"
rc=0
"$P/sbin/edgemigd" --config "$D/all.conf" --root "$D/state" >"$D/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "edgemigd started without certificates"
grep -q 'all.conf:' "$D/out" && fail "the sample edgemigd.conf does not parse: $(cat "$D/out")"
grep -q '/var/lib/edgemig/pki/' "$D/out" || fail "edgemigd did not reach the TLS files: $(cat "$D/out")"
sed -E 's/^#([a-z-]+ = )/\1/; /^insecure = /d; s|^state-dir = .*|state-dir = '"$D/ctl"'|' \
	"$D/root/etc/edgemig/controller.conf" >"$D/all.conf"
rc=0
"$P/sbin/edgemig-controller" --config "$D/all.conf" >"$D/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "the controller started without certificates"
grep -q 'all.conf:' "$D/out" && fail "the sample controller.conf does not parse: $(cat "$D/out")"
grep -q 'controller' "$D/out" || fail "unexpected controller error: $(cat "$D/out")"
echo "PASS: install"
