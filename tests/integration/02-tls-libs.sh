#!/usr/bin/env bash
# One TLS library per binary: scripts/check-tls-libs on the built binaries
# (the controller on GnuTLS, edgemig and edgemigd on OpenSSL), and the
# script itself fails on a binary that breaks the rule. No root needed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${EDGEMIG_BUILD:-build}
command -v readelf >/dev/null || { echo "SKIP: readelf not installed"; exit 77; }
[ -x "$BUILD/edgemig-controller" ] || { echo "SKIP: $BUILD/edgemig-controller not built"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d /tmp/em-tlslibs-XXXXXX)
trap 'rm -rf "$T"' EXIT

"$SRC/scripts/check-tls-libs" "$BUILD" >"$T/out" 2>&1 || fail "$(cat "$T/out")"
cat "$T/out"

# The check must be able to fail: a controller that links OpenSSL (as it
# did before the GnuTLS backends), and a daemon that links GnuTLS.
mkdir -p "$T/b"
cp "$BUILD/edgemig" "$BUILD/edgemigd" "$T/b/"
echo 'int main(void) { return 0; }' >"$T/m.c"
cc -Wl,--no-as-needed "$T/m.c" -o "$T/b/edgemig-controller" -lgnutls -lssl -lcrypto
"$SRC/scripts/check-tls-libs" "$T/b" >"$T/out" 2>&1 && fail "an OpenSSL controller passed"
grep -q 'FAIL: edgemig-controller NEEDs libssl.so.3 libcrypto.so.3' "$T/out" ||
	fail "the failure does not name the libraries: $(cat "$T/out")"
cc -Wl,--no-as-needed "$T/m.c" -o "$T/b/edgemig-controller" -lgnutls
cc -Wl,--no-as-needed "$T/m.c" -o "$T/b/edgemigd" -lgnutls -lssl
"$SRC/scripts/check-tls-libs" "$T/b" >"$T/out" 2>&1 && fail "a GnuTLS edgemigd passed"
grep -q 'FAIL: edgemigd NEEDs libgnutls.so.30' "$T/out" || fail "$(cat "$T/out")"
echo "PASS"
