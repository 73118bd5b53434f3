#!/bin/bash
# The target keeps pushed post-copy pages in a page file, not in its
# session's anonymous memory: a memwriter of 96 MB moves by post-copy into
# a target whose sessions are limited to 40 MiB (--session-memory), with
# every page intact. With the pages in anonymous memory the session's
# memory cgroup killed it in the window ("service lost in the post-copy
# window"; the 4 GiB scaling run of 2026-12-07).
set -euo pipefail
. "$(dirname "$0")/migrate-lib.sh"
small() { [ "$1" = 2 ] && printf '%s\n' --session-memory 40M; return 0; }
MIG_DAEMON_OPTS_FN=small
[ -d /sys/fs/cgroup/memory ] || [ -e /sys/fs/cgroup/cgroup.controllers ] ||
	skip "needs a memory cgroup hierarchy"
mig_setup 2 memwriter

SIP=10.66.0.59
MWC=$REPO/scripts/memwriter-client.py
h 1 run --name mw --ip "$SIP/32" -e MEMWRITER_MB=96 -e MEMWRITER_RATE=1 \
	-e MEMWRITER_PATTERN=random memwriter >/dev/null || fail "run memwriter on host 1"
testbed route "$SIP" 1
wait_for 20 on_client python3 "$MWC" "$SIP" 7000 >/dev/null || fail "memwriter does not answer"
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
B=$(on_client python3 "$MWC" "$SIP" 7000) || fail "status: $B"
h 1 migrate mw --mode postcopy --to "$(haddr 2):$MIG_PORT" --json >"$MIG_LOGS/mig.json" ||
	fail "migrate: $(cat "$MIG_LOGS/mig.json"); $(grep -i 'memory cgroup' "$MIG_LOGS/edgemigd-h2.log")"
running_on 2 mw || fail "not running on host 2"
V=$(on_client python3 "$MWC" "$SIP" 7000 verify) || fail "verify after migration: $V"
[ "$(field "$V" token)" = "$(field "$B" token)" ] || fail "a different process answers: $B / $V"
! grep -i 'memory cgroup killed' "$MIG_LOGS/edgemigd-h2.log" || fail "a session was killed"
h 2 rm -f mw >/dev/null
echo "ok: 96 MB by post-copy into 40 MiB sessions, all $(field "$V" pages) pages intact"
