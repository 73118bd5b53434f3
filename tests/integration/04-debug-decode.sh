#!/usr/bin/env bash
# edgemig debug decode on real files: a CRIU 4.2.1 pagemap (text and JSON),
# and a file of no known format (exit 1, the formats named). The formats
# edgemig writes itself are decoded in tests/unit/test_decode.c from files
# the library's writers make. No root needed.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM="$BUILD/edgemig"
[ -x "$EM" ] || { echo "SKIP: $EM not built"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/em-decode-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cp "$SRC/tests/unit/data/criu-4.2.1-pagemap.img" "$T/pagemap-1.img"
head -c $((3 * 4096)) /dev/zero >"$T/pages-1.img"
"$EM" debug decode "$T/pagemap-1.img" --json >"$T/pm.json" || fail "decode exited $?"
jq -e '.format == "CRIU pagemap" and (.entries | length) == 86 and .present_pages == 6118' \
	"$T/pm.json" >/dev/null || fail "pagemap: $(jq -c '{format, present_pages}' "$T/pm.json")"
jq -e '.pages_file.pages == 3 and .pages_file.zero_pages == 3' "$T/pm.json" >/dev/null ||
	fail "pages-1.img summary: $(jq -c .pages_file "$T/pm.json")"
"$EM" debug decode "$T/pagemap-1.img" --limit 2 >"$T/pm.txt" || fail "text decode exited $?"
grep -q '^.*pagemap-1.img: CRIU pagemap$' "$T/pm.txt" || fail "text header: $(head -2 "$T/pm.txt")"
grep -q '84 more (--limit)' "$T/pm.txt" || fail "--limit not applied: $(cat "$T/pm.txt")"

echo "not a format" >"$T/junk"
rc=0
"$EM" debug decode "$T/junk" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "junk: exit $rc, not 1"
grep -q 'not a format edgemig knows' "$T/err" || fail "junk: $(cat "$T/err")"
echo "PASS: debug decode"
