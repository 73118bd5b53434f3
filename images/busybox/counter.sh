#!/bin/sh
# edgemig test workload (the paper's "counter" service): every 100 ms append
# an incrementing counter to a file, one number per line. The current value
# lives only in this shell's memory, so a restarted (not migrated) container
# starts again at 1 -- a successful live migration continues the sequence.
# Environment: COUNTER_FILE (default /data/counter.log),
#              COUNTER_INTERVAL (default 0.1 seconds).
file="${COUNTER_FILE:-/data/counter.log}"
interval="${COUNTER_INTERVAL:-0.1}"
mkdir -p "$(dirname "$file")"
i=0
while :; do
	i=$((i + 1))
	echo "$i" >>"$file"
	sleep "$interval"
done
