#!/usr/bin/env bash
# scripts/check-layers (run by `make format-check`) fails when a subsystem
# includes one above it, when a new subsystem is not in the rule, and when
# docs/architecture.md's table no longer matches the includes; --update
# repairs the table. Runs on a copy of the tree: no root, no build needed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
T=$(mktemp -d /tmp/em-layers-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
fresh() {
	rm -rf "$T/tree" && mkdir -p "$T/tree/docs" "$T/tree/src"
	cp -a "$SRC/src/lib" "$T/tree/src/"
	cp "$SRC/docs/architecture.md" "$T/tree/docs/"
}
check() { "$SRC/scripts/check-layers" --root "$T/tree" "$@" >"$T/out" 2>&1; }

fresh
check || fail "the tree as it is fails: $(cat "$T/out")"

# An upward include: util must not know migrate.
sed -i '1i #include "migrate/migrate.h"' "$T/tree/src/lib/util/log.c"
check && fail "an upward include (util -> migrate) passed"
grep -q 'src/lib/util/log.c:1: util includes migrate/' "$T/out" ||
	fail "the failure does not name the file and the edge: $(cat "$T/out")"

# In a subdirectory of a subsystem (migrate/source/ is migrate).
fresh
echo '#include "platform/control.h"' >>"$T/tree/src/lib/migrate/source/stop_rule.c"
check && fail "an upward include from migrate/source/ (migrate -> platform) passed"
grep -q 'src/lib/migrate/source/stop_rule.c:[0-9]*: migrate includes platform/' "$T/out" ||
	fail "the nested failure does not name the file and the edge: $(cat "$T/out")"

# Sideways into probe, and out of probe.
fresh
echo '#include "probe/probe.h"' >>"$T/tree/src/lib/platform/api.c"
check && fail "platform including probe passed"
fresh
echo '#include "transfer/conn.h"' >>"$T/tree/src/lib/probe/run.c"
check && fail "probe including transfer passed"

# A subsystem the rule does not know.
fresh
mkdir "$T/tree/src/lib/extra" && echo '#include "util/log.h"' >"$T/tree/src/lib/extra/x.c"
check && fail "an unknown subsystem passed"
grep -q 'unknown subsystem' "$T/out" || fail "no 'unknown subsystem': $(cat "$T/out")"

# A legal new edge makes the table stale until --update.
fresh
echo '#include "store/store.h"' >>"$T/tree/src/lib/checkpoint/runc.c"
check && fail "a stale table passed"
grep -q 'table is stale' "$T/out" || fail "no 'table is stale': $(cat "$T/out")"
check --update || fail "--update failed: $(cat "$T/out")"
grep -q '^| checkpoint | util, state, store, container |$' "$T/tree/docs/architecture.md" ||
	fail "--update did not add store to checkpoint's row"
check || fail "still failing after --update: $(cat "$T/out")"
echo "PASS: layer check"
