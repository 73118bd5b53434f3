# shellcheck shell=bash
# The downtime cell (issue 17, item 2), sourced by bench/run.
#
# Downtime (freeze on the source to running on the target) needs many runs
# for a p99: the pre-copy migrations of DT_WORKLOADS at DT_RATES run
# DT_REPS times (full 20, quick 5) instead of the cell's usual count. Their
# reference, measured in the same run on the same machine: the same
# container's local cold `edgemig checkpoint --to DIR` + `edgemig restore
# DIR` on the host it runs on (nothing pre-warmed, nothing crosses a link),
# DT_REPS times, recorded as method "localcr" (rate 0, its time as both
# handoff and downtime) for bench/lib/issue17.py's ratio row. It runs once
# per workload, after the edgemig methods (a baseline restores with
# `edgemig restore` too) and before the other baselines.
DT_WORKLOADS=${DT_WORKLOADS:-busybox redis}
DT_RATES=${DT_RATES:-5 20}

dt_reps() { # -> DT_REPS for this run
	if [ -n "${DT_REPS:-}" ]; then echo "$DT_REPS"; elif ((QUICK)); then echo 5; else echo 20; fi
}

# dt_cell_reps W METHOD RATE N: N, or DT_REPS for a downtime cell.
dt_cell_reps() {
	local n=$4
	if [ "$2" = edgemig ] && [[ " $DT_WORKLOADS " == *" $1 "* ]] && [[ " $DT_RATES " == *" $3 "* ]]; then
		((n >= $(dt_reps))) || n=$(dt_reps)
	fi
	echo "$n"
}

declare -A DT_DONE=()
# dt_local_before W METHOD: the local reference, before the first method
# that is not edgemig's own (or METHOD "end": after the last one).
dt_local_before() {
	local w=$1 m=$2
	[[ " $DT_WORKLOADS " == *" $w "* ]] && [[ " $METHODS " == *" edgemig "* ]] && [ -z "${DT_DONE[$w]:-}" ] || return 0
	[ "$m" = end ] || [ -z "${MODE_OF[$m]:-}" ] || return 0
	DT_DONE[$w]=1
	dt_local_cold "$w"
}

dt_local_cold() { # W
	local w=$1 i=${CUR[$1]} d=$WK/dt-ck t0 t1 t2 n rep
	n=$(dt_reps)
	shape 0
	for ((rep = 1; rep <= n; rep++)); do
		rm -rf "$d"
		t0=$(now_ms)
		h "$i" checkpoint "$w" --to "$d" >/dev/null || fail "local checkpoint of $w on host $i"
		t1=$(now_ms)
		h "$i" restore "$d" >/dev/null || fail "local restore of $w on host $i"
		t2=$(now_ms)
		wl_running_on "$i" "$w" || fail "$w not running on host $i after its local restore"
		python3 - >>"$OUT/runs.jsonl" <<-PY
			import json, os
			print(json.dumps({"workload": "$w", "method": "localcr", "rate_mbit": 0, "rep": $rep,
			    "from": $i, "to": $i, "latency_ms": 0, "dirty_mbps": None,
			    "handoff_ms": $((t2 - t0)), "downtime_ms": $((t2 - t0)),
			    "checkpoint_ms": $((t1 - t0)), "restore_ms": $((t2 - t1)),
			    "wire_bytes": 0, "wire_bytes_back": 0, "pre_bytes": 0, "client_gap_ms": None,
			    "client_gap_open": False, "check": "ok", "rounds": None,
			    "load1": os.getloadavg()[0]}))
		PY
		log "$w local cold checkpoint + restore #$rep: $((t1 - t0)) + $((t2 - t1)) ms"
	done
	rm -rf "$d"
}
